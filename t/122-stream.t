# A streaming race: with fanout_merge first, a 2xx answer that is not
# JSON (an OpenAI-style text/event-stream) wins by its first bytes and
# streams to the client as it comes; the others are cut off; a winner that
# breaks mid-stream ends the client's answer with its connection closed,
# never with another answer spliced in; one past its target's bound ends
# the same way, logged once; a client that leaves cuts the model off; a
# long stream holds only what the client has not taken; JSON answers keep
# the whole-answer check.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->mock('fast', mode => 'sse', gap => 50, events => 10);
$t->mock('slow', mode => 'sse', first => 400, gap => 50, events => 10);
$t->mock('dies', mode => 'sse', gap => 50, events => 10, die => 3);
$t->mock('json', ms => 100);
$t->mock('big', mode => 'sse', gap => 20, events => 10);
$t->mock('left', mode => 'sse', gap => 100, events => 10);
# 2,000 events of 16 KB: a 32 MB stream
$t->mock('long', mode => 'sse', gap => 0, events => 2000, pad => 16000);

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_fast { internal; proxy_pass http://127.0.0.1:%%MOCK_fast%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_dies { internal; proxy_pass http://127.0.0.1:%%MOCK_dies%%/; }
    location /_json { internal; proxy_pass http://127.0.0.1:%%MOCK_json%%/; }

    location /race {
        fanout_target slow /_slow; fanout_target fast /_fast;
        fanout_merge first; fanout_timeout 5s;
    }
    location /broken {
        fanout_target dies /_dies; fanout_target slow /_slow;
        fanout_merge first; fanout_timeout 5s;
    }
    location /mixed {
        fanout_target json /_json; fanout_target slow /_slow;
        fanout_merge first; fanout_timeout 5s;
    }
    location /deadline {
        fanout_target slow /_slow;
        fanout_merge first; fanout_timeout 200ms;
    }
    location /_big { internal; proxy_pass http://127.0.0.1:%%MOCK_big%%/;
                     subrequest_output_buffer_size 128; }
    location /big {
        fanout_target big /_big;
        fanout_merge first; fanout_timeout 5s;
    }
    location /_left { internal; proxy_pass http://127.0.0.1:%%MOCK_left%%/; }
    location /left {
        fanout_target left /_left;
        fanout_merge first; fanout_timeout 5s;
    }
    location /_long { internal; proxy_pass http://127.0.0.1:%%MOCK_long%%/;
                      subrequest_output_buffer_size 64m; }
    location /long {
        fanout_target long /_long;
        fanout_merge first; fanout_timeout 5s;
    }
    location = /fanout/status { fanout_status; }
}
EOC

# one request; the answer as it came: when its first body bytes and its
# end arrived, its head, its body (raw), and whether the stream ended well
sub stream {
    my ($uri) = @_;

    my $s = $t->connect;
    my $t0 = time;
    print $s "POST $uri HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           . "Connection: close\r\n\r\n{}";

    my ($raw, $first, $head) = ('', undef, undef);
    my $sel = IO::Select->new($s);

    while ($sel->can_read(5)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
        if (!defined $head && $raw =~ /\r\n\r\n/) {
            ($head) = $raw =~ /^(.*?)\r\n\r\n/s;
        }
        if (defined $head && !defined $first
            && length($raw) > length($head) + 4)
        {
            $first = time - $t0;
        }
    }

    my $end = time - $t0;
    my ($body) = $raw =~ /\r\n\r\n(.*)$/s;

    return { first => $first, end => $end, head => $head // '',
             body => $body // '',
             whole => (($body // '') =~ /\r\n0\r\n\r\n$/ ? 1 : 0) };
}

sub closed { scalar grep { ($_->{event} // '') eq 'closed' } $t->hits($_[0]) }

# two streams at different speeds

my $r = stream('/race');
like($r->{head}, qr{^HTTP/1\.1 200}, 'the stream race: 200');
like($r->{head}, qr{Content-Type: text/event-stream}i, 'the winner\'s Content-Type');
like($r->{head}, qr{X-Fanout-Target: fast}i, 'X-Fanout-Target names the winner');
ok(defined $r->{first} && $r->{first} < 0.3,
   sprintf('the first event reached the client at %.2f s', $r->{first} // -1));
cmp_ok($r->{end}, '>=', 0.4, sprintf('before the stream ended (%.2f s)', $r->{end}));
cmp_ok($r->{end} - $r->{first}, '>=', 0.3, 'so it came as it went, not buffered');
my @events = $r->{body} =~ /data: (\{[^\n]*\})/g;
is(scalar @events, 10, 'all ten events');
is(scalar(grep { /"model":"fast"/ } @events), 10, 'only the winner\'s events');
like($r->{body}, qr/data: \[DONE\]/, 'and its end');
ok($r->{whole}, 'the chunked answer ends properly');
sleep 0.5;
is(closed('slow'), 1, 'the slower stream was cut off (its connection closed)');

# a winner that dies mid-stream

$r = stream('/broken');
like($r->{head}, qr{^HTTP/1\.1 200}, 'a stream that breaks: it began as 200');
@events = $r->{body} =~ /data: (\{[^\n]*\})/g;
is(scalar @events, 3, 'the three events it sent');
ok(!$r->{whole}, 'then the connection closed without the last chunk');
unlike($r->{body}, qr/"model":"slow"/, 'nothing of another answer spliced in');
like($t->error_log, qr/fanout target "dies": its stream broke after \d+ bytes/,
     'the error log says so');

# a JSON answer is judged whole, and a stream still races it

$r = stream('/mixed');
like($r->{head}, qr{X-Fanout-Target: json}i, 'a whole JSON answer at 100 ms beats a stream at 400 ms');
like($r->{body}, qr/"label":"cat"/, 'its body as it came');

# the deadline bounds the time to the first byte

$r = stream('/deadline');
like($r->{head}, qr{^HTTP/1\.1 504}, 'no first byte within fanout_timeout: 504');

# a stream longer than its target's subrequest_output_buffer_size: what
# fits goes out (several events at a time now: one write a call), then it
# ends broken, logged once

$r = stream('/big');
like($r->{head}, qr{^HTTP/1\.1 200}, 'a stream past its bound began as 200');
@events = $r->{body} =~ /data: (\{[^\n]*\})/g;
ok(@events >= 2 && @events < 10, scalar(@events) . ' events of 10 reached the client');
ok(!$r->{whole}, 'then it ended without the last chunk');
my @big = $t->error_log =~ /fanout target "big" answered more than 128 bytes/g;
is(scalar @big, 1, 'the error log says so once');
sleep 0.3;
is(closed('big'), 1, 'and the model\'s stream was cut off');

# the client leaves after the first event: the model's stream is cut off

{
    my $s = $t->connect;
    print $s "POST /left HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    my $got = '';
    my $sel = IO::Select->new($s);
    while ($got !~ /data: / && $sel->can_read(3)) {
        sysread($s, my $buf, 65536) or last;
        $got .= $buf;
    }
    like($got, qr/data: /, 'a client reads the first event');
    close $s;
}
my $cut;
for (1 .. 40) {
    last if $cut = closed('left');
    sleep 0.05;
}
is($cut, 1, 'then leaves: the model\'s stream is cut off within 2 s');
is(scalar(() = $t->error_log =~ /answered more than/g), 1, 'nothing more in the error log');

# a long stream holds what the client has not taken yet, not all it ever
# sent: 32 MB through a worker whose peak memory grows by far less, read by
# a client that reads fast, then by one that stops for a while

sub peak_kb {
    my ($pid) = $t->workers;
    open my $fh, '<', "/proc/$pid/status" or return -1;
    my ($kb) = join('', <$fh>) =~ /^VmHWM:\s+(\d+) kB/m;
    return $kb // -1;
}

# the chunked body's data, or undef when its framing is broken
sub dechunk {
    my ($raw) = @_;
    my $data = '';
    while ($raw =~ /\G([0-9a-f]+)\r\n/gci) {
        my $n = hex $1;
        return $data if $n == 0;
        my $at = pos($raw);
        return undef if length($raw) < $at + $n + 2
                        || substr($raw, $at + $n, 2) ne "\r\n";
        $data .= substr($raw, $at, $n);
        pos($raw) = $at + $n + 2;
    }
    return undef;
}

sub long_ok {
    my ($r, $what) = @_;
    my $data = dechunk($r->{body});
    ok(defined $data, "$what: a whole chunked answer");
    my @tokens = ($data // '') =~ /"token":(\d+),"pad":"p{16000}"\}\n\n/g;
    is(scalar @tokens, 2000, "$what: all 2,000 events of 16 KB, whole");
    ok(join(',', @tokens) eq join(',', 0 .. 1999), "$what: in their order");
    like($data // '', qr/\}\n\ndata: \[DONE\]\n\n\z/, "$what: and its end");
}

my $peak = peak_kb();
$r = stream('/long');
like($r->{head}, qr{^HTTP/1\.1 200}, 'a 32 MB stream: 200');
long_ok($r, 'a fast reader');
my $grew = peak_kb() - $peak;
# (a client that falls behind lets unsent bytes wait in the worker: the
# bound leaves room for a busy machine, and is half of what keeping the
# whole stream costs)
cmp_ok($grew, '<', 16384, "the worker's peak memory grew by $grew kB (under 16 MB)");

{
    # a reader that stops for 1 s after its first 64 KB: the model runs
    # ahead, and what waits for the client stays until it is sent
    my $s = $t->connect;
    print $s "POST /long HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           . "Connection: close\r\n\r\n{}";
    my ($raw, $paused) = ('', 0);
    my $sel = IO::Select->new($s);
    while ($sel->can_read(5)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
        if (!$paused && length $raw > 65536) {
            $paused = 1;
            sleep 1;
        }
    }
    my ($body) = $raw =~ /\r\n\r\n(.*)$/s;
    long_ok({ body => $body // '' }, 'a reader that paused');
}

my $st = $t->status_json->{locations};
is($st->{'/race'}{responses}{200}, 1, 'the race counted as 200');
is($st->{'/broken'}{responses}{502}, 1, 'the broken stream counted as 502');
is($st->{'/broken'}{targets}{dies}{upstream_error}, 1, 'its target as upstream_error');
$t->outcomes_add_up;

$t->done;
