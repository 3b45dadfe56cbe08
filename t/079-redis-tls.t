# fanout_redis tls: with a module built with hiredis_ssl (make test-compat
# builds hiredis 1.x with USE_SSL=1), the cache works over TLS to a real
# redis-server --tls-port with a CA of the test's own; a CA that did not
# sign the server's certificate fails open, logged; a missing file fails
# nginx -t. Built against Debian's hiredis 0.14 (no TLS), "tls" fails
# nginx -t saying so.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;
my $dir = $t->dir;

my $conf = sub {
    my ($redis) = @_;
    return <<"EOC";
fanout_zone fanout 1m;
fanout_redis $redis timeout=300ms connect_timeout=500ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /p {
        fanout_target a /_a;
        fanout_cache ttl=60s;
    }
}
EOC
};

my ($rc, $out) = $t->nginx_t(http => $conf->("127.0.0.1:1 tls_ca=$dir/none.pem"));
isnt($rc, 0, 'tls_ca= without tls: nginx -t fails');
like($out, qr/need "tls".*nginx\.conf:\d+/, '  saying so, with file and line');

($rc, $out) = $t->nginx_t(http => $conf->("127.0.0.1:1 tls tls_ca=$dir/none.pem"));
isnt($rc, 0, 'tls with a CA file that is not there: nginx -t fails');

if ($out =~ /needs the module built with hiredis_ssl/) {
    pass('this build has no TLS (Debian bookworm\'s hiredis 0.14): "tls" is refused, saying why');
    like($out, qr/nginx\.conf:\d+/, '  with file and line');
    $t->done;
    exit;
}
like($out, qr/fanout_redis tls: .*nginx\.conf:\d+/, '  with the TLS library\'s reason, file and line');

# a CA, a server certificate it signs for 127.0.0.1, and a CA that signed
# nothing (FT's tls_files)
my $tls = $t->redis_tls('r');
my $f = $t->tls_files;
$t->mock('a', ms => 1);

$t->run(http => $conf->("127.0.0.1:$tls tls tls_ca=$f->{ca}"));
sleep 0.5;
is($t->post('/p', '{"x":1}')->{headers}{'x-fanout-cache'}, 'MISS', 'over TLS: MISS');
sleep 0.3;
is($t->post('/p', '{"x":1}')->{headers}{'x-fanout-cache'}, 'HIT', 'then HIT');
like($t->redis_cli('r', '--scan', '--pattern', 'fanout:*'), qr/^fanout:\/p:/m, 'the entry is in Redis');

my $two = $t->port('two');
(my $bad = $conf->("127.0.0.1:$tls tls tls_ca=$f->{other_ca}")) =~ s/%%PORT_http%%/$two/;
$t->run(prefix => 'two', port => $two, http => $bad);
sleep 0.5;
my $r = $t->post('/p', '{"x":1}', port => $two);
is($r->{status}, 200, 'a CA that did not sign the server: answered all the same');
is($r->{headers}{'x-fanout-cache'}, 'ERROR', 'without the cache');
like($t->error_log('two'), qr/fanout redis 127\.0\.0\.1:$tls/, 'logged');

$t->done;
