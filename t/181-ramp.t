# Guarded ramps (fanout_split ramp= every= rollback_if=) on two instances
# sharing Redis: a healthy candidate steps 10% -> 50% -> 100% on schedule,
# the same on both, and a user in it at 10% stays in it at 50%; a
# candidate answering 500s is rolled back to 0% at once on both, logged and
# in the state; fanout_api restarts a ramp and rolls it back by hand; an
# instance without Redis ramps on its own counters.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->redis('r');
$t->mock('a', ms => 1);
$t->mock('b', ms => 1);
$t->mock('bad', ms => 1, status => 500);
$t->mock('late', mode => 'sse', first => 300, gap => 5, events => 3);

my $locations = <<'EOC';
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_bad { internal; proxy_pass http://127.0.0.1:%%MOCK_bad%%/; }
    location /good {
        fanout_split $arg_u ramp=10%,50%,100% every=8s min_requests=5
                     rollback_if=error_rate>20%,p99>1000ms {
            10% v2;
            * v1;
        }
        fanout_target a /_a variant=v1;
        fanout_target b /_b variant=v2;
    }
    location /bad {
        fanout_split $arg_u ramp=10%,50%,100% every=1s min_requests=10
                     rollback_if=error_rate>20% candidate=v2 {
            90% v1;
            * v2;
        }
        fanout_target a /_a variant=v1;
        fanout_target bad /_bad variant=v2;
    }
    location /_late { internal; proxy_pass http://127.0.0.1:%%MOCK_late%%/; }
    location /ttft {
        fanout_split $arg_u ramp=10%,50%,100% every=1s min_requests=10
                     rollback_if=error_rate>20%,ttft_p99>100ms candidate=v2 {
            90% v1;
            * v2;
        }
        fanout_target a /_a variant=v1;
        fanout_target late /_late variant=v2;
        fanout_merge first;
    }
    location /w {
        fanout_split $arg_u { 10% v2; * v1; }
        fanout_target a /_a variant=v1;
        fanout_target b /_b variant=v2;
    }
    location = /api { fanout_api write; }
    location = /status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
EOC

my $http = <<"EOC";
fanout_zone fanout 2m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
$locations
}
EOC

$t->run(workers => 2, http => $http);
my $two = $t->port('two');
(my $http2 = $http) =~ s/%%PORT_http%%/$two/;
$t->run(prefix => 'two', port => $two, workers => 2, http => $http2);

sub ramp {
    my ($loc, $port) = @_;
    my $s = $t->get('/api', $port ? (port => $port) : ())->{json};
    return $s->{locations}{$loc}{split}{ramp} // {};
}

# one pass of 100 users over both instances: user => variant
sub drive {
    my ($loc) = @_;
    my %v;
    for my $u (1 .. 100) {
        my $r = $t->request('POST', "$loc?u=user$u", body => '{}',
                            $u % 2 ? (port => $two) : ());
        $v{$u} = $r->{headers}{'x-fanout-variant'} // 'none';
    }
    return \%v;
}

sub count { my ($v, $name) = @_; return scalar grep { $_ eq $name } values %$v }

# --- the healthy candidate, from its first step now

is($t->request('PATCH', '/api', body => '{"location":"/good","ramp":"restart"}')->{status},
   200, 'the ramp from its first step');
my (%by_step, $deadline);
# a pass of 100 users (1.3 s here, 5 s seen on a loaded machine) is taken
# for a step only if the step held through it: one starts only when it
# fits in what is left of the step (by step_age_ms and the last pass);
# one that would fit in no step is driven anyway, for the ramp to move
my $pass = 1.5;
$deadline = time + 60;
while (time < $deadline) {
    my $before = ramp('/good');
    if (($before->{state} // '') eq 'ramping' && 1.2 * $pass < 8
        && ($before->{step_age_ms} // 0) / 1000 + 1.2 * $pass > 8)
    {
        sleep 0.1;
        next;
    }
    my $t0 = time;
    my $v = drive('/good');
    $pass = time - $t0;
    my $after = ramp('/good');
    if ($before->{step} && $before->{step} == ($after->{step} // -1)
        && $before->{state} eq $after->{state}) {
        $by_step{"$after->{state}$after->{step}"} //= $v;
    }
    last if ($after->{state} // '') eq 'done' && $by_step{done3};
}
# the other instance takes "done" within a poll: a pass once both have it
for (1 .. 40) {
    last if (ramp('/good', $two)->{state} // '') eq 'done';
    sleep 0.05;
}
$by_step{done3} = drive('/good') if ramp('/good')->{state} eq 'done';

my $r1 = ramp('/good');
is($r1->{state}, 'done', 'the ramp reached its last step');
is($r1->{share}, 100, 'the candidate at 100%');
is($r1->{candidate}, 'v2', 'the first variant is the candidate');
is(ramp('/good', $two)->{state}, 'done', 'on the other instance too');

my ($s1, $s2) = ($by_step{ramping1}, $by_step{ramping2});
ok($s1 && $s2, 'answers seen at 10% and at 50%');
if ($s1 && $s2) {
    my $n1 = count($s1, 'v2');
    my $n2 = count($s2, 'v2');
    ok($n1 >= 2 && $n1 <= 25, "10%: $n1 of 100 users in v2");
    ok($n2 >= 30 && $n2 <= 70, "50%: $n2 of 100 users in v2");
    my @moved = grep { $s1->{$_} eq 'v2' && $s2->{$_} ne 'v2' } keys %$s1;
    is(scalar @moved, 0, 'every user in v2 at 10% is in v2 at 50%');
}
is(count($by_step{done3} // {}, 'v2'), 100, 'at 100% every user in v2');
like($t->error_log, qr/\[notice\].*fanout ramp of location "\/good": ramping, step 2 of 3 \(50\.00%\)/,
     'each step logged at notice');

# --- the failing candidate: rolled back at once

$deadline = time + 15;
my $rb;
while (time < $deadline) {
    drive('/bad');
    $rb = ramp('/bad');
    last if $rb->{state} eq 'rolled_back';
}
is($rb->{state}, 'rolled_back', 'a candidate answering 500s is rolled back');
is($rb->{reason}, 'error_rate', 'for its error rate');
is($rb->{step}, 1, 'at its first step');
my $seen;
for (1 .. 40) {
    if ((ramp('/bad', $two)->{state} // '') eq 'rolled_back') { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'on the other instance too');
my $v = drive('/bad');
is(count($v, 'v1'), 100, 'every user back in v1');
like($t->error_log . $t->error_log('two'),
     qr/\[warn\].*fanout ramp of location "\/bad": rolled back to 0% at step 1 \(error rate over its bound\)/,
     'logged at warn');
sleep 1.5;
is(ramp('/bad')->{state}, 'rolled_back', 'and it stays rolled back');
# --- a candidate whose streams start late: rolled back for ttft_p99

$deadline = time + 20;
my $rt;
while (time < $deadline) {
    drive('/ttft');
    $rt = ramp('/ttft');
    last if $rt->{state} eq 'rolled_back';
}
is($rt->{state}, 'rolled_back', 'a candidate whose first event comes after 300 ms is rolled back');
is($rt->{reason}, 'ttft_p99', '  for ttft_p99>100ms');
# (the step's counts start again with the rollback: slow_first is in the
# state, its value the new step's)
ok(exists $rt->{slow_first} && exists $rt->{slow}, '  the state has slow_first beside slow');
like($t->error_log . $t->error_log('two'),
     qr/\[warn\].*fanout ramp of location "\/ttft": rolled back to 0% at step 1 \(p99 time to first bytes over its bound\)/,
     '  logged at warn');

my $st = $t->get('/status')->{json};
is($st->{runtime}{locations}{'/bad'}{split}{ramp}{state}, 'rolled_back', 'visible in fanout_status');
my $prom = $t->get('/metrics')->{body};
like($prom, qr/^fanout_ramp_rolled_back\{location="\/bad"\} 1$/m, 'Prometheus: fanout_ramp_rolled_back 1');
like($prom, qr/^fanout_variant_share_ratio\{location="\/bad",variant="v2"\} 0\.0000$/m, '  and v2 at a share of 0');
like($prom, qr/^fanout_variant_share_ratio\{location="\/good",variant="v2"\} 1\.0000$/m, '  /good\'s v2 at 1');
like($prom, qr/^fanout_ramp_step\{location="\/good"\} 3$/m, '  at its step 3');
like($prom, qr/^fanout_variant_time_to_first_chunk_seconds_bucket\{location="\/ttft",variant="v2",le="0\.25"\} 0$/m,
     'Prometheus: the late variant has no first bytes within 250 ms');
like($prom, qr/^fanout_variant_time_to_first_chunk_seconds_bucket\{location="\/ttft",variant="v2",le="0\.5"\} [1-9]/m,
     '  and some within 500 ms');
like($prom, qr/^fanout_variant_time_to_first_chunk_seconds_bucket\{location="\/ttft",variant="v1",le="0\.1"\} [1-9]/m,
     '  the other variant\'s within 100 ms');
my $vfirst = $st->{locations}{'/ttft'}{variants}{v2}{first_chunk_ms} // {};
cmp_ok($vfirst->{500} // 0, '>=', 1, 'fanout_status: the variant\'s first_chunk_ms histogram');

# --- Redis forgets (FLUSHALL, a restart without persistence): no ramp
#     goes back, no rollback is undone; the instances write back theirs

$t->redis_cli('r', 'FLUSHALL');
my %during = (bad => 0, good => 0);
my $t_end = time + 2;
while (time < $t_end) {
    my $vb = drive('/bad');
    $during{bad} += count($vb, 'v2');
    $during{good} += 100 - count(drive('/good'), 'v2');
}
is($during{bad}, 0, 'after FLUSHALL no user was sent to the rolled-back candidate');
is($during{good}, 0, 'and the finished ramp kept every user in v2');
is(ramp('/bad')->{state}, 'rolled_back', '/bad still rolled back');
is(ramp('/bad', $two)->{state}, 'rolled_back', '  on both instances');
is(ramp('/good')->{state}, 'done', '/good still done');
is(ramp('/good', $two)->{state}, 'done', '  on both instances');
my $hash = $t->redis_cli('r', 'HGETALL', 'fanout:runtime');
like($hash, qr/^rolled_back \d+ \d+ \d+$/m, 'the rollback written back to Redis');
like($hash, qr/^done 2 \d+ 0$/m, 'and the finished ramp');

# --- by hand: restart, then roll back

my $r = $t->request('PATCH', '/api', body => '{"location":"/good","ramp":"restart"}');
is($r->{status}, 200, 'restart the ramp by fanout_api');
is($r->{json}{locations}{'/good'}{split}{ramp}{step}, 1, 'back at step 1');
$seen = 0;
for (1 .. 40) {
    my $o = ramp('/good', $two);
    if ($o->{state} eq 'ramping' && $o->{step} == 1) { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'the other instance restarted too');
$r = $t->request('PATCH', '/api', body => '{"location":"/good","ramp":"rollback"}', port => $two);
is($r->{status}, 200, 'roll it back by fanout_api');
is($r->{json}{locations}{'/good'}{split}{ramp}{reason}, 'api', 'the reason: the API');
$seen = 0;
for (1 .. 40) {
    if (ramp('/good')->{state} eq 'rolled_back') { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'seen by the first instance');
is(count(drive('/good'), 'v1'), 100, 'every user in v1');
$r = $t->request('PATCH', '/api', body => '{"location":"/good","weights":{"v1":50,"v2":50}}');
is($r->{status}, 409, 'weights by hand on a ramped split: 409');
is($r->{json}{error}, 'ramp', '  ramp');

# --- a ramp set through fanout_api, fleet-wide

for my $bad (['{"location":"/w","ramp":{"steps":"5%,50%","every":"1s"}}', 400, 'bad_value', 'steps not ending at 100%'],
             ['{"location":"/w","ramp":{"steps":"5%,100%"}}', 400, 'bad_value', 'no every'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"soon"}}', 400, 'bad_value', 'every not a time'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","rollback_if":"p99>300ms"}}', 400, 'bad_value', 'p99 off the bounds'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","rollback_if":"ttft_p99>300ms"}}', 400, 'bad_value', 'ttft_p99 off the bounds'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","rollback_if":"ttft_p99>250ms,ttft_p99>500ms"}}', 400, 'bad_value', 'ttft_p99 twice'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","candidate":"zz"}}', 404, 'unknown_variant', 'an unknown candidate'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","speed":2}}', 400, 'unknown_field', 'an unknown field'],
             ['{"location":"/w","ramp":{"steps":"5%,100%","every":"1s","min_requests":0}}', 400, 'bad_value', 'min_requests 0'],
             ['{"location":"/w","ramp":"off"}', 404, 'no_ramp', 'off when none is set'],
             ['{"location":"/w","ramp":"sideways"}', 400, 'bad_value', 'an unknown ramp action'])
{
    my ($body, $code, $err, $name) = @$bad;
    my $r = $t->request('PATCH', '/api', body => $body);
    is($r->{status}, $code, "API ramp, $name: $code");
    is(($r->{json} // {})->{error}, $err, "  $err");
}
is(ramp('/w')->{state}, undef, 'nothing changed: no ramp on /w');

$r = $t->request('PATCH', '/api', body => '{"location":"/w","ramp":{"steps":"30%,100%","every":"1500ms",'
                                         . '"rollback_if":"error_rate>20%","candidate":"v2","min_requests":5}}');
is($r->{status}, 200, 'a ramp set through fanout_api');
like($t->error_log, qr/\[notice\].*fanout_api: location "\/w": ramp "0 1500 5 30%,100% error_rate>20%"/,
     'logged at notice');
$seen = 0;
for (1 .. 60) {
    my $o = ramp('/w', $two);
    if (($o->{state} // '') eq 'ramping' && $o->{candidate} eq 'v2') { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'the other instance ramps it too');
$deadline = time + 20;
my $w;
while (time < $deadline) {
    $v = drive('/w');
    $w = ramp('/w');
    last if $w->{state} eq 'done' && (ramp('/w', $two)->{state} // '') eq 'done';
}
is($w->{state}, 'done', 'the API ramp reaches 100%');
is(count(drive('/w'), 'v2'), 100, 'every user in v2');

# Redis forgets: fanout_api's ramp and its state are written back, still done
# (as logged above: candidate 0, every 1500 ms, min 5, steps, rollback_if)
$t->redis_cli('r', 'FLUSHALL');
$seen = 0;
for (1 .. 100) {
    if ($t->redis_cli('r', 'HGET', 'fanout:runtime', "api-ramp\x1f*\x1f/w")
        =~ /^[0-9a-f]{8} 0 1500 5 30.00%,100.00% error_rate>20.00%$/) { $seen = 1; last }
    sleep 0.05;
}
ok($seen, "FLUSHALL: fanout_api's ramp written back as it was set");
sleep 0.6;
is(ramp('/w')->{state}, 'done', '  the ramp still done');
is(ramp('/w', $two)->{state}, 'done', '  on both instances');
is(count(drive('/w'), 'v2'), 100, '  every user still in v2');
$r = $t->request('PATCH', '/api', body => '{"location":"/w","ramp":"off"}', port => $two);
is($r->{status}, 200, 'the API ramp off, through the other instance');
$seen = 0;
for (1 .. 60) {
    if (($t->get('/api')->{json}{locations}{'/w'}{split}{source} // '') eq 'config') { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'both back to the configured split');
$v = drive('/w');
ok(count($v, 'v2') >= 2 && count($v, 'v2') <= 25, 'v2 at about 10% again: ' . count($v, 'v2'));

# --- without Redis: the instance's own ramp

my $solo = $t->port('solo');
(my $http3 = $http) =~ s/%%PORT_http%%/$solo/;
$http3 =~ s/fanout_redis [^\n]*\n//;
$t->run(prefix => 'solo', port => $solo, workers => 1, http => $http3);
$deadline = time + 20;
my $o;
while (time < $deadline) {
    $t->request('POST', "/good?u=solo$_", body => '{}', port => $solo) for 1 .. 100;
    $o = ramp('/good', $solo);
    last if $o->{state} eq 'done';
}
is($o->{state}, 'done', 'a ramp without Redis reaches 100% on its own counters');

$t->done;
