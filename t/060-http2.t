# HTTP/2 clients (h2c, prior knowledge, via curl): bodies, stragglers on a
# reused connection, aborted streams.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

plan skip_all => 'curl without HTTP/2'
    unless `curl --version 2>/dev/null` =~ /HTTP2/;

my $t = FT->new;

$t->mock('a', ms => 50, mode => 'echo');
$t->mock('hang', mode => 'hang');
$t->mock('fast', mode => 'sse', gap => 50, events => 6);
$t->mock('slow', mode => 'sse', first => 400, gap => 50, events => 6);
$t->mock('m');
$t->mock('model', mode => 'model');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% http2;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_hang { internal; proxy_pass http://127.0.0.1:%%MOCK_hang%%/; }
    location /p { fanout_target a /_a; fanout_target b /_a; }
    location /deadline { fanout_target a /_a; fanout_target hang /_hang;
                         fanout_timeout 300ms; }
    location /sh { fanout_target a /_a; fanout_merge first;
                   fanout_shadow s /_a; }
    location /_fast { internal; proxy_pass http://127.0.0.1:%%MOCK_fast%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_flaky { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?flaky=1; }
    location /_late { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?slow_marked=1000; }
    location /stream { fanout_target slow /_slow; fanout_target fast /_fast;
                       fanout_merge first; }
    location /retry { fanout_target m /_flaky; fanout_retry; }
    location /hedge { fanout_target m /_late; fanout_hedge after=50ms budget=100%; }
    location /_model { internal; proxy_pass http://127.0.0.1:%%MOCK_model%%/; }
    location /_model2 { internal; proxy_pass http://127.0.0.1:%%MOCK_model%%/?off=1; }
    location /batch { fanout_target a /_model; fanout_target b /_model2;
                      client_body_buffer_size 1k;
                      fanout_batch instances; }
    location /_qm { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?ms=300&k=q; }
    location /queue { fanout_target q /_qm max_inflight=1 queue=4; }
    location /delay { fanout_target a /_a;
                      fanout_limit key=all rate=2r/s burst=1 delay=2; }
    location = /fanout/status { fanout_status; }
}
EOC

my $base = 'http://127.0.0.1:' . $t->port('http');
my $curl = 'curl -s --http2-prior-knowledge';

my $body = '{"x":' . ('1' x 50000) . '}';
FT::write_file($t->dir . '/body.json', $body);

my $out = `$curl -H 'Content-Type: application/json' --data-binary \@${\ $t->dir}/body.json -w '\\n%{http_version} %{http_code}' $base/p`;
my ($json, $meta) = $out =~ /^(.*)\n(\S+ \d+)$/s;
is($meta, '2 200', 'HTTP/2 POST: 200 over h2');
my $j = decode_json($json);
is($j->{results}{a}{len}, length $body, 'the h2 body reached target a');
is($j->{results}{b}{method}, 'POST', 'and target b');

# a batch over h2, its body in nginx's temporary file (over 1k)

my @words = map { 'w' x (100 + $_) } 1 .. 40;
FT::write_file($t->dir . '/batch.json',
               '{"instances":[' . join(',', map { qq("$_") } @words) . ']}');
$out = `$curl -H 'Content-Type: application/json' --data-binary \@${\ $t->dir}/batch.json -w '\\n%{http_version} %{http_code}' $base/batch`;
($json, $meta) = $out =~ /^(.*)\n(\S+ \d+)$/s;
is($meta, '2 200', 'a batch of 40 over h2, from a temporary file: 200');
$j = eval { decode_json($json) } || {};
is_deeply([ map { [ $_->{results}{a}{prediction}, $_->{results}{b}{prediction} ] }
            @{ $j->{items} || [] } ],
          [ map { [ 100 + $_, 101 + $_ ] } 1 .. 40 ],
          'every item answered from its own input, in order');

# the deadline over h2: the straggler's upstream connection is closed
# right away (curl 7.88 cannot reuse a prior-knowledge h2c connection, so
# the straggler's cut-off is read off the mock's log)

my $t0 = time();
$out = `$curl -w '%{http_code}' -o /dev/null $base/deadline`;
my $took = time() - $t0;
is($out, '200', 'deadline over h2: 200');
cmp_ok($took, '<', 0.8, 'answered at the deadline') or diag($took);

sleep 0.3;
my ($closed) = grep { ($_->{event} // '') eq 'closed' } $t->hits('hang');
ok($closed, 'the hanging target was cut off');
cmp_ok($closed->{t} - $t0, '<', 0.8, 'right at the deadline')
    if $closed;

# a stream aborted by the client (curl gives up after 0.1 s)
system("$curl --max-time 0.1 -o /dev/null $base/deadline");
sleep 0.5;

$out = `$curl -w ' %{http_code}' -o /dev/null $base/p`;
like($out, qr/200$/, 'served after an aborted h2 stream');

my $st = decode_json(`$curl $base/fanout/status`);
is($st->{locations}{'/deadline'}{aborted}, 1, 'the aborted stream is counted');

# a shadow of an h2 request: its own copy outlives the stream
$out = `$curl -H 'Content-Type: application/json' --data-binary \@${\ $t->dir}/body.json -w '\\n%{http_version} %{http_code}' $base/sh`;
like($out, qr/\n2 200$/, 'HTTP/2 POST with a shadow: 200 over h2');
my $sh;
for (1 .. 40) {
    $sh = decode_json(`$curl $base/fanout/status`)->{locations}{'/sh'}{shadows}{s};
    last if $sh->{agree} + $sh->{disagree} + $sh->{shadow_error};
    sleep 0.05;
}
is($sh->{agree}, 1, 'the shadow got the same body and answered the same');
my @sh = (grep { $_->{uri} eq '/' && $_->{len} == length $body }
          $t->hits('a'))[-2, -1];
is(scalar(grep { $_ } @sh), 2, 'the model saw the target call and the '
                               . 'shadow call, each with the whole body');
is($sh[0]{sha1}, $sh[1]{sha1}, 'the same body');

# a streaming race over h2: the first event goes out before the end
$out = `$curl -N -w '\n%{time_starttransfer} %{time_total} %{http_version} %{http_code}' $base/stream`;
my ($ttfb, $total, $ver, $code) = $out =~ /\n([\d.]+) ([\d.]+) (\S+) (\d+)$/;
is("$ver $code", '2 200', 'a stream over h2: 200');
cmp_ok($ttfb, '<', 0.25, "its first event at $ttfb s");
cmp_ok($total - $ttfb, '>=', 0.2, "its end at $total s: streamed as it came");
is(scalar(() = $out =~ /"model":"fast"/g), 6, 'the six events of the winner');
unlike($out, qr/"model":"slow"/, 'none of the other');

# a retry and a backup over h2
$out = `$curl -H 'Content-Type: application/json' --data-binary '{"h2":1}' $base/retry`;
is(decode_json($out)->{meta}{attempts}{m}, 2, 'fanout_retry over h2');
$t0 = time;
$out = `$curl -H 'Content-Type: application/json' --data-binary '{"slow":"h2"}' $base/hedge`;
ok(decode_json($out)->{meta}{hedged}{m}, 'fanout_hedge over h2');
cmp_ok(time - $t0, '<', 0.7, 'answered by the backup');

# admission over h2: calls queued for the one slot, each answered in turn;
# a stream reset while its call waits frees its place

my @pids;
for my $i (1 .. 3) {
    my $pid = fork();
    if ($pid == 0) {
        my $o = `$curl -o /dev/null -w '%{http_code} %{time_total}' $base/queue`;
        FT::write_file($t->dir . "/q.$i", $o);
        POSIX::_exit(0);
    }
    push @pids, $pid;
    sleep 0.05;
}
sleep 0.1;
system("$curl --max-time 0.2 -o /dev/null $base/queue");
waitpid($_, 0) for @pids;
my @q = map { [ split ' ', FT::read_text($t->dir . "/q.$_") ] } 1 .. 3;
is(scalar(grep { $_->[0] == 200 } @q), 3, 'queue= over h2: 3 calls for 1 '
   . 'slot, all answered');
cmp_ok((sort { $b <=> $a } map { $_->[1] } @q)[0], '>=', 0.8,
       'one after the other (300 ms each)');
$st = decode_json(`$curl $base/fanout/status`);
cmp_ok($st->{locations}{'/queue'}{targets}{q}{queue}{queued}, '>=', 2,
       'they waited in the queue');
is(scalar(grep { ($_->{uri} // '') =~ /k=q/ } $t->hits('m')), 3,
   'the reset stream\'s call was never made');
is($st->{locations}{'/queue'}{aborted}, 1, 'the reset stream: aborted');

# delay= over h2: the second waits its token; a reset one ends

$t0 = time;
$out = join ' ', map { `$curl -o /dev/null -w '%{http_code}' $base/delay` } 1 .. 2;
is($out, '200 200', 'fanout_limit delay= over h2: both answered');
cmp_ok(time - $t0, '>=', 0.35, 'the second after its token');
system("$curl --max-time 0.1 -o /dev/null $base/delay");
for (1 .. 40) {
    $st = decode_json(`$curl $base/fanout/status`);
    last if $st->{locations}{'/delay'}{aborted};
    sleep 0.05;
}
is($st->{locations}{'/delay'}{aborted}, 1, 'a stream reset while delayed: '
   . 'its request ended');

$t->done;
