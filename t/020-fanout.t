# The core fan-out: concurrency, and the client's method, body and headers
# reaching every target exactly once, including file-buffered bodies.

use strict;
use warnings;

use lib 't/lib';
use Digest::SHA qw(sha1_hex);
use FT;
use Test::More;

my $t = FT->new;

$t->mock('a', ms => 100, mode => 'echo');
$t->mock('b', ms => 200, mode => 'echo');
$t->mock('c', ms => 300, mode => 'echo');

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
upstream a { server 127.0.0.1:%%MOCK_a%%; keepalive 8; }
server {
    listen 127.0.0.1:%%PORT_http%%;
    client_body_buffer_size 1k;
    client_max_body_size 10m;

    location /_m/a { internal; proxy_pass http://a/v1/predict;
                     proxy_http_version 1.1;
                     proxy_set_header Connection ""; }
    location /_m/b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/v1/predict; }
    location /_m/c { internal; proxy_pass http://127.0.0.1:%%MOCK_c%%/v1/predict; }

    location /predict {
        fanout_target a /_m/a;
        fanout_target b /_m/b;
        fanout_target c /_m/c;
    }
}
EOC

# concurrency: 100, 200 and 300 ms give about 300 ms, not 600

my $body = '{"input":[1,2,3]}';
my $res = $t->post('/predict', $body, headers => { 'X-Test' => 'yes' });

is($res->{status}, 200, 'fan-out answers 200');
like($res->{headers}{'content-type'}, qr{^application/json}, 'JSON answer');
cmp_ok($res->{time}, '>=', 0.29, 'waits for the slowest target');
cmp_ok($res->{time}, '<', 0.55, 'targets are called concurrently, not in turn')
    or diag("took $res->{time}s");

my $j = $res->{json};
is_deeply([sort keys %{ $j->{results} }], [qw(a b c)], 'all three results');
is($j->{meta}{targets}, 3, 'meta.targets');
is($j->{meta}{ok}, 3, 'meta.ok');
is($j->{meta}{failed}, 0, 'meta.failed');
is_deeply($j->{errors}, {}, 'no errors');
cmp_ok($j->{meta}{latency_ms}{c}, '>=', 290, 'latency of c is measured');

for my $n (qw(a b c)) {
    my $r = $j->{results}{$n};
    is($r->{method}, 'POST', "$n got the client's method");
    is($r->{sha1}, sha1_hex($body), "$n got the client's body");
    is($r->{xtest}, 'yes', "$n got the client's headers");
    is($r->{uri}, '/v1/predict', "$n got its own URI");
}

# Accept-Encoding is dropped: answers must come as plain JSON

$res = $t->post('/predict', $body, headers => { 'Accept-Encoding' => 'gzip' });
is($res->{json}{results}{a}{ae}, undef, 'no Accept-Encoding reaches a target');

# query arguments pass through

$res = $t->get('/predict?k=v');
is($res->{json}{results}{b}{uri}, '/v1/predict?k=v', 'client args reach targets');
is($res->{json}{results}{b}{method}, 'GET', 'GET stays GET');

# a body larger than client_body_buffer_size is buffered to a temp file

my $big = '{"pad":"' . ('z' x 300000) . '"}';
$res = $t->post('/predict', $big);

is($res->{status}, 200, 'file-buffered body: 200');
for my $n (qw(a b c)) {
    is($res->{json}{results}{$n}{len}, length $big, "$n got the whole body");
    is($res->{json}{results}{$n}{sha1}, sha1_hex($big),
       "$n got the same bytes");
}

# each target got each body exactly once

my %count;
for my $n (qw(a b c)) {
    my @h = grep { $_->{sha1} eq sha1_hex($big) } $t->hits($n);
    is(scalar @h, 1, "$n received the big body exactly once");
}

# PUT with an empty body, and HEAD

$res = $t->request('PUT', '/predict', body => '');
is($res->{json}{results}{c}{method}, 'PUT', 'PUT reaches targets');

$res = $t->request('HEAD', '/predict');
is($res->{status}, 200, 'HEAD answers 200');
is($res->{body}, '', 'HEAD has no body');

$t->done;
