# The Redis cache: hits, canonical keys, tenant isolation, bypass, TTL,
# what is not stored, and Redis killed, stopped and restarted.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('b', mode => 'echo', ms => 20);
my $dead = $t->port('dead');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=100ms;
log_format c '$request_uri $fanout_cache_status';
server {
    listen 127.0.0.1:%%PORT_http%%;
    access_log %%TESTDIR%%/nginx/cache.log c;

    location /_a    { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b    { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_dead { internal; proxy_pass http://127.0.0.1:%%PORT_dead%%/; }

    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s ignore=request_id,meta.ts;
        fanout_cache_bypass $http_x_refresh;
    }
    location /short {
        fanout_target a /_a;
        fanout_cache ttl=1s;
    }
    location /partial {
        fanout_target a /_a;
        fanout_target dead /_dead;
        fanout_cache ttl=60s;
    }
    location /failing {
        fanout_target dead /_dead;
        fanout_cache ttl=60s;
    }
    location /small {
        fanout_target a /_a;
        fanout_cache ttl=60s max_size=100;
    }
    location /first {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_merge first;
        fanout_cache ttl=60s;
    }
    location /off {
        fanout_target a /_a;
        fanout_cache off;
    }
    location = /fanout/status { fanout_status; }
}
EOC

sub cache { $_[0]{headers}{'x-fanout-cache'} // '(none)' }
sub a_hits { scalar $t->hits('a') }

# give every worker connection time to be ready
sleep 0.3;

my $body = '{"input":[1,2,3],"request_id":"r1","meta":{"ts":1,"k":"v"}}';

my $res = $t->post('/p', $body);
is($res->{status}, 200, 'first request: 200');
is(cache($res), 'MISS', 'first request: MISS');

my $n = a_hits();
my $again = $t->post('/p', $body);
is(cache($again), 'HIT', 'same request: HIT');
is($again->{body}, $res->{body}, 'a hit returns the stored answer');
like($again->{headers}{'content-type'}, qr{^application/json}, 'its type');
is(a_hits(), $n, 'a hit calls no target');

# canonical JSON: key order, whitespace and ignored fields do not matter

$res = $t->post('/p', ' { "meta" : {"k":"v","ts":99}, "request_id" : "r2",'
                      . ' "input" : [1, 2, 3] } ');
is(cache($res), 'HIT', 'reordered keys, whitespace, other ignored fields: HIT');

$res = $t->post('/p', '{"input":[1,2,4],"request_id":"r1"}');
is(cache($res), 'MISS', 'another input: MISS');

# a chunked body is the same body: the same entry (its end is no data)
{
    my $c = $t->connect;
    my $chunks = join '', map { sprintf("%x\r\n%s\r\n", length, $_) }
                 '{"input":[1,2,3],', '"meta":{"k":"v"},"request_id":"r9"}';
    print $c "POST /p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "Content-Type: application/json\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n";
    my $res = FT::read_response($c, time(), 5, 0);
    close $c;
    is($res->{status}, 200, 'a chunked body: 200');
    is(cache($res), "HIT", "a chunked body hashes as the same body: HIT");
}

# raw, non-JSON bodies are hashed as bytes

$res = $t->post('/p', 'raw bytes');
is(cache($res), 'MISS', 'raw body: MISS');
$res = $t->post('/p', 'raw bytes');
is(cache($res), 'HIT', 'same raw body: HIT');
$res = $t->post('/p', 'raw bytes!');
is(cache($res), 'MISS', 'other raw body: MISS');

# tenants: the Authorization header is part of the key by default

$res = $t->post('/p', $body, headers => { Authorization => 'Bearer A' });
is(cache($res), 'MISS', 'tenant A: its own entry');
$res = $t->post('/p', $body, headers => { Authorization => 'Bearer B' });
is(cache($res), 'MISS', 'tenant B never gets A\'s entry');
$res = $t->post('/p', $body, headers => { Authorization => 'Bearer A' });
is(cache($res), 'HIT', 'tenant A: HIT');

# bypass: fanout_cache_bypass and Cache-Control: no-cache fetch fresh

$n = a_hits();
$res = $t->post('/p', $body, headers => { 'X-Refresh' => '1' });
is(cache($res), 'BYPASS', 'fanout_cache_bypass: BYPASS');
is(a_hits(), $n + 1, 'the targets were called');

$res = $t->post('/p', $body, headers => { 'Cache-Control' => 'no-cache' });
is(cache($res), 'BYPASS', 'Cache-Control: no-cache: BYPASS');

$res = $t->post('/p', $body, headers => { 'X-Refresh' => '0' });
is(cache($res), 'HIT', '"0" does not bypass');

# TTL

$res = $t->post('/short', $body);
is(cache($res), 'MISS', 'short ttl: MISS');
$res = $t->post('/short', $body);
is(cache($res), 'HIT', 'short ttl: HIT');
sleep 2.1;
$res = $t->post('/short', $body);
is(cache($res), 'MISS', 'after the ttl: MISS again');

# what is not stored

for (1 .. 2) {
    $res = $t->post('/failing', $body);
    is($res->{status}, 502, 'failing fan-out: 502');
    is(cache($res), 'MISS', 'failures are never stored');
}

for (1 .. 2) {
    $res = $t->post('/partial', $body);
    is($res->{status}, 200, 'partial answer: 200');
    is(cache($res), 'MISS', 'a degraded answer is not stored');
}

for (1 .. 2) {
    $res = $t->post('/small', $body);
    is(cache($res), 'MISS', 'an answer over max_size is not stored');
}

# first: the winner is stored with its target

$res = $t->post('/first', $body);
is(cache($res), 'MISS', 'first: MISS');
$again = $t->post('/first', $body);
is(cache($again), 'HIT', 'first: HIT');
is($again->{headers}{'x-fanout-target'}, $res->{headers}{'x-fanout-target'},
   'first: the stored winner is named');

$res = $t->post('/off', $body);
is(cache($res), '(none)', 'fanout_cache off: no cache');

# keys: prefixed, readable, no raw body

my @keys = split /\n/, $t->redis_cli('r', '--scan', '--pattern', 'fanout:*');
ok(scalar(grep { m{^fanout:/p:[0-9a-f]{64}$} } @keys), 'keys read fanout:/p:SHA256')
    or diag(join "\n", @keys);
ok(!grep({ /input|raw bytes/ } @keys), 'no body in the keys');
my ($key) = grep { m{^fanout:/p:} } @keys;
my $ttl = $t->redis_cli('r', 'TTL', $key);
ok($ttl > 0 && $ttl <= 60, "entries expire (TTL $ttl)");

# Redis killed: every request still answers, as ERROR, without delay

$t->redis_signal('r', 'KILL');
sleep 0.2;

my @times;
for (1 .. 5) {
    $res = $t->post('/p', $body);
    is($res->{status}, 200, 'Redis killed: 200') if $_ == 1;
    push @times, $res->{time};
    is(cache($res), 'ERROR', 'Redis killed: ERROR (fail open)') if $_ == 1;
}
cmp_ok((sort { $b <=> $a } @times)[0], '<', 0.5, 'and no delay')
    or diag("@times");

my @lines = grep { /fanout redis/ } split /\n/, $t->error_log;
ok(@lines >= 1, 'the error log says Redis is unavailable');
cmp_ok(scalar @lines, '<=', 4, 'at most once a second: no flood');

# Redis back: caching resumes without a reload

$t->redis_restart('r');

my $back = 0;
for (1 .. 40) {
    $res = $t->post('/p', $body);
    if (cache($res) ne 'ERROR') {
        $back = 1;
        last;
    }
    sleep 0.25;
}
ok($back, 'after a restart Redis is used again, no reload');
$res = $t->post('/p', $body);
is(cache($res), 'HIT', 'and hits again');

# Redis stopped: each request waits at most the Redis timeout (100 ms)

$t->redis_signal('r', 'STOP');
@times = ();
for (1 .. 4) {
    $res = $t->post('/p', $body);
    push @times, $res->{time};
    is($res->{status}, 200, 'Redis stopped: 200');
}
cmp_ok((sort { $b <=> $a } @times)[0], '<', 0.45,
       'latency bounded by the Redis timeout') or diag("@times");
$t->redis_signal('r', 'CONT');

# status: lookups and Redis errors are counted

my $st = $t->status_json;
my $c = $st->{locations}{'/p'}{cache};
cmp_ok($c->{hit}, '>=', 5, 'hits counted');
cmp_ok($c->{miss}, '>=', 4, 'misses counted');
cmp_ok($c->{bypass}, '>=', 2, 'bypasses counted');
cmp_ok($c->{error}, '>=', 5, 'errors counted');
cmp_ok($c->{stored}, '>=', 4, 'stores counted');
is($st->{locations}{'/small'}{cache}{skipped}, 2, 'skipped stores counted');
cmp_ok($st->{redis}{errors}{timeout}, '>=', 1, 'Redis timeouts counted');
cmp_ok($st->{redis}{errors}{down} + $st->{redis}{errors}{connect}, '>=', 1,
       'Redis being down counted');
cmp_ok($st->{redis}{connects}, '>=', 2, 'reconnects counted');

my @log = do { open my $fh, '<', $t->dir . '/nginx/cache.log'; <$fh> };
ok(scalar(grep { m{^/p HIT$} } @log), '$fanout_cache_status in the access log');

$t->outcomes_add_up;

# a fast shutdown (SIGTERM) with lookups pending on a stopped Redis: the
# worker frees its connections without calling back into dead requests

sleep 0.5;
$t->redis_signal('r', 'STOP');

my @clients;
for (1 .. 3) {
    my $pid = fork();
    if ($pid == 0) {
        $t->post('/p', $body, timeout => 2);
        POSIX::_exit(0);
    }
    push @clients, $pid;
}

sleep 0.03;
kill 'TERM', $t->{instances}{nginx}{pid};
waitpid($_, 0) for @clients;
$t->redis_signal('r', 'CONT');

# --- a hit too big for the client's socket at once: sent once, whole.
# The send is still flushing when the cache stage resumes the request;
# that must end the pipeline, not run the cache stage again (which looked
# up and sent the entry a second time).

$t->mock('big', mode => 'big', bytes => 6000000);
my $slow = $t->port('slow');
$t->run(prefix => 'slow', port => $slow, http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_slow%%;
    location /_big {
        internal;
        subrequest_output_buffer_size 8m;
        proxy_pass http://127.0.0.1:%%MOCK_big%%/;
    }
    location /big {
        fanout_target big /_big;
        fanout_merge first;
        fanout_cache ttl=60s max_size=8m;
    }
}
EOC

my $first = $t->post('/big', '{"q":1}', port => $slow);
is($first->{status}, 200, 'a 6 MB answer');
sleep 0.3;

{
    use Socket qw(SOL_SOCKET SO_RCVBUF);
    my $s = IO::Socket::INET->new(Proto => 'tcp');
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', 4096));
    $s->connect(Socket::pack_sockaddr_in($slow, Socket::inet_aton('127.0.0.1')))
        or die "connect: $!";
    print $s "POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           . "Content-Length: 7\r\nConnection: close\r\n\r\n{\"q\":1}";
    sleep 1;                  # nginx fills the small window, and waits
    my $raw = '';
    $s->blocking(1);
    while (1) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    like($head, qr/X-Fanout-Cache: HIT/i, 'a hit, read slowly');
    my ($cl) = $head =~ /Content-Length: (\d+)/i;
    is(length($body // ''), $cl // -1, "its body whole and once ($cl bytes)");
    is(length($body // ''), length($first->{body}), 'the same bytes as the first answer');
}
is(scalar(() = $t->hits('big')), 1, 'the model called once');

$t->done;
