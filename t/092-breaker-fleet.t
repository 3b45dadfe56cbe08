# Breakers that act as one fleet: three instances, one Redis.
# - One cooldown: an instance that opens a breaker the fleet has open
#   already takes the fleet's retry time, whatever its own cooldown.
# - One probe speaks for all: a model killed, every instance opens its own
#   breaker; the model back, a good probe on one instance closes the
#   breakers of the other two (opened on their own, not learned) within a
#   second.
# - breaker_key=: two locations calling one model share its breaker, so the
#   second never calls the dead model.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('m', mode => 'echo');
$t->mock('dead2', status => 500);

my @names = qw(one two three);

for my $name (@names) {
    # "two" would wait 6 s on its own
    my $cooldown = $name eq 'two' ? '6s' : '2s';
    $t->run(prefix => $name, port => $t->port($name), http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_$name%%;
    location /_m     { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /_dead2 { internal; proxy_pass http://127.0.0.1:%%MOCK_dead2%%/; }
    location /m {
        fanout_target m /_m;
        fanout_breaker failures=2 cooldown=$cooldown scope=cluster;
    }
    location /vote {
        fanout_target resnet /_dead2 breaker_key=resnet;
        fanout_breaker failures=2 cooldown=30s;
    }
    location /ensemble {
        fanout_target rn /_dead2 breaker_key=resnet;
        fanout_breaker failures=2 cooldown=30s;
    }
    location = /fanout/status { fanout_status; }
}
EOC
}

sub breaker {
    my ($name, $loc, $tgt) = @_;
    my $st = $t->get('/fanout/status', port => $t->port($name))->{json};
    return $st->{locations}{$loc}{targets}{$tgt}{breaker};
}

sub fail_on {
    my ($name) = @_;
    $t->post('/m', '{}', port => $t->port($name)) for 1 .. 2;
}

# --- one cooldown for the fleet

$t->kill_mock('m');

fail_on('one');
is(breaker('one', '/m', 'm')->{state}, 'open', 'one: open (2 s)');
# its opening is in Redis (two may hear of it, or not yet)
my $t1 = time;
sleep 0.02 while !$t->redis_cli('r', 'EXISTS', 'fanout:breaker:/m:m') && time - $t1 < 2;
fail_on('two');
my $b2 = breaker('two', '/m', 'm');
is($b2->{state}, 'open', 'two: open on its own failures');
# Redis's answer to two's opening arrives after the failing request has
# been answered: wait for it (its own cooldown would keep it over 4 s)
my $t2 = time;
while ($b2->{retry_in_ms} > 2100 && time - $t2 < 1.5) {
    sleep 0.02;
    $b2 = breaker('two', '/m', 'm');
}
cmp_ok($b2->{retry_in_ms}, '<=', 2100,
       "two takes the fleet's retry time, not its own 6 s ($b2->{retry_in_ms} ms)");
fail_on('three');
is(breaker('three', '/m', 'm')->{state}, 'open', 'three: open on its own');

# --- the model back: a good probe on one closes all three

sleep 2.3;    # every cooldown is over; nobody has probed yet
$t->mock('m', mode => 'echo');
for my $name (@names) {
    isnt(breaker($name, '/m', 'm')->{state}, 'closed', "$name: not closed before a probe");
}

my $r = $t->post('/m', '{}', port => $t->port('one'));
is($r->{status}, 200, 'a good probe on one');
my $t0 = time;
is(breaker('one', '/m', 'm')->{state}, 'closed', 'one: closed');

my %closed;
while (time - $t0 < 3 && keys %closed < 2) {
    for my $name (qw(two three)) {
        next if $closed{$name};
        $closed{$name} = time - $t0 if breaker($name, '/m', 'm')->{state} eq 'closed';
    }
    sleep 0.02;
}
for my $name (qw(two three)) {
    ok(defined $closed{$name}, "$name: closed without a probe of its own");
    cmp_ok($closed{$name} // 99, '<=', 1.1, sprintf("  within a second of one's (%.2f s)", $closed{$name} // 99));
}
is(scalar(grep { $_->{uri} eq '/' } $t->hits('m')), 1, 'the model saw the one probe only');

# a close is not news to an instance that opened again since
$t->kill_mock('m');
fail_on('two');
sleep 1.2;
is(breaker('two', '/m', 'm')->{state}, 'open', 'reopened after the close: the old close does not close it');
$t->mock('m', mode => 'echo');

# --- breaker_key=: /vote and /ensemble share the breaker of "resnet"

$t->post('/vote', '{}', port => $t->port('one')) for 1 .. 2;
is(breaker('one', '/vote', 'resnet')->{state}, 'open', '/vote opened the resnet breaker');
my $before = () = $t->hits('dead2');
$r = $t->post('/ensemble', '{}', port => $t->port('one'));
is($r->{status}, 502, '/ensemble: no answer');
is($r->{json}{errors}{rn}{error}, 'circuit_open', 'its call refused by the shared breaker');
my $after = () = $t->hits('dead2');
is($after, $before, 'the dead model was not called again');
is(breaker('one', '/ensemble', 'rn')->{state}, 'open', 'the status shows it open under both');
is(breaker('two', '/ensemble', 'rn')->{state}, 'closed', 'local scope: the other instances keep theirs');

$t->done;
