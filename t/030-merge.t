# Merge modes: all, first, mean and vote, with weights, ties, unusable
# fields and quorum.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

$t->mock('a', ms => 150,
         body => '{"output":{"scores":[0.1,0.2,0.7]},"label":"cat","n":1}');
$t->mock('b', ms => 50,
         body => '{"output":{"scores":[0.3,0.3,0.4]},"label":"dog","n":2}');
$t->mock('c', ms => 100,
         body => '{"output":{"scores":[0.2,0.1,0.7]},"label":"dog","n":3}');
$t->mock('odd', body => '{"output":{"scores":[1,2]},"label":["x"],"n":"z"}');
$t->mock('miss', body => '{"other":true}');
$t->mock('text', ctype => 'text/x-custom', ms => 30, body => '{"fast":1}');
$t->mock('s500', status => 500, body => '{"error":"boom"}');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a    { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b    { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_c    { internal; proxy_pass http://127.0.0.1:%%MOCK_c%%/; }
    location /_odd  { internal; proxy_pass http://127.0.0.1:%%MOCK_odd%%/; }
    location /_miss { internal; proxy_pass http://127.0.0.1:%%MOCK_miss%%/; }
    location /_text { internal; proxy_pass http://127.0.0.1:%%MOCK_text%%/; }
    location /_s500 { internal; proxy_pass http://127.0.0.1:%%MOCK_s500%%/; }

    location /all   { fanout_target a /_a; fanout_target b /_b; }
    location /mean  { fanout_target a /_a weight=2; fanout_target b /_b;
                      fanout_target c /_c; fanout_merge mean output.scores; }
    location /mean-scalar { fanout_target a /_a; fanout_target c /_c weight=3;
                            fanout_merge mean n; }
    location /mean-bad { fanout_target a /_a; fanout_target odd /_odd;
                         fanout_target miss /_miss;
                         fanout_merge mean output.scores; }
    location /mean-quorum { fanout_target a /_a; fanout_target odd /_odd;
                            fanout_merge mean output.scores; fanout_quorum 2; }
    location /vote  { fanout_target a /_a weight=1.5; fanout_target b /_b;
                      fanout_target c /_c; fanout_merge vote label; }
    location /vote-tie { fanout_target a /_a; fanout_target b /_b;
                         fanout_merge vote label; }
    location /vote-w { fanout_target a /_a weight=2.5; fanout_target b /_b;
                       fanout_target c /_c; fanout_merge vote label; }
    location /vote-num { fanout_target a /_a; fanout_target b /_b;
                         fanout_target odd /_odd; fanout_merge vote n; }
    location /vote-index { fanout_target a /_a; fanout_target c /_c;
                           fanout_merge vote output.scores.2; }
    location /first { fanout_target a /_a; fanout_target b /_b;
                      fanout_target c /_c; fanout_merge first; }
    location /first-skip { fanout_target s500 /_s500; fanout_target text /_text;
                           fanout_target a /_a; fanout_merge first; }
    location = /fanout/status { fanout_status; }
}
EOC

sub near {
    my ($got, $want, $name) = @_;
    my $ok = @$got == @$want;
    for my $i (0 .. $#$want) {
        $ok &&= abs($got->[$i] - $want->[$i]) < 1e-9;
    }
    ok($ok, $name) or diag("got [@$got], want [@$want]");
}

# all

my $res = $t->get('/all');
is($res->{status}, 200, 'all: 200');
is_deeply($res->{json}{results}{a},
          { output => { scores => [0.1, 0.2, 0.7] }, label => 'cat', n => 1 },
          'all: a parsed as it came');
is_deeply([sort keys %{ $res->{json} }], [qw(errors meta results)],
          'all: results, errors, meta and nothing else');

# mean: weighted, element-wise

$res = $t->get('/mean');
is($res->{json}{merged}{field}, 'output.scores', 'mean: field');
is($res->{json}{merged}{from}, 3, 'mean: from 3');
near($res->{json}{merged}{value},
     [(2*0.1 + 0.3 + 0.2)/4, (2*0.2 + 0.3 + 0.1)/4, (2*0.7 + 0.4 + 0.7)/4],
     'mean: weighted element-wise mean');
ok($res->{json}{results}{a}, 'mean: everything all gives too');

$res = $t->get('/mean-scalar');
ok(abs($res->{json}{merged}{value} - (1 + 3*3)/4) < 1e-9, 'mean of a number');

$res = $t->get('/mean-bad');
is($res->{json}{merged}{from}, 1, 'mean: only usable answers count');
is($res->{json}{errors}{odd}{error}, 'bad_field', 'other shape: bad_field');
like($res->{json}{errors}{odd}{detail}, qr/shape/, 'detail says why');
is($res->{json}{errors}{miss}{error}, 'bad_field', 'missing field: bad_field');
like($res->{json}{errors}{miss}{detail}, qr/missing/, 'detail: missing');
near($res->{json}{merged}{value}, [0.1, 0.2, 0.7], 'mean of the one left');

$res = $t->get('/mean-quorum');
is($res->{status}, 502, 'bad_field counts against the quorum');

# vote

$res = $t->get('/vote');
is($res->{json}{merged}{value}, 'dog', 'vote: majority 2 > 1.5');
is_deeply($res->{json}{merged}{votes}, { cat => 1.5, dog => 2 }, 'vote: tally');

$res = $t->get('/vote-w');
is($res->{json}{merged}{value}, 'cat', 'vote: weight 2.5 beats 2');

$res = $t->get('/vote-tie');
is($res->{json}{merged}{value}, 'cat', 'vote: a tie goes to the earlier target');

$res = $t->get('/vote-num');
is($res->{json}{merged}{value}, 1, 'vote on numbers keeps the type');
is($res->{json}{errors}{odd}, undef, 'a string is a valid ballot');
is_deeply($res->{json}{merged}{votes}, { 1 => 1, 2 => 1, z => 1 }, 'tally');

$res = $t->get('/vote-index');
is($res->{json}{merged}{value}, 0.7, 'vote through an array index path');

# first: the fastest success, as it came

$res = $t->get('/first');
is($res->{status}, 200, 'first: 200');
is($res->{headers}{'x-fanout-target'}, 'b', 'first: the fastest (b, 50 ms)');
is($res->{body}, '{"output":{"scores":[0.3,0.3,0.4]},"label":"dog","n":2}',
   'first: the body byte for byte');
cmp_ok($res->{time}, '<', 0.14, 'first: answers after ~50 ms, not 150')
    or diag($res->{time});

$res = $t->get('/first-skip');
is($res->{headers}{'x-fanout-target'}, 'text',
   'first: a failing target is skipped');
like($res->{headers}{'content-type'}, qr{^text/x-custom},
     "first: the target's Content-Type");

my $st = $t->status_json;
is($st->{locations}{'/first'}{targets}{a}{cancelled}, 1,
   'first: the slower targets are cut off and counted');

$t->outcomes_add_up;
$t->done;
