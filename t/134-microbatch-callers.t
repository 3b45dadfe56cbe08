# Micro-batching attacked: one caller must never get another caller's
# answer, nor what speaks of the whole batch, and never take the blame for
# another's bad input.  Models that list OpenAI rows in any order (each
# with its index), that lie about the indexes, that count the batch's
# tokens in one usage; callers of two tenants at once; a caller with a bad
# input that leaves while its batch is at the model.

use strict;
use warnings;

use lib 't/lib';
use FT;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

my $t = FT->new;

$t->mock('oa', mode => 'model', proto => 'openai');
$t->mock('m', mode => 'model');

my $oa = 'http://127.0.0.1:%%MOCK_oa%%';
my $m = 'http://127.0.0.1:%%MOCK_m%%';

$t->run(workers => 1, http => <<"EOC");
fanout_zone fanout 1m;
server {
    listen 127.0.0.1:%%PORT_http%%;

    location /_rev   { internal; proxy_pass $oa/?rev=1&k=rev; }
    location /_dup   { internal; proxy_pass $oa/?badidx=dup&k=dup; }
    location /_miss  { internal; proxy_pass $oa/?badidx=missing&k=miss; }
    location /_range { internal; proxy_pass $oa/?badidx=range&k=range; }
    location /_v1    { internal; proxy_pass $m/?k=v1; }
    location /_leave { internal; proxy_pass $m/?ms=800&fail_status=422&k=leave; }

    location /rev   { fanout_target o /_rev batch=8 batch_wait=300ms batch_format=openai; }
    location /dup   { fanout_target o /_dup batch=8 batch_wait=300ms batch_format=openai; }
    location /miss  { fanout_target o /_miss batch=8 batch_wait=300ms batch_format=openai; }
    location /range { fanout_target o /_range batch=8 batch_wait=300ms batch_format=openai; }
    location /v1    { fanout_target m /_v1 batch=8 batch_wait=300ms; }
    location /leave { fanout_target m /_leave batch=8 batch_wait=300ms; }
    location = /fanout/status { fanout_status; }
}
EOC

sub calls {
    my ($mock, $k) = @_;
    return grep { ($_->{uri} // '') =~ /[?&]k=\Q$k\E(?:&|$)/ } $t->hits($mock);
}

# OpenAI rows listed in reverse: each caller its own, by index, 3 rounds

my @words = ('alpha', 'bb', 'c');
my $wrong = 0;
my $usage = 0;
for my $round (1 .. 3) {
    my @res = $t->concurrent([ map { [ 'POST', '/rev',
                                       body => qq({"model":"e5","input":"$_"}) ] }
                               @words ]);
    for my $i (0 .. $#words) {
        my $d = eval { decode_json($res[$i]{body}) } || {};
        my $data = $d->{results}{o}{data} || [];
        $wrong++ unless $res[$i]{status} == 200 && @$data == 1
                        && $data->[0]{embedding}[0] == length $words[$i]
                        && $data->[0]{index} == 0;
        $usage++ if exists $d->{results}{o}{usage};
    }
}
is(scalar(calls('oa', 'rev')), 3, 'three rounds of three callers: three batches');
is($wrong, 0, 'a model listing rows in reverse: each caller got its own '
              . 'embedding, by its index, 9 of 9');
is($usage, 0, 'no caller got the batch\'s usage (the tokens of all three)');

# a caller that was the whole batch keeps its usage, exactly
my $r = $t->post('/rev', '{"model":"e5","input":["alpha","bb"]}');
is_deeply($r->{json}{results}{o}{usage}, { prompt_tokens => 7, total_tokens => 7 },
          'a caller alone in its batch: the usage is its own, kept');
is_deeply([ map { $_->{embedding}[0] } @{ $r->{json}{results}{o}{data} } ], [ 5, 2 ],
          'its two embeddings in its inputs\' order');

# lying indexes: every caller of the batch fails, none gets a row

for my $case ([ '/dup', 'every index 0' ], [ '/miss', 'an index missing' ],
              [ '/range', 'an index out of range' ]) {
    my @res = $t->concurrent([ map { [ 'POST', $case->[0],
                                       body => qq({"input":"$_"}) ] } @words ]);
    my $refused = grep {
        my $d = eval { decode_json($_->{body}) } || {};
        $_->{status} == 502 && ($d->{errors}{o}{error} // '') eq 'bad_batch'
            && !$d->{results}{o}
    } @res;
    is($refused, 3, "$case->[1]: each of the 3 callers fails with bad_batch");
}
like($t->error_log, qr/says its rows' inputs wrong \(an index missing, repeated or out of range\)/,
     'the error log says why');

# KServe v1: fields outside the protocol may speak of the batch

my @res = $t->concurrent([ map { [ 'POST', '/v1', body => qq({"instances":[$_]}) ] }
                           1 .. 3 ]);
is(scalar(calls('m', 'v1')), 1, 'v1: three callers, one call');
is(scalar(grep { !exists $_->{json}{results}{m}{calls_inputs} } @res), 3,
   'the model\'s count of the batch\'s inputs goes to no caller');
is_deeply([ map { $_->{json}{results}{m}{predictions}[0] } @res ], [ 2, 4, 6 ],
          'each its own prediction');

# tenants: callers with other credentials never share a batch

@res = $t->concurrent([ map { [ 'POST', '/v1', body => qq({"instances":[$_]}),
                                headers => { Authorization => "Bearer tenant-" . ($_ % 2) } ] }
                        1 .. 4 ]);
is(scalar(calls('m', 'v1')), 3, 'two tenants: two batches');
my %by = map { (($_->{headers}{authorization} // '') => scalar @{ (decode_json($_->{body}))->{instances} }) }
         grep { ($_->{uri} // '') =~ /k=v1/ } ($t->hits('m'))[-2, -1];
is_deeply(\%by, { 'Bearer tenant-0' => 2, 'Bearer tenant-1' => 2 },
          'each tenant\'s inputs in its own call, with its own credentials');

# a caller whose bad input fails the batch (422) leaves while the batch is
# at the model: the other is still sent alone, and answered

my $ok = 0;
for my $round (1 .. 3) {
    my $before = calls('m', 'leave');
    my $bad = $t->connect;
    my $body = '{"instances":["fail"]}';
    print $bad "POST /leave HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    sleep 0.05;
    my @res = $t->concurrent([ [ 'POST', '/leave', body => '{"instances":[5]}' ] ],
        during => sub {
            # the batch of both is at the model: then the bad caller leaves
            for (1 .. 200) { last if calls('m', 'leave') > $before; sleep 0.01; }
            # shutdown: the forked client holds a copy of the socket too
            shutdown($bad, 2);
            close $bad;
        });
    my $d = eval { decode_json($res[0]{body}) } || {};
    $ok++ if $res[0]{status} == 200 && $d->{results}{m}{predictions}[0] == 10;
    diag("round $round: $res[0]{status} $res[0]{body}") if $res[0]{status} != 200;
}
is($ok, 3, 'the caller that stayed got its own answer, 3 rounds of 3');
my @leave = calls('m', 'leave');
is(scalar(grep { $_->{body} =~ /"fail"/ && $_->{body} =~ /5/ } @leave), 3,
   'each round the two inputs went as one batch first');
is(scalar(grep { $_->{body} !~ /"fail"/ } @leave), 3,
   'then the good one alone (the one that left was not sent again)');

ok($t->status_json->{locations}{'/leave'}{aborted} >= 3,
   'the callers that left were noticed (aborted)');

$t->outcomes_add_up;

$t->done;
