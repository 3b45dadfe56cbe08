# level=target: one entry per target, looked up in one MGET; only the
# targets that missed are called, and cached and fresh answers are merged.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('b', mode => 'echo');

my $conf = <<'EOC';
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a  { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b  { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_b2 { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/v2; }
    location /t {
        fanout_target a /_a;
        fanout_target b B_URI;
        fanout_cache ttl=60s level=target;
    }
    location /first {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_merge first;
        fanout_cache ttl=60s level=target;
    }
    location = /fanout/status { fanout_status; }
}
EOC

(my $v1 = $conf) =~ s/B_URI/\/_b/;
(my $v2 = $conf) =~ s/B_URI/\/_b2/;

$t->run(http => $v1);
sleep 0.3;

sub calls { scalar grep { $_->{method} } $t->hits($_[0]) }

my $body = '{"x":1}';

my $res = $t->post('/t', $body);
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'first: MISS');
is_deeply($res->{json}{meta}{cache}, { a => 'MISS', b => 'MISS' },
          'meta.cache: both missed');
is(calls('a') + calls('b'), 2, 'both targets called');

# the stores go after the answer, on any pooled connection: wait for both
for (1 .. 100) {
    my @k = split /\n/, $t->redis_cli('r', '--scan', '--pattern', 'fanout:/t:*');
    last if @k >= 2;
    sleep 0.02;
}

$res = $t->post('/t', $body);
is($res->{headers}{'x-fanout-cache'}, 'HIT', 'again: HIT');
is_deeply($res->{json}{meta}{cache}, { a => 'HIT', b => 'HIT' },
          'meta.cache: both hit');
is(calls('a') + calls('b'), 2, 'no target called');
is($res->{json}{results}{a}{sha1}, $res->{json}{results}{b}{sha1},
   'cached answers merged like fresh ones');

my @keys = split /\n/, $t->redis_cli('r', '--scan', '--pattern', 'fanout:/t:*');
is(scalar @keys, 2, 'one entry per target');
ok(scalar(grep { m{^fanout:/t:a:[0-9a-f]{64}$} } @keys), 'keys name the target');

# one target's entry gone: only that target is called

my ($ka) = grep { m{^fanout:/t:a:} } @keys;
$t->redis_cli('r', 'DEL', $ka);

$res = $t->post('/t', $body);
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'a missing: MISS');
is_deeply($res->{json}{meta}{cache}, { a => 'MISS', b => 'HIT' },
          'meta.cache: a missed, b hit');
is(calls('a'), 2, 'a called again');
is(calls('b'), 1, 'b not called');

# a new URI for b (a new model version): only b misses

my @old = $t->workers;
ok($t->reload('nginx', http => $v2), 'reload with another URI for b');

# old workers let go of their Redis connections and exit
ok($t->workers_gone(@old), 'old workers with Redis connections exit after the reload');
sleep 0.3;

$res = $t->post('/t', $body);
is_deeply($res->{json}{meta}{cache}, { a => 'HIT', b => 'MISS' },
          'after the change only b misses');
is(calls('a'), 2, 'a not called');
is(calls('b'), 2, 'b called at its new URI');
is(($t->hits('b'))[-1]{uri}, '/v2', 'the new URI');

# first: a cached answer wins at once

$res = $t->post('/first', '{"f":1}');
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'first: MISS');
my $winner = $res->{headers}{'x-fanout-target'};
sleep 0.5;    # the loser's call may reach its mock after the answer
my $before = calls('a') + calls('b');
$res = $t->post('/first', '{"f":1}');
is($res->{headers}{'x-fanout-target'}, $winner, 'first: the cached winner');
is($res->{headers}{'x-fanout-cache'}, 'HIT', 'first: a HIT');
is(calls('a') + calls('b'), $before, 'first: no call');

my $st = $t->status_json;
my $ta = $st->{locations}{'/t'}{targets}{a};
is($ta->{cache_hit}, 2, 'per-target hits counted');
is($ta->{cache_miss}, 2, 'per-target misses counted');
is($ta->{requests}, 2, 'calls counted apart from hits');

$t->outcomes_add_up;
$t->done;
