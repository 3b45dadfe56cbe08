# fanout_redis username= (Redis 6+ ACL users: "AUTH user pass"): the cache
# works as that user; a wrong password is refused by Redis, logged as such,
# and the module fails open; username= without password= fails nginx -t.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

$t->redis('r', acl => [['fanout', 'on', '>s3cret', '~fanout:*', '+@all', '-@dangerous', '+info'],
                      ['default', 'off']]);
$t->mock('a', ms => 1);
like($t->redis_cli('r', 'ACL', 'WHOAMI'), qr/^fanout$/, 'the test speaks to Redis as the ACL user');

my $conf = sub {
    my ($auth) = @_;
    return <<"EOC";
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% $auth timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
${\ $t->model_locations('a')}
    location /p {
        fanout_target a /_a;
        fanout_cache ttl=60s;
    }
    location = /status { fanout_status; }
}
EOC
};

my ($rc, $out) = $t->nginx_t(http => $conf->('username=fanout'));
isnt($rc, 0, 'username= without password=: nginx -t fails');
like($out, qr/"username=" needs "password=".*nginx\.conf:\d+/, '  saying why, with file and line');

$t->run(http => $conf->('username=fanout password=s3cret'));
# until the worker's connection is up and authenticated (under ASan it
# took over 300 ms): before that the cache fails open as ERROR, each
# attempt with a body of its own
my ($cache, $n) = ('', 0);
for (1 .. 50) {
    $n++;
    $cache = $t->post('/p', qq({"x":$n}))->{headers}{'x-fanout-cache'} // '';
    last if $cache ne 'ERROR';
    sleep 0.1;
}
is($cache, 'MISS', 'as the ACL user: MISS');
sleep 0.2;
is($t->post('/p', qq({"x":$n}))->{headers}{'x-fanout-cache'}, 'HIT', 'then HIT');
my @keys = split /\n/, `redis-cli -p ${\ $t->port('redis_r')} --user fanout --pass s3cret --no-auth-warning --scan --pattern 'fanout:*' 2>/dev/null`;
ok(scalar(grep { /^fanout:\/p:/ } @keys), 'the entry is in Redis, written as that user');
is($t->status_json('/status')->{redis}{errors}{auth}, 0, 'no AUTH error');

my $two = $t->port('two');
(my $bad = $conf->('username=fanout password=wrong')) =~ s/%%PORT_http%%/$two/;
$t->run(prefix => 'two', port => $two, http => $bad);
sleep 0.3;
my $r = $t->post('/p', '{"x":1}', port => $two);
is($r->{status}, 200, 'a wrong password: answered all the same (fail open)');
isnt($r->{headers}{'x-fanout-cache'} // '', 'HIT', 'without the cache');
sleep 0.3;
like($t->error_log('two'), qr/refused AUTH or SELECT, check username=, password= and db= of fanout_redis/,
     'the error log says which parameters to check');

$t->done;
