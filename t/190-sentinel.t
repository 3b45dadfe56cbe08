# fanout_redis sentinel= master=: a real redis-sentinel (Debian's package)
# over a master and a replica. Under a steady load: SENTINEL FAILOVER, then
# the new master killed. No client request fails; the cache and a cluster
# limit resume on the new master within a few seconds each time (measured
# and printed), and no READONLY answer goes on after the switch.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use POSIX ":sys_wait_h";
use Time::HiRes qw(sleep time);

FT::needs('redis-sentinel');

my $t = FT->new;
my $dir = $t->dir;

# a master sends its first full sync at once, not after Redis's default 5 s
# wait for more replicas (repl-diskless-sync-delay): either may be master
my @sync = ('--repl-diskless-sync-delay', '0');
my $pm = $t->redis('m', args => [@sync]);
my $pr = $t->redis('r', args => [@sync, '--replicaof', '127.0.0.1', $pm]);
$t->mock('a', ms => 1);

for (1 .. 400) {
    last if $t->redis_cli('r', 'INFO', 'replication') =~ /master_link_status:up/;
    sleep 0.05;
}
like($t->redis_cli('r', 'INFO', 'replication'), qr/master_link_status:up/, 'the replica follows the master');

my $ps = $t->sentinel('s', master => 'm', password => 'sentpass');

sub sentinel { $t->sentinel_cli('s', @_) }
sub master_port { (split /\n/, sentinel('SENTINEL', 'get-master-addr-by-name', 'mymaster'))[1] // 0 }

for (1 .. 200) {
    last if sentinel('SENTINEL', 'replicas', 'mymaster') =~ /\Q$pr\E/;
    sleep 0.05;
}
like(sentinel('SENTINEL', 'replicas', 'mymaster'), qr/\Q$pr\E/, 'the Sentinel knows the replica');

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis sentinel=127.0.0.1:$ps,127.0.0.1:1 master=mymaster sentinel_password=sentpass
             timeout=300ms connect_timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /p {
        fanout_target a /_a;
        fanout_cache ttl=60s;
        fanout_limit key=\$arg_c rate=100000r/s scope=cluster;
    }
    location = /status { fanout_status; }
}
EOC

sleep 0.5;
like($t->error_log, qr/\[notice\].*fanout redis: master "mymaster" is at 127\.0\.0\.1:$pm \(asked a Sentinel\)/,
     'the master found through the Sentinel');
is($t->post('/p?c=x', '{"k":"first"}')->{headers}{'x-fanout-cache'}, 'MISS', 'a miss');
sleep 0.3;
is($t->post('/p?c=x', '{"k":"first"}')->{headers}{'x-fanout-cache'}, 'HIT', 'then a hit: caching on the master');
like($t->redis_cli('m', '--scan', '--pattern', 'fanout:limit:*'), qr/fanout:limit:/, 'the cluster limit counts in the master');

# a wrong Sentinel password: refused, logged, failing open
my $two = $t->port('two');
$t->run(prefix => 'two', port => $two, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis sentinel=127.0.0.1:$ps master=mymaster sentinel_password=wrong timeout=300ms;
server {
    listen 127.0.0.1:$two;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /p { fanout_target a /_a; fanout_cache ttl=60s; }
}
EOC
sleep 0.5;
my $w = $t->post('/p', '{"k":"w"}', port => $two);
is($w->{status}, 200, 'a wrong sentinel_password: answered all the same');
is($w->{headers}{'x-fanout-cache'}, 'ERROR', '  without the cache');
like($t->error_log('two'), qr/has a Sentinel that names no such master: (WRONGPASS|NOAUTH|ERR)/,
     '  and the error log says what the Sentinel answered');
$t->stop_instance('two');
push @{ $t->{stopped} }, 'two';

# the load: every answer's time, status and cache state, fresh keys each
sub load {
    my ($file) = @_;
    my $pid = fork() // die;
    if ($pid == 0) {
        my $stop = 0;
        local $SIG{TERM} = sub { $stop = 1 };
        open my $fh, '>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        my $i = 0;
        while (!$stop) {
            $i++;
            # each key twice: the second hits only if the first's store
            # reached the master its lookup reads
            for my $n (1, 2) {
                my $r = eval { $t->post("/p?c=$i", qq({"k":"$file-$i"})) } || { status => 0 };
                printf $fh "%.3f %d %s %d\n", time, $r->{status} // 0,
                       $r->{headers}{'x-fanout-cache'} // '-', $n;
                sleep 0.02;
            }
        }
        POSIX::_exit(0);
    }
    return $pid;
}

sub lines { map { [split / /] } split /\n/, FT::read_text($_[0]) }

# when, after $since, the cache worked again: a key stored, then found
sub resumed {
    my ($file, $since) = @_;
    my $end = time + 15;
    while (time < $end) {
        my ($first_ok) = grep { $_->[0] > $since && $_->[3] == 2 && $_->[2] eq 'HIT' } lines($file);
        return $first_ok->[0] - $since if $first_ok;
        sleep 0.1;
    }
    return undef;
}

# --- SENTINEL FAILOVER

my $l = load("$dir/load1");
sleep 1;
my $t0 = time;
sentinel('SENTINEL', 'FAILOVER', 'mymaster');
for (1 .. 200) { last if master_port() == $pr; sleep 0.05 }
is(master_port(), $pr, 'the Sentinel has the replica as master');
my $switched = time;
my $took = resumed("$dir/load1", $switched);
ok(defined $took && $took < 4, sprintf('caching resumes %.2f s after the switch (%.2f s after the failover began)',
                                       $took // -1, ($took // 0) + $switched - $t0));
sleep 1.5;
kill 'TERM', $l;
waitpid($l, 0);

my @res = lines("$dir/load1");
cmp_ok(scalar @res, '>', 50, scalar(@res) . ' requests during the failover');
is(scalar(grep { $_->[1] != 200 } @res), 0, 'none failed');
my @late = grep { $_->[0] > $switched + 1 + ($took // 0) } @res;
cmp_ok(scalar @late, '>', 10, 'requests after it');
is(scalar(grep { $_->[2] eq 'ERROR' || ($_->[3] == 2 && $_->[2] ne 'HIT') } @late), 0,
   'and every key stored after it is found: no stuck READONLY');
like($t->error_log, qr/\[notice\].*fanout redis: master "mymaster" is at 127\.0\.0\.1:$pr \(\+switch-master\)/,
     'the switch followed by +switch-master');
ok($t->redis_cli('r', '--scan', '--pattern', 'fanout:/p:*') =~ /fanout:/, 'new entries on the new master');

# --- the new master killed: the old one promoted again

for (1 .. 400) {
    last if $t->redis_cli('m', 'INFO', 'replication') =~ /master_link_status:up/;
    sleep 0.05;
}
like($t->redis_cli('m', 'INFO', 'replication'), qr/role:slave/, 'the old master is a replica now');

$l = load("$dir/load2");
sleep 1;
$t0 = time;
$t->redis_signal('r', 'KILL');
for (1 .. 300) { last if master_port() == $pm; sleep 0.05 }
is(master_port(), $pm, 'the Sentinel promotes the old master again');
$switched = time;
$took = resumed("$dir/load2", $switched);
ok(defined $took && $took < 4, sprintf('caching resumes %.2f s after the promotion (%.2f s after the kill)',
                                       $took // -1, ($took // 0) + $switched - $t0));
sleep 1.5;
kill 'TERM', $l;
waitpid($l, 0);

@res = lines("$dir/load2");
is(scalar(grep { $_->[1] != 200 } @res), 0, 'no request failed while the master was dead');
@late = grep { $_->[0] > $switched + 1 + ($took // 0) } @res;
is(scalar(grep { $_->[2] eq 'ERROR' || ($_->[3] == 2 && $_->[2] ne 'HIT') } @late), 0,
   'and the cache works after it');
ok($t->redis_cli('m', '--scan', '--pattern', 'fanout:limit:*') =~ /fanout:limit:/, 'cluster limits count there again');

# --- a hung master, its +switch-master missed: the Sentinel is asked again

$t->redis_restart('r');
for (1 .. 400) {
    last if $t->redis_cli('r', 'INFO', 'replication') =~ /master_link_status:up/;
    sleep 0.05;
}
like($t->redis_cli('r', 'INFO', 'replication'), qr/master_link_status:up/,
     'the killed one is back as a replica');

$l = load("$dir/load3");
sleep 1;
# the Sentinel learns of the new master without announcing it
# (no +switch-master), then the old one hangs: it takes connections
# (the kernel's backlog) but answers nothing
sentinel('SENTINEL', 'REMOVE', 'mymaster');
$t->redis_cli('r', 'REPLICAOF', 'NO', 'ONE');
sentinel('SENTINEL', 'MONITOR', 'mymaster', '127.0.0.1', $pr, 1);
$t0 = time;
$t->redis_signal('m', 'STOP');
$took = resumed("$dir/load3", $t0);
ok(defined $took && $took < 6, sprintf('a hung master: caching resumes on the new one %.2f s after it hung',
                                       $took // -1));
sleep 2;
kill 'TERM', $l;
waitpid($l, 0);
$t->redis_signal('m', 'CONT');

@res = lines("$dir/load3");
is(scalar(grep { $_->[1] != 200 } @res), 0, 'no request failed while the master hung');
@late = grep { $_->[0] > $t0 + 1 + ($took // 0) } @res;
cmp_ok(scalar @late, '>', 5, 'requests after the switch');
is(scalar(grep { $_->[2] eq 'ERROR' } @late), 0, 'none of them X-Fanout-Cache: ERROR');
like($t->error_log, qr/\[error\].*fanout redis master "mymaster" at 127\.0\.0\.1:$pm did not answer in time/,
     'the error log names the master that hung, not the Sentinel');
like($t->error_log, qr/\[notice\].*fanout redis: master "mymaster" is at 127\.0\.0\.1:$pr \(asked a Sentinel\)/,
     'and the master found by asking again');

$t->done;
