# nginx >= 1.29.3 keeps the port a request named ($request_port): a shadow's
# copy of the request keeps it too, so that a shadow location built on it
# answers as the live one does.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my ($v) = `$FT::NGINX -v 2>&1` =~ m{nginx/(\d+\.\d+\.\d+)};
my @v = split /\./, $v // '0.0.0';
plan skip_all => "nginx $v has no \$request_port (1.29.3+)"
    if $v[0] * 1e6 + $v[1] * 1e3 + $v[2] < 1029003;

my $t = FT->new;

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_p {
        internal;
        default_type application/json;
        return 200 '{"port":"$request_port","is":"$is_request_port"}';
    }
    location /p {
        fanout_target m /_p;
        fanout_merge first;
        fanout_shadow s /_p;
    }
    location = /fanout/status { fanout_status; }
}
EOC

my $port = $t->port('http');
my $r = $t->post('/p', '{}', headers => { Host => "localhost:$port" });
is($r->{json}{port}, $port, 'the live call sees $request_port');

my $st;
for (1 .. 40) {
    $st = $t->status_json;
    last if ($st->{locations}{'/p'}{shadows}{s}{agree} // 0)
            + ($st->{locations}{'/p'}{shadows}{s}{disagree} // 0) >= 1;
    sleep 0.05;
}

is($st->{locations}{'/p'}{shadows}{s}{agree}, 1,
   'the shadow sees the same $request_port: it agrees');

$t->done;
