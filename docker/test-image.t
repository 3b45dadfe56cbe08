#!/usr/bin/env perl
# make test-image (under docker/podman-env): the Dockerfile built with
# podman from this tree, then run with two mock models and a Redis with a
# password on loopback (host networking): nginx -t, a merged answer, a cache
# HIT, the health check, status and metrics on their own port, logs on
# stdout and stderr, www-data workers, the entrypoint refusing bad settings,
# a graceful stop on SIGQUIT that finishes the request in flight; then a
# one-line source edit rebuilt from the cached layers, with a poisoned
# build/ in the context that .dockerignore keeps out.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use lib dirname(abs_path(__FILE__)) . '/../t/lib';
use FT;
use FT::Podman;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $IMG = 'localhost/nginx-fanout:test';
my $NAME = "fanout-test-$$";

sub build {
    my ($dir, $log) = @_;
    return podman_build($dir, $IMG, $log, '--format=docker');
}

my $t = FT->new;
my $dir = $t->dir;

is(build($ROOT, "$dir/build.log"), 0, 'the image builds from this tree');
BAIL_OUT('no image') if (podman('image', 'exists', $IMG))[0];

my ($rc, $out) = podman('image', 'inspect', '--format',
                        '{{.Size}} {{.Config.User}}', $IMG);
my ($size, $user) = split ' ', $out;
diag(sprintf "image: %.1f MB", $size / 1e6);
is($user, 'www-data', 'the image runs as www-data');

# the configuration the image ships, rendered from its defaults
($rc, $out) = podman('run', '--rm', '--network=none', $IMG, 'nginx', '-t');
is($rc, 0, 'nginx -t in the image, defaults') or diag($out);
like($out, qr/syntax is ok/, 'nginx -t: syntax is ok');

# settings that would break nginx.conf are refused with their name
($rc, $out) = podman('run', '--rm', '--network=none', '-e',
                     'FANOUT_MODELS=a=http://127.0.0.1:1/x;evil', $IMG, 'nginx', '-t');
isnt($rc, 0, 'a model URL with ";" is refused');
like($out, qr/FANOUT_MODELS/, '... naming FANOUT_MODELS');
($rc, $out) = podman('run', '--rm', '--network=none', '-e',
                     'FANOUT_MODELS=a b=http://127.0.0.1:1/', $IMG, 'nginx', '-t');
isnt($rc, 0, 'a model without a URL is refused');
($rc, $out) = podman('run', '--rm', '--network=none', '-e',
                     'FANOUT_MODELS=a=http://127.0.0.1:1/ a=http://127.0.0.1:2/', $IMG, 'nginx', '-t');
isnt($rc, 0, 'a model named twice is refused');
like($out, qr/FANOUT_MODELS: 'a' is named twice/, '... by the entrypoint, naming FANOUT_MODELS');
($rc, $out) = podman('run', '--rm', '--network=none', '-e',
                     'FANOUT_REDIS_PASSWORD=a"b', $IMG, 'nginx', '-t');
isnt($rc, 0, 'a password with a quote is refused');
like($out, qr/FANOUT_REDIS_PASSWORD/, '... naming FANOUT_REDIS_PASSWORD');

# a whole nginx.conf of one's own, mounted over the image's
FT::write_file("$dir/own.conf", <<'EOF');
load_module modules/ngx_http_fanout_module.so;
pid /tmp/nginx.pid;
error_log /dev/stderr;
events {}
http { fanout_zone z 1m; server { listen 127.0.0.1:18099; location / { fanout_status; } } }
EOF
($rc, $out) = podman('run', '--rm', '--network=none', '-v',
                     "$dir/own.conf:/etc/nginx/nginx.conf:ro", $IMG, 'nginx', '-t');
is($rc, 0, 'a mounted nginx.conf replaces the image\'s') or diag($out);

# two models, a Redis with a password, all on loopback
my $pa = $t->mock('a', mode => 'model', off => 0);
my $pb = $t->mock('b', mode => 'model', off => 100);
my $rp = $t->redis('r', password => 'sekret');
my $http = $t->port('http');
my $ops = $t->port('ops');

($rc, $out) = podman('run', '-d', '--name', $NAME, '--network=host',
    '-e', "FANOUT_MODELS=a=http://127.0.0.1:$pa/v1/predict,b=http://127.0.0.1:$pb/v1/predict",
    '-e', "FANOUT_REDIS=127.0.0.1:$rp", '-e', 'FANOUT_REDIS_PASSWORD=sekret',
    '-e', 'FANOUT_INSTANCE=image-1', '-e', "FANOUT_PORT=127.0.0.1:$http",
    '-e', "FANOUT_OPS_PORT=127.0.0.1:$ops", '-e', 'FANOUT_CALL_LOG=/dev/stdout',
    $IMG);
is($rc, 0, 'the container starts') or diag($out);

my $up = 0;
for (1 .. 300) {
    last if $up = eval { $t->get('/healthz', port => $ops)->{status} == 200 };
    sleep 0.1;
}
ok($up, 'health on the ops port answers 200');

my $res = $t->post('/predict', '{"instances":[1,2]}', port => $http);
is($res->{status}, 200, 'a fan-out through the container');
my $j = eval { decode_json($res->{body}) } // {};
is_deeply($j->{results}{a}{predictions}, [2, 4], 'model a answered')
    or diag($res->{body});
is_deeply($j->{results}{b}{predictions}, [102, 104], 'model b answered');
is($res->{headers}{'x-fanout-cache'}, 'MISS', 'first: a cache MISS');

my $hit;
for (1 .. 50) {
    $res = $t->post('/predict', '{"instances":[1,2]}', port => $http);
    last if $hit = ($res->{headers}{'x-fanout-cache'} // '') eq 'HIT';
    sleep 0.1;
}
ok($hit, 'the same input again: a HIT from Redis');
is_deeply(eval { decode_json($res->{body})->{results}{a}{predictions} }, [2, 4],
          '... with the answer');
my @hits = $t->hits('a');
is(scalar @hits, 1, 'the model was called once');
is($hits[0]{uri}, '/v1/predict', "the model is called at its URL's path");
like($t->redis_cli('r', 'DBSIZE'), qr/^[1-9]/, 'the entry is in Redis (with its password)');

($rc, $out) = podman('healthcheck', 'run', $NAME);
is($rc, 0, 'podman healthcheck run (the image\'s HEALTHCHECK): healthy') or diag($out);

my $st = $t->get('/fanout/status', port => $ops);
is($st->{status}, 200, 'status on the ops port');
like($st->{body}, qr/"name":"image-1"/, 'status names the instance (FANOUT_INSTANCE)');
my $m = $t->get('/metrics', port => $ops);
like($m->{body}, qr/^fanout_target_requests_total\{[^}]*target="a"[^}]*\} [1-9]/m,
     'Prometheus metrics on the ops port');
is($t->get('/metrics', port => $http)->{status}, 404,
   'no metrics on the traffic port');
is($t->get('/predict', port => $ops)->{status}, 404,
   'no fan-out on the ops port');

# the master and its workers run as www-data (33)
($rc, my $pid) = podman('inspect', '--format', '{{.State.Pid}}', $NAME);
chomp $pid;
my @kids = split ' ', `pgrep -P $pid`;
my %uids = map { $_ => (FT::read_text("/proc/$_/status") =~ /^Uid:\s+(\d+)/m)[0] }
           $pid, @kids;
ok(@kids >= 1, scalar(@kids) . ' worker(s)');
is_deeply([sort keys %{{ map { $_ => 1 } values %uids }}], [33],
          'master and workers run as www-data') or diag(explain \%uids);

# a graceful stop: SIGQUIT while a slow request is on its way
my $s = $t->connect($http);
print $s "POST /predict?ms=1500 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       . "Content-Length: 17\r\nConnection: close\r\n\r\n{\"instances\":[7]}";
sleep 0.5;
($rc, $out) = podman('kill', '--signal', 'QUIT', $NAME);
is($rc, 0, 'SIGQUIT sent');
$res = FT::read_response($s, time(), 10, 0);
is($res->{status}, 200, 'the request in flight is answered after SIGQUIT');
like($res->{body} // '', qr/"predictions":\[14\]/, '... whole');
($rc, $out) = podman('wait', $NAME);
is($out + 0, 0, 'nginx exits with 0');

# the logs: access and call log on stdout, the error log on stderr
system("podman logs $NAME > '$dir/out.log' 2> '$dir/err.log'");
my $stdout = FT::read_text("$dir/out.log");
my $stderr = FT::read_text("$dir/err.log");
like($stdout, qr/"POST \/predict HTTP\/1.1" 200 .* cache=HIT/,
     'access log on stdout');
like($stdout, qr/^\{.*"target":"a".*\}$/m, 'call log on stdout');
like($stderr, qr/\[notice\].*(gracefully shutting down|exiting)/, 'error log on stderr');
unlike($stdout, qr/\[notice\]/, 'no error log on stdout');
unlike($stderr, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, crit, emerg or crash');
podman('rm', '-f', $NAME);

# a one-line source edit: only the compile runs again; a host's build/ in
# the context (a stale module, an objs/Makefile with host paths) stays out
my $ctx = "$dir/ctx";
system("mkdir -p '$ctx' && tar -C '$ROOT' --exclude=./build --exclude=./.git -cf - . "
       . "| tar -C '$ctx' -xf -") == 0 or die "context";
open my $fh, '>>', "$ctx/src/core/fanout_json.c" or die;
print $fh "/* an edit, $$ */\n";     # unique: never in the cache
close $fh;
system("mkdir -p '$ctx/build/nginx/objs' && echo garbage > '$ctx/build/ngx_http_fanout_module.so'"
       . " && printf 'modules:\\n\\tfalse\\n' > '$ctx/build/nginx/objs/Makefile'");
is(build($ctx, "$dir/build2.log"), 0, 'an edited tree with a poisoned build/ builds');
my $log2 = FT::read_text("$dir/build2.log");
# a multi-stage build's steps: "[1/2] STEP 4/8: RUN ..."
my @steps = split /^(?=(?:\[\d+\/\d+\] )?STEP )/m, $log2;
my ($apt) = grep { /^(?:\[\d+\/\d+\] )?STEP \d+\/\d+: RUN apt-get update.*make deps-build/s } @steps;
like($apt // '', qr/Using cache/, 'the toolchain layer comes from the cache')
    or diag($apt // 'no toolchain step');
my ($compile) = grep { /^(?:\[\d+\/\d+\] )?STEP \d+\/\d+: RUN make build/ } @steps;
ok($compile && $compile !~ /Using cache|Nothing to be done/, 'the module is compiled again');
($rc, $out) = podman('run', '--rm', '--network=none', $IMG, 'nginx', '-t');
is($rc, 0, 'the rebuilt image passes nginx -t') or diag($out);

$t->stop;
done_testing();
