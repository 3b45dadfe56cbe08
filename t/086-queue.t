# queue=: a call over max_inflight waits for a slot in the target's queue
# (shared by the workers through the zone) instead of failing: served in
# order of priority=, in turns between fair= keys, then of arrival; shed
# as overloaded when the queue is full, queue_timeout= passes or the
# deadline comes; a caller that leaves frees its place at once.  The model
# logs each call's arrival, so its order is the queue's.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->mock('m', ms => 200);

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    location /_m { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /q    { fanout_target m /_m max_inflight=2 queue=16; }
    location /full { fanout_target m /_m max_inflight=1 queue=2; }
    location /qt   { fanout_target m /_m max_inflight=1 queue=8 queue_timeout=100ms; }
    location /pace { fanout_target m /_m max_inflight=2 queue=8 queue_timeout=250ms; }
    location /dl   { fanout_target m /_m max_inflight=1 queue=8; fanout_timeout 300ms; }
    location /q1   { fanout_target m /_m max_inflight=1 queue=16
                                    priority=$http_x_priority fair=$http_x_tenant; }
    location = /fanout/status { fanout_status; }
    location = /fanout/metrics { fanout_status prometheus; }
}
EOC

sub calls {
    my ($id_re) = @_;
    return grep { $_->{method} && $_->{uri} =~ $id_re } $t->hits('m');
}

sub queue { $t->status_json->{locations}{$_[0]}{targets}{m}{queue} // {} }

sub overloaded { scalar grep { ($_->{body} // '') =~ /"overloaded"/ } @_ }

# --- waiting instead of failing: 8 at once, 2 slots, over 2 workers

my $t0 = time;
my $waiting = 0;
my @res = $t->concurrent([ map { ['GET', "/q?id=q$_"] } 1 .. 8 ],
                         during => sub {
                             sleep 0.3;
                             $waiting = queue('/q')->{length} // 0;
                         });
my $took = time - $t0;
is(scalar(grep { $_->{status} == 200 } @res), 8, 'max_inflight=2 queue=16: 8 at once all answered 200');
is(overloaded(@res), 0, '  none told overloaded');
my @at = sort { $a <=> $b } map { $_->{t} } calls(qr/id=q/);
is(scalar(@at), 8, '  8 calls reached the model');
ok(!grep({ $at[$_ + 2] - $at[$_] < 0.15 } 0 .. $#at - 2),
   '  never more than 2 at once (each third call came a service time later)');
ok($took >= 0.6, sprintf('  in turns: %.2f s for 4 rounds of 200 ms', $took));
cmp_ok(queue('/q')->{queued}, '>=', 4, '  counted: ' . (queue('/q')->{queued} // 0) . ' queued');
is($t->status_json->{locations}{'/q'}{targets}{m}{inflight}, 0, '  every slot given back');
cmp_ok($waiting, '>=', 1, "  queue.length while they waited: $waiting");
is(queue('/q')->{length}, 0, '  and 0 once all are answered');
{
    my $w = queue('/q')->{wait_ms} // {};
    my $n = 0;
    $n += $_ for values %$w;
    is($n, queue('/q')->{queued}, '  queue.wait_ms: a bucket for each call '
       . 'that waited');
    cmp_ok(($w->{100} // 0) + ($w->{250} // 0) + ($w->{500} // 0)
           + ($w->{1000} // 0), '>=', 2, '  some waited a service time or more');
    my $prom = $t->get('/fanout/metrics')->{body};
    like($prom, qr/^fanout_target_queue_length\{location="\/q",target="m"\} 0$/m,
         '  Prometheus: fanout_target_queue_length');
    like($prom, qr/^fanout_target_queue_wait_seconds_count\{location="\/q",target="m"\} $n$/m,
         '  Prometheus: fanout_target_queue_wait_seconds, its count');
    like($prom, qr/^fanout_target_queue_wait_seconds_bucket\{location="\/q",target="m",le="0.25"\} \d+$/m,
         '  and its buckets in seconds');
}

# --- a full queue refuses at once

@res = $t->concurrent([ map { ['GET', "/full?id=f$_"] } 1 .. 6 ]);
is(scalar(grep { $_->{status} == 200 } @res), 3, 'max_inflight=1 queue=2: 3 of 6 served (1 running, 2 waiting)');
is(overloaded(@res), 3, '  3 told overloaded');
is(scalar(grep { $_->{status} == 503 && ($_->{headers}{'retry-after'} // '') =~ /^\d+$/ } @res), 3,
   '  with 503 and a Retry-After');
is(queue('/full')->{full}, 3, '  counted as full');

# --- queue_timeout= sheds those that waited too long

$t0 = time;
@res = $t->concurrent([ map { ['GET', "/qt?id=t$_&ms=500"] } 1 .. 3 ]);
is(scalar(grep { $_->{status} == 200 } @res), 1, 'queue_timeout=100ms, a call of 500 ms: 1 of 3 served');
is(overloaded(@res), 2, '  2 shed as overloaded');
is(queue('/qt')->{timeout}, 2, '  counted as timeout');
is(scalar(calls(qr/id=t/)), 1, '  and never sent to the model');

# --- a turn that would come after queue_timeout is not waited for: once
# the target's p50 is known (20 calls), the queue's pace (2 slots, 200 ms
# each) says which of those over the cap fit 250 ms, the others are shed
# at once, not after 250 ms

for (1 .. 11) {
    $t->concurrent([ map { ['GET', "/pace?id=v$_&ms=200"] } 1 .. 2 ]);
}
my %before = %{ queue('/pace') };
@res = $t->concurrent([ map { ['GET', "/pace?id=y$_&ms=200"] } 1 .. 6 ]);
my @shed = grep { $_->{status} == 503 } @res;
is(scalar(grep { $_->{status} == 200 } @res), 4, 'the queue\'s pace: 2 '
   . 'called, 2 wait their turn (100 and 200 ms), 4 of 6 served');
is(scalar @shed, 2, '  the 2 whose turn is past 250 ms: shed');
ok(!grep({ $_->{time} >= 0.2 } @shed), '  at once: '
   . join(', ', map { sprintf '%.3f s', $_->{time} } @shed));
is(queue('/pace')->{timeout} - ($before{timeout} // 0), 2,
   '  counted as timeout');
is(queue('/pace')->{queued} - ($before{queued} // 0), 2,
   '  and never queued');

# --- the deadline: nobody waits past fanout_timeout, nor for a call that
# would miss it (the target's recent p50, known after 20 calls)

$t->get("/dl?id=w$_&ms=80") for 1 .. 20;
$t0 = time;
@res = $t->concurrent([ map { ['GET', "/dl?id=d$_&ms=250"] } 1 .. 4 ]);
$took = time - $t0;
ok($took < 1.5, sprintf('fanout_timeout 300ms: 4 callers of 1 slot answered by %.2f s', $took));
is(scalar(grep { $_->{status} == 200 } @res), 1, '  1 served in time');
is(overloaded(@res), 3, '  the others shed as overloaded rather than wait');
is(queue('/dl')->{deadline}, 3, '  for the deadline: a call granted later would miss it');
is(scalar(calls(qr/id=d/)), 1, '  and never sent to the model');

# --- order: priority first, then turns between tenants, then arrival

# raw requests on connections of their own, in a known order
sub send_req {
    my ($uri, %h) = @_;
    my $c = $t->connect;
    my $hdr = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    print $c "GET $uri HTTP/1.1\r\nHost: x\r\n${hdr}Connection: close\r\n\r\n";
    return $c;
}

sub order {
    my ($re) = @_;
    return join ' ', map { $_->{uri} =~ /id=(\w+)/ ? $1 : '?' }
                     sort { $a->{t} <=> $b->{t} } calls($re);
}

# (sent 40 ms apart, while the first call holds the slot for 600 ms)
my @c = (send_req('/q1?id=p0&ms=600', 'X-Priority' => 5));
sleep 0.1;
push @c, send_req('/q1?id=pl1', 'X-Priority' => 9);
sleep 0.04;
push @c, send_req('/q1?id=pl2', 'X-Priority' => 9);
sleep 0.04;
push @c, send_req('/q1?id=ph', 'X-Priority' => 1);
sleep 0.04;
push @c, send_req('/q1?id=pn');
{ local $/; my @r = map { scalar <$_> } @c; }
is(order(qr/id=p/), 'p0 ph pl1 pl2 pn', 'priority=: lower first, FIFO within, no number last');

@c = (send_req('/q1?id=r0&ms=600', 'X-Priority' => 0));
sleep 0.1;
for my $i (1 .. 5) {
    push @c, send_req("/q1?id=ra$i", 'X-Priority' => 0, 'X-Tenant' => 'A');
    sleep 0.04;
}
for my $i (1 .. 2) {
    push @c, send_req("/q1?id=rb$i", 'X-Priority' => 0, 'X-Tenant' => 'B');
    sleep 0.04;
}
{ local $/; my @r = map { scalar <$_> } @c; }
is(order(qr/id=r[ab]?\d/), 'r0 ra1 rb1 ra2 rb2 ra3 ra4 ra5', 'fair=: a tenant that floods takes turns with one that came later');

# --- a caller that leaves while it waits frees its place at once

@c = (send_req('/q1?id=l0&ms=300', 'X-Priority' => 0));
sleep 0.1;
my $gone = send_req('/q1?id=lgone', 'X-Priority' => 0);
sleep 0.05;
close $gone;
sleep 0.05;
$t0 = time;
my $r = $t->get('/q1?id=l2', headers => { 'X-Priority' => 0 });
$took = time - $t0;
{ local $/; my @x = map { scalar <$_> } @c; }
is($r->{status}, 200, 'a caller left while waiting: the next is served');
ok($took < 0.5, sprintf('  right after the running call (%.2f s), not after a ghost', $took));
is(scalar(calls(qr/id=lgone/)), 0, '  the one that left never reached the model');
is($t->status_json->{locations}{'/q1'}{targets}{m}{inflight}, 0, '  every slot given back');

# --- a reload with calls waiting: the old workers answer them

@res = $t->concurrent([ map { ['GET', "/q1?id=z$_&ms=200", headers => { 'X-Priority' => 0 }] } 1 .. 4 ],
                      during => sub { sleep 0.3; $t->reload('nginx') });
is(scalar(grep { $_->{status} == 200 } @res), 4, 'a reload with 3 calls waiting: all 4 answered 200');
is(scalar(calls(qr/id=z/)), 4, '  each called once');

# --- configuration

my ($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server { listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /x { fanout_target m /_m queue=8; } }
EOC
isnt($rc, 0, 'queue= without max_inflight=: nginx -t fails');
like($out, qr/"queue=" needs "max_inflight=".*nginx\.conf:\d+/, '  saying so, with file and line');

($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server { listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /x { fanout_target m /_m max_inflight=2 queue_timeout=1s; } }
EOC
like($out, qr/"queue_timeout=" needs "queue="/, 'queue_timeout= without queue= fails');

($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server { listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /x { fanout_target m /_m max_inflight=2 queue=0; } }
EOC
like($out, qr/invalid parameter "queue=0": a number from 1 to 65536/, 'queue=0 fails');

$t->outcomes_add_up;
$t->done;
