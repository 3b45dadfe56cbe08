# The cache never serves an answer to a request it does not belong to: two
# virtual hosts with the same names, two servers on two ports, two Hosts of
# one server, bodies with duplicate keys, and answers that carry the
# request's own id (echo=).

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

$t->redis('r');
$t->mock('m1', body => '{"model":"one"}');
$t->mock('m2', body => '{"model":"two"}');
$t->mock('k', mode => 'kserve');
$t->mock('e', mode => 'echo');

# the same location and target names in every server; only the models differ
sub server {
    my ($listen, $names, $model) = @_;
    return <<"EOC";
server {
    listen $listen;
    server_name $names;
    location /_m { internal; proxy_pass http://127.0.0.1:%%MOCK_$model%%/; }
    location /_k { internal; proxy_pass http://127.0.0.1:%%MOCK_k%%/; }
    location /_e { internal; proxy_pass http://127.0.0.1:%%MOCK_e%%/; }
    location /fanout/status { fanout_status; }
    location /p {
        fanout_target m /_m;
        fanout_merge first;
        fanout_cache ttl=60s;
    }
    location /dup {
        fanout_target e /_e;
        fanout_cache ttl=60s;
    }
    location /v2 {
        fanout_target k /_k;
        fanout_merge first;
        fanout_cache ttl=60s ignore=id;
        add_header X-Request-Id \$request_id;
    }
    location /v2off {
        fanout_target k /_k;
        fanout_merge first;
        fanout_cache ttl=60s ignore=id echo=off;
    }
    location /v2all {
        fanout_target k /_k;
        fanout_cache ttl=60s ignore=id echo=results.k.id;
    }
}
EOC
}

my $http = '127.0.0.1:' . $t->port('http');
my $other = '127.0.0.1:' . $t->port('other');

$t->run(http => "fanout_zone fanout 1m;\n"
               . "fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;\n"
               . server($http, 'one.test', 'm1')
               . server($http, 'two.test', 'm2')
               . server($other, '""', 'm2')
               . server($http, '*.wild.test', 'm1'));

sub post {
    my ($uri, $body, $host, %o) = @_;
    return $t->post($uri, $body, headers => { Host => $host }, %o);
}

sub cache { $_[0]{headers}{'x-fanout-cache'} // '(none)' }

# 1. virtual hosts with the same names never share
my $r = post('/p', '{"x":1}', 'one.test');
is($r->{body}, '{"model":"one"}', 'vhost one: its model');
is(cache($r), 'MISS', 'vhost one: MISS');
$r = post('/p', '{"x":1}', 'one.test');
is(cache($r), 'HIT', 'vhost one again: HIT');
$r = post('/p', '{"x":1}', 'two.test');
is($r->{body}, '{"model":"two"}', 'vhost two: its own model, not one\'s entry');
is(cache($r), 'MISS', 'vhost two: MISS');

# 2. another port, no server_name: another server block
$r = post('/p', '{"x":1}', 'one.test', port => $t->port('other'));
is($r->{body}, '{"model":"two"}', 'another port: its own model');
is(cache($r), 'MISS', 'another port: MISS');

# 3. one server block, two Hosts: the Host is in the key too
$r = post('/p', '{"x":1}', 'a.wild.test');
is(cache($r), 'MISS', 'a.wild.test: MISS');
$r = post('/p', '{"x":1}', 'b.wild.test');
is(cache($r), 'MISS', 'b.wild.test: MISS, not a.wild.test\'s entry');
$r = post('/p', '{"x":1}', 'A.WILD.TEST');
is(cache($r), 'HIT', 'the Host is compared as nginx reads it (lowercase)');

# 4. duplicate keys: never the key of the value either parser keeps
$r = post('/dup', '{"q":"evil","q":"victim"}', 'one.test');
is(cache($r), 'MISS', 'duplicate keys: MISS');
my $evil = $r->{json}{results}{e}{sha1};
$r = post('/dup', '{"q":"victim"}', 'one.test');
is(cache($r), 'MISS', 'the victim body does not get the ambiguous entry');
isnt($r->{json}{results}{e}{sha1}, $evil, 'and the model saw the victim body');
$r = post('/dup', '{"q":"evil"}', 'one.test');
is(cache($r), 'MISS', 'nor does the first value');
$r = post('/dup', '{"q":"evil","q":"victim"}', 'one.test');
is(cache($r), 'HIT', 'the same bytes again: HIT on their own entry');
$r = post('/dup', '{"q":"evil", "q":"victim"}', 'one.test');
is(cache($r), 'MISS', 'other bytes of an ambiguous body: their own entry');
$r = post('/dup', '{"s":"caf\u00e9"}', 'one.test');
is(cache($r), 'MISS', 'an escaped string: MISS');
$r = post('/dup', "{\"s\":\"caf\xc3\xa9\"}", 'one.test');
is(cache($r), 'HIT', 'the same string unescaped: HIT');

my $st = $t->get('/fanout/status', headers => { Host => 'one.test' })->{json};
is($st->{locations}{'/dup'}{cache}{ambiguous}, 3,
   'ambiguous bodies counted');


# 5. echo=: the request's own id, never another's
$r = post('/v2', '{"id":"r1","inputs":[1]}', 'one.test');
is(cache($r), 'MISS', 'v2: MISS');
is($r->{json}{id}, 'r1', 'v2: the model echoed r1');
$r = post('/v2', '{"id":"r2","inputs":[1]}', 'one.test');
is(cache($r), 'HIT', 'v2 with another id: HIT (ignore=id)');
is($r->{json}{id}, 'r2', 'the HIT carries the request\'s own id');
is($r->{json}{model_name}, 'k', 'and the rest of the answer');
$r = post('/v2', '{"inputs":[1]}', 'one.test');
is(cache($r), 'HIT', 'v2 without an id: HIT');
is($r->{json}{id}, $r->{headers}{'x-request-id'},
   'the HIT carries the request\'s $request_id');
$r = post('/v2off', '{"id":"r1","inputs":[1]}', 'one.test');
$r = post('/v2off', '{"id":"r2","inputs":[1]}', 'one.test');
is(cache($r), 'HIT', 'echo=off: HIT');
is($r->{json}{id}, 'r1', 'echo=off: the stored answer as it is');
$r = post('/v2all', '{"id":"r1","inputs":[1]}', 'one.test');
$r = post('/v2all', '{"id":"r2","inputs":[1]}', 'one.test');
is(cache($r), 'HIT', 'merge all: HIT');
is($r->{json}{results}{k}{id}, 'r2', 'echo= with a path into a merged answer');

# echo= is checked by nginx -t
my ($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:6379;
server {
    location /p { fanout_target a /a; fanout_cache ttl=1s echo=a..b; }
}
EOC
isnt($rc, 0, 'a bad echo= path fails nginx -t');
like($out, qr/invalid parameter "echo=.* in .*nginx\.conf:\d+/, 'with file and line');

$t->done;
