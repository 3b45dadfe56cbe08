# A coalescing leader that dies mid fan-out (kill -9 of its whole
# instance) leaves a lock behind without its DEL; the lock is a lease the
# leader renewed while alive, so the other instance's waiters fan out
# themselves about a second later, not after fanout_timeout (20 s here).

use strict;
use warnings;

use lib 't/lib';
use FT;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('slow', mode => 'echo', ms => 1500);

my %inst = (one => '127.0.0.1:' . $t->port('fleet'),
            two => '127.0.0.2:' . $t->port('fleet'));

for my $name (qw(one two)) {
    $t->run(prefix => $name, port => $inst{$name}, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=500ms;
server {
    listen $inst{$name};
    location /_s { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /p {
        fanout_target s /_s;
        fanout_cache ttl=60s;
        fanout_timeout 20s;
    }
}
EOC
}

sleep 0.3;

# the leader, on instance one
my $lead = fork();
if ($lead == 0) {
    $t->post('/p', '{"k":1}', port => $inst{one}, timeout => 10);
    POSIX::_exit(0);
}

sleep 0.4;
my $lock = $t->redis_cli('r', '--scan', '--pattern', 'fanout:lock:*');
like($lock, qr/^fanout:lock:/, 'the leader holds the lock');

# the whole instance dies: no DEL, no answer to share
my @pids = ($t->{instances}{one}{pid}, $t->workers('one'));
kill 'KILL', @pids;
waitpid($t->{instances}{one}{pid}, 0);
delete $t->{instances}{one};
waitpid($lead, 0);

my $t0 = time;
my $r = $t->post('/p', '{"k":1}', port => $inst{two}, timeout => 15);
my $took = time - $t0;

is($r->{status}, 200, 'the waiter on instance two is answered');
is($r->{headers}{'x-fanout-cache'}, 'MISS', 'by a fan-out of its own');
cmp_ok($took, '<', 6, 'within a lease and a model call, not fanout_timeout')
    or diag("took $took s");
diag(sprintf 'answered after %.2f s', $took);

$t->done;
