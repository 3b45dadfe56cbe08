# fanout_status: counters summed over worker processes through the zone,
# JSON and Prometheus formats, kept across a reload.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->mock('a', ms => 20);
$t->mock('b', ms => 40, status => 503);

my %conf = (workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
log_format w '$pid';
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    access_log %%TESTDIR%%/nginx/pids.log w;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/?ms=700; }
    location /p { fanout_target a /_a; fanout_target b /_b; }
    location /slow { fanout_target a /_slow; }
    location = /fanout/status { access_log off; fanout_status; }
    location = /metrics { access_log off; fanout_status prometheus; }
}
EOC

$t->run(%conf);

my $n = 60;
my @res = $t->parallel($n, 'GET', '/p');
is(scalar(grep { $_->{status} == 200 } @res), $n, "$n answers of 200");

open my $fh, '<', $t->dir . '/nginx/pids.log' or die;
my %pids = map { chomp; $_ => 1 } <$fh>;
close $fh;
cmp_ok(scalar keys %pids, '==', 2, 'both workers served requests')
    or diag(join ' ', keys %pids);

my $st = $t->status_json;
my $p = $st->{locations}{'/p'};
is($p->{requests}, $n, 'requests summed over both workers');
is($p->{responses}{200}, $n, '200s');
is($p->{latency_ms}{count}, $n, 'latency count');
is($p->{targets}{a}{requests}, $n, 'target a requests');
is($p->{targets}{a}{ok}, $n, 'target a ok');
is($p->{targets}{b}{http_5xx}, $n, 'target b http_5xx');
my $sum = 0;
$sum += $_ for values %{ $p->{latency_ms}{buckets} };
is($sum, $n, 'histogram buckets add up to the count');
cmp_ok($p->{targets}{a}{latency_ms}{sum}, '>=', 20 * $n, 'latency sum in ms');

# Prometheus text format

my $m = $t->get('/metrics');
is($m->{status}, 200, 'metrics: 200');
like($m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'Prometheus content type');
like($m->{body}, qr/^# TYPE fanout_requests_total counter$/m, 'TYPE line');
like($m->{body}, qr/^fanout_requests_total\{location="\/p"\} $n$/m,
     'requests counter');
like($m->{body},
     qr/^fanout_target_results_total\{location="\/p",target="b",result="http_5xx"\} $n$/m,
     'per-target outcomes');
like($m->{body},
     qr/^fanout_latency_seconds_bucket\{location="\/p",le="\+Inf"\} $n$/m,
     '+Inf bucket equals the count');
like($m->{body},
     qr/^fanout_latency_seconds_count\{location="\/p"\} $n$/m, 'count');

my @bad = grep { !/^#/ && !/^[a-z_]+(\{[^}]*\})? [0-9.]+$/ }
          split /\n/, $m->{body};
is_deeply(\@bad, [], 'every sample line is well formed');

my $prev = -1;
my $mono = 1;
for ($m->{body} =~ /^fanout_latency_seconds_bucket\{location="\/p",le="[^"]+"\} (\d+)$/mg) {
    $mono &&= $_ >= $prev;
    $prev = $_;
}
ok($mono, 'buckets are cumulative');

# a reload keeps the counters, and an in-flight fan-out ends normally

my @old = $t->workers;
my $pid = fork();
if ($pid == 0) {
    my $r = $t->get('/slow');
    exit($r->{status} == 200 ? 0 : 1);
}
sleep 0.2;

ok($t->reload, 'reload');
waitpid($pid, 0);
is($? >> 8, 0, 'the fan-out in flight during the reload answered 200');

ok($t->workers_gone(@old), 'old workers exit: none stuck shutting down');

$st = $t->status_json;
is($st->{locations}{'/p'}{requests}, $n, 'counters survive the reload');
is($st->{locations}{'/slow'}{responses}{200}, 1, 'the in-flight one counted');

$t->outcomes_add_up;
$t->done;
