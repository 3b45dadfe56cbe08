# fanout_limit delay=N: past the burst, up to N requests wait for their
# token instead of a 429 (limit_req's delayed requests), in the zone and
# across the fleet (scope=cluster); a client that leaves while it waits
# ends its request.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');

for my $name (qw(one two)) {
    $t->run(prefix => $name, port => $t->port($name),
            workers => ($name eq 'one' ? 2 : 1), http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_$name%% reuseport;
    location /_m { internal; default_type application/json; return 200 '{"ok":1}'; }

    location /delay {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=2r/s burst=2 delay=3;
    }
    location /minute {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=1 delay=1;
    }
    location /cluster {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=2r/s burst=1 delay=2
                     scope=cluster;
    }
    location /batch {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=4r/s burst=3 delay=3;
        fanout_batch instances max_items=8;
    }
    location = /fanout/status { fanout_status; }
    location = /fanout/metrics { fanout_status prometheus; }
}
EOC
}

my $one = $t->port('one');
my $two = $t->port('two');

# burst=2 delay=3 at 2 r/s, 7 at once: 2 go, 3 wait 0.5, 1 and 1.5 s for
# their tokens, 2 are refused at once

my @res = $t->parallel(7, 'GET', '/delay', port => $one,
                       headers => { 'X-User' => 'ann' });
my @ok = sort { $a->{time} <=> $b->{time} } grep { $_->{status} == 200 } @res;
my @no = grep { $_->{status} == 429 } @res;

is(scalar @ok, 5, 'burst 2 + delay 3: 5 of 7 admitted');
is(scalar @no, 2, 'the 2 others: 429');
cmp_ok($ok[2]{time}, '>=', 0.35, 'the first delayed waits about a token');
cmp_ok($ok[3]{time}, '>=', 0.85, 'the second about two');
cmp_ok($ok[4]{time}, '>=', 1.35, 'the third about three');
cmp_ok($ok[4]{time}, '<', 5, 'and no longer than its turn (generous)');
cmp_ok($_->{time}, '<', $ok[4]{time}, 'a refusal does not wait') for @no;
is($ok[4]{headers}{'ratelimit-remaining'}, 0,
   'a delayed request: RateLimit-Remaining 0');
cmp_ok($no[0]{json}{retry_after_ms}, '<=', 500,
       'a refusal: retry when one more could wait (within a token)');

my $st = $t->get('/fanout/status', port => $one)->{json};
is($st->{locations}{'/delay'}{limit}{delayed}, 3, 'limit.delayed: 3');
my $l = $st->{locations}{'/delay'}{limit}{limits}{'$http_x_user 2r/s'};
is($l->{delayed}, 3, 'the limit: 3 delayed');
is($l->{admitted}, 5, 'the limit: 5 admitted (the delayed among them)');
is($l->{rejected}, 2, 'the limit: 2 rejected');

like($t->get('/fanout/metrics', port => $one)->{body},
     qr/fanout_limit_requests_total\{[^}]*result="delayed"[^}]*\} 3/,
     'Prometheus: fanout_limit_requests_total{result="delayed"}');

# a client that leaves while it waits: its request ends (aborted, 499),
# the timer goes, the worker serves on

is($t->get('/minute', port => $one, headers => { 'X-User' => 'bob' })
       ->{status}, 200, '1r/m: the burst');

{
    my $s = $t->connect($one);
    print $s "GET /minute HTTP/1.1\r\nHost: x\r\nX-User: bob\r\n\r\n";
    sleep 0.5;
    close $s;
}

my $aborted;
for (1 .. 40) {
    $st = $t->get('/fanout/status', port => $one)->{json};
    $aborted = $st->{locations}{'/minute'}{aborted} // 0;
    last if $aborted;
    sleep 0.1;
}
is($aborted, 1, 'a client gone while delayed: its request ended (aborted)');
is($st->{locations}{'/minute'}{limit}{delayed}, 1, 'it had been delayed');
is($t->get('/minute', port => $one, headers => { 'X-User' => 'bob' })
       ->{status}, 429, 'its token was taken (as limit_req does)');
is($t->get('/delay', port => $one, headers => { 'X-User' => 'cid' })
       ->{status}, 200, 'the worker serves on');

# a batch weighs its calls, and waits for all of their tokens: its body
# is read by then, and the client that leaves is still noticed

my %u = (port => $one, headers => { 'X-User' => 'eve' });
my $r = $t->post('/batch', '{"instances":[1,2,3]}', %u);
is($r->{status}, 200, 'a batch of 3 calls: the burst, at once');
cmp_ok($r->{time}, '<', 0.5, 'not delayed');
$r = $t->post('/batch', '{"instances":[1,2,3]}', %u);
is($r->{status}, 200, 'a second batch of 3: past the burst, admitted to wait');
cmp_ok($r->{time}, '>=', 0.6, 'for its three tokens (0.75 s)');
is(scalar @{ $r->{json}{items} // [] }, 3, 'then every item answered');
$r = $t->post('/batch', '{"instances":[1,2,3,4,5,6]}', %u);
is($r->{status}, 429, 'a third of 6 calls: past burst and delay, 429');

# scope=cluster: one bucket for both instances, the wait told by Redis

my @req;
for my $i (0 .. 4) {
    push @req, [ 'GET', '/cluster', port => ($i % 2 ? $two : $one),
                 headers => { 'X-User' => 'dee' } ];
}
@res = $t->concurrent(\@req);
@ok = sort { $a->{time} <=> $b->{time} } grep { $_->{status} == 200 } @res;
@no = grep { $_->{status} == 429 } @res;

is(scalar @ok, 3, 'cluster, burst 1 + delay 2: 3 of 5 admitted by the fleet');
is(scalar @no, 2, 'cluster: 2 refused');
cmp_ok($ok[1]{time}, '>=', 0.35, 'cluster: the first delayed waits a token');
cmp_ok($ok[2]{time}, '>=', 0.85, 'cluster: the second two');

my $delayed = 0;
for my $p ($one, $two) {
    $delayed += $t->get('/fanout/status', port => $p)
                  ->{json}{locations}{'/cluster'}{limit}{delayed} // 0;
}
is($delayed, 2, 'cluster: 2 delayed, counted where they waited');

# nginx -t: a delay past the parameter's bound

my ($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200; }
    location /x { fanout_target m /_m; fanout_limit key=a rate=1r/s delay=-1; }
}
EOC
isnt($rc, 0, 'nginx -t: delay=-1 refused');
like($out, qr/invalid parameter "delay=-1": a number from 0 to 1000000.*nginx\.conf:\d+/,
     'with the bounds, the file and the line');

$t->outcomes_add_up(port => $one);
$t->outcomes_add_up(port => $two);
$t->done;
