# fanout_limit tokens=: token budgets that hold under concurrency.  Each
# call's estimate is reserved before any model is called (429 with the
# RateLimit-* headers in tokens when it does not fit), and settled at the
# request's end with the answer's usage: given back when less, charged
# when more, all of it back for a failed call; a cache hit costs nothing;
# the same in Redis for a fleet of three behind HAProxy.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->redis('r');

# an LLM: 200 ms a call, 10 tokens in, the request's max_tokens out
$t->mock('llm', mode => 'llm', ms => 200);
$t->mock('fast', mode => 'llm', used => 20);
$t->mock('heavy', mode => 'llm', used => 300);
$t->mock('down', mode => 'llm', status => 500);

my @names = qw(one two three);

for my $name (@names) {
    $t->run(prefix => $name, port => $t->port($name),
            workers => ($name eq 'one' ? 2 : 1), http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_$name%% reuseport;
    location /_llm { internal; proxy_pass http://127.0.0.1:%%MOCK_llm%%/; }
    location /_fast { internal; proxy_pass http://127.0.0.1:%%MOCK_fast%%/; }
    location /_heavy { internal; proxy_pass http://127.0.0.1:%%MOCK_heavy%%/; }
    location /_down { internal; proxy_pass http://127.0.0.1:%%MOCK_down%%/; }

    location /local {
        fanout_target m /_llm;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
        fanout_timeout 5s;
    }
    location /cluster {
        fanout_target m /_llm;
        fanout_limit key=\$http_x_tenant tokens=1000/m scope=cluster;
        fanout_timeout 5s;
    }
    location /two {
        fanout_target a /_fast;
        fanout_target b /_fast;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /settle {
        fanout_target m /_fast;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /settle_cluster {
        fanout_target m /_fast;
        fanout_limit key=\$http_x_tenant tokens=1000/m scope=cluster;
    }
    location /debt {
        fanout_target m /_heavy;
        fanout_limit key=\$http_x_tenant tokens=1000/m estimate=10;
    }
    location /lie {
        fanout_target m /_heavy;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /failed {
        fanout_target m /_down;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /both {
        fanout_target m /_llm;
        fanout_limit key=\$http_x_tenant rate=100r/m burst=100;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /hedged {
        fanout_target m /_llm;
        fanout_hedge after=50ms budget=100%;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
        fanout_timeout 5s;
    }
    location /retried {
        fanout_target m /_down;
        fanout_retry attempts=2 backoff=1ms max_backoff=2ms;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location /cached {
        fanout_target m /_fast;
        fanout_cache ttl=60s;
        fanout_limit key=\$http_x_tenant tokens=1000/m;
    }
    location = /health { fanout_health /local; }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC
}

sleep 0.3;

my $port = $t->port('one');

sub body {
    my ($max) = @_;
    return encode_json({ model => 'm', max_tokens => $max,
                         messages => [ { role => 'user', content => 'hi' } ] });
}

sub body_nocap {
    return encode_json({ model => 'm',
                         messages => [ { role => 'user', content => 'hi' } ] });
}

sub tenant { (headers => { 'X-Tenant' => $_[0] }) }

# the estimate: max_tokens + ceil(body bytes / 4)
sub estimate { my ($max) = @_; $max + int((length(body($max)) + 3) / 4) }

sub usage_sum {
    my $sum = 0;
    for my $r (@_) {
        next unless $r->{status} == 200;
        $sum += $_->{usage}{total_tokens} for values %{ $r->{json}{results} };
    }
    return $sum;
}

# 1. 50 concurrent requests against 1,000 tokens a minute, one instance
#    (two workers): the reservations hold, whatever the interleaving

my $calls0 = () = $t->hits('llm');
my @res = $t->concurrent([ map {
    [ 'POST', '/local', body => body(30), port => $port, tenant('a') ]
} 1 .. 50 ]);

my $ok = grep { $_->{status} == 200 } @res;
my @refused = grep { $_->{status} == 429 } @res;
my $used = usage_sum(@res);
my $calls = () = $t->hits('llm');

cmp_ok($used, '<=', 1050, "one instance: $ok of 50 admitted, $used tokens used (<= 1,050)");
cmp_ok($ok, '>=', int(1000 / estimate(30)) - 1, 'as many as the budget holds');
cmp_ok($used, '>=', 40 * $ok, 'each admitted call used its 40');
is($ok + @refused, 50, 'the others: 429');
is($calls - $calls0, $ok, 'no model call for a refused request');

my $r = $refused[0];
is($r->{json}{error}, 'token_limited', 'error: token_limited');
is($r->{json}{limit}, '1000/m', 'limit: as written');
is($r->{json}{tokens}, estimate(30), 'tokens: what the request needed');
cmp_ok($r->{headers}{'retry-after'}, '>=', 1, 'Retry-After');
is($r->{headers}{'ratelimit-limit'}, 1000, 'RateLimit-Limit in tokens');
is($r->{headers}{'ratelimit-policy'}, '1000;w=60;burst=1000;qu="tokens"',
   'RateLimit-Policy: a minute, the burst, qu="tokens"');
cmp_ok($r->{headers}{'ratelimit-remaining'}, '<', estimate(30),
       'RateLimit-Remaining: less than the request needed');

# 2. settled: what was not used comes back at once (the fast model uses
#    30 tokens a call: 10 in, 20 out)

{
    my $est = estimate(500);
    my @st = map { $t->post('/settle', body(500), tenant('g'), port => $port) } 1 .. 3;
    is_deeply([ map { $_->{status} } @st ], [ 200, 200, 200 ],
              "three requests reserving $est, 30 used each: all pass");
    is($st[2]{json}{results}{m}{usage}{total_tokens}, 30, 'each used 30');
    my $left = $st[2]{headers}{'ratelimit-remaining'};
    cmp_ok($left, '>=', 1000 - 60 - $est - 5,
           "remaining $left: the others' 30 and this one's reservation");
    cmp_ok($left, '<=', 1000 - 60 - $est + 5, 'no more');
}

# 3. charged: a model using more than the estimate= leaves a debt

{
    my @st;
    for my $i (1 .. 5) {
        push @st, $t->post('/debt', body_nocap(), tenant('d'), port => $port)->{status};
    }
    is_deeply(\@st, [ 200, 200, 200, 200, 429 ],
              'estimate=10, 310 used each: the fifth waits out the debt');
}

# 3b. a model's word is bounded: a call capped at max_tokens=1 is not
#     charged the 310 its model claims, only its cap and its body's bytes

{
    my @st;
    for my $i (1 .. 8) {
        push @st, $t->post('/lie', body(1), tenant('l'), port => $port)->{status};
    }
    is_deeply(\@st, [ (200) x 8 ],
              'eight calls a lying model says used 310 each: charged their bound');
}

# 4. a failed call gives all of its reservation back

{
    my @st;
    for my $i (1 .. 5) {
        push @st, $t->post('/failed', body(400), tenant('f'), port => $port)->{status};
    }
    is_deeply(\@st, [ (502) x 5 ],
              'five failed calls of ' . estimate(400) . ' each: none refused');
}

# 5. every call is reserved: two targets, twice the estimate

{
    my $est = estimate(300);
    my $r1 = $t->post('/two', body(300), tenant('w'), port => $port);
    is($r1->{status}, 200, 'two targets: admitted');
    my $left = $r1->{headers}{'ratelimit-remaining'};
    cmp_ok($left, '<=', 1000 - 2 * $est, "two calls reserved (remaining $left)");
    my $r2 = $t->post('/two', body(300), tenant('w'), port => $port);
    is($r2->{status}, 200, 'settled to their usage: a second one passes');
    my $r3 = $t->post('/two', body(600), tenant('w2'), port => $port);
    is($r3->{status}, 413, 'two calls of ' . estimate(600) . ': over the burst together');
}

# 6. over the whole burst: 413 at once, never a retry that cannot work

{
    my $r1 = $t->post('/local', body(5000), tenant('big'), port => $port);
    is($r1->{status}, 413, 'a request needing more than the burst: 413');
    is($r1->{json}{error}, 'too_many_tokens', 'error: too_many_tokens');
    is($r1->{json}{burst}, 1000, 'burst: the budget\'s');
}

# 7. with a request limit: both, each in its unit; a refusal's headers
#    are those of the budget that refused

{
    my @r = $t->concurrent([ map {
        [ 'POST', '/both', body => body(400), port => $port, tenant('b') ]
    } 1 .. 4 ]);
    my @no = grep { $_->{status} == 429 } @r;
    is(scalar(grep { $_->{status} == 200 } @r), 2,
       'a request limit and a token budget: two of ' . estimate(400) . ' fit');
    is(scalar @no, 2, 'the budget refuses the others, the request limit would not');
    is($no[0]{json}{error}, 'token_limited', 'the budget said no');
    like($no[0]{headers}{'ratelimit-policy'} // '', qr/qu="tokens"/,
         'and the headers are the budget\'s');
}

# 8. a cache hit costs nothing: reserved once for six requests

{
    my $r1 = $t->post('/cached', body(400), tenant('c'), port => $port);
    is($r1->{status}, 200, 'a miss: reserved, called');
    my @hits = map { $t->post('/cached', body(400), tenant('c'), port => $port) } 1 .. 5;
    is_deeply([ map { $_->{status} } @hits ], [ (200) x 5 ], 'five hits');
    my $lims = $t->get('/fanout/status', port => $port)
                 ->{json}{locations}{'/cached'}{limit}{limits};
    my ($c) = values %$lims;
    is($c->{tokens_reserved}, estimate(400), 'one reservation, for the miss only');
    is($c->{tokens_used}, 30, 'and what it used');
}

# 9. a fleet of three behind HAProxy, one budget in Redis

{
    my $lb = $t->haproxy(@names);
    sleep 1;

    my $fast0 = () = $t->hits('llm');
    my @res = $t->concurrent([ map {
        [ 'POST', '/cluster', body => body(30), port => $lb, tenant('fleet') ]
    } 1 .. 50 ]);
    my $ok = grep { $_->{status} == 200 } @res;
    my $used = usage_sum(@res);
    my $calls = () = $t->hits('llm');

    cmp_ok($used, '<=', 1050,
           "three instances behind HAProxy: $ok of 50 admitted, $used tokens used (<= 1,050)");
    cmp_ok($ok, '>=', int(1000 / estimate(30)) - 2, 'as many as the budget holds');
    is($calls - $fast0, $ok, 'no model call for a refused request');
    my ($r) = grep { $_->{status} == 429 } @res;
    is($r->{headers}{'ratelimit-policy'}, '1000;w=60;burst=1000;qu="tokens"',
       'the fleet\'s 429: headers in tokens');

    # settled in Redis: three in a row across instances pass only if each
    # gave back what it did not use
    my @st;
    for my $i (0 .. 2) {
        push @st, $t->post('/settle_cluster', body(400), tenant('sc'),
                           port => $t->port($names[$i]));
        # the settlement goes to Redis as the request ends, unwaited for
        sleep 0.1;
    }
    is_deeply([ map { $_->{status} } @st ], [ 200, 200, 200 ],
              'cluster: three of ' . estimate(400) . ' pass, one on each instance: settled in Redis');
    my $left = $st[2]{headers}{'ratelimit-remaining'};
    cmp_ok($left, '>=', 1000 - 60 - estimate(400) - 5,
           "cluster: remaining $left, the others' 30 each and this reservation");
}

# a hedge and a retry draw their call's reservation again when they
# start; what they did not use comes back

{
    my $est = estimate(100);
    my $r1 = $t->post('/hedged', body(100), tenant('h'), port => $port);
    is($r1->{status}, 200, 'a hedged call (the model takes 200 ms, the hedge goes at 50)');
    my $lim = $t->get('/fanout/status', port => $port)
                ->{json}{locations}{'/hedged'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};
    is($lim->{tokens_reserved}, 2 * $est, "the hedge drew a second $est");
    is($lim->{tokens_used}, 110, 'and only the answer that counted was charged: 110');
    my $r2 = $t->post('/hedged', body(100), tenant('h'), port => $port);
    cmp_ok($r2->{headers}{'ratelimit-remaining'}, '>=', 1000 - 110 - $est - 5,
           "the loser's share given back (remaining $r2->{headers}{'ratelimit-remaining'})");

    my $r3 = $t->post('/retried', body(100), tenant('rt'), port => $port);
    is($r3->{status}, 502, 'a call retried, failed twice');
    $lim = $t->get('/fanout/status', port => $port)
             ->{json}{locations}{'/retried'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};
    is($lim->{tokens_reserved}, 2 * $est, "the retry drew a second $est");
    is($lim->{tokens_used}, 0, 'both failed: nothing charged');
}

# attacked: a client that leaves while its call is at the model, Redis
# emptied between a reservation and its settlement, a reload with
# reservations under way

{
    my $port1 = $t->port('one');
    my $before = $t->get('/fanout/status', port => $port1)
                   ->{json}{locations}{'/local'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};

    # the model takes 200 ms: the client goes after 50
    my $s = $t->connect($port1);
    my $b = body(100);
    print $s "POST /local HTTP/1.1\r\nHost: x\r\nX-Tenant: gone\r\n"
           . "Content-Length: " . length($b) . "\r\n\r\n$b";
    sleep 0.05;
    close $s;
    sleep 0.4;

    my $after = $t->get('/fanout/status', port => $port1)
                  ->{json}{locations}{'/local'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};
    is($after->{tokens_used} - $before->{tokens_used}, estimate(100),
       'a client gone while its call ran: its reservation stands (the model worked)');

    # Redis emptied while a cluster call is at the model
    my @r = $t->concurrent([ [ 'POST', '/cluster', body => body(100),
                               port => $port1, tenant('flushed') ] ],
                           during => sub {
                               sleep 0.05;
                               $t->redis_cli('r', 'FLUSHALL');
                           });
    is($r[0]{status}, 200, 'Redis emptied under a reservation: answered');
    is($t->post('/cluster', body(100), tenant('flushed'), port => $port1)->{status},
       200, '  and the budget starts afresh, no error');

    # a reload while calls hold reservations: settled by the old workers
    my @z = $t->concurrent([ map { [ 'POST', '/local', body => body(100),
                                     port => $port1, tenant('reload') ] } 1 .. 4 ],
                           during => sub { sleep 0.05; $t->reload('one') });
    is(scalar(grep { $_->{status} == 200 } @z), 4, 'a reload with 4 reservations under way: all answered');
    sleep 0.3;
    my $after2 = $t->post('/local', body(100), tenant('reload'), port => $port1);
    is($after2->{status}, 200, '  and the budget, settled, still serves');
    cmp_ok($after2->{headers}{'ratelimit-remaining'}, '>=', 1000 - 5 * 110 - estimate(100) - 10,
           "  with what the four used given back (remaining $after2->{headers}{'ratelimit-remaining'})");
}

# counters

my $s = $t->get('/fanout/status', port => $port)->{json};
my $c = $s->{locations}{'/settle'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};
ok($c, 'status: the budget by its key and tokens=') or diag(encode_json($s));
cmp_ok($c->{tokens_reserved}, '>', $c->{tokens_used},
       "status: tokens_reserved $c->{tokens_reserved} > tokens_used $c->{tokens_used}");
is($c->{tokens_used}, 90, 'tokens_used: three calls of 30');

my $m = $t->get('/metrics', port => $port)->{body};
like($m, qr/^fanout_limit_tokens_total\{location="\/settle",limit="\$http_x_tenant tokens=1000\/m",kind="used"\} 90$/m,
     'Prometheus: fanout_limit_tokens_total by kind');

# configuration mistakes fail nginx -t

for my $case (
    [ 'tokens=1000/m rate=1r/s', qr/cannot go with/ ],
    [ 'tokens=1000/w', qr/tokens a second, minute, hour or day/ ],
    [ 'tokens=1000/m delay=5', qr/cannot go with "rate=", "cost=" or "delay="/ ],
    [ 'rate=1r/s estimate=10', qr/"estimate=" goes with "tokens="/ ],
) {
    my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /x { fanout_target m /_m; fanout_limit key=a $case->[0]; }
}
EOC
    isnt($rc, 0, "nginx -t refuses $case->[0]");
    like($out, $case->[1], 'and says why');
    like($out, qr/nginx\.conf:\d+/, 'with the file and line');
}

$t->done;
