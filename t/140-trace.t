# fanout_trace and fanout_request_id: every target call, retry, shadow and
# micro-batch carries a W3C traceparent of the client's trace (or a new
# one) with a span of its own, tracestate as the client sent it, and the
# request id in X-Request-ID; the client gets the id back, the meta names
# both, the access log has them ($fanout_trace_id, $fanout_span_id,
# $fanout_request_id, and $request_id is the same id); the user's own
# proxy_set_header wins; off switches each off.

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
$t->mock('f', flaky => 1, flaky_status => 503);
$t->mock('s', body => '{"label":"dog","score":0.1}');
$t->mock('m', mode => 'model', proto => 'v1');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
log_format tr '$uri $fanout_trace_id $fanout_span_id $fanout_request_id '
              '$request_id';
server {
    listen 127.0.0.1:%%PORT_http%%;
    access_log %%TESTDIR%%/nginx/trace.log tr;

    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_f { internal; proxy_pass http://127.0.0.1:%%MOCK_f%%/; }
    location /_s { internal; proxy_pass http://127.0.0.1:%%MOCK_s%%/; }
    location /_m { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /_own {
        internal;
        proxy_set_header traceparent "00-11111111111111111111111111111111-2222222222222222-00";
        proxy_pass http://127.0.0.1:%%MOCK_b%%/;
    }

    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
    }
    location /trust {
        fanout_target a /_a;
        fanout_request_id trust;
    }
    location /off {
        fanout_target a /_a;
        fanout_trace off;
        fanout_request_id off;
    }
    location /own {
        fanout_target a /_a;
        fanout_target own /_own;
    }
    location /retry {
        fanout_target f /_f;
        fanout_retry attempts=2 on=5xx backoff=1ms;
    }
    location /shadow {
        fanout_target a /_a;
        fanout_merge first;
        fanout_shadow s /_s sample=redis;
    }
    location /batched {
        fanout_target m /_m batch=4 batch_wait=20ms;
    }
}
EOC

my $tp_re = qr/^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

sub last_hit {
    my ($name) = @_;
    my @h = $t->hits($name);
    return $h[-1];
}

# --- a new trace -------------------------------------------------------

my $res = $t->post('/p', '{"x":1}');
is($res->{status}, 200, 'a fan-out');
ok(!exists $res->{headers}{'x-fanout-degraded'},
   'every target answered: no X-Fanout-Degraded');

my $ha = last_hit('a');
my $hb = last_hit('b');
my ($ta, $sa, $fa) = ($ha->{headers}{traceparent} // '') =~ $tp_re;
my ($tb, $sb) = ($hb->{headers}{traceparent} // '') =~ $tp_re;

ok($ta, 'without a client traceparent, a target gets one');
is($tb, $ta, 'both targets in the same new trace');
isnt($sa, $sb, 'each with a span of its own');
is($fa, '01', 'a new trace is sampled');

my $rid = $res->{headers}{'x-request-id'} // '';
like($rid, qr/^[0-9a-f]{32}$/, 'the client gets an X-Request-ID');
is($ha->{headers}{'x-request-id'}, $rid, 'the target got the same id');
is($hb->{headers}{'x-request-id'}, $rid, 'so did the other');

my $j = decode_json($res->{body});
is($j->{meta}{trace_id}, $ta, 'meta.trace_id');
is($j->{meta}{request_id}, $rid, 'meta.request_id');

# --- the client's trace --------------------------------------------------

my $client = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
$res = $t->post('/p', '{"x":2}',
                headers => { traceparent => $client,
                             tracestate => 'vendor=abc,other=1',
                             'X-Request-ID' => 'client-chosen-1' });
$ha = last_hit('a');
($ta, $sa, $fa) = ($ha->{headers}{traceparent} // '') =~ $tp_re;
is($ta, '4bf92f3577b34da6a3ce929d0e0e4736', 'the client\'s trace id goes on');
isnt($sa, '00f067aa0ba902b7', 'with the call\'s own span id');
is($fa, '01', 'and the client\'s flags');
is($ha->{times}{traceparent}, 1, 'one traceparent, not the client\'s too');
is($ha->{headers}{tracestate}, 'vendor=abc,other=1', 'tracestate unchanged');
isnt($ha->{headers}{'x-request-id'}, 'client-chosen-1',
     'fanout_request_id on (the default): the client\'s id is not trusted');
is($ha->{times}{'x-request-id'}, 1, 'one X-Request-ID');
is($res->{headers}{'x-request-id'}, $ha->{headers}{'x-request-id'},
   'the client gets the id the targets got');

$res = $t->post('/p', '{"x":3}', headers => {
    traceparent => '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01' });
$ha = last_hit('a');
($ta) = ($ha->{headers}{traceparent} // '') =~ $tp_re;
ok($ta && $ta ne '4bf92f3577b34da6a3ce929d0e0e4736',
   'an invalid traceparent (upper case): a new trace');
like($t->error_log, qr/\[info\].*invalid traceparent/, 'logged at info');

# --- trust -------------------------------------------------------------

$res = $t->post('/trust', '{"x":4}',
                headers => { 'X-Request-ID' => 'req-42:abc' });
is(last_hit('a')->{headers}{'x-request-id'}, 'req-42:abc',
   'trust: the client\'s id goes to the target');
is($res->{headers}{'x-request-id'}, 'req-42:abc', 'and back');

$res = $t->post('/trust', '{"x":5}',
                headers => { 'X-Request-ID' => 'has a space' });
like(last_hit('a')->{headers}{'x-request-id'}, qr/^[0-9a-f]{32}$/,
     'trust: an id with a space is replaced');

# --- the access log ----------------------------------------------------

$res = $t->post('/p', '{"x":6}', headers => { traceparent => $client });
my $id6 = $res->{headers}{'x-request-id'};
sleep 0.2;
my ($line) = grep { /^\/p .* \Q$id6\E/ } split /\n/,
             FT::read_text($t->dir . '/nginx/trace.log');
ok($line, 'the access log has the request');
is((split / /, $line // '')[1], '4bf92f3577b34da6a3ce929d0e0e4736',
   '$fanout_trace_id');
is((split / /, $line // '')[2], '00f067aa0ba902b7',
   '$fanout_span_id: the span the calls are children of');
is((split / /, $line // '')[4], $id6, '$request_id is the same id');

# --- off ---------------------------------------------------------------

$res = $t->post('/off', '{"x":7}', headers => { traceparent => $client });
$ha = last_hit('a');
is($ha->{headers}{traceparent}, $client,
   'fanout_trace off: the client\'s traceparent passes as it is');
ok(!exists $ha->{headers}{'x-request-id'}, 'fanout_request_id off: none');
ok(!exists $res->{headers}{'x-request-id'}, 'nor to the client');

$res = $t->post('/off', '{"x":8}');
ok(!exists last_hit('a')->{headers}{traceparent},
   'fanout_trace off and no client traceparent: none');

# --- the user's proxy_set_header wins ----------------------------------

$res = $t->post('/own', '{"x":9}');
is(last_hit('b')->{headers}{traceparent},
   '00-11111111111111111111111111111111-2222222222222222-00',
   'proxy_set_header traceparent in the target location wins');
is(last_hit('b')->{times}{traceparent}, 1, 'alone');

# --- retries: an attempt, a span ---------------------------------------

$res = $t->post('/retry', '{"x":10}');
is($res->{status}, 200, 'a retried call');
my @f = $t->hits('f');
my @spans = map { (($_->{headers}{traceparent} // '') =~ $tp_re)[1] } @f[-2, -1];
ok($spans[0] && $spans[1] && $spans[0] ne $spans[1],
   'each attempt has a span of its own');
is($f[-1]{headers}{'x-request-id'}, $f[-2]{headers}{'x-request-id'},
   'and the same request id');

# --- shadows -----------------------------------------------------------

$res = $t->post('/shadow', '{"x":11}', headers => { traceparent => $client });
my $rid11 = $res->{headers}{'x-request-id'};
for (1 .. 50) { last if $t->hits('s') >= 1; sleep 0.05 }
my $hs = last_hit('s');
my ($tsh) = ($hs->{headers}{traceparent} // '') =~ $tp_re;
is($tsh, '4bf92f3577b34da6a3ce929d0e0e4736', 'a shadow is in the trace');
is($hs->{headers}{'x-request-id'}, $rid11, 'with the request id');

my $stream;
for (1 .. 50) {
    $stream = $t->redis_cli('r', 'XRANGE', 'fanout:shadow:/shadow:s', '-', '+');
    last if $stream =~ /request_id/;
    sleep 0.05;
}
like($stream, qr/\Q$rid11\E/,
     'the shadow sample names the id the models saw');

# --- a micro-batch carries a traceparent -------------------------------

my @b = $t->concurrent([map { ['POST', '/batched',
                               body => qq({"instances":[$_]})] } 1 .. 4]);
is(scalar(grep { $_->{status} == 200 } @b), 4, 'four batched calls answered');
my $hm = last_hit('m');
like($hm->{headers}{traceparent} // '', $tp_re,
     'a micro-batch carries a traceparent (its first caller\'s)');
is($hm->{times}{traceparent}, 1, 'one');

$t->done;
