# The cache with a Redis behind a password, on a unix socket, in another
# database; a wrong password; a Redis out of memory; two nginx instances
# sharing one Redis.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('auth', password => 's3cret', unix => 1);
$t->redis('plain');
$t->mock('a', mode => 'echo');

my $sock = $t->dir . '/redis_auth/redis.sock';

my $locations = <<'EOC';
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /p  { fanout_target a /_a; fanout_cache ttl=60s; }
    location = /fanout/status { fanout_status; }
EOC

# unix socket, password, db 3
$t->run(http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis unix:$sock password=s3cret db=3 timeout=200ms pool=1;
server {
    listen 127.0.0.1:%%PORT_http%%;
$locations
}
EOC

# the same Redis with a wrong password
$t->run(prefix => 'wrong', port => $t->port('wrong'), http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis unix:$sock password=nope;
server {
    listen 127.0.0.1:%%PORT_wrong%%;
$locations
}
EOC

# two instances sharing one Redis, as behind a load balancer
# a fleet's instances: the same port, each on an address of its own (the
# cache key holds the server block's ports and names, not its addresses)
my %inst = (one => '127.0.0.1:' . $t->port('fleet'),
            two => '127.0.0.2:' . $t->port('fleet'));
my ($one, $two) = @inst{qw(one two)};

for my $name (qw(one two)) {
    $t->run(prefix => $name, port => $inst{$name}, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_plain%%;
server {
    listen $inst{$name};
$locations
}
EOC
}

sleep 0.3;

sub cache { $_[0]{headers}{'x-fanout-cache'} // '(none)' }

my $res = $t->post('/p', '{"x":1}');
is(cache($res), "MISS", "AUTH and SELECT over a unix socket: MISS");
$res = $t->post('/p', '{"x":1}');
is(cache($res), 'HIT', 'then HIT');

my @db3 = split /\n/, $t->redis_cli('auth', '-n', '3', '--scan',
                                    '--pattern', 'fanout:*');
is(scalar @db3, 1, 'the entry is in db 3');
is($t->redis_cli('auth', '-n', '0', 'DBSIZE'), '0', 'and not in db 0');

# a wrong password: clear log, fail open

$res = $t->post('/p', '{"x":1}', port => $t->port('wrong'));
is($res->{status}, 200, 'wrong password: still 200');
is(cache($res), 'ERROR', 'wrong password: ERROR');
like($t->error_log('wrong'),
     qr/fanout redis unix:\S+ refused AUTH or SELECT, check username=, password= and db= of fanout_redis/,
     'the error log names the cause and the directive');

# two instances: what one stored, the other serves

$res = $t->post('/p', '{"shared":1}', port => $one);
is(cache($res), 'MISS', 'instance one: MISS');
sleep 0.3;    # its SET goes after the answer: in Redis, not under way
$res = $t->post('/p', '{"shared":1}', port => $two);
is(cache($res), 'HIT', 'instance two: HIT on what one stored');

# Redis out of memory: writes fail, answers do not

# with noeviction and a 1-byte limit, Redis refuses every write
$t->redis_cli('plain', 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$t->redis_cli('plain', 'CONFIG', 'SET', 'maxmemory', '1');

for (1 .. 3) {
    $res = $t->post('/p', qq({"oom":$_}), port => $one);
    is($res->{status}, 200, 'Redis out of memory: 200');
}
$res = $t->post('/p', '{"oom":1}', port => $one);
is(cache($res), 'MISS', 'the refused write left nothing behind');

my $st = $t->get('/fanout/status', port => $one)->{json};
cmp_ok($st->{redis}{errors}{reply_error}, '>=', 3,
       'OOM replies counted as reply_error');
like($t->error_log('one'), qr/fanout redis 127\.0\.0\.1:\d+ answered an error: OOM/,
     'the error log quotes Redis');

$t->done;
