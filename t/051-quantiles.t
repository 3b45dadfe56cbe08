# The status page's recent quantiles: p50, p90, p99 and p99.9 over the
# last minute, per location, target, variant and shadow, summed over the
# workers, each within its bucket (never under the true latency, at most
# 25% over it), and Prometheus keeping its histograms.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->mock('fast', ms => 30);
$t->mock('slow', ms => 150);

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    location /_fast { internal; proxy_pass http://127.0.0.1:%%MOCK_fast%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /p {
        fanout_target fast /_fast;
        fanout_target slow /_slow;
        fanout_split $arg_u { * v1; }
        fanout_shadow sh /_fast;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

my $n = 20;
my @r = $t->concurrent([map { ['POST', "/p?u=$_", body => '{"x":1}'] } 1 .. $n]);
is(scalar(grep { $_->{status} == 200 } @r), $n, "$n fan-outs answered");

# the shadows end after the client's answer
my $st;
for (1 .. 100) {
    $st = $t->status_json;
    last if ($st->{locations}{'/p'}{shadows}{sh}{latency_ms}{recent}{samples} // 0) >= $n;
    sleep 0.05;
}

my $loc = $st->{locations}{'/p'};
my $fast = $loc->{targets}{fast}{latency_ms}{recent};
my $slow = $loc->{targets}{slow}{latency_ms}{recent};

is($fast->{seconds}, 60, 'the window is the last minute');
is($fast->{samples}, $n, 'every call of both workers counted');
# against the latencies the answers' meta reports for the same calls
sub truth {
    my ($name, $per_mille) = @_;
    my @v = sort { $a <=> $b }
            map { $_->{json}{meta}{latency_ms}{$name} } @r;
    my $rank = int(($n * $per_mille + 999) / 1000) || 1;
    return $v[$rank - 1];
}

for my $q ([fast => 'p50', 500], [fast => 'p99', 990], [slow => 'p50', 500],
           [slow => 'p90', 900])
{
    my ($name, $key, $pm) = @$q;
    my $got = $loc->{targets}{$name}{latency_ms}{recent}{$key};
    my $true = truth($name, $pm);
    ok($got >= $true && $got <= $true * 1.25 + 1,
       "$name $key: $got ms for a true $true ms (its bucket's bound)");
}

ok($fast->{p50} >= 30, 'a 30 ms target is never under 30 ms');
ok($slow->{p50} <= $slow->{p90} && $slow->{p90} <= $slow->{p99}
   && $slow->{p99} <= $slow->{'p99.9'}, 'quantiles never fall as they rise');

my $lr = $loc->{latency_ms}{recent};
is($lr->{samples}, $n, 'the location: every request');
ok($lr->{p50} >= 150, "the location waits for its slowest target ($lr->{p50} ms)");

is($loc->{variants}{v1}{latency_ms}{recent}{samples}, $n, 'a variant has them');
is($loc->{shadows}{sh}{latency_ms}{recent}{samples}, $n, 'a shadow has them');

my $prom = $t->get('/metrics')->{body};
like($prom, qr/^fanout_target_latency_seconds_bucket\{location="\/p",target="fast",le="[^"]+"\} \d+$/m,
     'Prometheus keeps its histograms');

$t->done;
