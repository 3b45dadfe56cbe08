# fanout_split: sticky weighted variants laid out as split_clients lays
# them out (checked against nginx's own split_clients on the same keys),
# the same across workers, instances and reloads; variant-tagged targets
# run only under their variant; $fanout_variant, X-Fanout-Variant, the
# cache key and per-variant status.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('v1', mode => 'echo', body => '{"model":"v1","label":"cat"}');
$t->mock('v2', mode => 'echo', body => '{"model":"v2","label":"dog"}');
$t->mock('v2b', mode => 'echo', body => '{"model":"v2b","label":"dog"}');
$t->mock('base', mode => 'echo', body => '{"model":"base","label":"cat"}');

sub conf {
    my ($name, $share) = @_;
    return <<"EOC";
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
log_format v '\$arg_user \$fanout_variant \$sc';
split_clients \$arg_user \$sc { $share% v2; 0.5% v3; * v1; }
server {
    listen 127.0.0.1:%%PORT_$name%% reuseport;
    location /_v1  { internal; proxy_pass http://127.0.0.1:%%MOCK_v1%%/; }
    location /_v2  { internal; proxy_pass http://127.0.0.1:%%MOCK_v2%%/; }
    location /_v2b { internal; proxy_pass http://127.0.0.1:%%MOCK_v2b%%/; }
    location /_base { internal; proxy_pass http://127.0.0.1:%%MOCK_base%%/;
                      proxy_set_header X-Variant \$fanout_variant; }

    location /_fast { internal; default_type application/json;
                      return 200 '{"model":"fast"}'; }

    # A/B by user, checked against split_clients' \$sc
    location /ab {
        fanout_split \$arg_user { $share% v2; 0.5% v3; * v1; }
        fanout_target base /_fast;
        fanout_target m1 /_fast variant=v1;
        fanout_target m2 /_fast variant=v2;
        fanout_target m2b /_fast variant=v2;
        add_header X-SC \$sc;
        access_log %%TESTDIR%%/$name/variants.log v;
    }
    # the same with real models, to read their logs
    location /abm {
        fanout_split \$arg_user { $share% v2; 0.5% v3; * v1; }
        fanout_target base /_base;
        fanout_target m1 /_v1 variant=v1;
        fanout_target m2 /_v2 variant=v2;
        fanout_target m2b /_v2b variant=v2;
    }
    location /cached {
        fanout_split \$arg_user { 50% a; * b; }
        fanout_target base /_base;
        fanout_cache ttl=60s key=same;
    }
    location /rand {
        fanout_split \$arg_none { 30% x; * y; }
        fanout_target base /_base;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC
}

$t->run(prefix => 'one', port => $t->port('one'), workers => 2,
        http => conf('one', 10));
$t->run(prefix => 'two', port => $t->port('two'), workers => 1,
        http => conf('two', 10));

my %port = (one => $t->port('one'), two => $t->port('two'));

# one request per user, on a keepalive connection per instance

sub variants {
    my ($name, $n, $loc) = @_;
    my $s = $t->connect($port{$name});
    my %v;
    for my $i (1 .. $n) {
        # keepalive_requests (1000) ends a connection: a new one each 500
        $s = $t->connect($port{$name}) if $i % 500 == 0;
        my $r = $t->send_request($s, 'GET', ($loc // '/ab') . "?user=u$i");
        $v{"u$i"} = [ $r->{headers}{'x-fanout-variant'} // '',
                      $r->{headers}{'x-sc'} // '', $r ];
    }
    close $s;
    return \%v;
}

my $n = 10000;
my $a = variants('one', $n);
my %count;
my $same_sc = 0;
$count{ $a->{$_}[0] }++, $same_sc += ($a->{$_}[0] eq $a->{$_}[1])
    for keys %$a;

is($same_sc, $n, "all $n users get the variant split_clients gives them")
    or diag(join ' ', map { "$_=$a->{$_}[0]/$a->{$_}[1]" }
                      grep { $a->{$_}[0] ne $a->{$_}[1] } (sort keys %$a)[0 .. 9]);
cmp_ok(abs(($count{v2} // 0) / $n - 0.10), '<=', 0.015,
       "v2 share $count{v2}/$n within 1.5 points of 10%");
cmp_ok(abs(($count{v1} // 0) / $n - 0.895), '<=', 0.015,
       "v1 share within 1.5 points of 89.5%");

my $b = variants('two', $n);
my $same = grep { $a->{$_}[0] eq $b->{$_}[0] } keys %$a;
is($same, $n, 'instance two gives every user the same variant');

my $again = variants('one', 300);
is(scalar(grep { $again->{$_}[0] eq $a->{$_}[0] } keys %$again), 300,
   'the same variant again on two workers');

# variant-tagged targets run only under their variant

my ($u2) = grep { $a->{$_}[0] eq 'v2' } sort keys %$a;
my ($u1) = grep { $a->{$_}[0] eq 'v1' } sort keys %$a;
my ($u3) = grep { $a->{$_}[0] eq 'v3' } sort keys %$a;
my $r2 = $a->{$u2}[2]{json};
is_deeply([sort keys %{ $r2->{results} }], [qw(base m2 m2b)],
          'v2: the untagged target and v2\'s ensemble');
my $r1 = $a->{$u1}[2]{json};
is_deeply([sort keys %{ $r1->{results} }], [qw(base m1)],
          'v1: the untagged target and v1\'s model');
if ($u3) {
    is_deeply([sort keys %{ $a->{$u3}[2]{json}{results} }], ['base'],
              'v3 (no tagged target): the untagged one only');
} else {
    pass('no user drew v3 (0.5%)');
}

my $m = variants('one', 100, '/abm');
my $m2 = grep { $m->{$_}[0] eq 'v2' } keys %$m;
my @v2_calls = grep { $_->{method} } $t->hits('v2');
my @v1_calls = grep { $_->{method} } $t->hits('v1');
cmp_ok($m2, '>', 0, "some of 100 users drew v2 ($m2)");
is(scalar @v2_calls, $m2, 'the v2 model was called once per v2 user (its log)');
is(scalar(grep { $_->{method} } $t->hits('v2b')), $m2,
   'and so was the rest of v2\'s ensemble');
is(scalar @v1_calls, scalar(grep { $m->{$_}[0] eq 'v1' } keys %$m),
   'the v1 model once per v1 user');
my @base = grep { $_->{method} } $t->hits('base');
is(scalar @base, 100, 'the untagged target for everyone');
is(scalar(grep { ($_->{headers}{'x-variant'} // '') eq 'v2' } @base),
   $m2, '$fanout_variant reaches a target as a header');

like(FT::read_text($t->dir . '/one/variants.log'), qr/^u1 (v1|v2|v3) \1$/m,
     '$fanout_variant in the access log');

# per-variant status

my $st = $t->get('/fanout/status', port => $port{two})->{json};
my $vs = $st->{locations}{'/ab'}{variants};
is($vs->{v2}{requests}, $count{v2}, 'status: v2 requests');
is($vs->{v2}{200}, $count{v2}, 'status: v2 answers 200');
is($vs->{v2}{targets}{ok}, 3 * $count{v2}, 'status: v2 target outcomes');
is($vs->{v1}{latency_ms}{count}, $count{v1}, 'status: v1 latency histogram');

my $prom = $t->get('/metrics', port => $port{two})->{body};
like($prom, qr/^fanout_variant_requests_total\{location="\/ab",variant="v2",result="requests"\} $count{v2}$/m,
     'Prometheus: requests per variant');
like($prom, qr/^fanout_variant_target_results_total\{location="\/ab",variant="v2",result="ok"\} @{[3 * $count{v2}]}$/m,
     'Prometheus: target outcomes per variant');
like($prom, qr/# TYPE fanout_variant_target_results_total counter\n(fanout_variant_target_results_total\{[^\n]*\n)+# HELP/,
     'Prometheus: one family in one block');

# an empty key spreads at random

my %rand;
$rand{ $t->get('/rand', port => $port{one})->{headers}{'x-fanout-variant'} }++
    for 1 .. 200;
cmp_ok($rand{x} // 0, '>=', 30, "empty key: x drawn ($rand{x} of 200)");
cmp_ok($rand{y} // 0, '>=', 100, "empty key: y drawn ($rand{y} of 200)");

# the cache key includes the variant

my ($ua) = grep { $t->get("/cached?user=$_", port => $port{one})
                    ->{headers}{'x-fanout-variant'} eq 'a' } map { "c$_" } 1 .. 20;
my ($ub) = grep { $t->get("/cached?user=$_", port => $port{one})
                    ->{headers}{'x-fanout-variant'} eq 'b' } map { "c$_" } 1 .. 20;
my $ra = $t->get("/cached?user=$ua", port => $port{one});
my $rb = $t->get("/cached?user=$ub", port => $port{one});
is($ra->{headers}{'x-fanout-cache'}, 'HIT', 'variant a: a hit of its own');
is($rb->{headers}{'x-fanout-cache'}, 'HIT', 'variant b: a hit of its own');
my @entries = grep { length } split /\n/, $t->redis_cli('r', 'KEYS', 'fanout:/cached:*');
is(scalar @entries, 2, 'two entries for one key=: one per variant')
    or diag("@entries");

# raising v2 from 10% to 20% keeps everyone who had it; a reload keeps all

# the old workers go first: with reuseport, a connection queued on one
# of their sockets would be lost
sub reload_one {
    my ($share) = @_;
    my @old = $t->workers('one');
    my $ok = $t->reload('one', workers => 2, http => conf('one', $share));
    for (1 .. 100) {
        my %now = map { $_ => 1 } $t->workers('one');
        last unless grep { $now{$_} } @old;
        sleep 0.05;
    }
    return $ok;
}

ok(reload_one(10), 'reload with the same split');
my $c = variants('one', $n);
is(scalar(grep { $c->{$_}[0] eq $a->{$_}[0] } keys %$a), $n,
   'every user keeps the variant across a reload');

ok(reload_one(20), 'reload with v2 at 20%');
my $d = variants('one', $n);
my @had = grep { $a->{$_}[0] eq 'v2' } keys %$a;
is(scalar(grep { $d->{$_}[0] eq 'v2' } @had), scalar @had,
   'everyone who had v2 keeps it at 20%');
my $now = grep { $d->{$_}[0] eq 'v2' } keys %$d;
cmp_ok(abs($now / $n - 0.20), '<=', 0.015, "v2 share now $now/$n");

$t->outcomes_add_up(port => $t->port($_)) for qw(one two);
$t->done;
