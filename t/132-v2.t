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
    location /_dead { internal; return 503; }
    location /_p1 { internal; proxy_pass $m/?p=0.9809526; }
    location /_p2 { internal; proxy_pass $m/?p=0.9809526&rev=1; }
    location /p64 { fanout_target a /_p1; fanout_target b /_p2; fanout_target c /_p1;
                    fanout_merge mean outputs[name=probabilities].data; }
    location /p32 { fanout_target a /_p1; fanout_target b /_p2; fanout_target c /_p1;
                    fanout_merge mean outputs[name=probabilities].data precision=fp32; }
    location /p3  { fanout_target a /_p1; fanout_target b /_p2; fanout_target c /_p1;
                    fanout_merge mean outputs[name=probabilities].data precision=3; }
    location /v2mean { fanout_target a /_a; fanout_target b /_b;
                       fanout_merge mean outputs[name=probabilities].data format=v2; }
    location /v2vote { fanout_target a /_a; fanout_target b /_b; fanout_target c /_c;
                       fanout_merge vote outputs[name=label].data.0 format=v2
                                    model=ensemble output=label; }
    location /v2fail { fanout_target a /_dead; fanout_target b /_b;
                       fanout_quorum 2;
                       fanout_merge mean outputs[name=probabilities].data format=v2; }
    location /v2batch { fanout_target a /_a; fanout_target b /_b;
                        fanout_merge mean outputs[name=probabilities].data format=v2;
                        fanout_batch inputs chunk=1; }
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

# precision=: the shortest text at the precision the models have

like($t->post('/p64', $body)->{body}, qr/"value":\[0\.9809525999999998\]/,
     'fp64 (the default): every digit of the double (3 x 0.9809526 / 3)');
like($t->post('/p32', $body)->{body}, qr/"value":\[0\.9809526\]/,
     'precision=fp32: 0.9809526, the shortest that reads back as the float');
like($t->post('/p3', $body)->{body}, qr/"value":\[0\.981\]/,
     'precision=3: 3 significant digits');

# format=v2: answers a v2 client reads as the protocol says

my %datatypes = map { $_ => 1 } qw(BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16
                                  INT32 INT64 FP16 FP32 FP64 BYTES);

# a v2 client: the checks tritonclient and the kserve SDK make of an
# inference response (REST), and its outputs by name
sub v2_response {
    my ($res, $want_id) = @_;
    my $j = $res->{json};
    my @why;
    push @why, 'not a JSON object' unless ref $j eq 'HASH';
    return (undef, @why) if @why;
    push @why, 'model_name' unless defined $j->{model_name} && !ref $j->{model_name};
    push @why, 'id' if defined $want_id && ($j->{id} // '') ne $want_id;
    push @why, 'outputs' unless ref $j->{outputs} eq 'ARRAY' && @{ $j->{outputs} };
    my %out;
    for my $o (@{ $j->{outputs} || [] }) {
        push @why, 'output name' unless defined $o->{name} && !ref $o->{name};
        push @why, 'datatype' unless $datatypes{ $o->{datatype} // '' };
        push @why, 'shape' unless ref $o->{shape} eq 'ARRAY'
                                  && !grep { !/^\d+$/ } @{ $o->{shape} };
        push @why, 'data' unless ref $o->{data} eq 'ARRAY'
                                 && !grep { ref $_ } @{ $o->{data} };
        my $n = 1;
        $n *= $_ for @{ $o->{shape} || [] };
        push @why, "data has " . scalar(@{ $o->{data} || [] }) . " elements, shape says $n"
            unless @{ $o->{data} || [] } == $n;
        $out{ $o->{name} } = $o;
    }
    if (exists $j->{parameters}) {
        push @why, 'parameters not scalars'
            unless ref $j->{parameters} eq 'HASH'
                   && !grep { ref $_ && !JSON::PP::is_bool($_) } values %{ $j->{parameters} };
    }
    return (\%out, @why);
}

my $idbody = '{"id":"req-42","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}';

$r = $t->post('/v2mean', $idbody);
is($r->{status}, 200, 'format=v2 mean: 200');
my ($out, @why) = v2_response($r, 'req-42');
is_deeply(\@why, [], 'a valid v2 inference response, with the request\'s id');
is($r->{json}{model_name}, 'v2mean', 'model_name: the location\'s name');
is_deeply($out->{probabilities}{data}, [ 0.165 ], 'the merged probabilities');
is_deeply($out->{probabilities}{shape}, [ 1 ], 'shape [1]');
is($out->{probabilities}{datatype}, 'FP64', 'FP64');
is($r->{json}{parameters}{fanout_ok}, 2, 'parameters: fanout_ok');

$r = $t->post('/v2vote', $idbody);
($out, @why) = v2_response($r, 'req-42');
is_deeply(\@why, [], 'format=v2 vote: a valid v2 response');
is($r->{json}{model_name}, 'ensemble', 'model=');
is_deeply($out->{label}{data}, [ 0 ], 'the winning label');
is($out->{label}{datatype}, 'FP64', 'a number votes FP64');

$r = $t->post('/v2fail', $body);
is($r->{status}, 502, 'format=v2, quorum not met: 502');
like($r->{json}{error}, qr/^quorum_not_met: 1 of 2 targets answered, 2 needed$/,
     'the protocol\'s error object, a message');

$r = $t->post('/v2batch', '{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]},'
                          . '{"name":"x","shape":[1,2],"datatype":"FP32","data":[3,4]}]}');
is($r->{status}, 200, 'a fanout_batch of v2 inputs, format=v2 items: 200');
my @ok = map { [ v2_response({ json => $_ }) ] } @{ $r->{json}{items} || [] };
is(scalar(grep { @$_ == 1 } @ok), 2, 'each item a valid v2 response');

$t->done;
