# The Open Inference Protocol (KServe v2): outputs come in any order, so
# FIELD paths select an output by its name (outputs[name=probabilities]),
# and the merge reads each model's own output whatever its place.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

$t->mock('m', mode => 'model', proto => 'v2', two => 1);

my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass $m/?off=0; }
    location /_b { internal; proxy_pass $m/?off=10&rev=1; }
    location /_c { internal; proxy_pass $m/?off=0&rev=1; }
    location /mean  { fanout_target a /_a; fanout_target b /_b;
                      fanout_merge mean outputs[name=probabilities].data; }
    location /index { fanout_target a /_a; fanout_target b /_b;
                      fanout_merge mean outputs.1.data; }
    location /vote  { fanout_target a /_a; fanout_target b /_b; fanout_target c /_c;
                      fanout_merge vote outputs[name=label].data.0; }
    location /missing { fanout_target a /_a;
                        fanout_merge mean outputs[name=logits].data; }
    location = /fanout/status { fanout_status; }
}
EOC

my $body = '{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}';

my $r = $t->post('/mean', $body);
is($r->{status}, 200, 'mean over outputs[name=probabilities].data: 200');
is($r->{json}{results}{a}{outputs}[1]{name}, 'probabilities', 'model a: probabilities second');
is($r->{json}{results}{b}{outputs}[0]{name}, 'probabilities', 'model b: probabilities first');
is_deeply($r->{json}{merged}{value}, [ 0.165 ],
          'each model\'s probabilities averaged: (0.06 + 0.27) / 2');

$r = $t->post('/index', $body);
is_deeply($r->{json}{merged}{value}, [ 1.03 ],
          'by index the answer mixes a label with a probability: why selectors');

$r = $t->post('/vote', $body);
is($r->{status}, 200, 'vote over outputs[name=label].data.0: 200');
is($r->{json}{merged}{value}, 0, 'models a and c say label 0, b says 2: 0 wins');

$r = $t->post('/missing', $body);
is($r->{status}, 502, 'no output of that name: 502');
is($r->{json}{errors}{a}{error}, 'bad_field', 'bad_field');

$t->done;
