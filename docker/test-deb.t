#!/usr/bin/env perl
# make test-deb (under docker/podman-env): build/deb/'s package installed
# with apt on Debian's nginx in a clean bookworm root (the podman base
# image), as a user would: enabled by its postinst in modules-enabled,
# depending on nginx's ABI, nginx -t, and a fan-out through Debian's own
# nginx.conf to two mock models on loopback; then removed, which disables it.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use lib dirname(abs_path(__FILE__)) . '/../t/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/..');

plan skip_all => 'run by make test-deb (docker/podman-env)'
    unless $ENV{FANOUT_PODMAN_DIR};

my ($deb) = glob("$ROOT/build/deb/libnginx-mod-http-fanout_*.deb");
ok($deb, 'the package is built') or BAIL_OUT('make deb first');

my $info = `dpkg-deb -f '$deb' Depends`;
like($info, qr/nginx-abi-1\.22\.1-7/, "it depends on nginx's ABI");
my @files = split /\n/, `dpkg-deb -c '$deb'`;
ok((grep { m{\./usr/lib/nginx/modules/ngx_http_fanout_module\.so$} } @files),
   'the module in /usr/lib/nginx/modules');
ok((grep { m{\./usr/share/nginx/modules-available/mod-http-fanout\.conf$} } @files),
   'mod-http-fanout.conf in modules-available');

my $t = FT->new;
my $pa = $t->mock('a', mode => 'model', off => 0);
my $pb = $t->mock('b', mode => 'model', off => 100);
my $http = $t->port('http');

FT::write_file($t->dir . '/fanout.conf', <<"EOF");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:$http;
    location /_m/a { internal; proxy_pass http://127.0.0.1:$pa/v1/predict; }
    location /_m/b { internal; proxy_pass http://127.0.0.1:$pb/v1/predict; }
    location = /predict {
        fanout_target a /_m/a;
        fanout_target b /_m/b;
        fanout_merge all;
    }
}
EOF

# the whole life in the clean root: install, check, serve, remove
my $script = <<'EOF';
set -e
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /deb/pkg.deb >/tmp/apt.log 2>&1 \
    || { tail -20 /tmp/apt.log; exit 1; }
echo "nginx: $(dpkg-query -W -f='${Version}' nginx)"
echo "link: $(readlink /etc/nginx/modules-enabled/50-mod-http-fanout.conf)"
rm -f /etc/nginx/sites-enabled/default
cp /deb/fanout.conf /etc/nginx/conf.d/fanout.conf
nginx -t 2>&1
nginx
sleep 1
echo "ready"
sleep 3
nginx -s quit
sleep 1
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q libnginx-mod-http-fanout >/dev/null 2>&1
echo "after remove: $(ls /etc/nginx/modules-enabled/ | grep fanout || true)"
EOF
FT::write_file($t->dir . '/run.sh', $script);
system("cp '$deb' " . $t->dir . "/pkg.deb") == 0 or die;

open my $fh, '-|', "podman run --rm --network=host -v " . $t->dir
                 . ":/deb:ro docker.io/library/debian:bookworm-slim bash /deb/run.sh 2>&1"
    or die;
my $out = '';
my $res;
while (my $line = <$fh>) {
    $out .= $line;
    $res = $t->post('/predict', '{"instances":[3]}', port => $http)
        if $line =~ /^ready/;
}
close $fh;
is($? >> 8, 0, 'installed, served and removed in a clean root') or diag($out);

like($out, qr/^nginx: 1\.22\.1-/m, "on Debian's nginx 1.22.1");
like($out, qr{^link: /usr/share/nginx/modules-available/mod-http-fanout\.conf$}m,
     'enabled on installation (modules-enabled)');
like($out, qr/syntax is ok/, 'nginx -t with the module loaded');
unlike($out, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
is($res && $res->{status}, 200, 'a fan-out through the packaged module');
my $j = eval { decode_json($res->{body}) } // {};
is_deeply($j->{results}{a}{predictions}, [6], 'model a answered');
is_deeply($j->{results}{b}{predictions}, [106], 'model b answered');
like($out, qr/^after remove: 50-mod-http-fanout\.conf\.removed$/m,
     'removing the package disables it');

$t->stop;
done_testing();
