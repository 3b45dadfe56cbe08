# The fleet never amplifies one member's trouble.  Three instances behind
# real HAProxy checking fanout_health, one Redis, three models with
# scope=cluster breakers and a quorum of two.  Instance "three" cannot
# reach two of the models (its network, not theirs): its breakers open and
# are written to Redis.  The two healthy instances, whose own calls keep
# succeeding, do not take the openings from the fleet: they stay ready and
# keep calling; only "three" goes out.  (Before: the other two learned the
# openings within a second, answered 503 on fanout_health, and HAProxy
# took the whole fleet out.)

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

FT::needs('haproxy');

my $t = FT->new;
my $dir = $t->dir;

$t->redis('r');
$t->mock($_, mode => 'echo') for qw(a b c);
my $closed = $t->port('closed');     # nothing listens there

my @names = qw(one two three);

for my $name (@names) {
    # three's network reaches only model a
    my ($b, $c) = $name eq 'three'
        ? ("127.0.0.1:$closed", "127.0.0.1:$closed")
        : ('127.0.0.1:%%MOCK_b%%', '127.0.0.1:%%MOCK_c%%');
    $t->run(prefix => $name, port => $t->port($name), workers => 2,
            http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
fanout_instance $name;
server {
    listen 127.0.0.1:%%PORT_$name%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://$b/; }
    location /_c { internal; proxy_pass http://$c/; }
    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_target c /_c;
        fanout_quorum 2;
        fanout_breaker failures=2 cooldown=2s scope=cluster;
        add_header X-Instance $name always;
    }
    location = /health { fanout_health /p; }
    location = /fanout/status { fanout_status; }
}
EOC
}

my $lb = $t->haproxy(@names);
sub states { $t->haproxy_states }

# the healthy two are up before the load (three may be up for a moment:
# it has not called anything yet)
my $up = 0;
for (1 .. 100) {
    my $s = states();
    if (($s->{one} // '') =~ /^UP/ && ($s->{two} // '') =~ /^UP/) { $up = 1; last }
    sleep 0.1;
}
ok($up, 'HAProxy sees one and two up');

# a steady load through HAProxy; meanwhile the health of each instance
# and HAProxy's view, every 100 ms
my $load = fork() // die;
if ($load == 0) {
    my $stop = 0;
    local $SIG{TERM} = sub { $stop = 1 };
    open my $fh, '>', "$dir/load" or POSIX::_exit(1);
    $fh->autoflush(1);
    while (!$stop) {
        my $r = eval { $t->post('/p', '{"x":1}', port => $lb) } || { status => 0 };
        printf $fh "%.3f %d %s\n", time, $r->{status} // 0,
               $r->{headers}{'x-instance'} // '-';
        sleep 0.01;
    }
    POSIX::_exit(0);
}

my (%unready, %down, $samples);
my $end = time + 8;
while (time < $end) {
    for my $name (@names) {
        my $h = $t->get('/health', port => $t->port($name));
        $unready{$name}++ if $h->{status} != 200;
    }
    my $s = states();
    $down{$_}++ for grep { ($s->{$_} // '') !~ /^UP/ } keys %$s;
    $samples++;
    sleep 0.1;
}

kill 'TERM', $load;
waitpid($load, 0);

my @res = map { [ split / / ] } split /\n/, FT::read_text("$dir/load");
my @late = grep { $_->[0] > $end - 5 } @res;      # the last 5 s
cmp_ok(scalar @res, '>', 100, scalar(@res) . ' requests through HAProxy');

is($unready{one} // 0, 0, "one: ready at every one of $samples looks");
is($unready{two} // 0, 0, 'two: ready at every look');
cmp_ok($unready{three} // 0, '>', $samples / 2,
       "three, which cannot reach b and c, unready (" . ($unready{three} // 0) . " of $samples)");
is($down{one} // 0, 0, 'HAProxy never took one out');
is($down{two} // 0, 0, 'HAProxy never took two out');
like(states()->{three} // '', qr/^DOWN/, 'and has three out');

is(scalar(grep { $_->[1] != 200 && $_->[2] ne 'three' } @res), 0,
   'no request that one or two served failed');
# three comes back each time its breakers are due a probe (cooldown 2 s,
# then doubled), and fails for HAProxy's two checks: its own trouble only
my $failed = grep { $_->[1] != 200 } @late;
cmp_ok($failed, '<', 0.1 * @late,
       "$failed of " . scalar(@late) . " failed in the last 5 s, all three's");

# the openings are in Redis, and the healthy two call b and c all the same
my $st1 = $t->get('/fanout/status', port => $t->port('one'))->{json};
is($st1->{locations}{'/p'}{targets}{b}{breaker}{state}, 'closed',
   'one: its breaker of b closed, its own calls succeed');
like($t->error_log('three'), qr/fanout breaker of target "b" in location "\/p": closed -> open/,
     'three opened its own');

$t->done;
