# An answer is good only when it is whole and HTTP: a body cut short (a
# Content-Length never reached, a chunked body without its last chunk, a
# read timeout after part of it), an HTTP/0.9 answer and a status outside
# the final ones are failures, never merged, cached, compared or winners;
# they open breakers and call fallbacks.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

$t->redis('r');
$t->mock('m', body => '12345');
$t->mock('ok', body => '{"label":"cat","p":[0.5]}', ms => 150);

my %bad = (
    short  => 'mode=cl_short',
    chunk  => 'mode=chunk_cut',
    stall  => 'mode=stall',
    http09 => 'mode=raw',
    s102   => 'status=102',
    s999   => 'status=999',
    s0     => 'status=000',
);

my $locs = join '', map {
    "    location /_$_ { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?$bad{$_}; proxy_read_timeout 300ms; }\n"
    . "    location /one/$_ { fanout_target x /_$_; fanout_cache ttl=60s; }\n"
} sort keys %bad;

$t->run(http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
$locs
    location /_ok { internal; proxy_pass http://127.0.0.1:%%MOCK_ok%%/; }
    location /_whole { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /fanout/status { fanout_status; }

    location /whole {
        fanout_target x /_whole;
        fanout_cache ttl=60s;
    }
    location /first {
        fanout_target cut /_short;
        fanout_target ok /_ok;
        fanout_merge first;
    }
    location /mean {
        fanout_target cut /_chunk;
        fanout_target ok /_ok;
        fanout_merge mean p;
    }
    location /breaker {
        fanout_target x /_http09;
        fanout_breaker failures=2 cooldown=10s;
    }
    location /fallback {
        fanout_target x /_s999 fallback=/_ok;
    }
    location /shadow {
        fanout_target ok /_ok;
        fanout_shadow cut /_short;
    }
}
EOC

my %want = (short => 'upstream_error', chunk => 'upstream_error',
            stall => 'timeout', http09 => 'upstream_error',
            s102 => 'upstream_error', s999 => 'upstream_error',
            s0 => 'upstream_error');

# a whole "12345" is good JSON: the control
my $r = $t->post('/whole', '{}');
is($r->{status}, 200, 'a whole 12345: 200');
is($r->{json}{results}{x}, 12345, 'merged whole');

for my $case (sort keys %want) {
    $r = $t->post("/one/$case", '{}');
    my $err = $r->{json}{errors}{x}{error} // '(none)';
    isnt($err, 'ok', "$case: not ok");
    is($err, $want{$case}, "$case: $want{$case}");
    is($r->{status}, $want{$case} eq 'timeout' ? 504 : 502,
       "$case: the client gets " . ($want{$case} eq 'timeout' ? 504 : 502));
    ok(!exists $r->{json}{results}{x}, "$case: nothing of it is merged");
    $r = $t->post("/one/$case", '{}');
    isnt($r->{headers}{'x-fanout-cache'}, 'HIT', "$case: never cached");
}

like($t->error_log, qr/fanout target "x" answered 3 bytes and no more: the answer is not used/,
     'the error log says a cut answer was not used');
like($t->error_log, qr/answered 3 bytes and no more \(read timed out\)/,
     'and when the read timed out');
like($t->error_log, qr/fanout target "x" answered with status 999, not a final HTTP answer/,
     'and names a status that is no final answer');

# first: a cut answer that comes first never wins
$r = $t->post('/first', '{}');
is($r->{status}, 200, 'first: 200');
is($r->{headers}{'x-fanout-target'}, 'ok', 'first: the whole answer wins, not the faster cut one');

# mean: a cut answer is not averaged
$r = $t->post('/mean', '{}');
is($r->{status}, 200, 'mean: 200');
is($r->{json}{meta}{ok}, 1, 'mean: one answer counted');
is($r->{json}{errors}{cut}{error}, 'upstream_error', 'mean: the cut one failed');

# an HTTP/0.9 model is a failure: its breaker opens
$t->post('/breaker', '{}') for 1 .. 2;
$r = $t->post('/breaker', '{}');
is($r->{json}{errors}{x}{error}, 'circuit_open', 'HTTP/0.9 answers open the breaker');

# a status of 999 calls the fallback
$r = $t->post('/fallback', '{}');
is($r->{status}, 200, 'status 999: the fallback answered');
ok($r->{json}{meta}{fallback}{x}, 'meta says the fallback answered')
    or diag($r->{body});

# a cut shadow answer is an error, never an agreement
$t->post('/shadow', '{}');
my $st;
for (1 .. 40) {
    $st = $t->status_json;
    last if ($st->{locations}{'/shadow'}{shadows}{cut}{shadow_error} // 0) >= 1;
    select undef, undef, undef, 0.05;
}
is($st->{locations}{'/shadow'}{shadows}{cut}{shadow_error}, 1, 'shadow: a cut answer is a shadow_error');
is($st->{locations}{'/shadow'}{shadows}{cut}{agree} // 0, 0, 'and no agreement');

# the counters: failures, not 4xx
$st = $t->status_json;
is($st->{locations}{"/one/$_"}{targets}{x}{http_4xx} // 0, 0,
   "$_: not counted as the client's 4xx") for sort keys %bad;
is($st->{locations}{'/one/s0'}{targets}{x}{upstream_error}, 2,
   'but as upstream_error');

$t->done;
