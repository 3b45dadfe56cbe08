# max_inflight=auto: a concurrency limit learned from the model's latency.
# A GPU-like model (a Lua model in its own nginx: 4 slots, 50 ms a call,
# the rest waiting inside it) under 16 clients that never stop: the limit
# settles near the model's slots (not at the clients' 16, nor at max), the
# probe measures the model's latency unloaded, calls over the limit wait in
# the queue and none is refused, and the learned state shows in the status
# and in Prometheus.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);

my $mods = '/usr/lib/nginx/modules';
FT::needs('nginx');
unless (-f "$mods/ngx_http_lua_module.so") {
    fail("needs Debian's libnginx-mod-http-lua ($mods/ngx_http_lua_module.so)");
    done_testing();
    exit;
}

my $t = FT->new;

# the model runs on Debian's nginx, whose Lua module it loads (FT_NGINX
# may be an nginx.org build of another version: make test-compat)
{
    local $FT::NGINX = '/usr/sbin/nginx';
    $t->run(prefix => 'gpu', port => $t->port('gpu'), raw => <<"EOC");
load_module $mods/ndk_http_module.so;
load_module $mods/ngx_http_lua_module.so;
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log off;
    init_worker_by_lua_block { gpu = require("ngx.semaphore").new(4) }
    server {
        listen 127.0.0.1:%%PORT_gpu%%;
        location / {
            content_by_lua_block {
                local ok = gpu:wait(30)
                if not ok then return ngx.exit(503) end
                ngx.sleep(0.05)
                gpu:post(1)
                ngx.header.content_type = "application/json"
                ngx.print('{"ok":1}')
            }
        }
    }
}
EOC
}

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    location /_gpu { internal; proxy_pass http://127.0.0.1:%%PORT_gpu%%/; }
    location /auto {
        fanout_target gpu /_gpu max_inflight=auto:1:64 queue=64;
        fanout_timeout 5s;
    }
    location = /fanout/status { fanout_status; }
    location = /metrics { fanout_status prometheus; }
}
EOC

# 16 clients, each asking again as soon as it has its answer, for 6 s
my $dir = $t->dir;
my @pids;
for my $i (1 .. 16) {
    my $pid = fork() // die;
    if ($pid == 0) {
        my (%n, $end);
        $end = time + 6;
        while (time < $end) {
            my $r = $t->post('/auto', '{"x":1}', timeout => 10);
            $n{$r->{status} // 0}++;
        }
        FT::write_file("$dir/client.$i", join(' ', map { "$_=$n{$_}" } sort keys %n));
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

# the limit while the load runs, in the last seconds
my @limits;
sleep 3;
for (1 .. 6) {
    push @limits, $t->status_json->{locations}{'/auto'}{targets}{gpu}{inflight_limit}{current} // 0;
    sleep 0.5;
}
waitpid($_, 0) for @pids;

my (%total);
for my $i (1 .. 16) {
    for (split / /, FT::read_text("$dir/client.$i")) {
        my ($s, $n) = split /=/;
        $total{$s} += $n;
    }
}

my $served = $total{200} // 0;
my $other = 0;
$other += $total{$_} for grep { $_ != 200 } keys %total;
cmp_ok($served, '>', 200, "16 clients for 6 s: $served answered 200");
is($other, 0, '  none refused or failed (' . join(', ', map { "$_: $total{$_}" } sort keys %total) . ')');

my @sorted = sort { $a <=> $b } @limits;
my $median = $sorted[@sorted / 2];
ok($median >= 4 && $median <= 14,
   "the limit settles near the model's 4 slots, not at the clients' 16 nor at 64 (median $median of @limits)");

my $st = $t->status_json->{locations}{'/auto'}{targets}{gpu};
my $rtt = $st->{inflight_limit}{min_rtt_ms} // 0;
ok($rtt >= 40 && $rtt <= 150, "the probe measured the model unloaded: min_rtt_ms $rtt (50 ms a call)");
cmp_ok($st->{inflight_limit}{probes} // 0, '>=', 1, '  probes: ' . ($st->{inflight_limit}{probes} // 0));
cmp_ok($st->{queue}{queued} // 0, '>', 0, 'calls over the limit waited in the queue: ' . ($st->{queue}{queued} // 0));
is($st->{inflight}, 0, 'every slot given back');

my $m = $t->get('/metrics')->{body};
like($m, qr/^fanout_target_inflight_limit\{location="\/auto",target="gpu"\} \d+$/m, 'Prometheus: fanout_target_inflight_limit');
like($m, qr/^fanout_target_inflight_min_rtt_seconds\{location="\/auto",target="gpu"\} (?:0\.0[4-9]\d|0\.1[0-4]\d)$/m,
     '  fanout_target_inflight_min_rtt_seconds, in seconds');
like($m, qr/^fanout_target_inflight_gradient_percent\{location="\/auto",target="gpu"\} \d+$/m, '  fanout_target_inflight_gradient_percent');

# configuration
for my $bad ('auto:0:8', 'auto:9:8', 'auto:4', 'autox', '0') {
    my ($rc, $out) = $t->nginx_t(prefix => 'check', http => <<"EOC");
fanout_zone fanout 1m;
server { listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200 '{}'; }
    location /x { fanout_target m /_m max_inflight=$bad; } }
EOC
    like($out, qr/invalid parameter "max_inflight=\Q$bad\E".*nginx\.conf:\d+/, "max_inflight=$bad refused");
}

$t->done;
