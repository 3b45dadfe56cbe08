# fanout_hedge: a backup attempt when the first is late, after a fixed
# delay or the target's own recent pN; the first good answer wins and the
# other attempt is cut off; a failed backup never beats a slower good
# answer; the budget keeps an outage from doubling the calls.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->mock('m');

my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;

    location /_fixed    { internal; proxy_pass $m/?slow_marked=1000&k=fixed; }
    location /_none     { internal; proxy_pass $m/?slow_marked=1000&k=none; }
    location /_adapt    { internal; proxy_pass $m/?slow_marked=1000&k=adapt; }
    location /_cold     { internal; proxy_pass $m/?slow_marked=1000&k=cold; }
    location /_budget   { internal; proxy_pass $m/?slow_marked=1000&k=budget; }
    location /_slow200  { internal; proxy_pass $m/?ms=300&k=slow200; }
    location /_fast503  { internal; proxy_pass $m/?status=503&k=fast503; }

    location /fixed    { fanout_target m /_fixed; fanout_hedge after=50ms budget=100%; }
    location /none     { fanout_target m /_none; }
    location /adapt    { fanout_target m /_adapt;
                         fanout_hedge after=p95 min=10ms max=2s budget=100%; }
    location /cold     { fanout_target m /_cold;
                         fanout_hedge after=p95 min=10ms max=300ms budget=100%; }
    location /bad      { fanout_target s /_slow200;
                         fanout_hedge after=20ms to=/_fast503 budget=100%; }
    location /budget   { fanout_target m /_budget; fanout_hedge after=20ms budget=5%; }
    location = /fanout/status { fanout_status; }
}
EOC

sub calls {
    my ($k) = @_;
    return scalar grep { ($_->{uri} // '') =~ /[?&]k=\Q$k\E(?:&|$)/ }
                  $t->hits('m');
}
sub closed { scalar grep { ($_->{event} // '') eq 'closed' } $t->hits('m') }
sub target { $t->status_json->{locations}{$_[0]}{targets}{$_[1]} }

# a fixed delay: the slow first attempt is beaten by its backup

my $t0 = time;
my $r = $t->post('/fixed', '{"slow":1}');
my $dt = time - $t0;
is($r->{status}, 200, 'after=50ms: 200');
cmp_ok($dt, '<', 0.6, sprintf('answered by the backup, not after 1 s (%.2f s)', $dt));
ok($r->{json}{meta}{hedged}{m}, 'meta.hedged says the backup answered');
is(calls('fixed'), 2, 'two attempts');
sleep 0.3;
is(closed(), 1, 'the slow one was cut off: the model saw its connection closed');
my $tg = target('/fixed', 'm');
is($tg->{hedges}, 1, 'hedges counted');
is($tg->{hedges_won}, 1, 'hedges_won counted');

$t0 = time;
$r = $t->post('/none', '{"slow":"none"}');
$dt = time - $t0;
cmp_ok($dt, '>=', 0.9, sprintf('without fanout_hedge it takes the second (%.2f s)', $dt));

# a fast answer is never hedged

$r = $t->post('/fixed', '{"fast":1}');
ok(!exists $r->{json}{meta}{hedged}, 'a fast answer: no backup');
is(target('/fixed', 'm')->{hedges}, 1, 'none sent');

# after=p95: the target's own recent latency, clamped to min

$t->post('/adapt', qq({"i":$_})) for 1 .. 30;
$t0 = time;
$r = $t->post('/adapt', '{"slow":2}');
$dt = time - $t0;
is($r->{status}, 200, 'after=p95: 200');
cmp_ok($dt, '<', 0.5, sprintf('hedged at the fast answers\' p95 (%.2f s)', $dt));
$tg = target('/adapt', 'm');
cmp_ok($tg->{hedge_delay_ms}, '>=', 10, "the delay is at least min ($tg->{hedge_delay_ms} ms)");
cmp_ok($tg->{hedge_delay_ms}, '<=', 100, 'and near the fast answers');

# until 20 answers are known, max applies

$t0 = time;
$r = $t->post('/cold', '{"slow":3}');
$dt = time - $t0;
cmp_ok($dt, '>=', 0.25, sprintf('no samples yet: max=300ms (%.2f s)', $dt));
cmp_ok($dt, '<', 0.9, 'and not the slow 1 s');
is(target('/cold', 'm')->{hedge_delay_ms}, 300, 'the delay is max');

# a failing backup does not beat a slower good answer

$t0 = time;
$r = $t->post('/bad', '{}');
$dt = time - $t0;
is($r->{status}, 200, 'the backup answered 503 first: still 200');
cmp_ok($dt, '>=', 0.28, sprintf('from the slower good answer (%.2f s)', $dt));
ok(!exists $r->{json}{meta}{hedged}, 'not a hedge\'s answer');
is(calls('fast503'), 1, 'the backup went to to=');

# the budget: 40 slow requests at once, budget=5%: 2 backups, not 40

# each its own body: only a body's first call is slow
my @pids;
for my $i (1 .. 40) {
    push @pids, fork() // die;
    if ($pids[-1] == 0) {
        $t->post('/budget', qq({"slow":$i}), timeout => 10);
        POSIX::_exit(0);
    }
}
waitpid($_, 0) for @pids;
$tg = target('/budget', 'm');
cmp_ok($tg->{hedges}, '<=', 3, "budget=5% of ~41 calls: $tg->{hedges} backups");
cmp_ok($tg->{hedge_budget_denied}, '>=', 30,
       "$tg->{hedge_budget_denied} refused");

$t->outcomes_add_up;

# nginx -t

for my $bad ('', 'after=soon', 'after=p100', 'after=p0', 'after=50ms min=1s max=10ms',
             'after=50ms budget=5', 'after=50ms max_hedges=0', 'after=50ms to=http://x/',
             'after=50ms colour=red') {
    my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /p { fanout_target a /_m; fanout_hedge $bad; }
}
EOC
    isnt($rc, 0, "fanout_hedge $bad: nginx -t fails");
    like($out, qr/\[emerg\].*nginx\.conf:\d+/, "fanout_hedge $bad: with the file and line")
        or diag($out);
}

my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
fanout_hedge after=p99.9 min=5ms max=1s budget=2.5% max_hedges=2 to=/_r?x=1;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /_r { internal; return 200 '{}'; }
    location /p { fanout_target a /_m; }
    location /q { fanout_target a /_m; fanout_hedge off; }
}
EOC
is($rc, 0, 'a full fanout_hedge at http level, and off in a location') or diag($out);

$t->done;
