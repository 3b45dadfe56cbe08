# conf-examples/grafana-dashboard.json and prometheus-alerts.yml: every
# metric they query, and every label value they match with "=", exists in
# a live fanout_status prometheus output of a location using every
# feature; the alerts parse (promtool check rules when Debian's prometheus
# package is there, else as YAML) and the dashboard is valid JSON whose
# panels each query something.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use FindBin;
use Time::HiRes qw(sleep);

my $root = "$FindBin::Bin/..";

my $t = FT->new;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('m', mode => 'model', proto => 'v1');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_m { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/; }
    location /p {
        fanout_target a /_a;
        fanout_split $arg_u { 50% candidate; * control; }
        fanout_shadow sh /_a;
        fanout_limit key=$remote_addr rate=100r/s burst=10;
        fanout_breaker failures=5;
        fanout_retry attempts=2;
        fanout_hedge after=50ms;
        fanout_cache ttl=10s l1=1m;
    }
    location /b {
        fanout_target m /_m batch=4 batch_wait=5ms;
    }
    location = /metrics { fanout_status prometheus; }
}
EOC

$t->post("/p?u=$_", '{"x":1}') for 1 .. 6;
$t->post('/b', '{"instances":[1]}');
sleep 0.3;

my $live = $t->get('/metrics')->{body};

# series: name => [ { label => value } ... ]
my %series;
for (split /\n/, $live) {
    next if /^#/ || !/^(\w+)(?:\{(.*)\})? /;
    my ($name, $labels) = ($1, $2 // '');
    my %l = $labels =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
    push @{ $series{$name} }, \%l;
}
ok(scalar(keys %series) > 30, scalar(keys %series) . ' metrics in the live output');

# "metric{label="value",...}" in a PromQL expression, and bare names
sub check_expr {
    my ($where, $expr) = @_;
    my @bad;

    for my $name ($expr =~ /\b(fanout_\w+)/g) {
        push @bad, "no metric $name" unless $series{$name};
    }

    while ($expr =~ /\b(fanout_\w+)\{([^}]*)\}/g) {
        my ($name, $sel) = ($1, $2);
        next unless $series{$name};

        while ($sel =~ /(\w+)="([^"]*)"/g) {
            my ($k, $v) = ($1, $2);
            # variants and locations are the user's own names
            next if $k eq 'variant' || $k eq 'location';
            push @bad, "$name has no $k=\"$v\""
                unless grep { ($_->{$k} // '') eq $v } @{ $series{$name} };
        }
    }

    ok(!@bad, "$where: " . (@bad ? join('; ', @bad) : 'every metric and label exists'));
}

# the dashboard
my $dash = eval {
    decode_json(FT::read_text("$root/conf-examples/grafana-dashboard.json"))
};
ok($dash && $dash->{panels}, 'the dashboard is valid JSON');

my @exprs;
for my $p (@{ $dash->{panels} || [] }) {
    next if $p->{type} eq 'row';
    my @e = map { $_->{expr} } @{ $p->{targets} || [] };
    ok(@e, "panel \"$p->{title}\" queries something") or next;
    check_expr("panel \"$p->{title}\"", $_) for @e;
    push @exprs, @e;
}

like(join(' ', @exprs), qr/histogram_quantile/, 'it shows latency quantiles');
for my $m (qw(fanout_target_breaker_state fanout_cache_total
              fanout_limit_requests_total fanout_variant_requests_total
              fanout_shadow_results_total fanout_target_results_total))
{
    like(join(' ', @exprs), qr/\b$m\b/, "it shows $m");
}

# the alerts
my $rules = "$root/conf-examples/prometheus-alerts.yml";

SKIP: {
    my $promtool = `sh -c 'command -v promtool'`;
    chomp $promtool;
    skip 'promtool is not installed (Debian package prometheus)', 2
        unless $promtool;
    my $out = `$promtool check rules $rules 2>&1`;
    is($?, 0, "promtool check rules: $out" =~ s/\n/ /gr);

    # the exposition itself: names, units, HELP and TYPE lines (promtool
    # reads it on stdin)
    my $dir = $t->dir;
    FT::write_file("$dir/live.prom", $live);
    $out = `$promtool check metrics < $dir/live.prom 2>&1`;
    is($?, 0, 'promtool check metrics: the live output is clean')
        or diag($out);
}

require CPAN::Meta::YAML;
my $yaml = CPAN::Meta::YAML->read($rules);
ok($yaml, 'the alerts are YAML') or diag(CPAN::Meta::YAML->errstr);

my @alerts = map { @{ $_->{rules} } } @{ $yaml->[0]{groups} || [] };
my %names = map { $_->{alert} => 1 } @alerts;
for my $a (qw(FanoutBreakerOpen FanoutShadowDisagrees
              FanoutVariantErrorsAboveControl FanoutCacheErrors
              FanoutRedisDown))
{
    ok($names{$a}, "alert $a");
}
check_expr("alert $_->{alert}", $_->{expr}) for @alerts;

$t->done;
