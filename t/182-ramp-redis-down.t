# A guarded ramp whose bound is the time to first bytes (rollback_if=
# ttft_p99>Nms) while its Redis is away: the step holds (neither judged nor
# moved on) whatever the candidate answers meanwhile, the requests are
# served, and with Redis back the step is judged again and the late
# candidate rolled back.  Redis stopped (commands time out), then killed
# and started empty (refused, then forgotten).

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->redis('r');
$t->mock('a', ms => 1);
$t->mock('late', mode => 'sse', first => 300, gap => 5, events => 3);

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 2m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_late { internal; proxy_pass http://127.0.0.1:%%MOCK_late%%/; }
    location /ttft {
        fanout_split $arg_u ramp=10%,50%,100% every=1s min_requests=10
                     rollback_if=ttft_p99>100ms candidate=v2 {
            90% v1;
            * v2;
        }
        fanout_target a /_a variant=v1;
        fanout_target late /_late variant=v2;
        fanout_merge first;
    }
    location = /api { fanout_api write; }
}
EOC

sub ramp { return $t->get('/api')->{json}{locations}{'/ttft'}{split}{ramp} // {} }

# one pass of 100 users: [requests answered 200, of them in the candidate]
sub drive {
    my ($ok, $v2) = (0, 0);
    for my $u (1 .. 100) {
        my $r = $t->request('POST', "/ttft?u=user$u", body => '{}');
        $ok++ if $r->{status} == 200;
        $v2++ if ($r->{headers}{'x-fanout-variant'} // '') eq 'v2';
    }
    return ($ok, $v2);
}

# the ramp begun at its first step, fleet-wide (written to Redis)
my $seen;
for (1 .. 100) {
    my $o = ramp();
    if (($o->{state} // '') eq 'ramping'
        && $t->redis_cli('r', 'HLEN', 'fanout:runtime') >= 1)
    {
        $seen = 1;
        last;
    }
    sleep 0.05;
}
ok($seen, 'the ramp begun and written to Redis');

for my $how (['STOP', 'stopped (its commands time out)'],
             ['KILL', 'killed (refused)'])
{
    my ($signal, $name) = @$how;

    $t->redis_signal('r', $signal);

    # two passes (over 6 s, 6 steps' time, 20 of the candidate's answers
    # against min_requests=10) of a candidate rolled back once judged
    my ($ok, $v2, $n) = (0, 0, 0);
    for (1 .. 2) {
        my ($o, $c) = drive();
        $ok += $o;
        $v2 += $c;
        $n += 100;
    }
    my $o = ramp();
    is($o->{state}, 'ramping', "Redis $name: the ramp holds");
    is($o->{step}, 1, '  at its first step');
    is($ok, $n, "  all $n requests answered 200");
    cmp_ok($v2, '>=', 10 * $n / 100 * 0.4, "  the candidate still served ($v2 of $n)");
    cmp_ok($v2, '<=', 10 * $n / 100 * 2.5, '  at its first step\'s share');

    if ($signal eq 'STOP') {
        $t->redis_signal('r', 'CONT');
    } else {
        $t->redis_restart('r');
    }

    # Redis back: the step judged on the fleet's counts, the candidate gone
    my $deadline = time + 20;
    while (time < $deadline) {
        drive();
        $o = ramp();
        last if $o->{state} eq 'rolled_back';
    }
    is($o->{state}, 'rolled_back', "Redis back after being $name: the late candidate rolled back");
    is($o->{reason}, 'ttft_p99', '  for ttft_p99');
    like($t->redis_cli('r', 'HGETALL', 'fanout:runtime') // '', qr/^rolled_back /m,
         '  the rollback in Redis');

    if ($signal eq 'STOP') {
        my $r = $t->request('PATCH', '/api', body => '{"location":"/ttft","ramp":"restart"}');
        is($r->{status}, 200, 'the ramp restarted by fanout_api');
        $seen = 0;
        for (1 .. 100) {
            if ((ramp()->{state} // '') eq 'ramping'
                && $t->redis_cli('r', 'HGETALL', 'fanout:runtime') =~ /^ramping /m)
            {
                $seen = 1;
                last;
            }
            sleep 0.05;
        }
        ok($seen, '  ramping again, in Redis too');
    }
}

like($t->error_log, qr/\[error\].*redis/i, 'Redis\'s absence logged');

$t->done;
