# fanout_health: ready while every checked location can meet its quorum
# with callable targets; 503 with reasons when a breaker open (learned or
# not) or a full max_inflight leaves too few, when Redis is down and a
# location needs it, and while draining. fanout_api: the drain by hand,
# kept across reloads, and every bad change refused with nothing changed.
# fanout_drain_on_quit: after "nginx -s quit" both workers go on serving
# with the health at 503 for the drain, then exit; a reload does not drain.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use POSIX ":sys_wait_h";
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->redis('r');
$t->mock('a', ms => 5);
$t->mock('b', ms => 5);
$t->mock('slow', ms => 1500);
my $dead = $t->port('dead');

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
fanout_instance node-7;
fanout_drain_on_quit 2s;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_dead { internal; proxy_pass http://127.0.0.1:$dead/; }
    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_quorum 2;
    }
    location /q1 {
        fanout_target a /_a;
        fanout_target dead /_dead;
        fanout_breaker failures=2 cooldown=30s;
    }
    location /q2 {
        fanout_target a /_a;
        fanout_target dead /_dead;
        fanout_quorum 2;
        fanout_breaker failures=2 cooldown=30s;
    }
    location /m {
        fanout_target s /_slow max_inflight=1;
    }
    location /c {
        fanout_target a /_a;
        fanout_limit key=\$remote_addr rate=1000r/s scope=cluster on_redis_error=closed;
    }
    location = /health { fanout_health; }
    location = /health/p { fanout_health /p; }
    location = /health/q { fanout_health /q1 /q2; }
    location = /health/q1 { fanout_health /q1; }
    location = /health/m { fanout_health /m; }
    location = /health/c { fanout_health /c; }
    location = /api { fanout_api write; }
    location = /api/ro { fanout_api; }
}
EOC

sub health {
    my ($uri) = @_;
    my $r = $t->get($uri);
    return ($r->{status}, $r->{json} // {}, $r);
}

# --- ready

my ($s, $h, $r) = health('/health');
is($s, 200, 'all ready: 200');
is($h->{status}, 'ready', 'status ready');
is($h->{instance}, 'node-7', 'the instance named');
is_deeply($h->{reasons}, [], 'no reasons');
is($h->{locations}{'/p'}{quorum}, 2, 'the quorum of /p');
is($h->{locations}{'/p'}{available}, 2, 'both targets callable');
is($h->{locations}{'/p'}{targets}{a}{breaker}, 'closed', 'a breaker per target');
is($r->{headers}{'cache-control'}, 'no-store', 'not cached');
is($t->request('HEAD', '/health')->{status}, 200, 'HEAD');
is($t->post('/health', '{}')->{status}, 405, 'POST: 405');

# --- a breaker opens: the quorum decides

$t->post('/q1', '{}') for 1 .. 3;
$t->post('/q2', '{}') for 1 .. 3;

($s, $h) = health('/health/q1');
is($s, 200, 'quorum 1 with one breaker open: still ready');
is($h->{locations}{'/q1'}{targets}{dead}{reason}, 'breaker_open', 'the open target says why');
cmp_ok($h->{locations}{'/q1'}{targets}{dead}{retry_in_ms}, '>', 20000, 'and when it is tried again');
is($h->{locations}{'/q1'}{available}, 1, 'one of two available');

($s, $h) = health('/health/q');
is($s, 503, 'quorum 2 with one of two: 503');
is($h->{status}, 'not_ready', 'not_ready');
is_deeply($h->{reasons}, ['/q2: 1 of 2 targets can answer, quorum 2'], 'the reason names the location');
ok($h->{locations}{'/q1'}{ready} && !$h->{locations}{'/q2'}{ready}, 'per location');

($s) = health('/health');
is($s, 503, 'all locations (the default) include /q2');
($s) = health('/health/p');
is($s, 200, 'a list of locations checks only those');

# --- max_inflight full

my @res = $t->concurrent([['POST', '/m', body => '{}']], during => sub {
    sleep 0.5;
    ($s, $h) = health('/health/m');
});
is($s, 503, 'max_inflight reached: 503');
is($h->{locations}{'/m'}{targets}{s}{reason}, 'max_inflight', 'the reason');
is($h->{locations}{'/m'}{targets}{s}{inflight}, 1, 'in flight 1');
is($res[0]{status}, 200, 'the call itself answered');
($s) = health('/health/m');
is($s, 200, 'and once it is done: 200');

# --- Redis down, needed by a closed cluster limit

($s, $h) = health('/health/c');
is($s, 200, 'Redis up: ready');
ok($h->{redis}{required}, 'Redis is required by /c');
$t->redis_signal('r', 'KILL');
$t->post('/c', '{}') for 1 .. 2;    # the workers notice the close
my $down;
for (1 .. 60) {
    ($s, $h) = health('/health/c');
    $down = $s == 503 and last;
    sleep 0.05;
}
ok($down, 'Redis killed: 503');
like(join(' ', @{ $h->{reasons} || [] }), qr/^redis: no connection/, 'the reason says Redis');
is($h->{redis}{connections}, 0, 'no connection');
($s) = health('/health/p');
is($s, 200, 'a location that does not need Redis stays ready');
$t->redis_restart('r');
my $up;
for (1 .. 100) {
    $t->post('/c', '{}');
    ($s) = health('/health/c');
    $up = $s == 200 and last;
    sleep 0.05;
}
ok($up, 'Redis back: ready again');

# --- the API: drain by hand

my $st = $t->get('/api');
is($st->{status}, 200, 'GET the state');
is($st->{json}{draining}, JSON::PP::false, 'not draining');
my $v0 = $st->{json}{version};

for my $bad (['PATCH', '/api', 'nope', 400, 'bad_json'],
             ['PATCH', '/api', '[true]', 400, 'bad_request'],
             ['PATCH', '/api', '{}', 400, 'bad_request'],
             ['PATCH', '/api', '{"draining":"yes"}', 400, 'bad_value'],
             ['PATCH', '/api', '{"draining":1}', 400, 'bad_value'],
             ['PATCH', '/api', '{"drain":true}', 400, 'unknown_field'],
             ['PATCH', '/api', '{"draining":true,"x":1}', 400, 'unknown_field'],
             ['PATCH', '/api', '{"draining":true,"draining":false}', 400, 'bad_request'],
             ['PATCH', '/api/ro', '{"draining":true}', 403, 'read_only'],
             ['DELETE', '/api', '', 405, 'method_not_allowed'])
{
    my ($m, $uri, $body, $code, $err) = @$bad;
    my $res = $t->request($m, $uri, length $body ? (body => $body) : ());
    is($res->{status}, $code, "$m $uri $body: $code");
    is(($res->{json} // {})->{error}, $err, "  $err");
}
$st = $t->get('/api')->{json};
is($st->{version}, $v0, 'nothing changed: the version is the same');
is($st->{draining}, JSON::PP::false, 'not draining');

my $big = $t->request('PATCH', '/api', body => '{"draining":true,"pad":"' . ('x' x 70000) . '"}');
is($big->{status}, 413, 'a change over 64 KB: 413');
is($t->get('/api')->{json}{draining}, JSON::PP::false, 'and nothing changed');

$r = $t->request('PATCH', '/api', body => ' {"draining": true} ');
is($r->{status}, 200, 'PATCH {"draining":true}');
is($r->{json}{draining}, JSON::PP::true, 'draining');
is($r->{json}{version}, $v0 + 1, 'the version moves on');
like($t->error_log, qr/\[notice\].*fanout_api: draining false -> true/, 'logged at notice with old and new');

($s, $h) = health('/health/p');
is($s, 503, 'draining: the health is 503');
is_deeply($h->{reasons}, ['draining'], 'because of the drain');
$r = $t->post('/p', '{}', headers => { Connection => 'keep-alive' });
is($r->{status}, 200, 'traffic is still served');
is(lc($r->{headers}{connection} // ''), 'close', 'with Connection: close');

my @old = $t->workers;
ok($t->reload, 'reload');
ok($t->workers_gone(@old), 'the old workers exit: a reload does not drain');
($s) = health('/health/p');
is($s, 503, 'the drain survives the reload');

$r = $t->request('PUT', '/api', body => '{"draining":false}');
is($r->{json}{draining}, JSON::PP::false, 'PUT {"draining":false}');
($s) = health('/health/p');
is($s, 200, 'ready again');
$r = $t->post('/p', '{}', headers => { Connection => 'keep-alive' });
is(lc($r->{headers}{connection} // ''), 'keep-alive', 'keepalive again');

# --- drain on quit

my $pid = $t->{instances}{nginx}{pid};
my $t0 = time;
kill 'QUIT', $pid;
sleep 0.3;

my (@codes, @served);
while (time - $t0 < 1.5) {
    push @codes, (health('/health/p'))[0];
    push @served, $t->post('/p', '{}')->{status};
    sleep 0.1;
}
ok(@codes >= 5 && !grep({ $_ != 503 } @codes), 'quitting: the health answers 503 throughout (' . scalar(@codes) . ' checks)');
ok(!grep({ $_ != 200 } @served), 'and every request is served (' . scalar(@served) . ')');

my $exited;
while (time - $t0 < 10) {
    if (waitpid($pid, WNOHANG) == $pid) {
        $exited = time - $t0;
        last;
    }
    sleep 0.05;
}
ok($exited, 'nginx exits');
cmp_ok($exited // 0, '>=', 1.9, sprintf('after the drain (%.1f s)', $exited // 0));
my $log = $t->error_log;
my $n = () = $log =~ /fanout_drain_on_quit: serving for 2000 ms/g;
is($n, 2, 'both workers drained');

delete $t->{instances}{nginx};
push @{ $t->{stopped} }, 'nginx';

$t->done;
