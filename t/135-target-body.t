# fanout_target ... set=PATH:JSON: each target gets the client's body with
# those members set or replaced (its own "model", say), the rest byte for
# byte; with variables; for every attempt; per batch item; grouped by it
# in micro-batches; keyed by it in the cache; nginx -t refuses bad ones.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('m');
$t->mock('mb', mode => 'model');

my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(workers => 1, http => <<"EOC");
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
server {
    listen 127.0.0.1:%%PORT_http%%;

    location /_a     { internal; proxy_pass $m/?k=a; }
    location /_b     { internal; proxy_pass $m/?k=b; }
    location /_c     { internal; proxy_pass $m/?k=c; }
    location /_v     { internal; proxy_pass $m/?k=v; }
    location /_f     { internal; proxy_pass $m/?flaky=1&k=f; }
    location /_i     { internal; proxy_pass $m/?k=i; }
    location /_k     { internal; proxy_pass $m/?k=k; }
    location /_mb    { internal; proxy_pass http://127.0.0.1:%%MOCK_mb%%/; }

    location /two {
        fanout_target a /_a set=model:"gpt-4o-mini";
        fanout_target b /_b set=model:"claude" set=parameters.temperature:0.2;
        fanout_target c /_c;
    }
    location /var   { fanout_target v /_v set=model:"\$http_x_model"
                                      set=n:\$arg_n; }
    location /retry { fanout_target f /_f set=model:"r"; fanout_retry; }
    location /items { fanout_target i /_i set=model:"it";
                      fanout_batch instances; }
    location /cache { fanout_target k /_k set=model:\$arg_m;
                      fanout_cache ttl=30s level=target; }
    location /mb    { fanout_target x /_mb batch=8 batch_wait=300ms
                                      set=model:"\$http_x_model"; }
    location = /fanout/status { fanout_status; }
}
EOC

sub bodies {
    my ($k) = @_;
    return map { $_->{body} } grep { ($_->{uri} // '') =~ /[?&]k=$k\b/ }
           $t->hits('m');
}

# each target its own model, the rest as the client sent it

my $client = '{"model":"x", "messages":[{"role":"user","content":"hi"}],'
             . '"parameters":{"n":1}}';
my $r = $t->post('/two', $client);
is($r->{status}, 200, 'a fan-out, each target with its own body');
my ($a) = bodies('a');
my ($b) = bodies('b');
my ($c) = bodies('c');
is($a, '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
       . '"parameters":{"n":1}}', 'a: its model, the rest byte for byte');
is_deeply(decode_json($b), { model => 'claude', parameters => { n => 1,
          temperature => 0.2 }, messages => [ { role => 'user',
          content => 'hi' } ] }, 'b: its model and a nested member added');
is($c, $client, 'c, without set=: the client\'s body untouched');

$r = $t->post('/two', '[1,2]');
is($r->{status}, 400, 'a body that is not an object: 400');
is($r->{json}{error}, 'bad_request', 'a JSON error');
like($t->error_log, qr/fanout target "a": the body is not a JSON object that its set= can change/,
     'the error log names the target');
is($t->post('/two', '{"parameters":"hot"}')->{status}, 400,
   'a member on a path that is not an object: 400');

# variables, checked when a request gives them values

$r = $t->post('/var?n=3', '{}', headers => { 'X-Model' => 'llama' });
is($r->{status}, 200, 'values from variables');
is((bodies('v'))[-1], '{"model":"llama","n":3}', 'both set');
$r = $t->post('/var?n=abc', '{}', headers => { 'X-Model' => 'llama' });
is($r->{status}, 400, 'a value that is not JSON: 400');
like($t->error_log, qr/set=n: "abc" is not JSON/, 'logged with the value');

# every attempt sends it

$r = $t->post('/retry', '{"q":1}');
is($r->{status}, 200, 'a retry');
my @f = bodies('f');
is(scalar @f, 2, 'two attempts');
is_deeply([ @f ], [ ('{"q":1,"model":"r"}') x 2 ], 'both with the body set');

# fanout_batch: each item's call

$r = $t->post('/items', '{"instances":[{"x":1},{"x":2}]}');
is($r->{status}, 200, 'a batch');
is_deeply([ sort map { decode_json($_)->{model} // '' } bodies('i') ],
          [ 'it', 'it' ], 'each item\'s call with its model');

# the cache: each target's entry keyed by its own body

is($t->post('/cache?m=1', '{"q":1}')->{headers}{'x-fanout-cache'}, 'MISS',
   'm=1: a miss');
sleep 0.2;
is($t->post('/cache?m=2', '{"q":1}')->{headers}{'x-fanout-cache'}, 'MISS',
   'm=2, the same client body: another body for the target, a miss');
sleep 0.2;
is($t->post('/cache?m=1', '{"q":1}')->{headers}{'x-fanout-cache'}, 'HIT',
   'm=1 again: a hit');
is(scalar(bodies('k')), 2, 'the model called twice');

# micro-batching: calls of one body (but for their inputs) share a batch

my @res = $t->concurrent([
    [ 'POST', '/mb', body => '{"instances":[1]}', headers => { 'X-Model' => 'p' } ],
    [ 'POST', '/mb', body => '{"instances":[2]}', headers => { 'X-Model' => 'p' } ],
    [ 'POST', '/mb', body => '{"instances":[3]}', headers => { 'X-Model' => 'q' } ],
]);
is(scalar(grep { $_->{status} == 200 } @res), 3, 'three micro-batched calls');
is_deeply([ map { $_->{json}{results}{x}{predictions}[0] } @res ], [ 2, 4, 6 ],
          'each its own answer');
my @up = grep { ($_->{method} // '') eq 'POST' } $t->hits('mb');
is(scalar @up, 2, 'two upstream calls: one per model');
my %by = map { my $j = decode_json($_->{body}); ($j->{model} => $j) } @up;
is(scalar @{ $by{p}{instances} // [] }, 2, 'model p: both its inputs in one');
is(scalar @{ $by{q}{instances} // [] }, 1, 'model q alone');

# nginx -t

for my $bad (
    [ 'set=model:gpt', qr/invalid parameter "set=model:gpt": PATH:JSON, and the value after the colon is not JSON/ ],
    [ 'set=model', qr/invalid parameter "set=model": PATH:JSON/ ],
    [ 'set=a.b:1 set=a:2', qr/invalid parameter "set=a:\.\.\.": a path of object keys/ ],
    [ 'set=a:1 set=a:2', qr/invalid parameter "set=a:\.\.\.": .*given once/ ],
    [ 'set=inputs.0:1', qr/invalid parameter "set=inputs\.0:\.\.\.": a path of object keys/ ],
    [ join(' ', map { "set=k$_:1" } 1 .. 17), qr/at most 16 of them a target/ ],
) {
    my ($rc, $out) = $t->nginx_t(http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m { internal; return 200; }
    location /x { fanout_target m /_m $bad->[0]; }
}
EOC
    isnt($rc, 0, "nginx -t refuses $bad->[0]" =~ s/(.{60}).+/$1.../r);
    like($out, $bad->[1], '  saying why');
    like($out, qr/nginx\.conf:\d+/, '  with the file and the line');
}

$t->outcomes_add_up;
$t->done;
