# Coalescing: identical requests arriving together cause one fan-out,
# across worker processes and nginx instances sharing Redis; stale entries
# answer when a fresh fan-out fails.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;
my @res;

$t->redis('r');
$t->mock('a', mode => 'echo', ms => 600);
$t->mock('b', mode => 'echo', ms => 600);
$t->mock('c', mode => 'echo');

# a fleet's instances: the same port, each on an address of its own (the
# cache key holds the server block's ports and names, not its addresses)
my %inst = (one => '127.0.0.1:' . $t->port('fleet'),
            two => '127.0.0.2:' . $t->port('fleet'));
my ($one, $two) = @inst{qw(one two)};

for my $name (qw(one two)) {
    $t->run(prefix => $name, port => $inst{$name},
            workers => ($name eq 'one' ? 2 : 1), http => <<"EOC");
fanout_zone fanout 1m;
# generous: this tests coalescing, not a loaded machine's Redis latency
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=500ms;
server {
    listen $inst{$name} reuseport;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_c { internal; proxy_pass http://127.0.0.1:%%MOCK_c%%/; }
    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s;
        fanout_timeout 5s;
    }
    location /nocoalesce {
        fanout_target a /_a;
        fanout_cache ttl=60s coalesce=off;
    }
    location /stale {
        fanout_target c /_c;
        fanout_cache ttl=1s stale=60s;
    }
    location = /fanout/status { fanout_status; }
}
EOC
}

sleep 0.3;

# 50 identical requests at once, over 2 workers of one instance and a
# second instance

my $body = '{"coalesce":"me"}';
my $n = 50;
my @pids;

for my $i (1 .. $n) {
    my $pid = fork();
    if ($pid == 0) {
        my $port = ($i % 2 ? $one : $two);
        my $res = $t->request('POST', '/p', body => $body, port => $port,
                              timeout => 10);
        delete $res->{json};
        FT::write_file($t->dir . "/res.$i", encode_json($res));
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid($_, 0) for @pids;

my (%status, %cache, %bodies);
for my $i (1 .. $n) {
    my $res = decode_json(FT::read_text($t->dir . "/res.$i"));
    $status{$res->{status}}++;
    $cache{$res->{headers}{'x-fanout-cache'} // 'none'}++;
    $bodies{$res->{body}}++;
}

is($status{200}, $n, "$n answers of 200");
is(scalar keys %bodies, 1, 'all the same answer')
    or diag(join ' ', map { "$_=$cache{$_}" } sort keys %cache);
is($cache{MISS}, 1, 'one request fanned out')
    or diag(join ' ', map { "$_=$cache{$_}" } sort keys %cache);
is(($cache{COALESCED} // 0) + ($cache{HIT} // 0), $n - 1,
   'the others were served its answer');
cmp_ok($cache{COALESCED} // 0, '>=', 10, 'most of them while it ran');

my @a = grep { $_->{method} } $t->hits('a');
my @b = grep { $_->{method} } $t->hits('b');
is(scalar @a, 1, 'model a was called once');
is(scalar @b, 1, 'model b was called once');

my $st1 = $t->get('/fanout/status', port => $one)->{json};
my $st2 = $t->get('/fanout/status', port => $two)->{json};
cmp_ok($st1->{locations}{'/p'}{cache}{coalesced}, '>=', 1,
       'instance one counted coalesced requests');
cmp_ok($st2->{locations}{'/p'}{cache}{coalesced}, '>=', 1,
       'instance two counted coalesced requests');

# in one worker, waiters wait on the request in flight, not on Redis:
# 20 identical requests cost a few Redis commands, not 15 ms polls

my $cmds0 = $t->get('/fanout/status', port => $two)->{json}{redis}{commands};
my $hits0 = grep { $_->{method} } $t->hits('a');

@res = $t->parallel(20, 'POST', '/p', body => '{"local":1}',
                    port => $two, timeout => 10);
is(scalar(grep { $_->{status} == 200 } @res), 20, 'one worker: 20 answers');
is(scalar(grep { $_->{method} } $t->hits('a')) - $hits0, 1,
   'one worker: model a called once');

my $st = $t->get('/fanout/status', port => $two)->{json};
cmp_ok($st->{redis}{commands} - $cmds0, '<=', 25,
       'waiters in the worker sent (almost) no Redis commands')
    or diag($st->{redis}{commands} - $cmds0);

# a leader whose client goes away: its waiter fans out itself

$hits0 = grep { $_->{method} } $t->hits('a');
my $lead = $t->connect($two);
print $lead "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{\"ab\":1}";
sleep 0.1;

my $pid = fork();
if ($pid == 0) {
    close $lead;    # or the leader's connection stays open in this child
    my $r = $t->post('/p', '{"ab":1}', port => $two, timeout => 10);
    POSIX::_exit($r->{status} == 200 ? 0 : 1);
}
sleep 0.1;
close $lead;
waitpid($pid, 0);
is($? >> 8, 0, 'the waiter of an aborted leader still answers 200');
is(scalar(grep { $_->{method} } $t->hits('a')) - $hits0, 2,
   'by fanning out itself');

# coalesce=off: each request fans out

my $before = grep { $_->{method} } $t->hits('a');
@res = $t->parallel(6, 'POST', '/nocoalesce', body => '{"x":"off"}',
                       port => $one, timeout => 10);
is(scalar(grep { $_->{status} == 200 } @res), 6, 'coalesce=off: 6 answers');
my $after = grep { $_->{method} } $t->hits('a');
cmp_ok($after - $before, '>=', 5, 'coalesce=off: (almost) every one called');

# stale: an expired entry answers when the fresh fan-out fails

my $res = $t->post('/stale', '{"s":1}', port => $one);
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'stale: stored');
my $fresh = $res->{body};

sleep 1.5;
$t->kill_mock('c');

$res = $t->post('/stale', '{"s":1}', port => $one);
is($res->{status}, 200, 'the model is dead, yet 200');
is($res->{headers}{'x-fanout-cache'}, 'STALE', 'served STALE');
is($res->{body}, $fresh, 'the stale answer');
like($t->error_log('one'), qr/the fan-out failed, serving the stale entry/,
     'the error log says so');

$res = $t->post('/stale', '{"other":1}', port => $one);
is($res->{status}, 502, 'without a stale entry the failure shows');

$st1 = $t->get('/fanout/status', port => $one)->{json};
is($st1->{locations}{'/stale'}{cache}{stale}, 1, 'stale counted');

$t->outcomes_add_up(port => $_) for $one, $two;
$t->done;
