# Micro-batching (fanout_target ... batch=N): concurrent calls to one
# target wait up to batch_wait, or until N inputs wait, and go as one
# upstream call with their inputs combined in the target's protocol; its
# answer is split back, each caller getting what an unbatched call would
# have returned.  The models answer each input from its value, so a
# swapped or lost input shows.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->mock('m', mode => 'model');
$t->mock('v2', mode => 'model', proto => 'v2');
$t->mock('oa', mode => 'model', proto => 'openai');
$t->mock('ar', mode => 'model', proto => 'array');
$t->mock('slow', mode => 'model', ms => 600);

my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(workers => 1, http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% http2;
    listen 127.0.0.1:%%PORT_h1%%;

    location /_m     { internal; proxy_pass $m/?k=m; }
    location /_w     { internal; proxy_pass $m/?k=w; }
    location /_short { internal; proxy_pass $m/?short=1&k=short; }
    location /_t     { internal; proxy_pass $m/?k=t; }
    location /_v2    { internal; proxy_pass http://127.0.0.1:%%MOCK_v2%%/; }
    location /_oa    { internal; proxy_pass http://127.0.0.1:%%MOCK_oa%%/; }
    location /_ar    { internal; proxy_pass http://127.0.0.1:%%MOCK_ar%%/; }
    location /_slow  { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_cb    { internal; proxy_pass $m/?k=cb; }
    location /_e     { internal; proxy_pass $m/?status=500&k=e; }
    location /_flk   { internal; proxy_pass $m/?flaky=1&k=flk; }
    location /_q     { internal; proxy_pass $m; }
    location /_split { internal; proxy_pass $m/?fail_status=422&k=split; }

    location /p     { fanout_target m /_m batch=16 batch_wait=1s; }
    location /wait  { fanout_target w /_w batch=16 batch_wait=500ms; }
    location /now   { fanout_target w /_w batch=16 batch_wait=0; }
    location /short { fanout_target s /_short batch=8 batch_wait=200ms; }
    location /ten   { fanout_target t /_t batch=8 batch_wait=300ms; }
    location /v2    { fanout_target v /_v2 batch=16 batch_wait=300ms batch_format=v2; }
    location /oa    { fanout_target o /_oa batch=16 batch_wait=300ms batch_format=openai; }
    location /ar    { fanout_target a /_ar batch=16 batch_wait=300ms batch_format=array; }
    location /slow  { fanout_target s /_slow batch=8 batch_wait=200ms; }
    location /cb    { fanout_target m /_cb batch=64 batch_wait=100ms;
                      fanout_batch instances chunk=1; }
    location /brk   { fanout_target x /_e batch=8 batch_wait=300ms;
                      fanout_breaker failures=3 cooldown=30s; }
    location /split { fanout_target s /_split batch=8 batch_wait=300ms; }
    location /qa    { fanout_target q /_q batch=8 batch_wait=300ms; }
    location /rb    { fanout_target f /_flk batch=8 batch_wait=300ms;
                      fanout_retry attempts=2 backoff=1ms max_backoff=2ms
                                   budget=100%; }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

my $h1 = $t->port('h1');

sub status { $t->get('/fanout/status', port => $h1)->{json} }

sub calls {
    my ($mock, $k) = @_;
    return grep { $_->{method} && (!defined $k
                  || ($_->{uri} // '') =~ /[?&]k=\Q$k\E(?:&|$)/) } $t->hits($mock);
}

# many clients at once, each with its own input

my $i = 0;
my @res = map { { i => ++$i, %$_ } }
          $t->concurrent([ map { [ 'POST', '/p', port => $h1,
                                   body => qq({"instances":[$_],"parameters":{"t":1}}) ] }
                           1 .. 32 ]);

is(scalar(grep { $_->{status} == 200 } @res), 32, '32 concurrent requests: 32 answers');
my $wrong = grep {
    my $j = eval { decode_json($_->{body}) } || {};
    my $p = $j->{results}{m}{predictions} || [];
    !(@$p == 1 && $p->[0] == 2 * $_->{i})
} @res;
is($wrong, 0, 'each client got the prediction of its own input, and only it');

my @c = calls('m', 'm');
my $inputs = 0;
$inputs += scalar @{ (decode_json($_->{body}))->{instances} } for @c;
is($inputs, 32, 'the upstream calls held the 32 inputs');
ok(@c >= 2 && @c <= 4, scalar(@c) . " upstream calls for 32 requests (batch=16: 2 at best)");
my @sorted = sort { $a <=> $b } map { @{ (decode_json($_->{body}))->{instances} } } @c;
is_deeply(\@sorted, [ 1 .. 32 ], 'every input exactly once');
like($c[0]{body}, qr/"parameters":\{"t":1\}/, 'the body around the inputs kept');

my $st = status()->{locations}{'/p'}{batches}{m};
is($st->{batches}, scalar @c, 'status: batches');
is($st->{inputs}, 32, 'status: inputs');
is($st->{callers}, 32, 'status: callers');
is($st->{inputs_per_batch}{16}, scalar(grep { scalar @{ (decode_json($_->{body}))->{instances} } > 8 } @c),
   'status: inputs per batch, by bucket');

# batch_wait bounds the wait of a lone call; batch_wait=0 does not wait

my $t0 = time();
my $r = $t->post('/wait', '{"instances":[5]}', port => $h1);
my $took = time() - $t0;
is($r->{status}, 200, 'a lone call: answered');
ok($took >= 0.49 && $took < 2.0, sprintf('after batch_wait=500ms (%.3f s)', $took));

$t0 = time();
$r = $t->post('/now', '{"instances":[5]}', port => $h1);
$took = time() - $t0;
ok($took < 0.3, sprintf('batch_wait=0: at once (%.3f s)', $took));

# a batch whose answer does not fit fails its callers with bad_batch

@res = $t->parallel(4, 'POST', '/short', port => $h1, body => '{"instances":[1]}');
is(scalar(grep { $_->{status} == 502 } @res), 4, 'a short batched answer: 502 for each');
my $j = decode_json($res[0]{body});
is($j->{errors}{s}{error}, 'bad_batch', 'error: bad_batch');
like($t->error_log, qr/the answer of a batch of 4 inputs from 4 calls is not a whole instances answer/,
     'the error log says why');
is(status()->{locations}{'/short'}{batches}{s}{errors}, 1, 'status: a batch error');
is(status()->{locations}{'/short'}{targets}{s}{bad_batch}, 4,
   'status: bad_batch for each call');

# a batch that fails (one input makes the model answer 500) fails only
# its own callers; a later batch is whole

@res = $t->concurrent([ map { [ 'POST', '/ten', port => $h1,
                                body => '{"instances":[' . ($_ == 2 ? '"fail"' : $_) . ']}' ] }
                        1 .. 4 ]);
is(scalar(grep { $_->{status} == 502
                 && (decode_json($_->{body}))->{errors}{t}{error} eq 'http_500' } @res),
   4, 'a batch answered 500: each of its callers has http_500')
    or diag(join "\n", map { "$_->{status} $_->{body}" } @res);
$r = $t->post('/ten', '{"instances":[7]}', port => $h1);
is($r->{status}, 200, 'the next batch is whole');

# a batch refused for one input (422): each caller again alone, so the
# bad input fails only its own request

@res = $t->concurrent([ map { [ 'POST', '/split', port => $h1,
                                body => '{"instances":[' . ($_ == 3 ? '"fail"' : $_) . ']}' ] }
                        1 .. 4 ]);
is_deeply([ map { $_->{status} } @res ], [ 200, 200, 502, 200 ],
          'a batch refused (422) for one input: the other three answered');
is((decode_json($res[2]{body}))->{errors}{s}{error}, 'http_422',
   'and the bad one has its own http_422');
is((decode_json($res[3]{body}))->{results}{s}{predictions}[0], 8,
   'each its own prediction');
is(scalar(calls('m', 'split')), 5, 'one batch, then four calls alone');

# the breaker: a batch is one call

@res = $t->parallel(4, 'POST', '/brk', port => $h1, body => '{"instances":[1]}');
is(scalar(grep { $_->{status} == 502 } @res), 4, 'a failed batch of 4 callers: 502 each');
is(scalar(calls('m', 'e')), 1, 'in one upstream call');
my $br = status()->{locations}{'/brk'}{targets}{x}{breaker};
is($br->{consecutive_failures}, 1, 'the breaker counts one failure, not four');
is($br->{state}, 'closed', 'and stays closed (failures=3)');

# retries: a batch is one call, tried again as a whole

@res = $t->parallel(4, 'POST', '/rb', port => $h1, body => '{"instances":[4]}');
is(scalar(grep { $_->{status} == 200 } @res), 4,
   'a batch failing once (503), then answering: 4 answers');
is(scalar(calls('m', 'flk')), 2, 'two upstream calls: the batch and its retry');
is(status()->{locations}{'/rb'}{targets}{f}{retries}, 1,
   'one retry counted, not four');

# headers: two tenants never share a batch

$t->concurrent([ map { my $tenant = $_ % 2 ? 'A' : 'B';
                      [ 'POST', '/p', port => $h1,
                        headers => { Authorization => "Bearer $tenant" },
                        body => qq({"instances":["$tenant$_"]}) ] } 1 .. 8 ]);
my @tc = grep { ($_->{headers}{authorization} // '') =~ /Bearer/ } calls('m', 'm');
my $mixed = grep {
    my $auth = $_->{headers}{authorization};
    my ($tenant) = $auth =~ /Bearer (\w)/;
    grep { substr($_, 0, 1) ne $tenant } @{ (decode_json($_->{body}))->{instances} };
} @tc;
ok(@tc >= 2, scalar(@tc) . ' calls for two tenants');
is($mixed, 0, 'no call carried another tenant\'s input under a tenant\'s Authorization');

# the query string the target URI passes on: never another's

$t->concurrent([ map { my $q = $_ % 2 ? 'qa1' : 'qa2';
                      [ 'POST', "/qa?k=$q", port => $h1,
                        body => qq({"instances":["$q-$_"]}) ] } 1 .. 4 ]);
my @qc = (calls('m', 'qa1'), calls('m', 'qa2'));
is(scalar @qc, 2, 'two query strings, two calls');
my ($qa1) = calls('m', 'qa1');
ok($qa1 && !grep({ !/^qa1-/ } @{ (decode_json($qa1->{body}))->{instances} }),
   'each call holds only the inputs of its query string');

# a body that cannot be batched goes alone, as it came

$r = $t->post('/p', 'not json', port => $h1);
is($r->{status}, 502, 'a body the batch cannot read: sent alone');
is($r->{json}{errors}{m}{status}, 400, 'the model answered it itself (400)');
is(status()->{locations}{'/p'}{batches}{m}{alone}, 1, 'status: alone');
$r = $t->post('/p', '{"instances":[9]}', port => $h1,
              headers => { map { ("X-H-$_" => $_) } 1 .. 70 });
is($r->{json}{results}{m}{predictions}[0], 18, 'a call with 70 headers: answered');
is(status()->{locations}{'/p'}{batches}{m}{alone}, 2,
   'it went alone (headers are sorted for the key: bounded)');

# the protocols

@res = map { $_->{json} } $t->concurrent([ map { [ 'POST', '/v2', port => $h1, body => $_ ] } (
    '{"id":"r1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}',
    '{"id":"r2","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[3,4,5,6]}]}',
    '{"id":"r3","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[7,8]}]}') ]);
my @v2calls = calls('v2');
is(scalar @v2calls, 1, 'v2: three requests, one call');
my $v2in = decode_json($v2calls[0]{body});
is($v2in->{inputs}[0]{shape}[0], 4, 'v2: shape[0] summed (1 + 2 + 1 rows)');
is(scalar @{ $v2in->{inputs}[0]{data} }, 8, 'v2: the data concatenated');
is($v2in->{id}, 'fanout-batch', 'v2: the call carries nobody\'s id');
# an output row is the sum of f over its two inputs: f(x) = 2x
my %want = (r1 => [6], r2 => [14, 22], r3 => [30]);
my $v2bad = 0;
for my $a (@res) {
    my $out = $a->{results}{v};
    $v2bad++ unless $out && $want{ $out->{id} }
                    && encode_json($out->{outputs}[0]{data}) eq encode_json($want{ $out->{id} })
                    && $out->{outputs}[0]{shape}[0] == @{ $want{ $out->{id} } };
}
is($v2bad, 0, 'v2: each caller its own rows, shape and id, read as the protocol says');

@res = map { $_->{json} } $t->concurrent([ map { [ 'POST', '/oa', port => $h1, body => $_ ] }
    '{"model":"e5","input":["aa","bbbb"]}', '{"model":"e5","input":["c"]}' ]);
is(scalar(calls('oa')), 1, 'openai: two requests, one call');
is_deeply([ map { [ $_->{index}, $_->{embedding}[0] ] } @{ $res[0]{results}{o}{data} } ],
          [ [ 0, 2 ], [ 1, 4 ] ], 'openai: the first caller\'s embeddings, indexed from 0');
is_deeply([ map { [ $_->{index}, $_->{embedding}[0] ] } @{ $res[1]{results}{o}{data} } ],
          [ [ 0, 1 ] ], 'openai: the second caller\'s, indexed from 0');

@res = $t->parallel(3, 'POST', '/ar', port => $h1, body => '[1,2]');
is(scalar(calls('ar')), 1, 'array: three requests, one call');
is_deeply((decode_json($res[0]{body}))->{results}{a}, [ 2, 4 ],
          'array: each caller its own outputs');

# a client batch into a batched target: its items share upstream calls

$r = $t->post('/cb', '{"instances":[1,2,3,4,5,6,7,8]}', port => $h1);
is($r->{status}, 200, 'fanout_batch of 8 items into batch=64');
is_deeply([ map { $_->{results}{m}{predictions}[0] } @{ $r->{json}{items} } ],
          [ map { 2 * $_ } 1 .. 8 ], 'each item its own prediction');
is(scalar(calls('m', 'cb')), 1, 'the 8 item calls were one upstream call');

# callers that leave: before the batch goes (dropped from it), and after
# (their share discarded; the others still answered)

my @socks;
for my $i (1 .. 4) {
    my $s = $t->connect($h1);
    my $b = qq({"instances":[$i]});
    print $s "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($b) . "\r\n\r\n$b";
    push @socks, $s;
}
sleep 0.05;
close $socks[0];           # before the batch is sent (batch_wait=200ms)
sleep 0.3;
close $socks[1];           # after: the model takes 600 ms
my @ans = map { FT::read_response($_, time(), 5, 0) } @socks[2, 3];
is(scalar(grep { $_->{status} == 200 } @ans), 2, 'the callers that stayed are answered');
my @sc = calls('slow');
is(scalar @sc, 1, 'one upstream call');
is_deeply((decode_json($sc[0]{body}))->{instances}, [ 2, 3, 4 ],
          'the caller gone before it was sent is not in it');

# HTTP/2 clients

SKIP: {
    skip 'curl without HTTP/2', 2 unless `curl --version 2>/dev/null` =~ /HTTP2/;
    my $base = 'http://127.0.0.1:' . $t->port('http');
    my $dir = $t->dir;
    system("for i in 1 2 3 4; do curl -s --http2-prior-knowledge -H 'Content-Type: application/json' "
           . "--data-binary '{\"instances\":['\$i'0]}' -o $dir/h2.\$i $base/wait & done; wait");
    my @h2 = map { eval { decode_json(FT::read_text("$dir/h2.$_")) } } 1 .. 4;
    is(scalar(grep { $_ && $_->{results}{w}{predictions}[0] } @h2), 4, 'HTTP/2: four answers');
    is_deeply([ map { $_->{results}{w}{predictions}[0] } @h2 ], [ 20, 40, 60, 80 ],
              'HTTP/2: each its own');
}

# a reload while calls wait for their batch: the old worker sends it

my $reloaded;
my @rl = $t->concurrent([ map { [ 'POST', '/wait', port => $h1,
                                  body => qq({"instances":[$_]}) ] } 1 .. 4 ],
                        during => sub { sleep 0.15; $reloaded = $t->reload });
ok($reloaded, 'a reload while 4 calls wait for their batch');
is(join(',', map { "$_->{status} " . ($_->{json}{results}{w}{predictions}[0] // '') } @rl),
   '200 2,200 4,200 6,200 8', 'each answered by the old worker, its own');

# Prometheus

my $prom = $t->get('/metrics', port => $h1)->{body};
like($prom, qr/^fanout_batch_total\{location="\/p",target="m",result="batches"\} \d+$/m,
     'prometheus: fanout_batch_total');
like($prom, qr/^fanout_batch_inputs_bucket\{location="\/p",target="m",le="\+Inf"\} \d+$/m,
     'prometheus: fanout_batch_inputs histogram');
like($prom, qr/^fanout_batch_wait_seconds_count\{location="\/p",target="m"\} \d+$/m,
     'prometheus: fanout_batch_wait_seconds histogram');

$t->outcomes_add_up(port => $h1);

$t->done;
