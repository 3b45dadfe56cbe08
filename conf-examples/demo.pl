#!/usr/bin/perl
# make demo: nginx with the module and conf-examples/nginx.conf, three mock
# models on loopback, a few real requests, then everything stops.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use FT;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $t = FT->new;
my $ex = "$FindBin::Bin";

# a real Redis for the cache
$t->redis('cache');

# three "models": different latencies and opinions
$t->mock('resnet', ms => 40,
         body => '{"model":"resnet","label":"cat","output":{"scores":[0.70,0.20,0.10]}}');
$t->mock('vit', ms => 90,
         body => '{"model":"vit","label":"dog","output":{"scores":[0.40,0.50,0.10]}}');
$t->mock('clip', ms => 150,
         body => '{"model":"clip","label":"cat","output":{"scores":[0.60,0.30,0.10]}}');
# the candidate that conf-examples/canary.conf rolls out
my $resnet2 = '{"model":"resnet2","label":"%s","output":{"scores":[0.65,0.25,0.10]}}';
$t->mock('resnet2', ms => 30, body => sprintf($resnet2, 'cat'));
# conf-examples/serving.conf's: a flaky model, one with a tail, two LLMs
# streaming, a GPU-like model that answers each input, a KServe v2 one
$t->mock('flaky', ms => 10, flaky => 1,
         body => '{"model":"flaky","label":"cat"}');
$t->mock('slowtail', ms => 10, slow_pct => 10, slow_ms => 400,
         body => '{"model":"slowtail","label":"cat"}');
$t->mock('llm_a', mode => 'sse', first => 300, gap => 30, events => 4);
$t->mock('llm_b', mode => 'sse', first => 40, gap => 30, events => 4,
         usage => 1, prompt => 12, used => 4);
$t->mock('gpu', mode => 'model', ms => 5, fail_status => 422);
$t->mock('triton', mode => 'model', proto => 'v2', two => 1, ms => 5);

open my $fh, '<', "$ex/nginx.conf" or die "$ex/nginx.conf: $!";
my $conf = do { local $/; <$fh> };
close $fh;

my $dir = $t->dir . '/nginx';
my %port = (9001 => 'resnet', 9002 => 'vit', 9003 => 'clip',
            9004 => 'resnet2', 9005 => 'flaky', 9006 => 'slowtail',
            9007 => 'llm_a', 9008 => 'llm_b', 9009 => 'gpu', 9010 => 'triton');

$conf =~ s{load_module \S+;}{load_module %%MODULE%%;};
$conf =~ s{worker_processes auto;}{worker_processes 2;};
$conf =~ s{127\.0\.0\.1:(900[1-9]|9010)}{"127.0.0.1:%%MOCK_$port{$1}%%"}ge;
$conf =~ s{127\.0\.0\.1:6379}{127.0.0.1:%%REDIS_cache%%};
$conf =~ s{listen 8080;}{listen 127.0.0.1:%%PORT_http%%;};
$conf =~ s{/var/log/nginx/}{$dir/}g;
$conf =~ s{include conf-examples/}{include $ex/}g;
$conf =~ s{(http \{)}{$1\n    client_body_temp_path $dir/body;\n    proxy_temp_path $dir/proxy;};

$t->run(raw => $conf);

my $json = JSON::PP->new->canonical;
my $input = '{"image":"aGVsbG8=","request_id":"demo-1"}';

sub show {
    my ($title, $res, @headers) = @_;

    printf "\n=== %s\n", $title;
    printf "HTTP %s in %.1f ms%s\n", $res->{status}, $res->{time} * 1000,
        join('', map { "  $_: " . ($res->{headers}{lc $_} // '-') } @headers);
    my $j = $res->{json};

    if (ref $j eq 'HASH' && $j->{meta}) {
        # one line per part of the answer
        for my $k (grep { exists $j->{$_} }
                   qw(error merged results errors meta))
        {
            printf "  %-8s %s\n", "$k:", $json->encode($j->{$k});
        }
    } else {
        print "  $res->{body}\n";
    }
}

print "nginx-fanout demo: nginx ", `nginx -v 2>&1` =~ s/.*\///sr;
print "models on 127.0.0.1: resnet 40 ms, vit 90 ms, clip 150 ms; "
    . "redis-server on port ", $t->port('redis_cache'), "\n";

show('all: every answer side by side  (POST /compare)',
     $t->post('/compare', $input));

sleep 0.2;    # the workers' Redis connections come up

show('mean output.scores, resnet weight=2  (POST /predict)',
     $t->post('/predict', $input), 'X-Fanout-Cache');

show('the same input again, keys reordered and another request_id: '
     . 'from the Redis cache  (POST /predict)',
     $t->post('/predict', '{"request_id":"demo-2","image":"aGVsbG8="}'),
     'X-Fanout-Cache');

sleep 0.1;    # the L1 takes the entry once Redis has it
show('once more: from the shared-memory L1, no Redis round trip  '
     . '(POST /predict)',
     $t->post('/predict', $input), 'X-Fanout-Cache', 'X-Request-ID');

show('fanout_cache_purge: the entry goes from Redis and the L1  '
     . '(PURGE /predict)',
     $t->request('PURGE', '/predict', body => $input));

show('and the next one calls the models again  (POST /predict)',
     $t->post('/predict', $input), 'X-Fanout-Cache');

{
    my $res = $t->post('/compare', $input, headers => {
        traceparent => '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
    my @h = $t->hits('vit');
    printf "\n=== trace context: the client's traceparent, a span per call  "
         . "(POST /compare)\n";
    printf "  client sent   traceparent: %s\n",
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    printf "  vit received  traceparent: %s\n", $h[-1]{headers}{traceparent};
    printf "  vit received  X-Request-ID: %s (the client got %s)\n",
        $h[-1]{headers}{'x-request-id'}, $res->{headers}{'x-request-id'};
}

show('first: the fastest good answer, as it came  (POST /fast)',
     $t->post('/fast', $input), 'X-Fanout-Target', 'Content-Type');

show('vote label, resnet weight=1.5  (POST /classify)',
     $t->post('/classify', $input));

# a shadow: resnet answers, resnet2 is called too and compared on "label"
print "\n=== fanout_shadow: resnet answers, resnet2 shadows it, compare=label  "
    . "(POST /canary x6)\n";
for my $i (1 .. 6) {
    if ($i == 5) {
        # the candidate starts to disagree
        $t->kill_mock('resnet2');
        $t->mock('resnet2', ms => 30, body => sprintf($resnet2, 'dog'));
        print "(resnet2 now answers \"dog\")\n";
    }
    my $res = $t->post('/canary', $input);
    printf "HTTP %s in %.1f ms  X-Fanout-Target: %s  %s\n", $res->{status},
        $res->{time} * 1000, $res->{headers}{'x-fanout-target'}, $res->{body};
    sleep 0.1;
}
my $sh = $t->status_json->{locations}{'/canary'}{shadows}{resnet2};
printf "shadow resnet2: sent=%d agree=%d disagree=%d shadow_error=%d "
    . "shed=%d; mean latency %.0f ms vs the primary's %.0f ms\n",
    $sh->{sent}, $sh->{agree}, $sh->{disagree}, $sh->{shadow_error},
    $sh->{shed},
    $sh->{vs_primary}{shadow_ms_sum} / ($sh->{vs_primary}{pairs} || 1),
    $sh->{vs_primary}{primary_ms_sum} / ($sh->{vs_primary}{pairs} || 1);
my $sample = $t->redis_cli('cache', 'XRANGE', 'fanout:shadow:/canary:resnet2',
                           '-', '+', 'COUNT', '1');
my @f = split /\n/, $sample;
shift @f;
my %e = @f;
print "sampled to Redis (XRANGE fanout:shadow:/canary:resnet2): "
    . join(' ', map { "$_=$e{$_}" } qw(request_id field primary shadow
                                        primary_ms shadow_ms)), "\n";

# a split: 5% of the users get resnet2, sticky by X-User-Id
print "\n=== fanout_split: 5% of the users get resnet2, sticky by X-User-Id  "
    . "(POST /canary-5, 40 users, twice each)\n";
my (%got, $moved);
for my $round (1 .. 2) {
    for my $u (1 .. 40) {
        my $res = $t->post('/canary-5', $input,
                           headers => { 'X-User-Id' => "user-$u" });
        my $v = $res->{headers}{'x-fanout-variant'};
        $moved++ if $round == 2 && $got{$u} ne $v;
        $got{$u} = $v;
    }
}
my %n;
$n{$_}++ for values %got;
printf "variants: %s; users whose variant changed between rounds: %d\n",
    join(', ', map { "$_=$n{$_}" } sort keys %n), $moved // 0;
my $vs = $t->status_json->{locations}{'/canary-5'}{variants};
printf "status variants: %s\n",
    join('  ', map { "$_: requests=$vs->{$_}{requests} 200=$vs->{$_}{200}" }
               sort keys %$vs);

# the client's query string reaches the mock models: ?ms=400 makes them slow
show('failure: every model takes 400 ms; resnet and vit have timeout=300ms '
     . 'and quorum is 2  (POST /predict?ms=400)',
     $t->post('/predict?ms=400', $input), 'X-Fanout-Cache');

# rate limits: the API key's burst of 2, then 429
print "\n=== fanout_limit: an API key limited to 60 r/m, bursts of 2  (POST /guarded x3)\n";
for my $i (1 .. 3) {
    my $res = $t->post('/guarded', $input, headers => { 'X-Api-Key' => 'demo' });
    printf "HTTP %s  RateLimit-Remaining: %s%s\n", $res->{status},
        $res->{headers}{'ratelimit-remaining'} // '-',
        $res->{status} == 429 ? "  Retry-After: $res->{headers}{'retry-after'}  $res->{body}" : '';
}

# admission control: 8 calls at once to a cap of at most 2 (learned from
# vit's latency), queued by priority; those that would wait past 200 ms
# are answered 503 with Retry-After
print "\n=== max_inflight=auto:1:2 queue=16 queue_timeout=200ms: 8 at once "
    . "to a model of 90 ms, priorities 9,9,9,9,5,5,1,1  (POST /queued)\n";
my @prio = (9, 9, 9, 9, 5, 5, 1, 1);
my @q = $t->concurrent([ map { ['POST', '/queued', body => '{}',
                                headers => { 'X-Priority' => $prio[$_] }] } 0 .. 7 ]);
for my $i (0 .. 7) {
    my $res = $q[$i];
    printf "priority %d: HTTP %s%s\n", $prio[$i], $res->{status},
        $res->{status} == 503 ? "  Retry-After: " . ($res->{headers}{'retry-after'} // '-')
                                . "  (queued too long: overloaded)" : '';
}
my $qs = $t->get('/fanout/status')->{json}{locations}{'/queued'}{targets}{vit};
printf "the queue's counters: %s\n", $json->encode($qs->{queue});

# delay=: past the burst, requests wait for their token instead of a 429
print "\n=== fanout_limit rate=5r/s burst=1 delay=2: 4 at once  (POST /delayed)\n";
my @d = $t->concurrent([ map { ['POST', '/delayed', body => '{}',
                                headers => { 'X-Api-Key' => 'delay' }] } 1 .. 4 ]);
for my $res (sort { $a->{time} <=> $b->{time} } @d) {
    printf "HTTP %s in %4.0f ms%s\n", $res->{status}, $res->{time} * 1000,
        $res->{status} == 429 ? "  (past burst and delay)"
        : $res->{time} > 0.15 ? "  (waited for its token)" : '';
}

# set=: each model its own body; each told its time left
my $before = { map { $_ => scalar(() = $t->hits($_)) } qw(resnet clip) };
show('set=: each target its own "model" (and resnet a parameter), the rest '
     . 'of the body as sent; X-Request-Deadline-Ms told  (POST /models)',
     $t->post('/models', '{"model":"any","input":[1,2]}'));
for my $m (qw(resnet clip)) {
    my $hit = ($t->hits($m))[$before->{$m}];
    printf "  %-7s received %s  X-Request-Deadline-Ms: %s\n", "$m:",
        $hit->{body} // '-', $hit->{headers}{'x-request-deadline-ms'} // '-';
}

# a breaker opening: resnet stops answering (killed); after 3 failures it
# is not called any more
$t->kill_mock('resnet');
print "\n=== fanout_breaker: resnet is down (killed); failures=3, "
    . "fallback=/_m/clip  (POST /guarded x5)\n";
for my $i (1 .. 5) {
    my $res = $t->post('/guarded', $input);
    printf "HTTP %s  resnet: %s\n", $res->{status},
        $res->{json}{meta}{fallback}{resnet}
        ? "answered by its fallback: $res->{json}{results}{resnet}{model}"
        : $res->{json}{errors}{resnet}{error} // 'ok';
}
my $rt = $t->status_json->{locations}{'/guarded'}{targets}{resnet};
printf "resnet: %d connection errors, then circuit_open %d times; "
    . "fallback answered %d times\n", $rt->{upstream_error},
    $rt->{circuit_open}, $rt->{fallback_ok};
print "Redis: ", $t->redis_cli('cache', 'KEYS', 'fanout:breaker:*'),
    " (the other instances learn of it)\n";
my $brk = $t->status_json->{locations}{'/guarded'}{targets}{resnet}{breaker};
printf "resnet breaker: %s, retry in %d ms\n", $brk->{state}, $brk->{retry_in_ms};
my ($line) = $t->error_log =~ /(fanout breaker of target "resnet"[^\n]*?\))/;
print "error.log: $line\n" if $line;

# serving: retries, hedges, a streaming race, batches, KServe v2

show('fanout_retry: the model fails its first call (503), the retry '
     . 'answers  (POST /retry)', $t->post('/retry', $input));

print "\n=== fanout_hedge: 1 call in 10 takes 400 ms; a backup after the "
    . "model's p95 (at most 50 ms)  (POST /hedge x40)\n";
my @ms;
for my $i (1 .. 40) {
    my $res = $t->post('/hedge', qq({"n":$i}));
    push @ms, $res->{time} * 1000;
}
@ms = sort { $a <=> $b } @ms;
my $ht = $t->status_json->{locations}{'/hedge'}{targets}{slowtail};
printf "40 requests: p50 %.0f ms, slowest %.0f ms; hedges %d, won %d, "
    . "delay now %d ms\n", $ms[19], $ms[-1], $ht->{hedges}, $ht->{hedges_won},
    $ht->{hedge_delay_ms};

{
    my $s = $t->connect;
    my $t0 = time;
    print $s "POST /chat HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\n"
           . "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    my ($first, $all) = (0, '');
    while (sysread($s, my $buf, 4096)) {
        $first ||= time - $t0 if $buf =~ /data:/;
        $all .= $buf;
    }
    close $s;
    my @events = $all =~ /data: (\{[^\n]*\}|\[DONE\])/g;
    printf "\n=== fanout_merge first over two LLMs streaming (SSE): llm_b "
        . "starts after 40 ms, llm_a after 300 ms  (POST /chat)\n"
        . "first event after %.0f ms, %d events, all from %s; the other "
        . "cut off\n", $first * 1000, scalar @events,
        ($all =~ /"model":"(\w+)"/)[0] // '?';
}

# token budgets: reserved before the calls, settled with the usage
{
    my $chat = '{"model":"m","max_tokens":600,'
               . '"messages":[{"role":"user","content":"hi"}]}';
    print "\n=== fanout_limit tokens=2000/m: 4 requests at once, each "
        . "max_tokens=600 (about 620 tokens reserved)  (POST /tokens)\n";
    my @tk = $t->concurrent([ map {
        ['POST', '/tokens', body => $chat, headers => { 'X-Tenant' => 'acme' }]
    } 1 .. 4 ]);
    for my $res (sort { $a->{status} <=> $b->{status} } @tk) {
        printf "HTTP %s  RateLimit-Policy: %s%s\n", $res->{status},
            $res->{headers}{'ratelimit-policy'} // '-',
            $res->{status} == 429 ? "  $res->{body}" : '';
    }
    my $loc = $t->status_json->{locations}{'/tokens'};
    my $lim = $loc->{limit}{limits}{'$http_x_tenant tokens=2000/m'};
    my $again = $t->post('/tokens', $chat, headers => { 'X-Tenant' => 'acme' });
    printf "reserved %d tokens, used %d (each stream's last event: 16); "
        . "what was not used is back: the next request HTTP %s\n",
        $lim->{tokens_reserved}, $lim->{tokens_used}, $again->{status};
    my $tg = $loc->{targets}{llm_b};
    my ($p50) = grep { $tg->{first_chunk_ms}{$_} } qw(5 10 25 50 100 250);
    printf "llm_b: time to first chunk <= %s ms, tokens in %d, out %d "
        . "(targets.llm_b.first_chunk_ms, .tokens)\n", $p50 // '?',
        $tg->{tokens}{input}, $tg->{tokens}{output};
}

my $res = $t->post('/batch', '{"instances":[1,2,"fail",4]}');
show('fanout_batch: 4 items, each its own call, micro-batched into one '
     . 'upstream call; the model refuses "fail" (422), so each item goes '
     . 'again alone and only item 2 fails  (POST /batch)', $res,
     'X-Fanout-Batch-Failed');
printf "items: %s\n", join(' ', map { $_ ? $json->encode($_->{results}{gpu}{predictions}) : 'null' }
                               @{ $res->{json}{items} || [] });

my @gpu = $t->parallel(16, 'POST', '/gpu', body => '{"instances":[21]}');
my $gb = $t->status_json->{locations}{'/gpu'}{batches}{gpu};
printf "\n=== micro-batching: 16 concurrent requests to a GPU-like model, "
    . "batch=32 batch_wait=5ms  (POST /gpu x16)\n%d answers 200, each "
    . "%s; %d upstream calls held %d inputs\n",
    scalar(grep { $_->{status} == 200 } @gpu),
    ($gpu[0]{body} =~ /"predictions":(\[[^\]]*\])/)[0] // '?',
    $gb->{batches}, $gb->{inputs};

show('KServe v2: two models answer [label, probabilities] in either order; '
     . 'the mean of outputs[name=probabilities], precision=fp32, as a v2 '
     . 'response  (POST /v2/models/ensemble/infer)',
     $t->post('/v2/models/ensemble/infer',
              '{"id":"demo-v2","inputs":[{"name":"x","shape":[1,2],'
              . '"datatype":"FP32","data":[1,2]}]}'));

my $st = $t->status_json;
print "\n=== fanout_status (GET /fanout/status), per location\n";
for my $loc (sort keys %{ $st->{locations} }) {
    my $l = $st->{locations}{$loc};
    printf "%-10s requests=%d 200=%d 502=%d 504=%d cache_hits=%d targets: %s\n",
        $loc, $l->{requests}, $l->{responses}{200}, $l->{responses}{502},
        $l->{responses}{504}, $l->{cache}{hit},
        join(' ', map { "$_(ok=$l->{targets}{$_}{ok}"
                        . ",timeout=$l->{targets}{$_}{timeout}"
                        . ",cancelled=$l->{targets}{$_}{cancelled})" }
                  sort keys %{ $l->{targets} });
}

my $pr = $st->{locations}{'/predict'};
printf "\n=== the last minute's quantiles (fanout_status latency_ms.recent)\n";
for my $tg (sort keys %{ $pr->{targets} }) {
    my $q = $pr->{targets}{$tg}{latency_ms}{recent};
    printf "  /predict %-7s p50 %s ms  p99 %s ms  (%d calls)\n", $tg,
        $q->{p50}, $q->{p99}, $q->{samples};
}
printf "  L1: %d entries, %d hits (cache.l1, cache.l1_hit)\n",
    $pr->{cache}{l1}{entries}, $pr->{cache}{l1_hit};

sleep 1.2;    # the call log's flush=1s
my @calls = split /\n/, (eval { FT::read_text("$dir/fanout-calls.log") } // '');
printf "\n=== fanout_call_log: %d lines; the last two\n", scalar @calls;
print "  $_\n" for @calls[-2, -1];

my $page = $t->get('/fanout/dashboard');
printf "\n=== the dashboard (fanout_status html): HTTP %s, %d bytes of %s\n"
     . "  http://127.0.0.1:%d/fanout/dashboard%s\n",
    $page->{status}, length $page->{body}, $page->{headers}{'content-type'},
    $t->port('http'),
    $ENV{DEMO_HOLD} ? '' : '  (DEMO_HOLD=1 make demo keeps it up)';

if ($ENV{DEMO_HOLD}) {
    printf "\nDEMO_HOLD: nginx stays up on http://127.0.0.1:%d/ "
         . "(/fanout/dashboard, /fanout/status, /metrics); Ctrl-C to stop\n",
         $t->port('http');
    # a light load, so that the dashboard has something to draw
    my $load = fork() // die "fork: $!";
    if ($load == 0) {
        for (my $i = 0; ; $i++) {
            $t->post('/predict', '{"image":"aGVsbG8=","n":' . ($i % 20) . '}');
            select(undef, undef, undef, 0.2);
        }
    }
    $SIG{INT} = sub { print "\n"; };
    sleep 3600;
    kill 'TERM', $load;
    waitpid($load, 0);
}

my $bad = () = $t->error_log =~ /\[(alert|crit|emerg)\]/g;
$t->stop;

print "redis: $st->{redis}{commands} commands, "
    . "$st->{redis}{connections} connections ready\n";

print "\nstopped nginx, Redis and the mock models",
    ($bad ? "; error.log had $bad serious lines\n" : "\n");
exit($bad ? 1 : 0);
