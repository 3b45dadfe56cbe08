# fanout_retry: a failed attempt is tried again after a full-jitter
# backoff or a Retry-After, within the deadline and the target's timeout=,
# never for a 4xx, never past an open breaker (then fallback= answers),
# and within a budget shared by the workers.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(time);

my $t = FT->new;

$t->mock('m');
my $dead = $t->port('dead');    # nothing listens there

my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;

    location /_flaky   { internal; proxy_pass $m/?flaky=1&k=flaky; }
    location /_always  { internal; proxy_pass $m/?status=503&k=always; }
    location /_429     { internal; proxy_pass $m/?flaky=1&flaky_status=429&retry_after=1&k=429; }
    location /_429far  { internal; proxy_pass $m/?flaky=1&flaky_status=429&retry_after=5&k=429far; }
    location /_404     { internal; proxy_pass $m/?status=404&k=404; }
    location /_slow503 { internal; proxy_pass $m/?status=503&ms=150&k=slow503; }
    location /_brk     { internal; proxy_pass $m/?status=503&k=brk; }
    location /_brkfb   { internal; proxy_pass $m/?status=503&k=brkfb; }
    location /_ok      { internal; proxy_pass $m/?k=ok; }
    location /_refused { internal; proxy_pass http://127.0.0.1:%%PORT_dead%%/; }

    location /retry    { fanout_target m /_flaky; fanout_retry; }
    location /noretry  { fanout_target m /_flaky; }
    location /budget   { fanout_target d /_always;
                         fanout_retry attempts=3 backoff=1ms max_backoff=2ms
                                      budget=20% min_retries=3/s; }
    location /ra       { fanout_target m /_429; fanout_retry on=429;
                         fanout_timeout 3s; }
    location /rafar    { fanout_target m /_429far; fanout_retry on=429;
                         fanout_timeout 2s; }
    location /4xx      { fanout_target m /_404;
                         fanout_retry attempts=3 backoff=1ms max_backoff=1ms; }
    location /deadline { fanout_target s /_slow503;
                         fanout_retry attempts=10 backoff=100ms
                                      max_backoff=100ms;
                         fanout_timeout 400ms; }
    location /breaker  { fanout_target b /_brk;
                         fanout_breaker failures=2 cooldown=30s;
                         fanout_retry attempts=5 backoff=1ms max_backoff=1ms
                                      budget=100% min_retries=100/s; }
    location /fallback { fanout_target f /_brkfb fallback=/_ok;
                         fanout_breaker failures=1 cooldown=30s;
                         fanout_retry attempts=3 backoff=1ms max_backoff=1ms; }
    location /refused  { fanout_target r /_refused;
                         fanout_retry attempts=3 backoff=1ms max_backoff=1ms; }
    location = /fanout/status { fanout_status; }
}
EOC

sub calls {
    my ($k, $body) = @_;
    return scalar grep {
        ($_->{uri} // '') =~ /[?&]k=\Q$k\E(?:&|$)/
        && (!defined $body || $_->{len} == length $body)
    } $t->hits('m');
}

sub target { $t->status_json->{locations}{$_[0]}{targets}{$_[1]} }

# a model that fails its first call, then answers

my $r = $t->post('/retry', '{"i":1}');
is($r->{status}, 200, 'a failed first call retried: 200');
is($r->{json}{meta}{attempts}{m}, 2, 'meta.attempts says 2');
is(calls('flaky'), 2, 'the model saw two calls');
is(target('/retry', 'm')->{retries}, 1, 'retries counted');
is(target('/retry', 'm')->{retries_won}, 1, 'retries_won counted');

$r = $t->post('/noretry', '{"i":2}');
is($r->{status}, 502, 'without fanout_retry the same failure is a 502');
ok(!exists $r->{json}{meta}{attempts}, 'and no meta.attempts');

# a connection refused: every attempt, then the failure stands

$r = $t->post('/refused', '{}');
is($r->{status}, 502, 'refused every time: 502');
is($r->{json}{meta}{attempts}{r}, 3, 'after attempts=3');
is($r->{json}{errors}{r}{error}, 'upstream_error', 'as upstream_error');

# a 4xx is the client's: never retried

$r = $t->post('/4xx', '{}');
is(calls('404'), 1, 'a 404 is not retried');
ok(!exists $r->{json}{meta}{attempts}, 'one attempt');

# Retry-After: honoured when it fits in the deadline, else no retry

my $t0 = time;
$r = $t->post('/ra', '{"i":3}');
my $dt = time - $t0;
is($r->{status}, 200, 'Retry-After: 1 on a 429: retried, 200');
cmp_ok($dt, '>=', 0.9, sprintf('after the second it asked for (%.2f s)', $dt));
is(calls('429'), 2, 'two calls');

$t0 = time;
$r = $t->post('/rafar', '{"i":4}');
$dt = time - $t0;
is($r->{status}, 502, 'Retry-After: 5 past a 2 s deadline: not retried');
is($r->{json}{errors}{m}{error}, 'http_429', 'the 429 stands');
cmp_ok($dt, '<', 1.5, sprintf('at once (%.2f s)', $dt));
is(calls('429far'), 1, 'one call');
like($t->error_log, qr/not retried, its Retry-After of 5000 ms would pass the deadline/,
     'the error log says why');

# the deadline bounds the retries

$t0 = time;
$r = $t->post('/deadline', '{}');
$dt = time - $t0;
cmp_ok($dt, '<', 1.5, sprintf('fanout_timeout 400ms bounds 10 attempts (%.2f s)', $dt));
cmp_ok(calls('slow503'), '<=', 3, 'no more calls than fit in it');
like($r->{status}, qr/^50[24]$/, 'and the failure stands');

# an open breaker stops the retries

$r = $t->post('/breaker', '{}');
is(calls('brk'), 2, 'the breaker opened after 2 failed attempts: no third');
is(target('/breaker', 'b')->{breaker}{state}, 'open', 'it is open');
$r = $t->post('/breaker', '{}');
is($r->{json}{errors}{b}{error}, 'circuit_open', 'and the next call is not made');
is(calls('brk'), 2, 'no call at all');

# ... and sends the call to fallback= instead

$r = $t->post('/fallback', '{}');
is($r->{status}, 200, 'breaker open after one failure: the fallback answers');
ok($r->{json}{meta}{fallback}{f}, 'meta.fallback says so');
is(calls('brkfb'), 1, 'the target was called once');
is(calls('ok'), 1, 'and its fallback once');

# the budget: a dead model under 100 concurrent requests with attempts=3
# gets at most requests * (1 + 20%) + 3/s over the 10 s window

my @res = $t->parallel(100, 'POST', '/budget', body => '{}', timeout => 20);
my $n = calls('always');
is(scalar(grep { $_->{status} == 502 } @res), 100, '100 requests, all 502');
cmp_ok($n, '<=', 100 + 20 + 30, "calls within the budget ($n, without it 300)");
cmp_ok($n, '>', 100, 'but some were retried');
my $tg = target('/budget', 'd');
cmp_ok($tg->{retry_budget_denied}, '>', 0,
       "the budget refused $tg->{retry_budget_denied} retries");
is($tg->{retries} + 100, $n, 'retries + first calls = the calls the model saw');

$t->outcomes_add_up;

# nginx -t

for my $bad ('attempts=1', 'attempts=11', 'on=4xx', 'budget=101%', 'budget=20',
             'backoff=1s max_backoff=100ms', 'min_retries=3', 'colour=red') {
    my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /p { fanout_target a /_m; fanout_retry $bad; }
}
EOC
    isnt($rc, 0, "fanout_retry $bad: nginx -t fails");
    like($out, qr/\[emerg\].*nginx\.conf:\d+/, "fanout_retry $bad: with the file and line")
        or diag($out);
}

my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
fanout_retry attempts=3 on=error,timeout,5xx,429,bad_json backoff=10ms max_backoff=1s budget=12.5% min_retries=0/s;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /p { fanout_target a /_m; }
    location /q { fanout_target a /_m; fanout_retry off; }
}
EOC
is($rc, 0, 'a full fanout_retry at http level, and off in a location') or diag($out);

$t->outcomes_add_up;
$t->done;
