# fanout_limit scope=cluster: one bucket in Redis for every nginx instance,
# EVALSHA with EVAL when the script is gone, and each on_redis_error mode
# with Redis killed and stopped.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
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

    location /c {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=5 scope=cluster;
    }
    location /rate {
        fanout_target m /_m;
        fanout_limit key=all rate=50r/s burst=1 scope=cluster;
    }
    location /both {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=2;
        fanout_limit key=\$http_x_team rate=1r/m burst=3 scope=cluster;
    }
    location /local {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=2 scope=cluster;
    }
    location /open {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=2 scope=cluster
                     on_redis_error=open;
    }
    location /closed {
        fanout_target m /_m;
        fanout_limit key=\$http_x_user rate=1r/m burst=2 scope=cluster
                     on_redis_error=closed;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC
}

sleep 0.3;

my @ports = ($t->port('one'), $t->port('two'));

sub user { (headers => { 'X-User' => $_[0], %{ $_[1] || {} } }) }

# burst=5 shared: ten requests alternating between the instances

my %status;
my @res;
for my $i (0 .. 9) {
    my $res = $t->get('/c', user('alice'), port => $ports[$i % 2]);
    $status{$res->{status}}++;
    push @res, $res;
}

is($status{200}, 5, 'two instances admit the burst of 5 together');
is($status{429}, 5, 'and reject the other 5');
is($res[4]{headers}{'ratelimit-remaining'}, 0,
   'RateLimit-Remaining counts down across instances');
is($res[0]{headers}{'ratelimit-limit'}, 1, 'RateLimit-Limit: 1 (of 1r/m)');
is($res[0]{headers}{'ratelimit-policy'}, '1;w=60;burst=5', 'RateLimit-Policy: a minute, a burst of 5');
is($res[5]{json}{error}, 'rate_limited', '429 body: rate_limited');
cmp_ok($res[5]{json}{retry_after_ms}, '>', 0, 'retry_after_ms');
ok($res[5]{headers}{'retry-after'}, 'Retry-After');

my $res = $t->get('/c', user('bob'), port => $ports[1]);
is($res->{status}, 200, 'another key has its own bucket');
$res = $t->get('/c', port => $ports[0]);
is($res->{status}, 200, 'an empty key is not limited');

my @keys = split /\n/, $t->redis_cli('r', 'KEYS', 'fanout:limit:*');
ok((grep { /^fanout:limit:\/c:\$http_x_user 1r\/m:alice$/ } @keys),
   'the bucket is a Redis key named after location, limit and value')
    or diag("@keys");
my $pttl = $t->redis_cli('r', 'PTTL', 'fanout:limit:/c:$http_x_user 1r/m:alice');
cmp_ok($pttl, '>', 0, 'the key expires');
cmp_ok($pttl, '<=', 5 * 60_000 + 1000, 'once the bucket is full again');

# the script was flushed: EVALSHA fails with NOSCRIPT and EVAL follows

my $errors0 = $t->get('/fanout/status', port => $ports[0])
                ->{json}{redis}{errors}{reply_error};
is($t->redis_cli('r', 'SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH');
$res = $t->get('/c', user('carol'), port => $ports[0]);
is($res->{status}, 200, 'after SCRIPT FLUSH the limit still works');
is($res->{headers}{'ratelimit-remaining'}, 4, 'and counts');
my $st = $t->get('/fanout/status', port => $ports[0])->{json};
is($st->{redis}{errors}{reply_error}, $errors0,
   'NOSCRIPT is not counted as an error');
my $lim = $st->{locations}{'/c'}{limit}{limits}{'$http_x_user 1r/m'};
ok($lim, 'status: the limit by its key and rate') or diag(encode_json($st));
cmp_ok($lim->{rejected}, '>=', 1, 'status: rejections of this limit');
cmp_ok($lim->{admitted}, '>=', 1, 'status: admissions of this limit');
like($t->get('/metrics', port => $ports[0])->{body},
     qr/^fanout_limit_requests_total\{location="\/c",limit="\$http_x_user 1r\/m",result="rejected"\} $lim->{rejected}$/m,
     'Prometheus: rejections per limit');

# a local limit that rejects takes nothing from the cluster bucket

my %team = ('X-Team' => 'red');
my @both = map { $t->get('/both', user($_, \%team), port => $ports[0]) }
           qw(u1 u1 u1 u2 u3);
is($both[0]{status}, 200, 'u1 1');
is($both[1]{status}, 200, 'u1 2');
is($both[2]{status}, 429, 'u1 3: over its local limit');
is($both[3]{status}, 200,
   'u2: the team bucket still had a token: the local reject took none');
is($both[4]{status}, 429, 'u3: the team bucket (burst=3) is empty');

# one combined rate: two clients, one per instance, as fast as they can

sub hammer {
    my ($port, $seconds, $file) = @_;

    my $pid = fork();
    return $pid if $pid;

    my %n;
    my $s = $t->connect($port);
    my $end = time + $seconds;
    while (time < $end) {
        my $r = $t->send_request($s, 'GET', '/rate');
        unless ($r && $r->{status}) {
            $s = $t->connect($port);
            next;
        }
        $n{$r->{status}}++;
    }
    open my $fh, '>', $file or POSIX::_exit(1);
    print $fh encode_json(\%n);
    close $fh;
    POSIX::_exit(0);
}

my $secs = 3;
my @pids = map { hammer($ports[$_], $secs, $t->dir . "/hammer.$_") } 0, 1;
waitpid($_, 0) for @pids;

my ($ok, $total) = (0, 0);
for my $i (0, 1) {
    my $n = decode_json(FT::read_text($t->dir . "/hammer.$i"));
    $ok += $n->{200} // 0;
    $total += $_ for values %$n;
}

my $want = 50 * $secs + 1;
cmp_ok($total, '>', 3 * $want, "clients sent far more than the rate ($total)");
cmp_ok($ok, '>=', $want * 0.9, "admitted $ok of $want: at least -10%");
cmp_ok($ok, '<=', $want * 1.1, "admitted $ok of $want: at most +10%");

# on_redis_error with Redis killed

$t->redis_signal('r', 'KILL');
sleep 0.2;

my (@local, @open, @closed);
for my $i (1 .. 4) {
    push @local, $t->get('/local', user('dave'), port => $ports[1])->{status};
    push @open, $t->get('/open', user('dave'), port => $ports[1])->{status};
    push @closed, $t->get('/closed', user('dave'), port => $ports[1]);
}

is("@local", '200 200 429 429',
   'on_redis_error=local: the shared-memory bucket limits');
is("@open", '200 200 200 200', 'on_redis_error=open: admitted');
is(join(' ', map { $_->{status} } @closed), '503 503 503 503',
   'on_redis_error=closed: 503');
is($closed[0]{json}{error}, 'rate_limit_unavailable',
   '503 body: rate_limit_unavailable');

$st = $t->get('/fanout/status', port => $ports[1])->{json};
my $l = $st->{locations};
cmp_ok($l->{'/local'}{limit}{limits}{'$http_x_user 1r/m'}{redis_errors}, '>=',
       4, 'status: redis_errors counted');
is($l->{'/closed'}{limit}{limits}{'$http_x_user 1r/m'}{unavailable}, 4,
   'status: unavailable counted');
like(FT::read_text($t->dir . '/two/error.log'),
     qr/fanout redis 127\.0\.0\.1:\d+ .*failing open/,
     'the error log says Redis is failing open');

# Redis stopped: each answer waits at most about the Redis timeout

$t->redis_restart('r');
sleep 1.5;
is($t->get('/c', user('erin'), port => $ports[1])->{status}, 200,
   'Redis back: the cluster limit works again');
is($t->get('/c', user('erin'), port => $ports[1])->{headers}{'ratelimit-remaining'},
   3, 'and counts in Redis');

$t->redis_signal('r', 'STOP');
my $t0 = time;
$res = $t->get('/closed', user('frank'), port => $ports[1]);
my $took = time - $t0;
is($res->{status}, 503, 'Redis stopped: on_redis_error=closed answers 503');
cmp_ok($took, '<', 2, "after the Redis timeout, not later ($took s)");
$res = $t->get('/open', user('frank'), port => $ports[1]);
is($res->{status}, 200, 'Redis stopped: on_redis_error=open admits');
$t->redis_signal('r', 'CONT');

# a client that goes away while Redis is stopped leaves nothing behind

$t->redis_signal('r', 'STOP');
my $s = $t->connect($ports[0]);
print $s "GET /c HTTP/1.1\r\nHost: x\r\nX-User: gina\r\n\r\n";
sleep 0.05;
close $s;
sleep 0.5;
$t->redis_signal('r', 'CONT');
sleep 0.2;
is($t->get('/c', user('gina'), port => $ports[0])->{status}, 200,
   'after a client abort during the Redis call, the next request is served');

$t->done;
