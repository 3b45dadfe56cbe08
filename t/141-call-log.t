# fanout_call_log: one JSON line per attempt of a target call, with the
# request id, the trace ids (the span each model saw), location, variant,
# target, attempt number and role (first, retry, hedge, fallback), URI,
# status, outcome, bytes, ms, cache status, breaker state, and for a
# failure the upstream's account of it; unbuffered and buffered (written
# after flush=), reopened on USR1; nginx -t errors.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->mock('a', mode => 'echo');
$t->mock('slow', ms => 400);
$t->mock('f', flaky => 1, flaky_status => 503);
my $dead = $t->port('dead');
my $dir = $t->dir . '/nginx';

$t->run(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    fanout_call_log %%TESTDIR%%/nginx/calls.log;

    location /_a    { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_f    { internal; proxy_pass http://127.0.0.1:%%MOCK_f%%/; }
    location /_dead { internal; proxy_pass http://127.0.0.1:%%PORT_dead%%/; }

    location /p {
        fanout_target a /_a;
        fanout_target dead /_dead;
        fanout_target slow /_slow timeout=100ms;
        fanout_split $arg_u { * v1; }
    }
    location /retry {
        fanout_target f /_f;
        fanout_retry attempts=2 on=5xx backoff=1ms;
    }
    location /hedged {
        fanout_target slow /_slow;
        fanout_hedge after=50ms budget=100%;
        fanout_merge first;
    }
    location /buffered {
        fanout_target a /_a;
        fanout_call_log %%TESTDIR%%/nginx/buffered.log buffer=64k flush=300ms;
    }
    location /quiet {
        fanout_target a /_a;
        fanout_call_log off;
    }
}
EOC

sub lines {
    my ($file) = @_;
    open my $fh, '<', "$dir/$file" or return ();
    my @l = map { decode_json($_) } <$fh>;
    return @l;
}

my $res = $t->post('/p?u=7', '{"x":1}');
is($res->{status}, 200, 'a fan-out with a dead and a slow target');
my $rid = $res->{headers}{'x-request-id'};

my @l = grep { $_->{request_id} eq $rid } lines('calls.log');
is(scalar @l, 3, 'one line per target call');

my %by = map { $_->{target} => $_ } @l;
my $a = $by{a};
is($a->{outcome}, 'ok', 'a: ok');
is($a->{status}, 200, 'its status');
is($a->{location}, '/p', 'the location');
is($a->{variant}, 'v1', 'the variant');
is($a->{role}, 'first', 'the first attempt');
is($a->{attempt}, 1, 'number 1');
is($a->{uri}, '/_a', 'its URI');
ok($a->{bytes} > 0, "its bytes ($a->{bytes})");
like($a->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'an ISO 8601 time');
is($a->{breaker}, 'closed', 'the breaker state');
like($a->{trace_id}, qr/^[0-9a-f]{32}$/, 'the trace id');
my @ha = $t->hits('a');
my ($span) = ($ha[-1]{headers}{traceparent} // '') =~ /^00-[0-9a-f]{32}-([0-9a-f]{16})-/;
is($a->{span_id}, $span, 'the span id the model saw');
like($a->{parent_id}, qr/^[0-9a-f]{16}$/, 'and its parent');

is($by{dead}{outcome}, 'upstream_error', 'dead: upstream_error');
is($by{dead}{error}, 'connect_failed', 'with its cause: the connect failed');
is($by{slow}{outcome}, 'timeout', 'slow: timeout');
ok($by{slow}{ms} >= 90, "after its timeout= ($by{slow}{ms} ms)");

$res = $t->post('/retry', '{"x":2}');
$rid = $res->{headers}{'x-request-id'};
@l = sort { $a->{attempt} <=> $b->{attempt} }
     grep { $_->{request_id} eq $rid } lines('calls.log');
is(scalar @l, 2, 'a retried call: two lines');
is($l[0]{outcome}, 'http_5xx', 'the first failed');
is($l[1]{role}, 'retry', 'the second is a retry');
is($l[1]{attempt}, 2, 'number 2');
isnt($l[0]{span_id}, $l[1]{span_id}, 'each with its span');

$res = $t->post('/hedged', '{"x":3}');
$rid = $res->{headers}{'x-request-id'};
sleep 0.6;
@l = grep { $_->{request_id} eq $rid } lines('calls.log');
ok((grep { $_->{role} eq 'hedge' } @l), 'a hedge has its line');
ok((grep { $_->{outcome} eq 'cancelled' } @l) || @l == 2,
   'the attempt that lost is there too');

$res = $t->post('/quiet', '{"x":4}');
$rid = $res->{headers}{'x-request-id'};
ok(!(grep { $_->{request_id} eq $rid } lines('calls.log')), 'off: no line');

# buffered: written after flush=
$res = $t->post('/buffered', '{"x":5}');
$rid = $res->{headers}{'x-request-id'};
ok(!(grep { $_->{request_id} eq $rid } lines('buffered.log')),
   'buffer=: not yet written');
sleep 0.8;
ok((grep { $_->{request_id} eq $rid } lines('buffered.log')),
   'written after flush=');

# USR1: reopened, as access_log
rename "$dir/calls.log", "$dir/calls.log.1";
kill 'USR1', $t->{instances}{nginx}{pid};
sleep 0.5;
$res = $t->post('/p', '{"x":6}');
$rid = $res->{headers}{'x-request-id'};
ok((grep { $_->{request_id} eq $rid } lines('calls.log')),
   'after USR1, lines go to the new file');

# the README's jq example: the slowest model, by its p99
SKIP: {
    skip 'no jq', 1 unless `sh -c 'command -v jq'`;
    my $out = `jq -s -r 'group_by(.target) | map({target: .[0].target, p99: (map(.ms) | sort | .[(length * 0.99 | floor)])}) | max_by(.p99) | .target' $dir/calls.log.1`;
    chomp $out;
    is($out, 'slow', "jq finds the slowest model ($out)");
}

# nginx -t
my ($rc, $o) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /p { fanout_target a /_a; fanout_call_log /tmp/x.log flush=1s; }
    location /_a { internal; return 200 '{}'; }
}
EOC
isnt($rc, 0, 'nginx -t: flush= without buffer=');
like($o, qr/"flush=" needs "buffer="/, 'says so');

($rc, $o) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;
    access_log /tmp/fanout-shared.log combined buffer=8k;
    location /p { fanout_target a /_a;
                  fanout_call_log /tmp/fanout-shared.log buffer=8k; }
    location /_a { internal; return 200 '{}'; }
}
EOC
isnt($rc, 0, 'nginx -t: a buffered access_log\'s file, given before');
like($o, qr/is another log's file/, 'says so');

$t->done;
