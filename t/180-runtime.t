# fanout_api's runtime traffic control on two instances sharing Redis: a
# split's weights, a shadow's percent, a breaker forced, a target taken
# out; every bad change refused with nothing changed; a change on one
# instance seen on the other within a second (by the answers' variants),
# kept across a reload, dropped by a reload that changes the split itself;
# an instance started later begins from the fleet's state; Redis down: the
# change is made here, said to be local, and nothing breaks.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);

my $t = FT->new;

$t->redis('r');
$t->mock('a', ms => 2);
$t->mock('b', ms => 2);
$t->mock('c', ms => 2);
$t->mock('s', ms => 2);

my $conf = sub {
    my ($split) = @_;
    return <<"EOC";
fanout_zone fanout 2m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=300ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_c { internal; proxy_pass http://127.0.0.1:%%MOCK_c%%/; }
    location /_s { internal; proxy_pass http://127.0.0.1:%%MOCK_s%%/; }
    location /p {
        fanout_split \$arg_u { $split }
        fanout_target a /_a variant=v1;
        fanout_target b /_b variant=v2;
        fanout_shadow sh /_s percent=0;
    }
    location /q {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_target c /_c;
        fanout_merge first;
        fanout_quorum 2;
        fanout_breaker failures=3 cooldown=30s;
    }
    location /c {
        fanout_target a /_a;
        fanout_cache ttl=60s l1=1m;
    }
    location /ct {
        fanout_target a /_a;
        fanout_target b /_b;
        fanout_cache ttl=60s level=target;
    }
    location = /api { fanout_api write; }
    location = /api/ro { fanout_api; }
    location = /health { fanout_health /q; }
}
EOC
};

my $http = $conf->('50% v1; * v2;');
$t->run(workers => 2, http => $http);
my $two = $t->port('two');
(my $http2 = $http) =~ s/%%PORT_http%%/$two/;
$t->run(prefix => 'two', port => $two, workers => 2, http => $http2);

sub api {
    my ($body, %o) = @_;
    my $r = $t->request('PATCH', $o{uri} // '/api', body => $body,
                        $o{port} ? (port => $o{port}) : ());
    return $r;
}

sub nhits { my @h = $t->hits($_[0]); return scalar @h }

sub state { $t->get('/api', @_ ? (port => $_[0]) : ())->{json} }

# the variants of 200 users on an instance
sub variants {
    my ($port) = @_;
    my %n;
    for my $u (1 .. 200) {
        my $r = $t->request('POST', "/p?u=user$u", body => '{}',
                            $port ? (port => $port) : ());
        $n{ $r->{headers}{'x-fanout-variant'} // 'none' }++;
    }
    return \%n;
}

# --- the state as configured

my $st = state();
is($st->{locations}{'/p'}{split}{source}, 'config', 'the split as configured');
is($st->{locations}{'/p'}{split}{weights}{v1}, 50, 'v1 50%');
is($st->{locations}{'/p'}{targets}{a}{enabled}, JSON::PP::true, 'targets enabled');
is($st->{locations}{'/q'}{targets}{c}{breaker}, 'auto', 'breakers on their own');
is($st->{locations}{'/p'}{shadows}{sh}{percent}, 'config', 'a shadow as configured');
my $n = variants();
ok($n->{v1} > 70 && $n->{v2} > 70, "50/50: v1 $n->{v1}, v2 $n->{v2}");

# --- bad changes: a clear answer, nothing changed

my $v0 = $st->{version};
for my $bad (['{"location":"/p","weights":{"v1":50,"v2":40}}', 400, 'bad_weights', 'weights under 100'],
             ['{"location":"/p","weights":{"v1":60,"v2":50}}', 400, 'bad_weights', 'weights over 100'],
             ['{"location":"/p","weights":{"v1":100}}', 400, 'bad_weights', 'a variant left out'],
             ['{"location":"/p","weights":{"v1":50,"v3":50}}', 404, 'unknown_variant', 'an unknown variant'],
             ['{"location":"/p","weights":{"v1":50,"v1":50}}', 400, 'bad_request', 'a variant twice'],
             ['{"location":"/p","weights":{"v1":"50","v2":50}}', 400, 'bad_value', 'a weight as a string'],
             ['{"location":"/p","weights":{"v1":33.333,"v2":66.667}}', 400, 'bad_value', 'three decimals'],
             ['{"location":"/p","weights":{"v1":-10,"v2":110}}', 400, 'bad_value', 'a negative weight'],
             ['{"location":"/p","weights":[50,50]}', 400, 'bad_value', 'weights as an array'],
             ['{"location":"/nope","weights":{"v1":50,"v2":50}}', 404, 'unknown_location', 'an unknown location'],
             ['{"location":"/q","weights":{"a":100}}', 404, 'no_split', 'a location without a split'],
             ['{"location":"/p","shadow":"nope","percent":5}', 404, 'unknown_shadow', 'an unknown shadow'],
             ['{"location":"/p","shadow":"sh","percent":101}', 400, 'bad_value', 'a percent over 100'],
             ['{"location":"/q","target":"zz","breaker":"open"}', 404, 'unknown_target', 'an unknown target'],
             ['{"location":"/q","target":"a","breaker":"half"}', 400, 'bad_value', 'an unknown breaker state'],
             ['{"location":"/p","target":"a","breaker":"open"}', 409, 'no_breaker', 'a location without a breaker'],
             ['{"location":"/q","target":"a","enabled":"no"}', 400, 'bad_value', 'enabled not a boolean'],
             ['{"location":"/p","ramp":"rollback"}', 404, 'no_ramp', 'a split without a ramp'],
             ['{"location":"/p"}', 400, 'bad_request', 'a location and no change'],
             ['{"weights":{"v1":50,"v2":50}}', 400, 'bad_request', 'no location'],
             ['{"location":"/p","weights":{"v1":50,"v2":50},"shadow":"sh","percent":5}', 400, 'bad_request', 'two changes at once'],
             ['{"location":"/p","draining":true}', 400, 'bad_request', 'draining with a location'],
             ['{"location":"/p","colour":"red"}', 400, 'unknown_field', 'an unknown field'],
             ['{"location":5,"weights":{"v1":50,"v2":50}}', 400, 'bad_value', 'a location not a string'],
             ['{"location":"/p","weights":{"v1":50,"v2":50}', 400, 'bad_json', 'bad JSON'],
             # jansson reads the body: what it refuses is refused whole
             ['{"location":"/p","location":"/q","weights":"config"}', 400, 'bad_request', 'a field twice'],
             ['{"location":"/p","ramp":{"steps":"50%","steps":"100%","every":"1m"}}', 400, 'bad_request', "a ramp's field twice"],
             ['{"location":"/p\\u0000x","weights":"config"}', 400, 'bad_json', 'a NUL in a string'],
             ["{\"location\":\"/p\xff\",\"weights\":\"config\"}", 400, 'bad_json', 'not UTF-8'],
             ['[' x 30000 . ']' x 30000, 400, 'bad_json', 'nested 30,000 deep'],
             ['5', 400, 'bad_request', 'a number, not an object'],
             ['{"location":"/p","weights":{"v1":1e400,"v2":50}}', 400, 'bad_json', 'a number out of range'],
             ['{"location":"/p","ramp":{"steps":"5%,100%","every":"1m","speed":2}}', 400, 'unknown_field', "a ramp's unknown field"],
             ['{"location":"/p","purge":{"target":""}}', 400, 'bad_value', 'a purge of no target'])
{
    my ($body, $code, $err, $name) = @$bad;
    my $r = api($body);
    is($r->{status}, $code, "$name: $code");
    is(($r->{json} // {})->{error}, $err, "  $err");
}
my $r = api('{"location":"/p","weights":{"v1":100,"v2":0}}', uri => '/api/ro');
is($r->{status}, 403, 'a write to a read-only API: 403');
$st = state();
is($st->{version}, $v0, 'nothing changed: the version is the same');
is($st->{locations}{'/p'}{split}{source}, 'config', 'and the split as configured');
is($t->redis_cli('r', 'HLEN', 'fanout:runtime'), 0, 'nothing written to Redis');
like($t->error_log, qr/\[info\].*fanout_api: body at \d+: duplicate object key/,
     "jansson's reason is logged");

# --- weights, on one instance, seen on both

$r = api('{"location":"/p","weights":{"v1":100,"v2":0}}');
is($r->{status}, 200, 'weights 100/0: 200');
is($r->{json}{written}, 'fleet', 'Redis has it');
is($r->{json}{locations}{'/p'}{split}{source}, 'api', 'the split from the API');
is($r->{json}{locations}{'/p'}{split}{weights}{v2}, 0, 'v2 0%');
like($t->error_log, qr/\[notice\].*fanout_api: location "\/p": weights from the configuration's to "10000 0"/,
     'logged at notice with what it was and is');
$n = variants();
is($n->{v1}, 200, 'here every user in v1 at once');

my $t0 = time;
my $seen;
for (1 .. 60) {
    my $s = state($two);
    if (($s->{locations}{'/p'}{split}{weights}{v1} // 0) == 100) { $seen = time - $t0; last }
    sleep 0.05;
}
ok(defined $seen && $seen < 1.5, sprintf('the other instance has it after %.2f s', $seen // -1));
$n = variants($two);
is($n->{v1}, 200, 'and answers v1 to everyone');
cmp_ok(state($two)->{fleet_version}, '>=', 1, 'at the fleet version');

$r = api('{"location":"/p","weights":{"v1":0,"v2":100}}', port => $two);
is($r->{status}, 200, 'a change from the other instance');
$seen = undef;
$t0 = time;
for (1 .. 60) {
    if ((state()->{locations}{'/p'}{split}{weights}{v2} // 0) == 100) { $seen = time - $t0; last }
    sleep 0.05;
}
ok(defined $seen && $seen < 1.5, sprintf('reaches the first after %.2f s', $seen // -1));
is(variants()->{v2}, 200, 'every user in v2 there');

# --- a shadow's percent

my $hits = nhits('s');
$r = api('{"location":"/p","shadow":"sh","percent":100}');
is($r->{status}, 200, 'shadow percent 100');
$t->post("/p?u=x$_", '{}') for 1 .. 10;
sleep 0.3;
is(nhits('s') - $hits, 10, 'every request shadowed');
api('{"location":"/p","shadow":"sh","percent":"config"}');
$hits = nhits('s');
$t->post("/p?u=y$_", '{}') for 1 .. 10;
sleep 0.3;
is(nhits('s') - $hits, 0, 'as configured again (0%): none');

# --- a breaker forced open, then back to auto

$r = api('{"location":"/q","target":"a","breaker":"open"}');
is($r->{status}, 200, 'breaker of a forced open');
is($r->{json}{locations}{'/q'}{targets}{a}{breaker}, 'open', 'the state says so');
$hits = nhits('a');
for (1 .. 10) {
    is($t->post('/q', '{}')->{status}, 200, 'answered by the others') if $_ == 1;
    $t->post('/q', '{}');
}
is(nhits('a') - $hits, 0, 'a not called while forced open');
my $h = $t->get('/health');
is($h->{json}{locations}{'/q'}{targets}{a}{reason}, 'breaker_forced_open', 'the health says why');
is($h->{status}, 200, 'two of three still meet quorum 2');
api('{"location":"/q","target":"a","breaker":"auto"}');
$hits = nhits('a');
$t->post('/q', '{}') for 1 .. 5;
cmp_ok(nhits('a') - $hits, '>', 0, 'auto: called again');

# --- a target taken out

$r = api('{"location":"/q","target":"b","enabled":false}');
is($r->{status}, 200, 'target b disabled');
$hits = nhits('b');
$t->post('/q', '{}') for 1 .. 5;
is(nhits('b') - $hits, 0, 'b not called');
is($t->post('/q', '{}')->{status}, 200, 'the others answer');
is($t->get('/health')->{json}{locations}{'/q'}{targets}{b}{reason}, 'disabled', 'the health says disabled');
$r = api('{"location":"/q","target":"c","enabled":false}');
is($r->{status}, 409, 'a second one would break quorum 2: 409');
is($r->{json}{error}, 'quorum', '  quorum');
ok(state()->{locations}{'/q'}{targets}{c}{enabled}, 'c still enabled');
$seen = 0;
for (1 .. 40) {
    if (!state($two)->{locations}{'/q'}{targets}{b}{enabled}) { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'the other instance has b disabled too');
api('{"location":"/q","target":"b","enabled":true}');

# --- no change may strand a variant: its only target, its users' 502s

is(api('{"location":"/p","weights":{"v1":60,"v2":40}}')->{status}, 200, 'weights 60/40');
$r = api('{"location":"/p","target":"a","enabled":false}');
is($r->{status}, 409, 'disabling v1\'s only target: 409');
is($r->{json}{error}, 'quorum', '  quorum');
like($r->{json}{message}, qr/variant "v1" would be left with too few enabled targets/,
     '  the message names the variant');
ok(state()->{locations}{'/p'}{targets}{a}{enabled}, 'a still enabled');
$n = variants();
ok(!$n->{none} && $n->{v1} > 80, "every user still served, v1's in v1 ($n->{v1} of 200)");
my $r502 = grep { $_->{status} == 502 }
           map { $t->request('POST', "/p?u=user$_", body => '{}') } 1 .. 40;
is($r502, 0, 'no user got a 502 (40 of 40 answered)');

is(api('{"location":"/p","weights":{"v1":0,"v2":100}}')->{status}, 200,
   'v1 at 0%');
is(api('{"location":"/p","target":"a","enabled":false}')->{status}, 200,
   'then its only target may go: nobody is sent there');
$r = api('{"location":"/p","weights":{"v1":50,"v2":50}}');
is($r->{status}, 409, 'weights that send users back to v1 without a target: 409');
like($r->{json}{message}, qr/variant "v1"/, '  naming v1');
$r = api('{"location":"/p","ramp":{"steps":"10%,100%","every":"1h","candidate":"v1"}}');
is($r->{status}, 409, 'a ramp that would send users to v1: 409');
like($r->{json}{message}, qr/variant "v1"/, '  naming v1');
is(state()->{locations}{'/p'}{split}{weights}{v1}, 0, 'the weights unchanged: v1 0%');
is(scalar(grep { $_->{status} != 200 }
          map { $t->request('POST', "/p?u=user$_", body => '{}') } 1 .. 40),
   0, 'and every user answered');
is(api('{"location":"/p","target":"a","enabled":true}')->{status}, 200, 'a enabled again');
is(api('{"location":"/p","weights":{"v1":50,"v2":50}}')->{status}, 200,
   'then 50/50 is allowed');
api('{"location":"/p","weights":{"v1":0,"v2":100}}');   # as the tests below expect

# --- purges, fleet-wide

$r = api('{"location":"/p","purge":true}');
is($r->{status}, 409, 'a purge where there is no cache: 409');
is($r->{json}{error}, 'no_cache', '  no_cache');
is(api('{"location":"/c","purge":{"target":"zz"}}')->{status}, 404, 'a purge of an unknown target: 404');
is(api('{"location":"/c","purge":"all"}')->{status}, 400, 'a purge that is neither true nor a target: 400');

# (the instances listen on other ports: each has entries of its own)
$t->post('/c', '{"x":1}');
$t->post('/c', '{"x":1}', port => $two);
sleep 0.3;
$hits = nhits('a');
is($t->post('/c', '{"x":1}')->{headers}{'x-fanout-cache'}, 'HIT', 'cached here (the L1)');
is($t->post('/c', '{"x":1}', port => $two)->{headers}{'x-fanout-cache'}, 'HIT', 'and there');
is(nhits('a') - $hits, 0, 'no model call');
$r = api('{"location":"/c","purge":true}', port => $two);
is($r->{status}, 200, 'purge /c on the other instance');
ok($r->{json}{locations}{'/c'}{purged_ms}, 'the state says when');
like($t->error_log('two'), qr/\[notice\].*fanout_api: location "\/c": cache purged/, 'logged at notice');
is($t->post('/c', '{"x":1}', port => $two)->{headers}{'x-fanout-cache'}, 'MISS', 'a miss there at once');
$t0 = time;
$seen = undef;
for (1 .. 40) {
    if (state()->{locations}{'/c'}{purged_ms}) { $seen = time - $t0; last }
    sleep 0.05;
}
ok(defined $seen && $seen < 1.5, sprintf('the first instance has the purge after %.2f s', $seen // -1));
is($t->post('/c', '{"x":1}')->{headers}{'x-fanout-cache'}, 'MISS', 'and misses (its L1 too)');
sleep 0.3;
is($t->post('/c', '{"x":1}')->{headers}{'x-fanout-cache'}, 'HIT', 'cached again after the purge');

$t->post('/ct', '{"y":1}');
sleep 0.3;
my ($ha, $hb) = (nhits('a'), nhits('b'));
$t->post('/ct', '{"y":1}');
is(nhits('a') + nhits('b') - $ha - $hb, 0, 'level=target: both cached');
is(api('{"location":"/ct","purge":{"target":"b"}}')->{status}, 200, 'purge target b of /ct');
($ha, $hb) = (nhits('a'), nhits('b'));
$t->post('/ct', '{"y":1}');
is(nhits('a') - $ha, 0, 'a still cached');
is(nhits('b') - $hb, 1, 'b called again');

# --- a reload keeps the change; a reload changing the split drops it

ok($t->reload, 'reload with the same split');
sleep 0.3;
is(state()->{locations}{'/p'}{split}{source}, 'api', 'the runtime weights stay');
is(variants()->{v2}, 200, 'and are used');

# --- an instance started later begins from the fleet's state

my $three = $t->port('three');
(my $http3 = $http) =~ s/%%PORT_http%%/$three/;
$t->run(prefix => 'three', port => $three, workers => 1, http => $http3);
$seen = 0;
for (1 .. 40) {
    if ((state($three)->{locations}{'/p'}{split}{weights}{v2} // 0) == 100) { $seen = 1; last }
    sleep 0.05;
}
ok($seen, 'a new instance starts from the fleet, not its file');
is(variants($three)->{v2}, 200, 'and answers so');

ok($t->reload(undef, workers => 2, http => $conf->('30% v1; * v2;')), 'reload with another split');
sleep 0.5;
$st = state();
is($st->{locations}{'/p'}{split}{source}, 'config', 'the configuration wins when the split changed');
is($st->{locations}{'/p'}{split}{weights}{v1}, 30, 'its weights');
$n = variants();
ok($n->{v1} > 30 && $n->{v2} > 100, "30/70: v1 $n->{v1}, v2 $n->{v2}");

# --- garbage in the fleet's hash: ignored, nothing breaks

my $before = state();
my ($fp) = split / /, $t->redis_cli('r', 'HGET', 'fanout:runtime', "split\x1f/p");
for my $kv (["split\x1f/p", "zz 1 2"], ["split\x1f/p", "$fp 10000"],
            ["split\x1f/p", "$fp 5000 x"], ["split\x1f/p", "$fp 6000 6000"],
            ["shadow\x1fsh\x1f/p", "abcdef"], ["shadow\x1fsh\x1f/p", "99999"],
            ["breaker\x1fzz\x1f/q", "open"], ["target\x1fa\x1f/nowhere", "disabled"],
            ["ramp\x1fzz\x1f/p", "x"], ["nonsense", "1"], ["purge\x1f*\x1f/c", "-5"],
            ["\x1f\x1f", ""], ["split\x1f", "1"]) {
    $t->redis_cli('r', 'HSET', 'fanout:runtime', @$kv);
    $t->redis_cli('r', 'HINCRBY', 'fanout:runtime', 'v', 1);
    sleep 0.3;
}
my $after = state();
is_deeply($after->{locations}, $before->{locations}, 'malformed fleet state changes nothing');
cmp_ok($after->{fleet_version}, '>', $before->{fleet_version}, 'though its versions were read');
is($t->post('/p?u=g', '{}')->{status}, 200, 'and requests are answered');

# --- Redis forgets (FLUSHALL, a restart without persistence): the
# instances write back what they hold, a later change kept, the highest
# version wins

sub wait_for {
    my ($what, $cond) = @_;
    my $t0 = time;
    until ($cond->()) {
        return fail("$what (waited 5 s)") if time - $t0 > 5;
        sleep 0.05;
    }
    return pass(sprintf('%s (%.2f s)', $what, time - $t0));
}

# all three on one configuration again (the hash holds one split's weights
# per location, the last written: the fleet runs one configuration)
for my $name ('two', 'three') {
    (my $h = $conf->('30% v1; * v2;')) =~ s/%%PORT_http%%/$t->port($name)/e;
    ok($t->reload($name, workers => $name eq 'two' ? 2 : 1, http => $h),
       "$name: reloaded with the split of the first");
}

sub fleet_field { $t->redis_cli('r', 'HGET', 'fanout:runtime', join("\x1f", @_)) }

for my $c ('{"location":"/p","weights":{"v1":20,"v2":80}}',
           '{"location":"/p","shadow":"sh","percent":7}',
           '{"location":"/q","target":"c","enabled":false}',
           '{"location":"/q","target":"b","breaker":"closed"}') {
    is(api($c)->{status}, 200, "set $c");
}
wait_for('the other instance has them', sub {
    my $s = state($two)->{locations};
    ($s->{'/p'}{split}{weights}{v1} // 0) == 20 && ($s->{'/p'}{shadows}{sh}{percent} // '') eq '7'
        && !$s->{'/q'}{targets}{c}{enabled} && $s->{'/q'}{targets}{b}{breaker} eq 'closed';
});
my $known = $t->redis_cli('r', 'HGET', 'fanout:runtime', 'v');

$t->redis_cli('r', 'FLUSHALL');
wait_for('FLUSHALL: the settings are written back', sub {
    fleet_field('split', '/p') =~ / 2000 8000$/ && fleet_field('shadow', 'sh', '/p') eq '700'
        && fleet_field('target', 'c', '/q') eq 'disabled' && fleet_field('breaker', 'b', '/q') eq 'closed';
});
cmp_ok($t->redis_cli('r', 'HGET', 'fanout:runtime', 'v'), '>', $known, '  the version moved past the one known');
like(join('', map { $t->error_log($_) } qw(nginx two three)),
     qr/\[notice\].*the fleet's state is gone from Redis.*writing back \d+ settings/,
     '  logged at notice');

my $four = $t->port('four');
(my $http4 = $conf->('30% v1; * v2;')) =~ s/%%PORT_http%%/$four/;
$t->run(prefix => 'four', port => $four, workers => 1, http => $http4);
wait_for('an instance started after FLUSHALL gets the weights', sub {
    (state($four)->{locations}{'/p'}{split}{weights}{v1} // 0) == 20;
});
my $s4 = state($four)->{locations};
is($s4->{'/p'}{shadows}{sh}{percent}, '7', '  the shadow percent');
ok(!$s4->{'/q'}{targets}{c}{enabled}, '  the target taken out');
is($s4->{'/q'}{targets}{b}{breaker}, 'closed', '  the forced breaker');
my $n4 = variants($four);
# the same users, fewer of them in v1 than at the file's 30% (65 of 200)
ok(($n4->{v1} // 0) > 15 && ($n4->{v1} // 0) < 60, "  and answers 20/80 (v1 $n4->{v1})");

# forgotten again, and changed at once on the new instance: the change stays
$t->redis_cli('r', 'FLUSHALL');
is(api('{"location":"/p","shadow":"sh","percent":9}', port => $four)->{status}, 200,
   'FLUSHALL, then a change on the new instance');
wait_for('every instance ends with the change and the rest written back', sub {
    for my $port (undef, $two, $four) {
        my $s = state($port ? $port : ())->{locations};
        return 0 unless ($s->{'/p'}{shadows}{sh}{percent} // '') eq '9'
            && ($s->{'/p'}{split}{weights}{v1} // 0) == 20 && !$s->{'/q'}{targets}{c}{enabled};
    }
    return fleet_field('split', '/p') =~ / 2000 8000$/;
});

# a lagging instance writes back first: its settings are older than the
# others', and its restore gives the hash the version they hold; those that
# knew more write theirs back, and no instance takes the older settings
wait_for('the instances at one version', sub {
    my %v = map { (state($_ ? $_ : ())->{fleet_version} // -1) => 1 } undef, $two, $four;
    keys %v == 1;
});
my $vnow = state()->{fleet_version};
is($t->redis_cli('r', 'EVAL', 'redis.call("DEL", KEYS[1]) '
                 . 'redis.call("HSET", KEYS[1], "v", ARGV[1], "restored", ARGV[2], ARGV[3], ARGV[4]) '
                 . 'return 1', 1, 'fanout:runtime', $vnow, $vnow - 1, "shadow\x1fsh\x1f/p", '100'),
   1, 'the hash replaced by an older restore, at the version held');
wait_for('a restore from an older version is overwritten by those that knew more', sub {
    (fleet_field('split', '/p') // '') =~ / 2000 8000$/
        && (fleet_field('shadow', 'sh', '/p') // '') eq '900'
        && (fleet_field('target', 'c', '/q') // '') eq 'disabled';
});
cmp_ok($t->redis_cli('r', 'HGET', 'fanout:runtime', 'v'), '>', $vnow, '  at a version past the one held');
sleep 0.6;
for my $port (undef, $two, $four) {
    my $s = state($port ? $port : ())->{locations};
    is($s->{'/p'}{shadows}{sh}{percent} . ' ' . ($s->{'/p'}{split}{weights}{v1} // 0), '9 20',
       '  no instance took the older settings (' . ($port // 'first') . ')');
}

for my $c ('{"location":"/p","weights":"config"}',
           '{"location":"/p","shadow":"sh","percent":"config"}',
           '{"location":"/q","target":"c","enabled":true}',
           '{"location":"/q","target":"b","breaker":"auto"}') {
    is(api($c)->{status}, 200, "back: $c");
}
$t->stop_instance('four');

# --- Redis stopped mid-command: the API answers by its timer, "local"

$t->redis_signal('r', 'STOP');
my $s0 = time;
$r = api('{"location":"/q","target":"c","breaker":"open"}');
my $took = time - $s0;
is($r->{status}, 200, 'Redis stopped: the change still answered');
is($r->{json}{written}, 'local', '  written: local');
ok($took < 2, sprintf('  within the Redis timeout (%.2f s)', $took));
is($r->{json}{locations}{'/q'}{targets}{c}{breaker}, 'open', '  and made here');
$t->redis_signal('r', 'CONT');
api('{"location":"/q","target":"c","breaker":"auto"}');

# --- Redis down: made here, said to be local

$t->redis_signal('r', 'KILL');
$r = api('{"location":"/p","weights":{"v1":100,"v2":0}}', port => $two);
is($r->{status}, 200, 'Redis down: still 200');
is($r->{json}{written}, 'local', 'written: local');
is(variants($two)->{v1}, 200, 'and made here');

$t->done;
