# First-token and token metrics per target: the time to an answer's first
# bytes for every attempt, a stream's gaps between events, the tokens the
# answers say they used (a JSON answer's usage, a stream's last event), in
# the status and in Prometheus; and a token budget settled with a
# stream's usage.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

# a stream: its first event after 100 ms, then one every 50 ms; its last
# event says 7 tokens in, 5 out
$t->mock('sse', mode => 'sse', first => 100, gap => 50, events => 5,
         usage => 1, prompt => 7, used => 5);
# an LLM answering JSON after 80 ms: 10 in, 20 out
$t->mock('llm', mode => 'llm', ms => 80, used => 20);
# a classifier: no usage at all
$t->mock('plain', ms => 10);

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_sse { internal; proxy_pass http://127.0.0.1:%%MOCK_sse%%/;
                     proxy_buffering off; }
    location /_llm { internal; proxy_pass http://127.0.0.1:%%MOCK_llm%%/; }
    location /_plain { internal; proxy_pass http://127.0.0.1:%%MOCK_plain%%/; }

    location /llm { fanout_target m /_llm; fanout_target c /_plain; }
    location /stream {
        fanout_target s /_sse;
        fanout_merge first;
        fanout_timeout 5s;
    }
    location /budget {
        fanout_target s /_sse;
        fanout_merge first;
        fanout_timeout 5s;
        fanout_limit key=$http_x_tenant tokens=1000/m;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

my $body = encode_json({ model => 'm', max_tokens => 500,
                         messages => [ { role => 'user', content => 'hi' } ] });

for my $i (1 .. 3) {
    is($t->post('/llm', $body)->{status}, 200, "JSON answers: request $i");
}

for my $i (1 .. 2) {
    my $r = $t->post('/stream', $body);
    is($r->{status}, 200, "a stream: request $i");
    like($r->{body}, qr/"usage":\{"prompt_tokens":7/, '  its usage event came through');
}

sub buckets {
    my ($h) = @_;
    my $n = 0;
    $n += $_ for values %$h;
    return $n;
}

sub below {
    my ($h, $ms) = @_;
    my $n = 0;
    for my $b (keys %$h) {
        $n += $h->{$b} if $b ne '+Inf' && $b < $ms;
    }
    return $n;
}

my $s = $t->status_json->{locations};

# time to first chunk: every attempt with an answer

my $m = $s->{'/llm'}{targets}{m};
is(buckets($m->{first_chunk_ms}), 3, 'JSON: three times to first chunk');
is(below($m->{first_chunk_ms}, 80), 0, '  none under the model\'s 80 ms');
is($m->{tokens}{input}, 30, 'JSON: 10 tokens in, three times');
is($m->{tokens}{output}, 60, 'JSON: 20 tokens out, three times');
is(buckets($m->{chunk_gap_ms}), 0, 'JSON: no stream, no gaps');

my $c = $s->{'/llm'}{targets}{c};
is(buckets($c->{first_chunk_ms}), 3, 'a classifier: its times to first chunk too');
is($c->{tokens}{input} + $c->{tokens}{output}, 0, '  and no tokens: it says none');

my $st = $s->{'/stream'}{targets}{s};
is(buckets($st->{first_chunk_ms}), 2, 'a stream: two times to first chunk');
is(below($st->{first_chunk_ms}, 100), 0, '  none under its first event\'s 100 ms');
cmp_ok(buckets($st->{chunk_gap_ms}), '>=', 2 * 5, 'a stream: its gaps between events counted');
cmp_ok(below($st->{chunk_gap_ms}, 25), '<=', 2, '  most near its 50 ms');
is($st->{tokens}{input}, 14, 'a stream: 7 in from its last event, twice');
is($st->{tokens}{output}, 10, 'a stream: 5 out, twice');

my $prom = $t->get('/metrics')->{body};
like($prom, qr/^fanout_target_time_to_first_chunk_seconds_bucket\{location="\/llm",target="m",le="0\.1"\} \d+$/m,
     'Prometheus: fanout_target_time_to_first_chunk_seconds');
like($prom, qr/^fanout_target_time_per_output_chunk_seconds_count\{location="\/stream",target="s"\} \d+$/m,
     'Prometheus: fanout_target_time_per_output_chunk_seconds');
like($prom, qr/^fanout_target_token_usage_total\{location="\/llm",target="m",type="input"\} 30$/m,
     'Prometheus: fanout_target_token_usage_total by type');

# a token budget settles a stream with its last event's usage

my $r = $t->post('/budget', $body, headers => { 'X-Tenant' => 'a' });
is($r->{status}, 200, 'a stream under a token budget');
sleep 0.3;
my $lim = $t->status_json->{locations}{'/budget'}{limit}{limits}{'$http_x_tenant tokens=1000/m'};
cmp_ok($lim->{tokens_reserved}, '>', 500, "  reserved $lim->{tokens_reserved}");
is($lim->{tokens_used}, 12, '  settled with the stream\'s usage: 12');

$t->done;
