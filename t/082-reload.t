# Reloads keep what the README says they keep: a limiter bucket survives
# 20 reloads under wrk (no failed request, the limit still exhausted), and a
# request waiting for Redis when its worker is told to exit is answered,
# failing open, before the worker goes.

use strict;
use warnings;

use lib 't/lib';
use FT;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');

my $conf = <<'EOC';
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=1500ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; default_type application/json; return 200 '{"ok":1}'; }
    location /l {
        fanout_target m /_m;
        fanout_limit key=$http_x_user rate=1r/m burst=3;
    }
    location /free { fanout_target m /_m; }
    location /cache { fanout_target m /_m; fanout_cache ttl=60s; }
    location /cluster {
        fanout_target m /_m;
        fanout_limit key=$http_x_user rate=1r/m burst=3 scope=cluster
                     on_redis_error=open;
    }
}
EOC

$t->run(workers => 2, http => $conf);

sub user { $t->post($_[0], '{}', headers => { 'X-User' => $_[1] }) }

is(user('/l', 'alice')->{status}, 200, "alice: $_ of 3") for 1 .. 3;
is(user('/l', 'alice')->{status}, 429, 'alice: over her burst');

# 20 reloads while wrk keeps the server busy
my $url = 'http://127.0.0.1:' . $t->port('http') . '/free';
my $wrk = $t->dir . '/wrk.out';
my $pid = fork();
if ($pid == 0) {
    # a request per connection: a keepalive connection closed by an old
    # worker between two requests is HTTP's race, not a failed request
    { exec "wrk -t1 -c4 -d6s -H 'Connection: close' $url > $wrk 2>&1" };
    POSIX::_exit(127);
}
sleep 0.3;

my $reloaded = 0;
for (1 .. 20) {
    $reloaded += $t->reload ? 1 : 0;
    sleep 0.1;
}
waitpid($pid, 0);
is($reloaded, 20, '20 reloads');

my $out = FT::read_text($wrk);
my ($n) = $out =~ /(\d+) requests in/;
cmp_ok($n // 0, '>', 100, 'wrk was served throughout') or diag($out);
unlike($out, qr/Non-2xx|Socket errors/, 'and no request failed') or diag($out);

is(user('/l', 'alice')->{status}, 429,
   'alice is still over her burst after 20 reloads');
is(user('/l', 'bob')->{status}, 200, 'bob has his own bucket');

# Redis stopped: requests wait for it; a reload must not drop them
$t->redis_signal('r', 'STOP');

my @kids;
for my $uri (qw(/cache /cluster)) {
    my $k = fork();
    if ($k == 0) {
        my $r = $t->post($uri, '{"w":1}', headers => { 'X-User' => 'carol' },
                         timeout => 10);
        FT::write_file($t->dir . "/res" . substr($uri, 1),
                       ($r->{status} // 0) . "\n");
        POSIX::_exit(0);
    }
    push @kids, $k;
}

sleep 0.4;
ok($t->reload, 'reload while requests wait for a stopped Redis');
waitpid($_, 0) for @kids;

for my $uri (qw(/cache /cluster)) {
    my $got = FT::read_text($t->dir . "/res" . substr($uri, 1));
    chomp $got;
    is($got, 200, "$uri: answered (failing open) before its worker exited");
}

$t->redis_signal('r', 'CONT');
sleep 0.2;

unlike($t->error_log, qr/open socket .* left in connection/,
       'no open socket left behind by an exiting worker');

$t->done;
