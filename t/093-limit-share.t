# fanout_limit on_redis_error=local_share: with Redis down, each instance
# admits its share of a fleet limit, so that three instances stay near the
# configured rate instead of three times it. The count of instances is
# learned from heartbeats in Redis (kept once Redis is gone), or declared
# with instances=.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use POSIX ":sys_wait_h";
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');

my @names = $t->fleet([qw(one two three)], workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=200ms;
fanout_instance node-%%SELF%%;
server {
    listen 127.0.0.1:%%PORT_SELF%%;
    location /_ok { internal; default_type application/json; return 200 '{"ok":1}'; }
    location /learned {
        fanout_target m /_ok;
        fanout_limit key=all rate=20r/s burst=3 scope=cluster on_redis_error=local_share;
    }
    location /declared {
        fanout_target m /_ok;
        fanout_limit key=all rate=20r/s burst=3 scope=cluster on_redis_error=local_share instances=3;
    }
    location /local {
        fanout_target m /_ok;
        fanout_limit key=all rate=20r/s burst=3 scope=cluster on_redis_error=local;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

my $learned;
for (1 .. 60) {
    $learned = $t->get('/fanout/status', port => $t->port('two'))->{json}{instance}{fleet_instances};
    last if ($learned // 0) == 3;
    sleep 0.1;
}
is($learned, 3, 'each instance learns the fleet: 3');
like($t->get('/metrics', port => $t->port('one'))->{body}, qr/^fanout_fleet_instances 3$/m,
     'fanout_fleet_instances 3');
like($t->redis_cli('r', 'ZRANGE', 'fanout:instances', 0, -1), qr/node-one:\d+/,
     "the heartbeats are named by instance and master");

$t->redis_signal('r', 'KILL');

# every instance offered far more than the whole limit for 3 s
sub offered {
    my ($uri, $secs) = @_;
    my @pids;
    my $dir = $t->dir;
    for my $name (@names) {
        my $pid = fork() // die;
        if ($pid == 0) {
            my ($ok, $n) = (0, 0);
            my $end = time + $secs;
            while (time < $end) {
                my $r = $t->post($uri, '{}', port => $t->port($name));
                $ok++ if $r->{status} == 200;
                $n++;
            }
            FT::write_file("$dir/offered.$name", "$ok $n");
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid($_, 0) for @pids;
    my ($ok, $n) = (0, 0);
    for (@names) {
        my ($a, $b) = split ' ', FT::read_text("$dir/offered.$_");
        $ok += $a;
        $n += $b;
    }
    return ($ok, $n);
}

# warm: the first requests with Redis gone find it down
$t->post('/learned', '{}', port => $t->port($_)) for @names;
sleep 0.3;

my $secs = 3;
my $want = 20 * $secs;
my ($ok, $n) = offered('/learned', $secs);
cmp_ok($n, '>', 4 * $want, "offered $n requests");
cmp_ok($ok, '>=', 0.75 * $want, "learned share: admitted $ok of a limit of $want over $secs s (>= -25%)");
cmp_ok($ok, '<=', 1.25 * $want + 9, "  and at most +25% (with the bursts)");

($ok, $n) = offered('/declared', $secs);
cmp_ok($ok, '>=', 0.75 * $want, "declared instances=3: admitted $ok (>= -25%)");
cmp_ok($ok, '<=', 1.25 * $want + 9, "  and at most +25%");

($ok, $n) = offered('/local', $secs);
cmp_ok($ok, '>=', 2.5 * $want, "on_redis_error=local for comparison: each admits the whole rate ($ok)");

is($t->get('/fanout/status', port => $t->port('one'))->{json}{instance}{fleet_instances}, 3,
   'Redis down: the count learned is kept');

$t->done;
