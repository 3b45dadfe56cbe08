# Every Redis command has its timer, retries included: a Redis that
# answers EVALSHA with NOSCRIPT and then never answers the EVAL sent in its
# place (a fake one, speaking RESP) leaves no request waiting for good.  A
# scope=cluster limit fails open within the Redis timeout, and so does the
# cache's coalescing lookup.

use strict;
use warnings;

use lib 't/lib';
use FT;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);

my $t = FT->new;

my $port = $t->port('fake');
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                   LocalPort => $port, Listen => 16,
                                   ReuseAddr => 1) or die "listen: $!";
my $log = $t->dir . '/fake.log';

my $pid = fork();
die "fork: $!" unless defined $pid;

if ($pid == 0) {
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $listen->accept) {
        next if fork();
        my $buf = '';
        while (sysread($c, $buf, 65536, length $buf)) {
            # whole RESP arrays of bulk strings
            while ($buf =~ /^\*(\d+)\r\n/) {
                my ($n, $pos, @args) = ($1, length "*$1\r\n");
                my $ok = 1;
                for (1 .. $n) {
                    if (substr($buf, $pos) =~ /^\$(\d+)\r\n/) {
                        my $len = $1;
                        my $start = $pos + length("\$$len\r\n");
                        if (length($buf) < $start + $len + 2) { $ok = 0; last }
                        push @args, substr($buf, $start, $len);
                        $pos = $start + $len + 2;
                    } else { $ok = 0; last }
                }
                last unless $ok;
                substr($buf, 0, $pos) = '';
                my $cmd = uc $args[0];
                open my $fh, '>>', $log; print $fh "$cmd\n"; close $fh;
                if ($cmd eq 'EVALSHA') {
                    print $c "-NOSCRIPT No matching script. Please use EVAL.\r\n";
                } elsif ($cmd eq 'EVAL') {
                    # never answered
                } elsif ($cmd eq 'GET' || $cmd eq 'MGET') {
                    print $c "\$-1\r\n";
                } else {
                    print $c "+OK\r\n";
                }
            }
        }
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}
close $listen;

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%PORT_fake%% timeout=200ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; default_type application/json; return 200 '{"ok":1}'; }
    location /limit {
        fanout_target m /_m;
        fanout_limit key=$http_x_user rate=1r/m burst=5 scope=cluster
                     on_redis_error=open;
    }
    location /cache {
        fanout_target m /_m;
        fanout_cache ttl=60s;
    }
    location = /fanout/status { fanout_status; }
}
EOC

sleep 0.3;

for my $uri (qw(/limit /cache)) {
    my $t0 = time;
    my $r = $t->post($uri, '{"a":1}', headers => { 'X-User' => 'u' },
                     timeout => 10);
    my $took = time - $t0;
    is($r->{status}, 200, "$uri: answered, failing open");
    cmp_ok($took, '<', 3, "$uri: within the Redis timeout, not forever")
        or diag("took $took s");
}

my $cmds = FT::read_text($log);
like($cmds, qr/EVALSHA\nEVAL\n/, 'EVALSHA answered NOSCRIPT, then EVAL was sent');
like($t->error_log, qr/fanout redis .* did not answer in time/,
     'the EVAL timed out, and the error log says so');

my $st = $t->status_json;
cmp_ok($st->{redis}{errors}{timeout}, '>=', 1, 'the timeout counted');

kill 'TERM', $pid;
waitpid($pid, 0);

$t->done;
