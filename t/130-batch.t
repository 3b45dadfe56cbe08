# fanout_batch: a client's batch (an array at FIELD) becomes a call per
# item (or per chunk) for every target, all at once or concurrency= at a
# time; the answer keeps the items' order, each merged as the location
# merges, with per-item errors that never fail the others.  The models
# answer each input from its value, so a swapped or lost item shows.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('m', mode => 'model');
$t->mock('s', mode => 'model');      # its calls are timed
$t->mock('f', mode => 'model');      # flaky and failing ones

my $m = 'http://127.0.0.1:%%MOCK_m%%';
my $s = 'http://127.0.0.1:%%MOCK_s%%';
my $f = 'http://127.0.0.1:%%MOCK_f%%';

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;

    location /_a    { internal; proxy_pass $m/?off=0&k=a; }
    location /_a2   { internal; proxy_pass $m/?off=0&k=a2; }
    location /_b    { internal; proxy_pass $m/?off=100&k=b; }
    location /_kb   { internal; proxy_pass $m/?off=100&k=kb; }
    location /_c    { internal; proxy_pass $m/?off=200&k=c; }
    location /_slow { internal; proxy_pass $s/?ms=1000&off=1&k=slow; }
    location /_s100 { internal; proxy_pass $s/?ms=100&k=s100; }
    location /_hang { internal; proxy_pass $s/?ms=3000&k=hang; }
    location /_e    { internal; proxy_pass $f/?status=500&k=e; }
    location /_flk  { internal; proxy_pass $f/?flaky=1&k=flk; }
    location /_brk  { internal; proxy_pass $f/?status=503&k=brk; }
    location /_cch  { internal; proxy_pass $m/?off=0&k=cch; }
    location /_cch2 { internal; proxy_pass $m/?off=100&k=cch2; }
    location /_nest { internal; proxy_pass $m/?field=req&k=nest; }
    location /_late { internal; proxy_pass $s/?slow_marked=1500&k=late; }
    location /_cap  { internal; proxy_pass $s/?ms=200&k=cap; }

    location /all {
        fanout_target a /_a; fanout_target b /_b; fanout_target c /_c;
        fanout_batch instances;
    }
    location /mean {
        fanout_target a /_a; fanout_target b /_b; fanout_target c /_c;
        fanout_merge mean prediction;
        fanout_batch instances;
    }
    location /vote {
        fanout_target a /_a; fanout_target a2 /_a2; fanout_target b /_b;
        fanout_merge vote prediction;
        fanout_batch instances;
    }
    location /first {
        fanout_target slow /_slow; fanout_target a /_a;
        fanout_merge first;
        fanout_batch instances;
    }
    location /chunk {
        fanout_target a /_a; fanout_target b /_kb;
        fanout_batch instances chunk=2;
    }
    location /par {
        fanout_target s /_slow;
        fanout_batch instances;
    }
    location /conc {
        fanout_target s /_s100;
        fanout_batch instances concurrency=2;
    }
    location /small {
        fanout_target a /_a;
        fanout_batch instances max_items=4;
    }
    location /q1 {
        fanout_target a /_a; fanout_target e /_e;
        fanout_batch instances;
    }
    location /q2 {
        fanout_target a /_a; fanout_target e /_e;
        fanout_quorum 2;
        fanout_batch instances;
    }
    location /retry {
        fanout_target x /_flk;
        fanout_retry attempts=2 backoff=1ms max_backoff=2ms budget=100%;
        fanout_batch instances;
    }
    location /breaker {
        fanout_target x /_brk;
        fanout_breaker failures=3 cooldown=30s;
        fanout_batch instances concurrency=1;
    }
    location /cache {
        fanout_target a /_cch; fanout_target b /_cch2;
        fanout_cache ttl=60s;
        fanout_batch instances;
    }
    location /nested {
        fanout_target n /_nest;
        fanout_batch req.instances chunk=1;
    }
    location /lim {
        fanout_target a /_a;
        fanout_limit key=\$remote_addr rate=1r/m burst=10;
        fanout_batch instances max_items=16;
    }
    location /climit {
        fanout_target a /_a;
        fanout_limit key=\$remote_addr rate=1r/m burst=10 scope=cluster
                     on_redis_error=closed;
        fanout_batch instances max_items=16;
    }
    location /hedge {
        fanout_target x /_late;
        fanout_hedge after=50ms budget=100%;
        fanout_batch instances;
    }
    location /cap {
        fanout_target x /_cap max_inflight=2;
        fanout_batch instances;
    }
    location /capc {
        fanout_target x /_cap max_inflight=2;
        fanout_batch instances concurrency=2;
    }
    location /abort {
        fanout_target h /_hang;
        fanout_batch instances;
    }
    location = /fanout/status { fanout_status; }
}
EOC

sub calls {
    my ($mock, $k) = @_;
    return grep { ($_->{uri} // '') =~ /[?&]k=\Q$k\E(?:&|$)/ } $t->hits($mock);
}

# items x models, in the items' order, each item its own body

my @x = (1 .. 10);
my $r = $t->post('/all', '{"p":"keep","instances":[' . join(',', @x) . ']}');
is($r->{status}, 200, 'a batch of 10 items x 3 models: 200');
is(scalar @{ $r->{json}{items} }, 10, '10 items in the answer');
my $bad = 0;
for my $i (0 .. $#x) {
    my $it = $r->{json}{items}[$i];
    $bad++ unless $it->{results}{a}{prediction} == 2 * $x[$i]
                  && $it->{results}{b}{prediction} == 2 * $x[$i] + 100
                  && $it->{results}{c}{prediction} == 2 * $x[$i] + 200;
}
is($bad, 0, 'every item answered by every model from its own input, in order');
is_deeply([ @{ $r->{json}{meta} }{qw(items ok failed targets)} ], [ 10, 10, 0, 3 ],
          'meta: items, ok, failed, targets');
my @a = calls('m', 'a');
is(scalar @a, 10, 'model a was called once per item');
is_deeply([ sort map { $_->{body} } @a ],
          [ sort map { qq({"p":"keep","instances":$_}) } @x ],
          'each call carried the body with the array replaced by its item');
ok(!(grep { $_->{len} != length $_->{body} } @a),
   'Content-Length is each item body\'s own');

# merges per item

$r = $t->post('/mean', '{"instances":[1,5,-3]}');
is($r->{status}, 200, 'mean per item: 200');
is_deeply([ map { $_->{merged}{value} } @{ $r->{json}{items} } ], [ 102, 110, 94 ],
          'each item averaged over its three models');

$r = $t->post('/vote', '{"instances":[2,7]}');
is_deeply([ map { $_->{merged}{value} } @{ $r->{json}{items} } ], [ 4, 14 ],
          'vote per item: the majority of each item');

my $t0 = time();
$r = $t->post('/first', '{"instances":[3,4,5]}');
my $took = time() - $t0;
is($r->{status}, 200, 'first per item: 200');
is_deeply([ map { $_->{prediction} } @{ $r->{json}{items} } ], [ 6, 8, 10 ],
          'each item is its fastest model\'s answer, as it came');
ok($took < 0.8, sprintf('the slower model (1 s) was not waited for (%.3f s)', $took));

# chunks: the models take arrays themselves

$r = $t->post('/chunk', '{"instances":[1, 2,3,4,5]}');
is($r->{status}, 200, 'chunk=2: 200');
is_deeply([ map { $_->{results}{a}{predictions} } @{ $r->{json}{items} } ],
          [ [ 2, 4 ], [ 6, 8 ], [ 10 ] ], 'three chunks, in order');
is_deeply([ @{ $r->{json}{meta} }{qw(items chunk chunks)} ], [ 5, 2, 3 ],
          'meta: items, chunk, chunks');
is_deeply([ sort map { $_->{body} } calls('m', 'kb') ],
          [ '{"instances":[1, 2]}', '{"instances":[3,4]}', '{"instances":[5]}' ],
          'each chunk as the client wrote it, in brackets');

$r = $t->post('/nested', '{"req":{"instances":[7,8]},"id":"z"}');
is_deeply([ sort map { $_->{body} } calls('m', 'nest') ],
          [ '{"req":{"instances":[7]},"id":"z"}', '{"req":{"instances":[8]},"id":"z"}' ],
          'a dot path: the nested array replaced');

# concurrency: all at once by default, concurrency= at most at a time

$t0 = time();
$r = $t->post('/par', '{"instances":[1,2,3,4,5,6,7,8]}');
$took = time() - $t0;
is($r->{json}{meta}{ok}, 8, '8 items of a 1 s model: all answered');
ok($took < 4.0, sprintf('in about one call\'s time, not 8 (%.2f s; 8 s in turn)',
                        $took));

$t0 = time();
$r = $t->post('/conc', '{"instances":[1,2,3,4,5,6]}');
$took = time() - $t0;
is($r->{json}{meta}{ok}, 6, 'concurrency=2: 6 items answered');
my @at = sort { $a <=> $b } map { $_->{t} } calls('s', 's100');
is(scalar @at, 6, '6 calls made');
my $overlap = grep { $at[$_ + 2] - $at[$_] < 0.095 } 0 .. $#at - 2;
is($overlap, 0, 'never a third call while two ran (100 ms each)');
ok($took >= 0.28, sprintf('three rounds of two (%.2f s)', $took));

# per-item errors never fail the others

$r = $t->post('/all', '{"instances":[1,"fail",3]}');
is($r->{status}, 200, 'one item failing everywhere: still 200');
ok(!defined $r->{json}{items}[1], 'its place in items is null');
is($r->{json}{errors}{1}{error}, 'quorum_not_met', 'errors["1"] says why');
is($r->{json}{errors}{1}{errors}{a}{error}, 'http_500',
   'and what each model answered');
is($r->{json}{items}[2]{results}{a}{prediction}, 6, 'the items after it are whole');
is($r->{headers}{'x-fanout-batch-failed'}, '1', 'X-Fanout-Batch-Failed: 1');
is_deeply([ @{ $r->{json}{meta} }{qw(ok failed)} ], [ 2, 1 ], 'meta: 2 ok, 1 failed');

$r = $t->post('/q1', '{"instances":[1,2]}');
is($r->{status}, 200, 'quorum 1, one model failing: 200');
is($r->{json}{items}[0]{errors}{e}{error}, 'http_500',
   'an item lists its failed model');
ok(!$r->{headers}{'x-fanout-batch-failed'}, 'no failed item');

$r = $t->post('/q2', '{"instances":[1,2]}');
is($r->{status}, 502, 'no item meets quorum 2: 502');
is_deeply([ sort keys %{ $r->{json}{errors} } ], [ 0, 1 ], 'every item in errors');

# bad batches: a clear JSON error

my $before = calls('m', 'a');
$r = $t->post('/small', '{"instances":[1,2,3,4,5]}');
is($r->{status}, 413, 'more than max_items: 413');
is($r->{json}{error}, 'batch_too_large', 'error: batch_too_large');
like($r->{json}{message}, qr/max_items=4/, 'the message names the limit');
is(scalar(calls('m', 'a')), $before, 'no model was called for it');

$r = $t->post('/all', '{"instances":[' . join(',', 1 .. 257) . ']}');
is($r->{status}, 413, 'the default max_items is 256');
like($r->{json}{message}, qr/max_items=256/, 'and it is named');

$r = $t->post('/small', '{"instances":[1,2,3,4]}');
is($r->{status}, 200, 'max_items itself is allowed');

for my $case (['{"other":[1]}', 'no FIELD', qr/no batch/],
              ['{"instances":{"a":1}}', 'FIELD not an array', qr/not an array/],
              ['{"instances":[1,2]', 'not JSON', qr/not valid JSON/],
              ['{"instances":[]}', 'an empty batch', qr/empty/],
              ['{"instances":[1],"instances":[2]}', 'FIELD twice (duplicate keys)',
               qr/more than once/],
              ['{"instances":[' . ('[' x 300) . (']' x 300) . ']}',
               'nesting too deep', qr/not valid JSON/],
              ['', 'an empty body', qr/not valid JSON/]) {
    $r = $t->post('/all', $case->[0]);
    is($r->{status}, 400, "$case->[1]: 400");
    is($r->{json}{error}, 'bad_batch', "$case->[1]: error bad_batch");
    like($r->{json}{message}, $case->[2], "$case->[1]: the message says so");
}
like($t->error_log, qr/fanout batch refused with 400: the fanout_batch field is in the body more than once/,
     'the error log names the cause');

# retries and breakers apply per call

$r = $t->post('/retry', '{"instances":[1,2,3]}');
is($r->{status}, 200, 'each item\'s first call fails, its retry answers');
is_deeply([ map { $_->{meta}{attempts}{x} } @{ $r->{json}{items} } ], [ 2, 2, 2 ],
          'every item took two attempts');
is(scalar(calls('f', 'flk')), 6, 'the model saw 3 x 2 calls');

$r = $t->post('/breaker', '{"instances":[1,2,3,4,5,6,7,8,9,10]}');
is($r->{status}, 502, 'a dead model: every item failed');
is(scalar(calls('f', 'brk')), 3,
   'the breaker opened after 3 failed calls: the other 7 never reached it');
is($r->{json}{errors}{9}{errors}{x}{error}, 'circuit_open', 'they say circuit_open');

# hedges per call: the slow item's call is answered by its backup

$t0 = time();
$r = $t->post('/hedge', '{"instances":["slow-1","fast-2"]}');
$took = time() - $t0;
is($r->{status}, 200, 'hedges: 200');
is_deeply([ map { $_->{results}{x}{prediction} } @{ $r->{json}{items} } ], [ 6, 6 ],
          'both items answered');
ok($took < 1.2, sprintf('the slow item by its backup, not after 1.5 s (%.2f s)', $took));
is($r->{json}{items}[0]{meta}{hedged}{x}, JSON::PP::true, 'item 0 says hedged');

# max_inflight per call: concurrency= keeps a batch within it

$r = $t->post('/cap', '{"instances":[1,2,3,4,5,6]}');
is($r->{json}{meta}{ok}, 2, 'max_inflight=2, 6 items at once: 2 called');
is($r->{json}{errors}{5}{errors}{x}{error}, 'overloaded', 'the others overloaded');
$r = $t->post('/capc', '{"instances":[1,2,3,4,5,6]}');
is($r->{json}{meta}{ok}, 6, 'with concurrency=2: all 6 answered');

# the cache, per item and per target

my $b6 = '{"instances":[11,12,13,14,15,16]}';
$r = $t->post('/cache', $b6);
is($r->{status}, 200, 'a batch of 6: 200');
is($r->{json}{meta}{cached}, 0, 'none cached yet');
is(scalar(calls('m', 'cch')), 6, 'model a called 6 times');

# the stores go after the answer
for (1 .. 100) {
    my @k = split /\n/, $t->redis_cli('r', '--scan', '--pattern', 'fanout:/cache:*');
    last if @k >= 12;
    sleep 0.05;
}

$r = $t->post('/cache', '{"instances":[11,12,13,14,15,16,17,18]}');
is($r->{status}, 200, 'the same 6 and 2 new: 200');
is($r->{json}{meta}{cached}, 6, 'meta.cached: 6 items from the cache');
is(scalar(calls('m', 'cch')), 8, 'model a called only for the 2 new items');
is(scalar(calls('m', 'cch2')), 8, 'and model b too');
is_deeply([ map { $_->{results}{b}{prediction} } @{ $r->{json}{items} } ],
          [ map { 2 * $_ + 100 } 11 .. 18 ], 'cached and fresh items in order');
is($r->{json}{items}[0]{meta}{cache}{a}, 'HIT', 'an item says its model hit');
is($r->{json}{items}[7]{meta}{cache}{a}, 'MISS', 'and a new one that it missed');

$r = $t->post('/cache', '{"instances":[12, 11]}');
is_deeply([ map { $_->{results}{a}{prediction} } @{ $r->{json}{items} } ],
          [ 24, 22 ], 'a reordered batch: each item its own entry');
is($r->{headers}{'x-fanout-cache'}, 'HIT', 'every item cached: HIT');

$r = $t->post('/cache', '{"instances":[11],"temperature":1}');
is($r->{json}{meta}{cached}, 0, 'the body around the items is in the key');

# fanout_limit weighs a batch by its calls: 10 calls' worth of burst

is($t->post('/lim', '{"instances":[1,2,3,4]}')->{status}, 200, 'a limit: 4 calls pass');
is($t->post('/lim', '{"instances":[1,2,3,4]}')->{status}, 200, '4 more pass');
$r = $t->post('/lim', '{"instances":[1,2,3,4]}');
is($r->{status}, 429, 'a third batch of 4 is over the burst of 10: 429');
is($t->post('/lim', '{"instances":[1,2]}')->{status}, 200,
   'a batch of 2 still fits');
is($t->post('/lim', '{"instances":[1]}')->{status}, 429, 'then nothing does');
is($t->post('/climit', '{"instances":[1,2,3,4,5,6]}')->{status}, 200,
   'a cluster limit (Redis): 6 calls pass');
is($t->post('/climit', '{"instances":[1,2,3,4,5]}')->{status}, 429,
   '5 more are over its burst of 10: 429');
is($t->post('/climit', '{"instances":[1,2,3,4]}')->{status}, 200, '4 still fit');
like($t->error_log, qr/\[warn\].*"fanout_limit" .* of location "\/lim": a batch of more than 10 calls is over its burst/,
     'nginx -t warns of batches the burst can never admit');

# Redis stopped mid-command: the batch's lookup times out, every item is
# called, nothing fails
$t->redis_signal('r', 'STOP');
my $before_stop = calls('m', 'cch');
$r = $t->post('/cache', '{"instances":[31,32]}');
is($r->{status}, 200, 'Redis stopped: the batch still answered');
is($r->{headers}{'x-fanout-cache'}, 'ERROR', 'X-Fanout-Cache: ERROR');
is(scalar(calls('m', 'cch')) - $before_stop, 2, 'both items called');
$t->redis_signal('r', 'CONT');

# a client that leaves mid-batch

my $sock = $t->connect;
my $body = '{"instances":[1,2,3,4]}';
print $sock "POST /abort HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          . "Content-Length: " . length($body) . "\r\n\r\n$body";
for (1 .. 100) { last if calls('s', 'hang') >= 4; sleep 0.02; }
is(scalar(calls('s', 'hang')), 4, 'the 4 calls of a batch were made');
close $sock;

my $aborted;
for (1 .. 100) {
    $aborted = $t->status_json->{locations}{'/abort'}{aborted};
    last if $aborted;
    sleep 0.05;
}
is($aborted, 1, 'the client left: the batch counted aborted');

$t->outcomes_add_up;

$t->done;
