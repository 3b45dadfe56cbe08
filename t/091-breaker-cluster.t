# fanout_breaker scope=cluster: an instance that opens a breaker tells the
# others through Redis within a second, a good probe closes it everywhere,
# and Redis trouble leaves each instance with its own state.  fallback=:
# a target that is open, overloaded or failed is answered by its fallback,
# under its own name.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('dead', status => 500);
$t->mock('flip', mode => 'echo');
$t->mock('small', mode => 'echo');
$t->mock('slow', mode => 'echo', ms => 400);
$t->mock('hang', mode => 'echo', ms => 3000);
$t->mock('missing', status => 404);

for my $name (qw(one two)) {
    $t->run(prefix => $name, port => $t->port($name),
            workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_$name%% reuseport;
    location /_dead  { internal; proxy_pass http://127.0.0.1:%%MOCK_dead%%/; }
    location /_flip  { internal; proxy_pass http://127.0.0.1:%%MOCK_flip%%/; }
    location /_small { internal; proxy_pass http://127.0.0.1:%%MOCK_small%%/; }
    location /_slow  { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_hang  { internal; proxy_pass http://127.0.0.1:%%MOCK_hang%%/; }
    location /_missing { internal; proxy_pass http://127.0.0.1:%%MOCK_missing%%/; }
    location /_ok    { internal; default_type application/json;
                       return 200 '{"label":"cat","fallback_model":1}'; }

    location /c {
        fanout_target dead /_dead;
        fanout_breaker failures=3 cooldown=10s scope=cluster;
    }
    location /flip {
        fanout_target flip /_flip;
        fanout_breaker failures=2 cooldown=2s scope=cluster;
    }
    location /fb {
        fanout_target big /_dead fallback=/_small?fb=1;
        fanout_target other /_flip;
        fanout_breaker failures=2 cooldown=10s;
    }
    location /fbtime {
        fanout_target big /_hang timeout=200ms fallback=/_ok;
        fanout_timeout 2s;
    }
    location /fbfirst {
        fanout_target big /_dead fallback=/_ok;
        fanout_target slow /_slow;
        fanout_merge first;
    }
    location /fbcap {
        fanout_target big /_slow max_inflight=1 fallback=/_ok;
    }
    location /fbcache {
        fanout_target big /_dead fallback=/_ok;
        fanout_cache ttl=60s;
    }
    location /fbfail {
        fanout_target big /_dead fallback=/_dead?again=1;
    }
    location /fb4xx {
        fanout_target big /_missing fallback=/_ok;
    }
    location = /fanout/status { fanout_status; }
}
EOC
}

sleep 0.6;

my %port = (one => $t->port('one'), two => $t->port('two'));

sub breaker {
    my ($name, $loc, $target) = @_;
    my $st = $t->get('/fanout/status', port => $port{$name})->{json};
    return $st->{locations}{$loc}{targets}{$target};
}

# instance one opens the breaker; instance two learns within a second

for (1 .. 3) {
    $t->get('/c', port => $port{one});
}
is(breaker('one', '/c', 'dead')->{breaker}{state}, 'open',
   'three failures on instance one open its breaker');

my $pttl = $t->redis_cli('r', 'PTTL', 'fanout:breaker:/c:dead');
cmp_ok($pttl, '>', 8000, 'Redis has the open breaker for the cooldown');
cmp_ok($pttl, '<=', 10000, '(its TTL is the cooldown)');
is($t->redis_cli('r', 'GET', 'fanout:breaker:/c:dead'), 10000,
   'with the cooldown as its value');

my $t0 = time;
my $learned;
while (time - $t0 < 3) {
    my $b = breaker('two', '/c', 'dead');
    if ($b->{breaker}{state} eq 'open') {
        $learned = time - $t0;
        last;
    }
    sleep 0.05;
}
ok(defined $learned, 'instance two learned the open breaker');
cmp_ok($learned // 99, '<=', 1, "within a second ($learned s)");

my $b2 = breaker('two', '/c', 'dead');
ok($b2->{breaker}{learned}, 'status says it was learned from another instance');
cmp_ok($b2->{breaker}{retry_in_ms}, '>', 7000, 'it waits out the same cooldown');

my $calls = grep { $_->{method} } $t->hits('dead');
my $res;
for (1 .. 5) {
    $res = $t->get('/c', port => $port{two});
}
is($res->{json}{errors}{dead}{error}, 'circuit_open',
   'instance two does not call the model: circuit_open');
is(scalar(grep { $_->{method} } $t->hits('dead')), $calls,
   'the model got no call from instance two');
like(FT::read_text($t->dir . '/two/error.log'),
     qr/fanout breaker of target "dead" in location "\/c": closed -> open \(opened on another instance\)/,
     'instance two logs what it learned at warn');

# a good probe on one instance closes it on the other

for (1 .. 2) {
    $t->get('/flip?status=500', port => $port{one});
}
is(breaker('one', '/flip', 'flip')->{breaker}{state}, 'open', 'flip: open on one');
sleep 1.2;
is(breaker('two', '/flip', 'flip')->{breaker}{state}, 'open', 'flip: open on two');
sleep 1.2;    # the cooldown (2s) is over on one: a probe
$res = $t->get('/flip', port => $port{one});
is($res->{status}, 200, 'the probe on instance one succeeds');
is(breaker('one', '/flip', 'flip')->{breaker}{state}, 'closed', 'closed on one');
is($t->redis_cli('r', 'GET', 'fanout:breaker:/flip:flip'), '0',
   'and its Redis key says closed (0)');
my $closed_ttl = $t->redis_cli('r', 'PTTL', 'fanout:breaker:/flip:flip');
ok($closed_ttl > 0 && $closed_ttl <= 1000, "for a second at most ($closed_ttl ms)");

# Redis gone: each instance keeps its own state and serves

$t->redis_signal('r', 'KILL');
for (1 .. 3) {
    $res = $t->get('/c', port => $port{one});
}
is($res->{json}{errors}{dead}{error}, 'circuit_open',
   'Redis down: the open breaker still holds');
$t->redis_restart('r');

# fallback=: a failing target answers from its fallback, under its name

$res = $t->get('/fb', port => $port{one});
is($res->{status}, 200, 'fallback: 200');
ok($res->{json}{results}{big}, 'the answer is under the target\'s name');
is($res->{json}{meta}{fallback}{big}, JSON::PP::true, 'meta says fallback: true');
ok(!exists $res->{json}{errors}{big}, 'and it is not an error');
my @small = grep { $_->{method} } $t->hits('small');
is(scalar @small, 1, 'the fallback model was called once');
like($small[0]{uri} // '', qr/fb=1/, 'with the fallback URI\'s arguments');

$t->get('/fb', port => $port{one});
my $st = breaker('one', '/fb', 'big');
is($st->{breaker}{state}, 'open',
   'the primary\'s failures still reach its breaker');
is($st->{http_5xx}, 2, 'and its counters');
is($st->{fallback}, 2, 'status: fallback calls');
is($st->{fallback_ok}, 2, 'status: fallback answers');
my $dead0 = grep { $_->{method} } $t->hits('dead');
$res = $t->get('/fb', port => $port{one});
is($res->{json}{meta}{fallback}{big}, JSON::PP::true,
   'breaker open: the fallback answers at once');
is(scalar(grep { $_->{method} } $t->hits('dead')), $dead0,
   'and the open target is not called');

# a timed-out target falls back within the deadline

$t0 = time;
$res = $t->get('/fbtime', port => $port{one});
my $took = time - $t0;
is($res->{status}, 200, 'timeout=200ms: the fallback answers');
is($res->{json}{results}{big}{label}, 'cat', 'its answer');
cmp_ok($took, '<', 1.5, "after the target's timeout, not the deadline ($took s)");

# merge first: the fallback's answer can win; a header says so

$res = $t->get('/fbfirst', port => $port{one});
is($res->{status}, 200, 'first: 200');
is($res->{headers}{'x-fanout-target'}, 'big', 'first: won by the target');
is($res->{headers}{'x-fanout-fallback'}, 'true', 'X-Fanout-Fallback: true');
is($res->{json}{fallback_model}, 1, 'the fallback\'s body');

# max_inflight: an overloaded target falls back

my @par = $t->parallel(3, 'GET', '/fbcap', port => $port{two});
my $fb = grep { ($_->{body} // '') =~ /"fallback":\{"big":true\}/ } @par;
is(scalar(grep { $_->{status} == 200 } @par), 3, 'max_inflight=1: three 200s');
cmp_ok($fb, '>=', 1, "overloaded calls went to the fallback ($fb)");

# a fallback that fails too: one more call, then the target's error,
# marked as the fallback's; a 4xx is the client's and falls back to nothing

my $dead1 = grep { $_->{method} } $t->hits('dead');
$res = $t->get('/fbfail', port => $port{two});
is($res->{status}, 502, 'the fallback failed too: 502');
is($res->{json}{errors}{big}{error}, 'http_500', 'the fallback\'s error');
is($res->{json}{meta}{fallback}{big}, JSON::PP::true, 'marked as the fallback\'s');
my @dead = grep { $_->{method} } $t->hits('dead');
is(scalar @dead - $dead1, 2, 'the target and its fallback, once each');
like($dead[-1]{uri}, qr/again=1/, 'the second call was the fallback');
$st = breaker('two', '/fbfail', 'big');
is($st->{fallback}, 1, 'status: one fallback call');
is($st->{fallback_ok}, 0, 'status: no fallback answer');

$res = $t->get('/fb4xx', port => $port{two});
is($res->{json}{errors}{big}{error}, 'http_404', '4xx: the target\'s own error');
ok(!$res->{json}{meta}{fallback}, '4xx: no fallback');
is(breaker('two', '/fb4xx', 'big')->{fallback}, 0, '4xx: no fallback call');

# a degraded answer is not cached

$t->get('/fbcache', port => $port{one}) for 1 .. 2;
$res = $t->get('/fbcache', port => $port{one});
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'a fallback answer is never cached');

$t->done;
