#!/usr/bin/env perl
# make test-image (under docker/podman-env), after docker/test-image.t:
# docker/fanout-pod.yaml played as docs/container.md says, the image built
# from this tree (its layers cached by then), Redis from the registry's
# image or, with no registry, a stand-in of the same name made from
# Debian's redis-server.  The pod's network is slirp4netns (user mode: no
# bridge or iptables chains on the host) with the file's own ports, 8080
# and 8081, on the host: a merged answer from the two mock models, a cache
# HIT from the pod's Redis with its password, status and metrics on 8081,
# the liveness probe as the container's health check, access log on
# stdout, and kube down leaving nothing behind.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use lib dirname(abs_path(__FILE__)) . '/../t/lib';
use FT;
use FT::Podman;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $YAML = "$ROOT/docker/fanout-pod.yaml";
my $REDIS = 'docker.io/library/redis:7-bookworm';

sub port_free {
    my ($p) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $p,
                                  Proto => 'tcp', ReuseAddr => 1, Listen => 1);
    return $s ? 1 : 0;
}

my $t = FT->new;
my $dir = $t->dir;

for my $p (8080, 8081) {
    BAIL_OUT("port $p is taken on this host: the pod publishes it") unless port_free($p);
}

# the image as the docs build it: podman build -t localhost/nginx-fanout .
is(podman_build($ROOT, 'localhost/nginx-fanout:latest', "$dir/build.log",
                '--format=docker'), 0, 'the image builds');

# Redis: the registry's image, else a stand-in of that name
if ((podman('image', 'exists', $REDIS))[0]
    && system("timeout 30 podman pull -q $REDIS > /dev/null 2>&1") != 0)
{
    FT::write_file("$dir/Containerfile.redis", <<'EOF');
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /tmp
CMD ["redis-server"]
EOF
    is(podman_build($dir, $REDIS, "$dir/redis.log", '-f', "$dir/Containerfile.redis"),
       0, "no registry: $REDIS made from Debian's redis-server");
}

my ($rc, $out) = podman('kube', 'play', '--network', 'slirp4netns', $YAML);
is($rc, 0, 'podman kube play docker/fanout-pod.yaml') or diag($out);

my ($up, $st);
for (1 .. 300) {
    $st = eval { $t->get('/fanout/status', port => 8081) };
    last if $up = $st && $st->{status} == 200;
    sleep 0.1;
}
ok($up, 'status on the pod\'s ops port, 8081');
like($st->{body} // '', qr/"name":"fanout-pod-1"/, 'the instance named by the pod\'s FANOUT_INSTANCE');

my $res;
for (1 .. 100) {
    $res = $t->post('/predict', '{"instances":[[1,2]]}', port => 8080);
    last if $res->{status} == 200 && !$res->{json}{meta}{failed};
    sleep 0.1;
}
is($res->{status}, 200, 'a fan-out through the pod');
my $j = eval { decode_json($res->{body}) } // {};
is_deeply($j->{results}{a}{predictions}, [[0.1, 0.7, 0.2]], 'model a answered')
    or diag($res->{body});
is_deeply($j->{results}{b}{predictions}, [[0.2, 0.6, 0.2]], 'model b answered');

my $hit;
for (1 .. 50) {
    $res = $t->post('/predict', '{"instances":[[1,2]]}', port => 8080);
    last if $hit = ($res->{headers}{'x-fanout-cache'} // '') eq 'HIT';
    sleep 0.1;
}
ok($hit, 'the same input again: a HIT');
($rc, $out) = podman('exec', 'fanout-redis', 'redis-cli', '--no-auth-warning',
                     '-a', 'change-me', 'DBSIZE');
like($out, qr/^[1-9]/, 'the entry in the pod\'s Redis, behind its password') or diag($out);
like($t->get('/metrics', port => 8081)->{body},
     qr/^fanout_target_requests_total\{[^}]*target="b"[^}]*\} [1-9]/m,
     'Prometheus metrics on 8081');
is($t->get('/metrics', port => 8080)->{status}, 404, 'none on 8080');

($rc, $out) = podman('healthcheck', 'run', 'fanout-nginx');
is($rc, 0, 'the liveness probe, as podman healthcheck run: healthy') or diag($out);

($rc, $out) = podman('logs', 'fanout-nginx');
like($out, qr/"POST \/predict HTTP\/1.1" 200 .* cache=HIT/, 'the access log in podman logs');
unlike($out, qr/\[(alert|crit|emerg)\]|exited on signal/, 'no alert, crit, emerg or crash');
($rc, $out) = podman('logs', 'fanout-model');
unlike($out, qr/\[(alert|crit|emerg)\]/, 'the mock models: no alert, crit or emerg');

($rc, $out) = podman('kube', 'down', $YAML);
is($rc, 0, 'podman kube down') or diag($out);
($rc, $out) = podman('pod', 'exists', 'fanout');
isnt($rc, 0, 'the pod is gone');
my $free = 0;
for (1 .. 50) {
    last if $free = port_free(8080) && port_free(8081);
    sleep 0.1;
}
ok($free, 'its ports given back');

$t->stop;
done_testing();
