# Failure paths: dead, slow and lying targets, oversized answers, per-target
# timeouts and the deadline, stragglers on a keepalive connection, client
# aborts and oversized client bodies.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->mock('ok');
$t->mock('slow', ms => 2000);
$t->mock('hang', mode => 'hang');
my $dead = $t->port('dead');    # nothing listens there

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
log_format fo '$request_uri $status ok=$fanout_ok failed=$fanout_failed ms=$fanout_latency_ms';
server {
    listen 127.0.0.1:%%PORT_http%%;
    access_log %%TESTDIR%%/nginx/fanout.log fo;
    client_max_body_size 1k;

    location /_m/ok      { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/; }
    location /_m/dead    { internal; proxy_pass http://127.0.0.1:%%PORT_dead%%/; }
    location /_m/s503    { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?status=503; }
    location /_m/s404    { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?status=404; }
    location /_m/notjson { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=echo&x=1;
                           proxy_set_header Content-Type ""; }
    location /_m/text    { internal; return 200 "not json at all"; }
    location /_m/empty   { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=empty; }
    location /_m/trunc   { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=truncate; }
    location /_m/big     { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=big&bytes=100000; }
    location /_m/chunked { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=chunked&bytes=100000; }
    location /_m/bigok   { internal; subrequest_output_buffer_size 256k;
                           proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=chunked&bytes=100000; }
    location /_m/slow    { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_m/hang    { internal; proxy_pass http://127.0.0.1:%%MOCK_hang%%/; }
    location /_m/slowbody { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/?mode=slowbody&slow_ms=2000; }

    location /dead    { fanout_target ok /_m/ok; fanout_target dead /_m/dead; }
    location /status  { fanout_target a /_m/s503; fanout_target b /_m/s404;
                        fanout_target ok /_m/ok; }
    location /badjson { fanout_target text /_m/text; fanout_target empty /_m/empty;
                        fanout_target trunc /_m/trunc; fanout_target ok /_m/ok; }
    location /large   { fanout_target big /_m/big; fanout_target chunked /_m/chunked;
                        fanout_target bigok /_m/bigok; }

    location /target-timeout {
        fanout_target ok /_m/ok;
        fanout_target slow /_m/slow timeout=150ms;
    }
    location /deadline {
        fanout_target ok /_m/ok;
        fanout_target hang /_m/hang;
        fanout_target slowbody /_m/slowbody;
        fanout_timeout 300ms;
    }
    location /quorum502 {
        fanout_target ok /_m/ok; fanout_target dead /_m/dead;
        fanout_target s503 /_m/s503;
        fanout_quorum 2;
    }
    location /quorum504 {
        fanout_target ok /_m/ok; fanout_target slow /_m/slow;
        fanout_target hang /_m/hang;
        fanout_quorum 2;
        fanout_timeout 200ms;
    }
    location /abort {
        fanout_target slow /_m/slow; fanout_target hang /_m/hang;
    }
    location /upload {
        fanout_target ok /_m/ok;
    }
    location /first-fail {
        fanout_target dead /_m/dead; fanout_target s503 /_m/s503;
        fanout_merge first;
    }
    location /custom413 {
        fanout_target ok /_m/ok;
        error_page 413 = @too_big;
    }
    location @too_big { return 413 "custom page\n"; }
    location = /fanout/status { fanout_status; }
}
EOC

sub err { my ($res, $n) = @_; return $res->{json}{errors}{$n} }

# a dead target: connection refused

my $res = $t->get('/dead');
is($res->{status}, 200, 'one dead target of two: still 200 (quorum 1)');
is_deeply(err($res, 'dead'), { status => 502, error => 'upstream_error' },
          'dead target is upstream_error');
ok($res->{json}{results}{ok}, 'the live target answered');
is($res->{headers}{'x-fanout-degraded'}, 'dead',
   'X-Fanout-Degraded names the target that failed');

# targets answering errors

$res = $t->get('/status');
is_deeply(err($res, 'a'), { status => 503, error => 'http_503' }, 'http_503');
is_deeply(err($res, 'b'), { status => 404, error => 'http_404' }, 'http_404');
is($res->{json}{meta}{failed}, 2, 'two failed');

# bodies that are not JSON

$res = $t->get('/badjson');
is(err($res, $_)->{error}, 'bad_json', "$_ is bad_json")
    for qw(text empty);
# a body cut short is never judged as JSON: the answer was not whole
is(err($res, 'trunc')->{error}, 'upstream_error', 'trunc is upstream_error');
is($res->{json}{meta}{ok}, 1, 'the good one still counts');
is($res->{status}, 200, 'bad bodies never break the merged answer');

# answers over subrequest_output_buffer_size

$res = $t->get('/large');
is(err($res, 'big')->{error}, 'too_large', 'big answer with Content-Length');
is(err($res, 'chunked')->{error}, 'too_large', 'big chunked answer');
ok($res->{json}{results}{bigok}, 'raised subrequest_output_buffer_size works');
like($t->error_log, qr/fanout target "big" answered more than 4096 bytes; raise "subrequest_output_buffer_size" in location "\/_m\/big"/,
     'error log names the target and the directive');

# a per-target timeout

$res = $t->get('/target-timeout');
is($res->{status}, 200, 'per-target timeout: 200');
is_deeply(err($res, 'slow'), { status => 504, error => 'timeout' },
          'slow target is a timeout');
cmp_ok($res->{time}, '<', 0.6, 'answer after the target timeout, not 2 s')
    or diag($res->{time});

# the deadline: a hanging target and one that sends its header but not
# its body; neither delays the answer nor the next request on the same
# keepalive connection

my $s = $t->connect;
my $t0 = time();
$res = $t->send_request($s, 'GET', '/deadline');
is($res->{status}, 200, 'deadline: 200 with the answers that came');
is(err($res, 'hang')->{error}, 'timeout', 'hanging target: timeout');
is(err($res, 'slowbody')->{error}, 'timeout', 'half-sent answer: timeout');
cmp_ok($res->{time}, '>=', 0.28, 'answer at the deadline');
cmp_ok($res->{time}, '<', 0.8, 'not later');

$res = $t->send_request($s, 'GET', '/dead');
is($res->{status}, 200, 'next request on the same connection served');
cmp_ok(time() - $t0, '<', 1.2,
       'stragglers do not hold the keepalive connection')
    or diag(time() - $t0);
close $s;

my ($closed) = grep { ($_->{event} // '') eq 'closed' } $t->hits('hang');
ok($closed, "the hanging target's connection was closed by nginx");
cmp_ok($closed->{t} - $t0, '<', 0.8, 'at the deadline, not later') if $closed;

# quorum

$res = $t->get('/quorum502');
is($res->{status}, 502, 'quorum not met: 502');
is($res->{json}{error}, 'quorum_not_met', 'error says why');
ok($res->{json}{results}{ok}, 'still reports what succeeded');
like($res->{headers}{'content-type'}, qr{application/json}, 'JSON 502');

$res = $t->get('/quorum504');
is($res->{status}, 504, 'quorum not met and every failure a timeout: 504');

# first with no success at all

$res = $t->get('/first-fail');
is($res->{status}, 502, 'first: no success is 502');
is($res->{json}{meta}{failed}, 2, 'first failure has the all shape');

# a client that goes away mid fan-out

for (1 .. 3) {
    my $c = $t->connect;
    print $c "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n";
    sleep 0.1;
    close $c;
}

# and one that goes away while its body is uploading

for (1 .. 2) {
    my $c = $t->connect;
    print $c "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n"
             . '{"x":' . ('1' x 50);
    sleep 0.1;
    close $c;
}
sleep 0.3;

$res = $t->get('/dead');
is($res->{status}, 200, 'served after client aborts');

# a client body over client_max_body_size

$res = $t->post('/dead', '{"x":"' . ('a' x 5000) . '"}');
is($res->{status}, 413, 'body over client_max_body_size: 413');
is($res->{json}{error}, 'body_too_large', '413 has a JSON body');

# a malformed chunked body: nginx's 400, as JSON

{
    my $c = $t->connect;
    print $c "POST /dead HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           . "\r\nzz\r\n";
    $res = FT::read_response($c, time(), 5, 0);
    close $c;
    is($res->{status}, 400, 'malformed chunked body: 400');
    is($res->{json}{error}, 'bad_request', '400 has a JSON body');
}

# a location's own error_page wins over the JSON body

$res = $t->post('/custom413', 'x' x 5000);
is($res->{status}, 413, 'error_page location: still 413');
is($res->{body}, "custom page\n", "the location's error_page is used");

# the access log variables

my @log = grep { m{^/target-timeout } } $t->access_log;
my ($line) = grep { /^\/target-timeout / } do {
    open my $fh, '<', $t->dir . '/nginx/fanout.log';
    <$fh>;
};
like($line, qr{ 200 ok=1 failed=1 ms=\d+$}, '$fanout_ok, $fanout_failed, $fanout_latency_ms');

# no upstream connection is leaked: every call that reached the hanging
# target (deadline, timeouts, client aborts) saw its connection closed

sleep 0.3;
my @hang = $t->hits('hang');
my $calls = grep { $_->{method} } @hang;
my $closes = grep { ($_->{event} // '') eq 'closed' } @hang;
cmp_ok($calls, '>=', 5, 'the hanging target was called by each case');
is($closes, $calls, 'and nginx closed every one of those connections');

# status counters for all of the above

my $st = $t->status_json;
my $abort = $st->{locations}{'/abort'};
is($abort->{aborted}, 3, 'three aborts counted');
is($abort->{targets}{slow}{cancelled}, 3, 'their calls counted as cancelled');
is($st->{locations}{'/upload'}{aborted}, 2,
   'clients gone during their body upload counted as aborted');
is($st->{locations}{'/upload'}{targets}{ok}{requests}, 0,
   'and nothing called for them');

# every request counted ends in exactly one outcome
for my $l (sort keys %{ $st->{locations} }) {
    my $loc = $st->{locations}{$l};
    my $sum = $loc->{aborted};
    $sum += $_ for values %{ $loc->{responses} };
    is($sum, $loc->{requests}, "$l: responses and aborted add up to requests");
}
is($st->{locations}{'/deadline'}{targets}{hang}{timeout}, 1,
   'deadline timeouts counted');
is($st->{locations}{'/large'}{targets}{big}{too_large}, 1, 'too_large counted');
is($st->{locations}{'/badjson'}{targets}{text}{bad_json}, 1, 'bad_json counted');
is($st->{locations}{'/badjson'}{targets}{trunc}{upstream_error}, 1,
   'a cut answer counted as upstream_error');
is($st->{locations}{'/quorum502'}{responses}{502}, 1, '502 counted');
is($st->{locations}{'/quorum504'}{responses}{504}, 1, '504 counted');
is($st->{locations}{'/dead'}{responses}{rejected}, 2, '413 and 400 counted as rejected');

$t->done;
