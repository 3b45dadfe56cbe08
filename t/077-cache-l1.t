# fanout_cache l1=: the first-level cache in shared memory.  Hits that
# never reach Redis (Redis killed), two workers seeing one L1, expiry by
# l1_ttl and by the entry's own freshness, entries kept only once Redis has
# them, level=target, eviction in a small zone, two vhosts with the same
# names, the request's own id echoed into an L1 hit, fanout_cache_purge of
# both levels, a reload, status and Prometheus, and nginx -t's errors.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('b', mode => 'echo');
$t->mock('k', mode => 'kserve');

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=200ms;
map $request_method $purge { PURGE 1; default 0; }
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    add_header X-Pid $pid;

    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_k { internal; proxy_pass http://127.0.0.1:%%MOCK_k%%/; }

    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s l1=1m;
        fanout_cache_purge $purge;
    }
    location /quick {
        fanout_target a /_a;
        fanout_cache ttl=60s l1=1m l1_ttl=300ms;
    }
    location /fresh {
        fanout_target a /_a;
        fanout_cache ttl=1s l1=1m l1_ttl=30s;
    }
    location /t {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s level=target l1=1m;
        fanout_cache_purge $purge;
    }
    location /tiny {
        fanout_target a /_a;
        fanout_cache ttl=60s l1=32k;
    }
    location /id {
        fanout_target k /_k;
        fanout_merge first;
        fanout_cache ttl=60s ignore=id l1=1m;
    }
    location /noredis {
        fanout_target a /_a;
        fanout_cache ttl=60s l1=1m;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
server {
    listen 127.0.0.1:%%PORT_other%% reuseport;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s l1=1m;
    }
}
EOC

sub cache { $_[0]{headers}{'x-fanout-cache'} // '(none)' }
sub hits_of { scalar $t->hits($_[0]) }

sub loc_cache {
    my ($loc) = @_;
    return $t->status_json->{locations}{$loc}{cache};
}

# --- a hit in the L1 never reaches Redis -------------------------------

my $res = $t->post('/p', '{"x":1}');
is($res->{status}, 200, 'a first request is answered');
is(cache($res), 'MISS', 'and missed');

# the L1 takes the entry once Redis has it: wait for that
for (1 .. 50) { last if loc_cache('/p')->{l1}{entries}; sleep 0.02 }

my $c = loc_cache('/p');
is($c->{l1}{entries}, 1, 'the L1 holds the entry once Redis has it');
is($c->{l1_stored}, 1, 'l1_stored counts it');
ok($c->{l1}{bytes} > 0 && $c->{l1}{size} == 2 * 1024 * 1024,
   "its bytes and the zones' size (two vhosts' /p) are shown");

my $a_before = hits_of('a');

my $cmds = sub {
    my ($info) = $t->redis_cli('r', 'INFO', 'stats') =~ /total_commands_processed:(\d+)/;
    return $info;
};
my $n0 = $cmds->();
$res = $t->post('/p', '{"x":1}');
my $n1 = $cmds->();
is(cache($res), 'HIT', 'the second is a hit');
# INFO itself is one command
is($n1 - $n0, 1, 'and Redis saw no command for it');
is(hits_of('a'), $a_before, 'no model was called');

my $r1 = decode_json($res->{body});
ok($r1->{results}{a} && $r1->{results}{b}, 'the hit is the whole answer');

my $tg = $t->status_json->{locations}{'/p'}{targets}{a};
is($tg->{requests}, 1, 'a hit is no target call in the status');
is($tg->{latency_ms}{count}, 1, 'nor a latency sample');

# --- two workers see one L1, with Redis gone ---------------------------

$t->redis_signal('r', 'KILL');

my (%pids, $ok);
for (1 .. 40) {
    my $r = $t->post('/p', '{"x":1}');
    $ok++ if $r->{status} == 200 && cache($r) eq 'HIT';
    $pids{ $r->{headers}{'x-pid'} // '' }++;
}
is($ok, 40, 'with Redis killed, 40 of 40 answered from the L1');
is(scalar(keys %pids), 2, 'by both workers');
is(hits_of('a'), $a_before, 'still no model call');

# stored only once in Redis: with Redis down, a miss is not kept
$res = $t->post('/noredis', '{"y":1}');
is($res->{status}, 200, 'Redis down: a new request fails open');
sleep 0.3;
is(loc_cache('/noredis')->{l1}{entries}, 0,
   'and its answer is not in the L1, since Redis never took it');
my $a_mid = hits_of('a');
$res = $t->post('/noredis', '{"y":1}');
is(hits_of('a'), $a_mid + 1, 'the same request calls the model again');

# --- purge with Redis down: the L1 goes, the client is told -----------

$res = $t->request('PURGE', '/p', body => '{"x":1}');
is($res->{status}, 503, 'a purge that cannot reach Redis: 503');
is($res->{json}{error}, 'redis_unavailable', 'with a JSON error');
is(loc_cache('/p')->{l1}{entries}, 0, 'the L1 entry is gone all the same');

$t->redis_restart('r');
sleep 0.5;

# --- purge of both levels ----------------------------------------------

$res = $t->post('/p', '{"x":2}');
is(cache($res), 'MISS', 'a new body misses');
for (1 .. 50) { last if loc_cache('/p')->{l1}{entries}; sleep 0.02 }
$res = $t->post('/p', '{"x":2}');
is(cache($res), 'HIT', 'then hits');

$res = $t->request('PURGE', '/p', body => '{"x":2}');
is($res->{status}, 200, 'PURGE: 200');
is_deeply($res->{json}, { purged => 1, l1 => 1 },
          'one Redis key and one L1 entry removed');
ok($t->error_log =~ /\[notice\].*fanout cache: purged "fanout:/,
   'the purge is logged at notice');

my $a_p = hits_of('a');
$res = $t->post('/p', '{"x":2}');
is(cache($res), 'MISS', 'after the purge: a miss');
is(hits_of('a'), $a_p + 1, 'the model is called again');

$res = $t->request('PURGE', '/p', body => '{"x":3}');
is($res->{status}, 404, 'a purge of nothing cached: 404');
is($res->{json}{error}, 'not_found', 'with a JSON error');
is(hits_of('a'), $a_p + 1, 'a purge never calls a model');
ok(loc_cache('/p')->{purged} >= 1, 'purged is counted');

# --- expiry: l1_ttl, and never past the entry's own freshness ---------

$res = $t->post('/quick', '{"q":1}');
for (1 .. 50) { last if loc_cache('/quick')->{l1}{entries}; sleep 0.02 }
my $l1h = loc_cache('/quick')->{l1_hit};
$res = $t->post('/quick', '{"q":1}');
is(loc_cache('/quick')->{l1_hit}, $l1h + 1, 'l1_ttl=300ms: a hit at once');
sleep 0.5;
$res = $t->post('/quick', '{"q":1}');
is(cache($res), 'HIT', 'after l1_ttl: still a hit');
is(loc_cache('/quick')->{l1_hit}, $l1h + 1, 'but from Redis, not the L1');
ok(loc_cache('/quick')->{l1}{expired} >= 1, 'the expired entry is counted');

$res = $t->post('/fresh', '{"f":1}');
for (1 .. 50) { last if loc_cache('/fresh')->{l1}{entries}; sleep 0.02 }
is($t->status_json->{locations}{'/fresh'}{cache}{l1}{ttl_ms}, 1000,
   'l1_ttl is at most ttl=');
sleep 1.2;
my $a_f = hits_of('a');
$res = $t->post('/fresh', '{"f":1}');
is(cache($res), 'MISS', 'an entry past its freshness is not served by the L1');
is(hits_of('a'), $a_f + 1, 'the model is called');

# --- level=target ------------------------------------------------------

$res = $t->post('/t', '{"t":1}');
for (1 .. 50) { last if loc_cache('/t')->{l1}{entries} == 2; sleep 0.02 }
is(loc_cache('/t')->{l1}{entries}, 2, 'level=target: one L1 entry a target');

$t->redis_signal('r', 'KILL');
my ($ha, $hb) = (hits_of('a'), hits_of('b'));
$res = $t->post('/t', '{"t":1}');
is(cache($res), 'HIT', 'level=target, Redis killed: a hit from the L1');
is(hits_of('a') + hits_of('b'), $ha + $hb, 'no target is called');
ok(decode_json($res->{body})->{results}{b}, 'with both answers');

$t->redis_restart('r');
sleep 0.5;

$res = $t->request('PURGE', '/t', body => '{"t":1}');
is($res->{status}, 200, 'level=target: PURGE 200');
is($res->{json}{l1}, 2, 'both targets\' L1 entries removed');

# --- the request's own id, in an L1 hit --------------------------------

$res = $t->post('/id', '{"id":"first","inputs":[1]}');
for (1 .. 50) { last if loc_cache('/id')->{l1}{entries}; sleep 0.02 }
$res = $t->post('/id', '{"id":"second","inputs":[1]}');
is(cache($res), 'HIT', 'ignore=id: the same inputs hit');
is(loc_cache('/id')->{l1_hit}, 1, 'from the L1');
is(decode_json($res->{body})->{id}, 'second',
   'and the answer carries this request\'s id, not the first\'s');

# --- two vhosts with the same names ------------------------------------

$res = $t->post('/p', '{"v":1}');
for (1 .. 50) { last if loc_cache('/p')->{l1}{entries}; sleep 0.02 }
$res = $t->post('/p', '{"v":1}', port => $t->port('other'));
is(cache($res), 'MISS', 'another vhost, same location and body: a miss');

# --- two tenants: the L1 keeps them apart as Redis does ---------------

my $stored_before = loc_cache('/p')->{l1_stored};
$res = $t->post('/p', '{"tenant":1}', headers => { Authorization => 'Bearer A' });
for (1 .. 100) { last if loc_cache('/p')->{l1_stored} > $stored_before; sleep 0.02 }
my $l1_before = loc_cache('/p')->{l1_hit};
$res = $t->post('/p', '{"tenant":1}', headers => { Authorization => 'Bearer A' });
is(cache($res), 'HIT', 'tenant A: its own entry');
is(loc_cache('/p')->{l1_hit}, $l1_before + 1, 'from the L1');
$res = $t->post('/p', '{"tenant":1}', headers => { Authorization => 'Bearer B' });
is(cache($res), 'MISS', 'tenant B, the same body: a miss, not A\'s answer');

# --- eviction in a small zone ------------------------------------------

for my $i (1 .. 120) {
    $t->post('/tiny', encode_json({ i => $i, pad => 'x' x 600 }));
}
sleep 0.3;
my $tiny = loc_cache('/tiny')->{l1};
ok($tiny->{evicted} > 0, "a full 32k zone evicts ($tiny->{evicted})");
ok($tiny->{bytes} <= 32 * 1024, "and stays within its size ($tiny->{bytes})");
ok($tiny->{entries} > 0, "keeping the recent entries ($tiny->{entries})");

# --- a reload keeps the L1 ---------------------------------------------

$res = $t->post('/p', '{"r":1}');
for (1 .. 50) { last if loc_cache('/p')->{l1}{entries} >= 2; sleep 0.02 }
$t->reload;
$t->redis_signal('r', 'KILL');
$res = $t->post('/p', '{"r":1}');
is(cache($res), 'HIT', 'after a reload, Redis killed: the L1 still answers');
$t->redis_restart('r');
sleep 0.5;

# --- Prometheus ----------------------------------------------------------

my $prom = $t->get('/metrics')->{body};
like($prom, qr/^fanout_cache_l1_entries\{location="\/p"\} \d+$/m,
     'Prometheus: fanout_cache_l1_entries');
like($prom, qr/^fanout_cache_l1_evicted_total\{location="\/tiny"\} [1-9]/m,
     'fanout_cache_l1_evicted_total');
like($prom, qr/^fanout_cache_total\{location="\/p",result="l1_hit"\} [1-9]/m,
     'fanout_cache_total{result="l1_hit"}');

# --- nginx -t ------------------------------------------------------------

my ($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:1;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; return 200 '{}'; }
    location /p { fanout_target a /_a; fanout_cache ttl=60s l1=1k; }
}
EOC
isnt($rc, 0, 'nginx -t: l1= too small fails');
like($out, qr/invalid parameter "l1=1k": a size of \d+k or more.*nginx\.conf:\d+/,
     'naming the file and line');

($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:1;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; return 200 '{}'; }
    location /p { fanout_target a /_a; fanout_cache ttl=60s l1_ttl=1s; }
}
EOC
isnt($rc, 0, 'nginx -t: l1_ttl= without l1= fails');
like($out, qr/"l1_ttl=" needs "l1=SIZE".*nginx\.conf:\d+/, 'with its line');

$t->done;
