# fanout_shadow: detached shadow calls that never delay the client nor its
# next keepalive request; the same method, headers, body and $request_id;
# agreement counted on a field (exact, tolerance, argmax); max_inflight
# sheds; percent= is sticky by the split key; sample=redis writes capped
# entries and a dead Redis changes nothing for the client; client aborts
# and reloads with shadows in flight.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use List::Util qw(sum);
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

my $answer = '{"label":"cat","scores":[0.1,0.9],"p":0.50}';

$t->redis('r');
$t->mock('prim', body => $answer);
$t->mock('same', body => '{"p":0.5, "scores":[0.1,0.9], "label":"cat"}');
$t->mock('diff', body => '{"label":"dog","scores":[0.2,0.8],"p":0.52}');
$t->mock('nolabel', body => '{"scores":[0.1,0.9]}');
$t->mock('slow', ms => 1000, body => $answer);
$t->mock('err', status => 500, body => '{"error":"boom"}');
$t->mock('echo', mode => 'echo');
$t->mock('users', body => '{}');

sub loc {
    my ($name, $shadow, %o) = @_;
    my $target = $o{target} // '/_prim';
    my $merge = $o{merge} // 'first';
    my $extra = $o{extra} // '';
    $shadow .= ';' if length $shadow;
    return <<"EOL";
    location /$name {
        fanout_target m $target;
        fanout_merge $merge;
        $shadow
        $extra
    }
EOL
}

my $locations = join '',
    loc('same',    'fanout_shadow s /_same'),
    loc('label',   'fanout_shadow s /_diff compare=label'),
    loc('p',       'fanout_shadow s /_diff compare=p tolerance=0.05'),
    loc('p_tight', 'fanout_shadow s /_diff compare=p tolerance=0.01'),
    loc('scores',  'fanout_shadow s /_diff compare=scores'),
    loc('nolabel', 'fanout_shadow s /_nolabel compare=label'),
    loc('all',     'fanout_shadow s /_same compare=label '
                   . 'against=results.m.label', merge => 'all'),
    loc('slow',    'fanout_shadow s /_slow'),
    loc('kslow',   'fanout_shadow s /_k/slow', target => '/_k/prim'),
    loc('knone',   '', target => '/_k/prim'),
    loc('err',     'fanout_shadow s /_err'),
    loc('to',      'fanout_shadow s /_slow timeout=200ms'),
    loc('fail',    'fanout_shadow s /_same', target => '/_err'),
    loc('echo',    'fanout_shadow s /_echo', target => '/_echo'),
    loc('shed',    'fanout_shadow s /_slow max_inflight=1'),
    loc('abort',   'fanout_shadow s /_same', target => '/_slow'),
    loc('sample',  'fanout_shadow s /_diff compare=label sample=redis '
                   . 'sample_max=5',
        extra => 'add_header X-Request-Id $request_id;'),
    loc('ret',     'fanout_shadow s /_ret2 compare=label'),
    loc('nowhere', 'fanout_shadow s /_nowhere'),
    loc('big',     'fanout_shadow s /_big'),
    loc('pct',     'fanout_shadow s /_users percent=10',
        target => '/_ret', extra => 'fanout_split $arg_user { 50% a; * b; }');

# models served by nginx itself (the echo module), behind keepalive: the
# latency comparison then measures nginx, not the mocks' forks
$t->run(prefix => 'models', port => $t->port('models'), workers => 1,
        main => "load_module $FT::ECHO_MODULE;",
        http => <<"EOC");
server {
    listen 127.0.0.1:%%PORT_models%%;
    default_type application/json;
    location /prim { echo '$answer'; }
    location /slow { echo_sleep 1; echo '$answer'; }
}
EOC

$t->run(workers => 2, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
client_body_buffer_size 1k;
upstream models { server 127.0.0.1:%%PORT_models%%; keepalive 64; }
server {
    listen 127.0.0.1:%%PORT_http%%;
    proxy_set_header X-Request-Id \$request_id;
    location /_prim    { internal; proxy_pass http://127.0.0.1:%%MOCK_prim%%/; }
    location /_same    { internal; proxy_pass http://127.0.0.1:%%MOCK_same%%/; }
    location /_diff    { internal; proxy_pass http://127.0.0.1:%%MOCK_diff%%/; }
    location /_nolabel { internal; proxy_pass http://127.0.0.1:%%MOCK_nolabel%%/; }
    location /_slow    { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_err     { internal; proxy_pass http://127.0.0.1:%%MOCK_err%%/; }
    location /_echo    { internal; proxy_pass http://127.0.0.1:%%MOCK_echo%%; }
    location /_users   { internal; proxy_pass http://127.0.0.1:%%MOCK_users%%; }
    location /_k/      { internal; proxy_pass http://models/;
                         proxy_http_version 1.1;
                         proxy_set_header Connection ""; }
    location /_ret     { internal; default_type application/json;
                         return 200 '{"ok":true}'; }
    location /_ret2    { internal; default_type application/json;
                         return 200 '{"label":"cat"}'; }
    location /_nowhere { internal; return 404; }
    location /_big     { internal; proxy_pass http://127.0.0.1:%%MOCK_same%%/;
                         subrequest_output_buffer_size 16; }
$locations
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

sub shadow {
    my ($loc) = @_;
    return $t->status_json->{locations}{"/$loc"}{shadows}{s};
}

# waits until the shadows of a location have all been judged
sub settle {
    my ($loc, $n) = @_;
    for (1 .. 100) {
        my $s = shadow($loc);
        my $judged = sum(map { $s->{$_} }
                         qw(agree disagree shadow_error skipped));
        return $s if $judged >= $n && $s->{inflight} == 0;
        sleep 0.05;
    }
    return shadow($loc);
}

# --- agreement ------------------------------------------------------------

my %cases = (
    same    => [ { agree => 1, disagree => 0 }, 'equal answers, keys reordered' ],
    label   => [ { agree => 0, disagree => 1 }, 'unequal labels' ],
    p       => [ { agree => 1, disagree => 0 }, '0.50 and 0.52 within 0.05' ],
    p_tight => [ { agree => 0, disagree => 1 }, '0.50 and 0.52 not within 0.01' ],
    scores  => [ { agree => 0, disagree => 1, argmax_agree => 1,
                   argmax_disagree => 0 },
                 'unequal scores with the same argmax' ],
    nolabel => [ { agree => 0, disagree => 1 }, 'a shadow without the field' ],
    all     => [ { agree => 1, disagree => 0 },
                 'against= finds the field in a merged answer' ],
);

for my $loc (sort keys %cases) {
    my $res = $t->post("/$loc", '{"input":[1,2,3]}');
    is($res->{status}, 200, "$loc: the client gets 200");
    like($res->{body}, qr/"label"\s*:\s*"cat"/, "$loc: the primary's answer");

    my $s = settle($loc, 1);
    my ($want, $name) = @{ $cases{$loc} };
    is($s->{sent}, 1, "$loc: one shadow sent");
    for my $k (sort keys %$want) {
        is($s->{$k}, $want->{$k}, "$name: $k = $want->{$k}");
    }
    is($s->{vs_primary}{pairs}, 1, "$loc: one latency pair");
}

# --- the shadow gets what the target gets ---------------------------------

{
    my $body = '{"image":"' . ('x' x 20000) . '"}';   # over the 1k buffer
    my $res = $t->post('/echo', $body, headers => { 'X-Test' => 'shadowed' });
    is($res->{status}, 200, 'echo: 200');
    settle('echo', 1);

    my @hits = $t->hits('echo');
    is(scalar @hits, 2, 'echo: the target and the shadow were both called');
    my ($a, $b) = @hits;
    is($b->{method}, 'POST', 'the shadow gets the method');
    is($b->{sha1}, $a->{sha1}, 'and the body (from the temp file)');
    is($b->{len}, length $body, 'all of it');
    is($b->{headers}{'x-test'}, 'shadowed', 'and the headers');
    is($b->{headers}{'x-request-id'}, $a->{headers}{'x-request-id'},
       'and the same $request_id');
    ok(!defined $b->{headers}{'accept-encoding'}, 'but no Accept-Encoding');
    is($b->{uri}, $a->{uri}, 'and the same URI');
}

{
    # a chunked body reaches the shadow whole, with a Content-Length
    my $c = $t->connect;
    print $c "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n"
           . "6\r\n{\"a\":1\r\n1\r\n}\r\n0\r\n\r\n";
    my $res = FT::read_response($c, time(), 5, 0);
    close $c;
    is($res->{status}, 200, 'a chunked body: 200');
    settle('echo', 2);

    my ($a, $b) = ($t->hits('echo'))[-2, -1];
    is($b->{len}, 7, 'the shadow gets all of a chunked body');
    is($b->{sha1}, $a->{sha1}, 'the same as the target');
    is($b->{headers}{'content-length'}, 7, 'with its length');
    ok(!defined $b->{headers}{'transfer-encoding'},
       'and no Transfer-Encoding');
}

# --- a shadow never slows the client --------------------------------------

{
    my (@with, @without);
    my $c = $t->connect;
    for (1 .. 20) {
        my $r1 = $t->send_request($c, 'POST', '/kslow', body => '{"a":1}');
        my $r2 = $t->send_request($c, 'POST', '/knone', body => '{"a":1}');
        is($r1->{status} . $r2->{status}, '200200', 'keepalive pair answered')
            if $_ == 1;
        push @with, $r1->{time};
        push @without, $r2->{time};
    }

    my $s = shadow('kslow');
    cmp_ok($s->{inflight}, '>=', 1,
           'shadows were still running while the client went on');
    close $c;

    my $median = sub { my @s = sort { $a <=> $b } @_; $s[@s / 2] };
    my ($mw, $mo) = ($median->(@with), $median->(@without));
    diag(sprintf "p50 with a 1 s shadow %.1f ms, without %.1f ms",
                 $mw * 1000, $mo * 1000);
    cmp_ok(abs($mw - $mo), '<', 0.020,
           'p50 with a 1 s shadow is within 20 ms of no shadow');

    my $max = (sort { $b <=> $a } @with)[0];
    cmp_ok($max, '<', 0.5,
           'no request on the keepalive connection waited for a shadow');

    is($s->{sent}, 20, 'all 20 shadows were sent');

    $s = settle('kslow', 20);
    is($s->{agree}, 20, 'and all of them were judged later: agree');
    is($s->{vs_primary}{shadow_slower}, 20, 'the shadow was slower each time');
    cmp_ok($s->{vs_primary}{shadow_ms_sum}, '>=', 20 * 1000,
           'its latency sum counts its second each');

    # the same with mock models: one keepalive connection, never held
    $c = $t->connect;
    my @t = map { $t->send_request($c, 'POST', '/slow', body => '{}')->{time} }
            1 .. 3;
    close $c;
    cmp_ok((sort { $b <=> $a } @t)[0], '<', 0.5,
           'three requests in a row on one connection, none held by the '
           . '1 s shadow');
    settle('slow', 3);
}

# --- a failing shadow leaves the client untouched -------------------------

for my $case ([ 'err', 'a shadow answering 500' ],
              [ 'to', 'a shadow timing out (timeout=200ms)' ]) {
    my ($loc, $name) = @$case;
    my $res = $t->post("/$loc", '{"a":1}');
    is($res->{status}, 200, "$name: the client gets 200");
    is($res->{body}, $answer, "$name: and the primary's body as it came");
    ok(!defined $res->{headers}{'x-fanout-shadow'}, "$name: no trace of it");
    my $s = settle($loc, 1);
    is($s->{shadow_error}, 1, "$name: counted as shadow_error");
    is($s->{agree} + $s->{disagree}, 0, "$name: not compared");
}

{
    my $res = $t->post('/fail', '{"a":1}');
    is($res->{status}, 502, 'a failing primary: the client gets its 502');
    my $s = settle('fail', 1);
    is($s->{skipped}, 1, 'and the shadow is skipped: nothing to compare');
}

for my $case ([ 'ret', 'agree', 'a shadow answered at once (return 200)' ],
              [ 'nowhere', 'shadow_error', 'a shadow location answering 404' ],
              [ 'big', 'shadow_error', 'a shadow answer over '
                                       . 'subrequest_output_buffer_size' ]) {
    my ($loc, $want, $name) = @$case;
    my $res = $t->post("/$loc", '{"a":1}');
    is($res->{status} . $res->{body}, "200$answer",
       "$name: the client gets the primary's answer");
    my $s = settle($loc, 1);
    is($s->{$want}, 1, "$name: $want");
}
like($t->error_log, qr/fanout shadow "s" answered more than 16 bytes; raise "subrequest_output_buffer_size" in location "\/_big"/,
     'the too-large shadow answer is logged, with the directive to raise');

# --- max_inflight sheds, never queues -------------------------------------

{
    my $hits = () = $t->hits('slow');
    my @st = map { $t->post('/shed', '{"a":1}')->{status} } 1 .. 4;
    is("@st", '200 200 200 200', 'max_inflight=1: all clients answered');
    my $s = shadow('shed');
    is($s->{sent}, 1, 'one shadow sent while one was running');
    is($s->{shed}, 3, 'three shed');
    is($t->hits('slow') - $hits, 1, 'the slow model saw one shadow call');

    $s = settle('shed', 1);
    is($s->{inflight}, 0, 'the slot is given back');
    $t->post('/shed', '{"a":1}');
    is(shadow('shed')->{sent}, 2, 'and the next request shadows again');
    settle('shed', 2);
}

# --- percent= is sticky by the split key ----------------------------------

{
    for my $round (1 .. 2) {
        for my $u (1 .. 150) {
            my $res = $t->get("/pct?user=u$u");
            die "pct: $res->{status}" unless $res->{status} == 200;
        }
    }
    settle('pct', shadow('pct')->{sent});

    my %n;
    $n{ ($_->{uri} =~ /user=(u\d+)/)[0] }++ for $t->hits('users');
    my @twice = grep { $n{$_} == 2 } keys %n;
    is(scalar(keys %n), scalar(@twice),
       'each shadowed user was shadowed both times');
    my $users = keys %n;
    diag("percent=10 shadowed $users of 150 users");
    ok($users >= 5 && $users <= 30, 'about 10% of the users');
}

# --- sample=redis ---------------------------------------------------------

{
    $t->redis_cli('r', 'CONFIG', 'SET', 'stream-node-max-entries', '2');

    my $res = $t->post('/sample', '{"a":1}');
    my $id = $res->{headers}{'x-request-id'};
    settle('sample', 1);

    my $entry = $t->redis_cli('r', 'XRANGE', 'fanout:shadow:/sample:s', '-',
                              '+');
    like($entry, qr/request_id\n\Q$id\E\n/, 'a sample names the request id');
    like($entry, qr/primary\n"cat"\n/, 'the value the client got');
    like($entry, qr/shadow\n"dog"\n/, "and the shadow's");
    like($entry, qr/field\nlabel\n/, 'and the field');
    like($entry, qr/primary_ms\n\d+\nshadow_ms\n\d+$/,
         'and the latencies');

    $t->post('/sample', '{"a":1}') for 1 .. 29;
    my $s = settle('sample', 30);
    is($s->{sampled}, 30, 'every disagreement was sampled');
    my $len = $t->redis_cli('r', 'XLEN', 'fanout:shadow:/sample:s');
    chomp $len;
    ok($len >= 5 && $len < 30, "the stream is capped (MAXLEN ~ 5): $len");

    # a dead Redis changes nothing for the client
    $t->redis_signal('r', 'KILL');
    my @st = map { $t->post('/sample', '{"a":1}')->{status} } 1 .. 5;
    is("@st", '200 200 200 200 200', 'Redis dead: the clients get 200');
    $s = settle('sample', 35);
    is($s->{disagree}, 35, 'and the shadows are still compared');
    is($s->{sample_errors}, 5, 'the samples Redis could not take are counted');
}

# --- a client that goes away; a reload with shadows in flight -------------

{
    my $c = $t->connect;
    print $c "POST /abort HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
           . '{"a":1}';
    sleep 0.2;
    close $c;

    my $s = settle('abort', 1);
    is($s->{skipped}, 1, 'a client gone before its answer: the shadow is '
                         . 'skipped');
    is($s->{inflight}, 0, 'and nothing is left running');
}

{
    my $before = shadow('slow')->{agree};
    my $res = $t->post('/slow', '{"a":1}');
    is($res->{status}, 200, 'a shadow in flight, then a reload');
    $t->reload();
    my $s;
    for (1 .. 60) {
        $s = shadow('slow');
        last if $s->{agree} > $before;
        sleep 0.05;
    }
    is($s->{agree}, $before + 1,
       'the old worker still judged its shadow after the reload');
}

# --- shadows never take the last connections -----------------------------

{
    $t->run(prefix => 'tight', port => $t->port('tight'), connections => 24,
            http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_tight%%;
    location /_prim { internal; proxy_pass http://127.0.0.1:%%MOCK_prim%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /t { fanout_target m /_prim; fanout_merge first;
                  fanout_shadow s /_slow; }
    location = /fanout/status { fanout_status; }
}
EOC
    my $c = $t->connect($t->port('tight'));
    my @st = map { $t->send_request($c, 'POST', '/t', body => '{}')->{status} }
             1 .. 12;
    close $c;
    is("@st", join(' ', ('200') x 12),
       'worker_connections 24, 12 requests with 1 s shadows: all answered');

    my $res = $t->get('/fanout/status', port => $t->port('tight'));
    my $s = $res->{json}{locations}{'/t'}{shadows}{s};
    cmp_ok($s->{shed}, '>=', 1, "shadows shed as connections ran short "
                                . "(sent $s->{sent}, shed $s->{shed})");
    cmp_ok($s->{sent}, '>=', 4, 'after some were sent');
    unlike($t->error_log('tight'), qr/worker_connections are not enough/,
           'the worker never ran out of connections');
    sleep 1.2;
}

# --- metrics --------------------------------------------------------------

{
    my $m = $t->get('/metrics')->{body};
    like($m, qr/^fanout_shadow_results_total\{location="\/label",shadow="s",result="disagree"\} 1$/m,
         'Prometheus: fanout_shadow_results_total');
    like($m, qr/^fanout_shadow_vs_primary_total\{location="\/slow",shadow="s",result="pairs"\} \d+$/m,
         'Prometheus: fanout_shadow_vs_primary_total');
}

$t->outcomes_add_up;
$t->done;
