# fanout_breaker: a failing model gets exactly N calls and then none until
# the cooldown; probes are exact across workers; 4xx does not count; the
# state is shared by workers and kept across a reload.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->mock('bad', status => 500);
$t->mock('missing', status => 404);
$t->mock('flip', mode => 'echo');
$t->mock('slow', status => 500, ms => 300);

my $conf = <<'EOC';
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    location /_bad     { internal; proxy_pass http://127.0.0.1:%%MOCK_bad%%/; }
    location /_missing { internal; proxy_pass http://127.0.0.1:%%MOCK_missing%%/; }
    location /_flip    { internal; proxy_pass http://127.0.0.1:%%MOCK_flip%%/; }
    location /_slow    { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }

    location /b {
        fanout_target bad /_bad;
        fanout_breaker failures=3 cooldown=1s max_cooldown=3s;
    }
    location /off {
        fanout_target bad /_bad breaker=off;
        fanout_breaker failures=1;
    }
    location /4xx {
        fanout_target missing /_missing;
        fanout_breaker failures=2;
    }
    location /flip {
        fanout_target flip /_flip;
        fanout_breaker failures=2 cooldown=1s;
    }
    location /h {
        fanout_target slow /_slow;
        fanout_breaker failures=1 cooldown=1s half_open=2;
    }
    location /ol {
        fanout_target slow /_slow max_inflight=1;
        fanout_breaker failures=1 cooldown=1s half_open=2;
    }
    location = /fanout/status { fanout_status; }
}
EOC

$t->run(workers => 2, http => $conf);

sub calls { scalar grep { $_->{method} } $t->hits($_[0]) }
sub breaker { $t->status_json->{locations}{$_[0]}{targets}{$_[1]}{breaker} }

# N consecutive failures open it; then no call reaches the model

for (1 .. 6) {
    $t->get('/b');
}
is(calls('bad'), 3, 'a 500 backend got exactly 3 calls, then none');

my $res = $t->get('/b');
is($res->{json}{errors}{bad}{error}, 'circuit_open', 'reported as circuit_open');
is($res->{json}{errors}{bad}{status}, 503, 'with status 503');
is(breaker('/b', 'bad')->{state}, 'open', 'status: open');
like($t->error_log, qr/fanout breaker of target "bad" in location "\/b": closed -> open \(failures reached the limit\)/,
     'the transition is logged');

# after the cooldown one probe; its failure doubles the cooldown

sleep 1.1;
$t->get('/b');
is(calls('bad'), 4, 'after the cooldown: one probe');
is(breaker('/b', 'bad')->{cooldown_ms}, 2000, 'the failed probe doubled the cooldown');
like($t->error_log, qr/half_open -> open \(a probe failed\)/, 'logged');

sleep 1.1;
$t->get('/b');
is(calls('bad'), 4, 'no call before the doubled cooldown');

sleep 1.0;
$t->get('/b');
is(calls('bad'), 5, 'a probe after it');
is(breaker('/b', 'bad')->{cooldown_ms}, 3000, 'doubled up to max_cooldown');

# breaker=off: that target is always called

my $before = calls('bad');
$t->get('/off') for 1 .. 3;
is(calls('bad') - $before, 3, 'breaker=off: every call made');

# 4xx is the client's fault: it never opens the breaker

$t->get('/4xx') for 1 .. 5;
is(calls('missing'), 5, '404s do not open it');
is(breaker('/4xx', 'missing')->{state}, 'closed', 'still closed');

# a probe that succeeds closes it (the query string reaches the mock)

$t->get('/flip?status=500') for 1 .. 2;
is(breaker('/flip', 'flip')->{state}, 'open', 'flip: open after 2 failures');
sleep 1.1;
$res = $t->get('/flip?status=200');
is($res->{status}, 200, 'the probe succeeds');
is(breaker('/flip', 'flip')->{state}, 'closed', 'and closes the breaker');
like($t->error_log, qr/"flip" in location "\/flip": half_open -> closed \(a probe succeeded\)/,
     'logged');

# half_open=2: exactly two probes, whatever the load on two workers

$t->get('/h');
is(calls('slow'), 1, 'h: opened by one failure');
sleep 1.1;
my @res = $t->parallel(10, 'GET', '/h');
is(calls('slow'), 3, 'ten requests at once: exactly two probes reached it');
is(scalar(grep { ($_->{body} // '') =~ /circuit_open/ } @res), 8,
   'the other eight were told circuit_open');

# a call refused by max_inflight is not an outcome: it must not close a
# half-open breaker (its probe turn is given back)

$t->get('/ol');
is(breaker('/ol', 'slow')->{state}, 'open', 'ol: opened by one failure');
sleep 1.1;
@res = $t->parallel(2, 'GET', '/ol');
is(scalar(grep { ($_->{body} // '') =~ /"overloaded"/ } @res), 1,
   'two probes allowed, one refused by max_inflight=1');
isnt(breaker('/ol', 'slow')->{state}, 'closed',
     'the refused one did not count as a success');

# the state is kept across a reload

$t->get('/b') for 1 .. 3;
my $state = breaker('/b', 'bad')->{state};
ok($t->reload, 'reload');
is(breaker('/b', 'bad')->{state}, $state, "still $state after the reload");

$t->outcomes_add_up;
$t->done;
