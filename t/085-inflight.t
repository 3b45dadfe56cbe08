# max_inflight: a per-target cap on concurrent calls across all workers,
# given back on every path (answer, timeout, client abort).

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->mock('slow', ms => 500);
$t->mock('hang', mode => 'hang');

$t->run(workers => 2, http => <<'EOC');
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%% reuseport;
    location /_slow { internal; proxy_pass http://127.0.0.1:%%MOCK_slow%%/; }
    location /_hang { internal; proxy_pass http://127.0.0.1:%%MOCK_hang%%/; }
    location /cap  { fanout_target slow /_slow max_inflight=3; }
    location /capt { fanout_target hang /_hang max_inflight=2 timeout=200ms; }
    location = /fanout/status { fanout_status; }
}
EOC

sub calls { scalar grep { $_->{method} } $t->hits($_[0]) }
sub inflight { $t->status_json->{locations}{$_[0]}{targets}{$_[1]}{inflight} }

my @res = $t->parallel(10, 'GET', '/cap');
is(calls('slow'), 3, 'ten at once over two workers: exactly 3 calls');
is(scalar(grep { ($_->{body} // '') =~ /"overloaded"/ } @res), 7,
   'the 7 others were told overloaded');
is(inflight('/cap', 'slow'), 0, 'every slot given back');

# timeouts give their slots back

$t->get('/capt') for 1 .. 4;
is(calls('hang'), 4, 'after timeouts the slots are free again: 4 calls');
is(inflight('/capt', 'hang'), 0, 'none held');

# client aborts give theirs back too

for (1 .. 3) {
    my $c = $t->connect;
    print $c "GET /cap HTTP/1.1\r\nHost: x\r\n\r\n";
    sleep 0.1;
    close $c;
}
sleep 0.3;
is(inflight('/cap', 'slow'), 0, 'aborted clients held no slot');

my $before = calls('slow');
@res = $t->parallel(3, 'GET', '/cap');
is(calls('slow') - $before, 3, 'and three calls go through again');

$t->outcomes_add_up;
$t->done;
