# fanout_status ?format=fields: the counter tables the JSON and Prometheus
# views are printed from.  Every counter they list is in both views, where
# they say, for every node of every group (locations, targets, limits,
# variants, shadows, batches, Redis), and every family is announced once.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;

my $t = FT->new;

$t->mock('m', mode => 'model');
$t->redis('r');

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /p {
        fanout_target a /_m;
        fanout_target b /_m batch=8 batch_wait=5ms;
        fanout_limit key=$http_x_user rate=100r/s burst=100;
        fanout_cache key=$request_body ttl=60s;
    }
    location /s {
        fanout_split $arg_user { 50% v2; * v1; }
        fanout_target one /_m variant=v1;
        fanout_target two /_m variant=v2;
        fanout_shadow sh /_m;
    }
    location = /status { fanout_status; }
}
EOC

for my $i (1 .. 6) {
    my $r = $t->post('/p', '{"instances":[' . $i . ']}',
                     headers => { 'X-User' => "u$i" });
    is($r->{status}, 200, "fan-out $i answers");
    $r = $t->post("/s?user=u$i", '{"instances":[1]}');
    is($r->{status}, 200, "split $i answers");
}

my $f = $t->get('/status?format=fields');
is($f->{status}, 200, 'fields: 200');
like($f->{headers}{'content-type'}, qr{^application/json}, 'as JSON');
my $fields = decode_json($f->{body});

is_deeply([sort keys %$fields],
          [sort qw(location limit variant shadow batch target redis)],
          'one table per group');

for my $g (sort keys %$fields) {
    cmp_ok(scalar @{ $fields->{$g} }, '>', 0, "$g: counters listed");
    my @bad = grep { !$_->{name} || !$_->{metric} || !$_->{help}
                     || $_->{metric} !~ /^fanout_[a-z0-9_]+$/ }
              @{ $fields->{$g} };
    is_deeply(\@bad, [], "$g: every counter has a name, a family, a help");
}

my $st = $t->status_json('/status');
my $prom = $t->get('/status?format=prometheus')->{body};

my %families;
$families{$1}++ while $prom =~ /^# TYPE (\S+) /mg;
my @twice = grep { $families{$_} > 1 } sort keys %families;
is_deeply(\@twice, [], 'every family announced once');

# the nodes of each group in the JSON, with their Prometheus labels
my %nodes;
for my $l (sort keys %{ $st->{locations} }) {
    my $loc = $st->{locations}{$l};
    push @{ $nodes{location} }, [$loc, "location=\"$l\""];
    push @{ $nodes{target} }, [$loc->{targets}{$_},
                               "location=\"$l\",target=\"$_\""]
        for sort keys %{ $loc->{targets} };
    push @{ $nodes{limit} }, [$loc->{limit}{limits}{$_},
                              "location=\"$l\",limit=\"$_\""]
        for sort keys %{ $loc->{limit}{limits} };
    push @{ $nodes{variant} }, [$loc->{variants}{$_},
                                "location=\"$l\",variant=\"$_\""]
        for sort keys %{ $loc->{variants} };
    push @{ $nodes{shadow} }, [$loc->{shadows}{$_},
                               "location=\"$l\",shadow=\"$_\""]
        for sort keys %{ $loc->{shadows} };
    push @{ $nodes{batch} }, [$loc->{batches}{$_},
                              "location=\"$l\",target=\"$_\""]
        for sort keys %{ $loc->{batches} };
}
push @{ $nodes{redis} }, [$st->{redis}, ''];

for my $g (sort keys %$fields) {
    cmp_ok(scalar @{ $nodes{$g} // [] }, '>', 0, "$g: nodes to check");

    my (@missing_json, @missing_prom);

    for my $n (@{ $nodes{$g} }) {
        my ($node, $labels) = @$n;

        for my $c (@{ $fields->{$g} }) {
            my $obj = defined $c->{object} ? $node->{ $c->{object} } : $node;
            my $v = ref $obj eq 'HASH' ? $obj->{ $c->{name} } : undef;

            push @missing_json, "$g $labels $c->{name}"
                unless defined $v
                       && (ref $v eq 'HASH' || $v =~ /^[0-9]+$/);

            my $metric = $c->{metric};
            my @l = grep { length } ($labels,
                         $c->{label} ? "$c->{label}=\"$c->{value}\"" : ());
            my $sample = ref $v eq 'HASH'
                ? qr/^\Q${metric}_count\E(\{\Q${labels}\E\})? [0-9.]+$/m
                : @l ? qr/^\Q$metric\E\{\Q@{[join ',', @l]}\E\} [0-9.]+$/m
                     : qr/^\Q$metric\E [0-9.]+$/m;

            push @missing_prom, "$g $labels $c->{name}"
                unless $prom =~ $sample;
        }
    }

    is_deeply(\@missing_json, [], "$g: every counter in the JSON");
    is_deeply(\@missing_prom, [], "$g: every counter in Prometheus");
}

# values agree between the views: the location's requests and a target's
my $p = $st->{locations}{'/p'};
is($p->{requests}, 6, 'six requests to /p');
like($prom, qr/^fanout_requests_total\{location="\/p"\} 6$/m,
     'Prometheus has the same');
is($p->{limit}{limits}{(keys %{ $p->{limit}{limits} })[0]}{admitted}, 6,
   'the limit admitted six');

my $bad = $t->get('/status?format=yaml');
is($bad->{status}, 400, 'an unknown format: 400');
like($bad->{body}, qr/fields/, 'which names fields among the formats');

done_testing;
