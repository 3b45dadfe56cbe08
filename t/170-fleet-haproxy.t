# A fleet behind real HAProxy (Debian's package) that checks fanout_health:
# three instances, one Redis, a quorum of two models with cluster breakers.
# - A split's weights changed through one instance's fanout_api: every
#   instance answers by the new weights within a second (seen through
#   HAProxy); a cache purge through one instance empties all three.
# - Ramps through HAProxy: a healthy candidate reaches 100% on all three,
#   one answering 500s is rolled back to 0% on all three.
# - A drain through fanout_api takes an instance out of HAProxy, and
#   stopping it with fanout_drain_on_quit fails no request.
# - A model killed: no instance can meet its quorum, every instance goes
#   503 and HAProxy marks them all down; the model back, the open breakers
#   come due a probe, the health is 200 again and HAProxy brings them back.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use POSIX ":sys_wait_h";
use Time::HiRes qw(time sleep);

FT::needs('haproxy');

my $t = FT->new;
my $dir = $t->dir;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('b', mode => 'echo');
$t->mock('bad', status => 500);

my @names = $t->fleet([qw(one two three)], workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
fanout_instance %%SELF%%;
fanout_drain_on_quit 1500ms;
server {
    listen 127.0.0.1:%%PORT_SELF%%;
${\ $t->model_locations(qw(a b bad))}
    location /p {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_quorum 2;
        fanout_breaker failures=2 cooldown=1s scope=cluster;
        add_header X-Instance %%SELF%% always;
    }
    location /s {
        fanout_split \$arg_u { 50% v1; * v2; }
        fanout_target a /_a variant=v1;
        fanout_target b /_b variant=v2;
        add_header X-Instance %%SELF%% always;
    }
    location /c {
        fanout_target a /_a;
        fanout_cache ttl=60s;
        add_header X-Instance %%SELF%% always;
    }
    location /r {
        fanout_split \$arg_u ramp=20%,100% every=2s min_requests=5
                     rollback_if=error_rate>20% { 20% v2; * v1; }
        fanout_target a /_a variant=v1;
        fanout_target b /_b variant=v2;
    }
    location /rb {
        fanout_split \$arg_u ramp=20%,100% every=2s min_requests=5
                     rollback_if=error_rate>20% { 20% v2; * v1; }
        fanout_target a /_a variant=v1;
        fanout_target bad /_bad variant=v2;
    }
    location = /health { fanout_health /p; }
    location = /api { fanout_api write; allow 127.0.0.1; deny all; }
}
EOC

my $lb = $t->haproxy(@names);
sub states { $t->haproxy_states }

sub wait_states {
    my ($want, $secs) = @_;
    my $end = time + $secs;
    my $s;
    while (time < $end) {
        $s = states();
        return (1, $s) unless grep { ($s->{$_} // '') !~ /^$want->{$_}/ } keys %$want;
        sleep 0.1;
    }
    return (0, $s);
}

my ($ok, $s) = wait_states({ one => 'UP', two => 'UP', three => 'UP' }, 10);
ok($ok, 'HAProxy sees three instances up') or diag(encode_json($s));

# --- weights changed on one instance: all three within a second

sub split_pass {
    my (%seen, %v);
    for my $u (1 .. 60) {
        my $r = $t->post("/s?u=u$u", '{}', port => $lb);
        $seen{ $r->{headers}{'x-instance'} // '-' }++;
        $v{ $r->{headers}{'x-fanout-variant'} // '-' }++;
    }
    return (\%seen, \%v);
}

my ($seen, $v) = split_pass();
ok($v->{v1} > 10 && $v->{v2} > 10, "50/50 through HAProxy: v1 $v->{v1}, v2 $v->{v2}");
my $r = $t->request('PATCH', '/api', port => $t->port('one'),
                    body => '{"location":"/s","weights":{"v1":0,"v2":100}}');
is($r->{json}{written}, 'fleet', 'weights 0/100 through instance one, written for the fleet');
my $t0 = time;
my $took;
while (time - $t0 < 5) {
    my @ok = grep {
        my $w = $t->get('/api', port => $t->port($_))->{json}{locations}{'/s'}{split}{weights};
        ($w->{v2} // 0) == 100
    } @names;
    if (@ok == 3) { $took = time - $t0; last }
    sleep 0.02;
}
ok(defined $took && $took < 2, sprintf('all three have the weights after %.2f s', $took // -1));
($seen, $v) = split_pass();
is($v->{v2}, 60, 'every answer through HAProxy is v2');
is(scalar(grep { $seen->{$_} } @names), 3, 'from all three instances');

# --- a purge through one instance: all three miss

for my $n (@names) {
    $t->post('/c', '{"k":1}', port => $t->port($n));
}
sleep 0.3;
is(scalar(grep { ($t->post('/c', '{"k":1}', port => $t->port($_))->{headers}{'x-fanout-cache'} // '') eq 'HIT' } @names),
   3, 'each instance has the entry cached');
$r = $t->request('POST', '/api', port => $t->port('three'), body => '{"location":"/c","purge":true}');
is($r->{status}, 200, 'a purge through instance three');
$t0 = time;
$took = undef;
while (time - $t0 < 5) {
    my @p = grep { $t->get('/api', port => $t->port($_))->{json}{locations}{'/c'}{purged_ms} } @names;
    if (@p == 3) { $took = time - $t0; last }
    sleep 0.02;
}
ok(defined $took && $took < 2, sprintf('all three have the purge after %.2f s', $took // -1));
is(scalar(grep { ($t->post('/c', '{"k":1}', port => $t->port($_))->{headers}{'x-fanout-cache'} // '') eq 'MISS' } @names),
   3, 'and each misses');

# --- ramps through HAProxy: one proceeds, one rolls back, on all three

sub ramp_states {
    my ($loc) = @_;
    return map { $t->get('/api', port => $t->port($_))->{json}{locations}{$loc}{split}{ramp}{state} // '' } @names;
}

$t0 = time;
my ($done, $back);
while (time - $t0 < 30) {
    for my $u (1 .. 30) {
        $t->post("/r?u=r$u", '{}', port => $lb);
        $t->post("/rb?u=r$u", '{}', port => $lb);
    }
    $done = 3 == grep { $_ eq 'done' } ramp_states('/r');
    $back = 3 == grep { $_ eq 'rolled_back' } ramp_states('/rb');
    last if $done && $back;
}
ok($done, 'a healthy candidate ramped to 100% on all three');
ok($back, 'a candidate answering 500s rolled back on all three');
($seen, $v) = (undef, {});
for my $u (1 .. 30) {
    my $r1 = $t->post("/r?u=r$u", '{}', port => $lb);
    my $r2 = $t->post("/rb?u=r$u", '{}', port => $lb);
    $v->{"r:" . ($r1->{headers}{'x-fanout-variant'} // '-')}++;
    $v->{"rb:" . ($r2->{headers}{'x-fanout-variant'} // '-')}++;
}
is($v->{'r:v2'}, 30, 'every answer of the ramped split is the candidate\'s');
is($v->{'rb:v1'}, 30, 'and none of the rolled back one is');

# a steady load through HAProxy, each answer's status and instance
sub load {
    my ($file) = @_;
    my $pid = fork() // die;
    if ($pid == 0) {
        my $stop = 0;
        local $SIG{TERM} = sub { $stop = 1 };
        open my $fh, '>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        while (!$stop) {
            my $r = eval { $t->post('/p', '{"x":1}', port => $lb) } || { status => 0 };
            print $fh ($r->{status} // 0), ' ', ($r->{headers}{'x-instance'} // '-'), "\n";
            sleep 0.01;
        }
        POSIX::_exit(0);
    }
    return $pid;
}

sub results {
    my ($file) = @_;
    my @lines = split /\n/, FT::read_text($file);
    return map { [split / /] } @lines;
}

# --- a drain, then a stop: no request fails

my $l = load("$dir/load1");
sleep 0.5;

$r = $t->request('PATCH', '/api', port => $t->port('two'), body => '{"draining":true}');
is($r->{json}{draining}, JSON::PP::true, 'instance two drains');
($ok, $s) = wait_states({ two => 'DOWN' }, 5);
ok($ok, 'HAProxy takes it out') or diag(encode_json($s));
sleep 0.3;
my $n_before = () = grep { $_->[1] eq 'two' } results("$dir/load1");

my $pid2 = $t->{instances}{two}{pid};
kill 'QUIT', $pid2;
$t0 = time;
my $exited;
while (time - $t0 < 10) {
    if (waitpid($pid2, WNOHANG) == $pid2) {
        $exited = time - $t0;
        last;
    }
    sleep 0.05;
}
delete $t->{instances}{two};
push @{ $t->{stopped} }, 'two';
ok($exited && $exited >= 1.4, sprintf('two stops after its drain (%.1f s)', $exited // 0));
sleep 0.5;

kill 'TERM', $l;
waitpid($l, 0);

my @res = results("$dir/load1");
my @failed = grep { $_->[0] != 200 } @res;
cmp_ok(scalar @res, '>', 50, scalar(@res) . ' requests through HAProxy meanwhile');
is(scalar @failed, 0, 'none failed');
my $n_after = () = grep { $_->[1] eq 'two' } @res;
is($n_after, $n_before, 'none reached two once it was out');
ok((grep { $_->[1] eq 'one' } @res) && (grep { $_->[1] eq 'three' } @res),
   'one and three served');

# --- a model killed: no quorum anywhere, all down; back: all up

$t->kill_mock('b');
$t->post('/p', '{"x":2}', port => $t->port($_)) for qw(one three one three);

($ok, $s) = wait_states({ one => 'DOWN', three => 'DOWN' }, 5);
ok($ok, 'model b killed: every instance is not ready and HAProxy marks them down')
    or diag(encode_json($s));
my $h = $t->get('/health', port => $t->port('three'));
is($h->{status}, 503, 'the health says 503');
like(join(' ', @{ $h->{json}{reasons} || [] }), qr{/p: 1 of 2 targets can answer, quorum 2},
     'because /p cannot meet its quorum');

$t->mock('b', mode => 'echo');
($ok, $s) = wait_states({ one => 'UP', three => 'UP' }, 8);
ok($ok, 'model b back: the breakers come due a probe and HAProxy brings both back')
    or diag(encode_json($s));
my $ok200 = 0;
for (1 .. 20) {
    $r = $t->post('/p', '{"x":3}', port => $lb);
    $ok200 = 1, last if $r->{status} == 200;
    sleep 0.1;
}
ok($ok200, 'and answers through HAProxy are 200 again');


$t->done;
