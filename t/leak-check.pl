#!/usr/bin/perl
# make leak-check: one nginx process (master_process off) under valgrind
# through fan-outs, merges, deadlines, cache misses, hits, bypasses,
# level=target, shadows (compared, sampled, timed out), fanout_api's
# changes written to Redis and polled back, a ramp's ticks, a purge, and a
# killed Redis; fails on invalid memory accesses and on
# any memory definitely lost but nginx's own environment copy.  The module's
# symbols are kept, for the stacks, although nginx unloads it at exit.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use FT;
use Time::HiRes qw(sleep);

my $t = FT->new;

$t->redis('r');
$t->mock('a', mode => 'echo');
$t->mock('b', mode => 'echo', ms => 50);
$t->mock('m');
$t->mock('sf', mode => 'sse', gap => 10, events => 5);
$t->mock('ss', mode => 'sse', first => 200, gap => 10, events => 5);
$t->mock('sd', mode => 'sse', gap => 10, events => 5, die => 2);
$t->mock('mb', mode => 'model');
$t->mock('oa', mode => 'model', proto => 'openai', rev => 1);

my $p = $t->dir . '/nginx';
my $conf = $t->conf_text(main => 'master_process off;', http => <<'EOC');
fanout_zone fanout 1m;
fanout_redis 127.0.0.1:%%REDIS_r%% timeout=200ms;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /p { fanout_target a /_a; fanout_target b /_b; fanout_cache ttl=60s; }
    location /t { fanout_target a /_a; fanout_target b /_b;
                  fanout_cache ttl=60s level=target; }
    location /m { fanout_target a /_a; fanout_target b /_b;
                  fanout_merge mean len; fanout_timeout 20ms; }
    location /f { fanout_target a /_a; fanout_target b /_b; fanout_merge first; }
    location /l { fanout_target a /_a;
                  fanout_limit key=$arg_k rate=1r/m burst=2; }
    location /_bad { internal; return 500; }
    location /br { fanout_target bad /_bad; fanout_target a /_a;
                   fanout_breaker failures=2 cooldown=100ms; }
    location /sh { fanout_target a /_a; fanout_merge first;
                   fanout_shadow s /_b compare=len sample=redis;
                   fanout_shadow slow /_b?ms=300 timeout=100ms; }
    location /_flaky { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?flaky=1; }
    location /_late { internal; proxy_pass http://127.0.0.1:%%MOCK_m%%/?slow_marked=300; }
    location /_sf { internal; proxy_pass http://127.0.0.1:%%MOCK_sf%%/; }
    location /_ss { internal; proxy_pass http://127.0.0.1:%%MOCK_ss%%/; }
    location /_sd { internal; proxy_pass http://127.0.0.1:%%MOCK_sd%%/; }
    location /rt { fanout_target m /_flaky;
                   fanout_retry attempts=3 backoff=1ms max_backoff=2ms; }
    location /hd { fanout_target m /_late; fanout_hedge after=20ms budget=100%; }
    location /st { fanout_target ss /_ss; fanout_target sf /_sf;
                   fanout_merge first; }
    location /sd { fanout_target sd /_sd; fanout_merge first; }
    location /bt { fanout_target a /_a; fanout_target b /_b;
                   fanout_cache ttl=60s; fanout_batch instances concurrency=3; }
    location /_mb { internal; proxy_pass http://127.0.0.1:%%MOCK_mb%%/; }
    location /mb { fanout_target m /_mb batch=4 batch_wait=5ms; }
    location /bf { fanout_target a /_a; fanout_target b /_b; fanout_merge first;
                   fanout_batch instances chunk=2; }
    location /sp { fanout_split $arg_u ramp=10%,100% every=100ms min_requests=2 {
                       10% v2; * v1; }
                   fanout_target a /_a variant=v1; fanout_target b /_b variant=v2;
                   fanout_shadow s /_a percent=0; }
    location /w  { fanout_split $arg_u { 50% v1; * v2; }
                   fanout_target a /_a variant=v1; fanout_target b /_b variant=v2; }
    location /_oa { internal; proxy_pass http://127.0.0.1:%%MOCK_oa%%/; }
    location /oa { fanout_target o /_oa batch=4 batch_wait=5ms batch_format=openai; }
    location /bb { fanout_target a /_a; fanout_target bad /_bad;
                   fanout_breaker failures=3 cooldown=50ms;
                   fanout_batch instances chunk=1 max_items=64; }
    location /q  { fanout_target a /_a max_inflight=1 queue=4 queue_timeout=50ms
                                 priority=$arg_p fair=$arg_u; }
    location /qa { fanout_target a /_a max_inflight=auto:1:2 queue=4; }
    location = /api { fanout_api write; }
    location = /fanout/status { fanout_status prometheus; }
}
EOC
FT::write_file("$p/nginx.conf", $conf);

my $pid = fork();
if ($pid == 0) {
    { exec 'valgrind', '--leak-check=full', '--show-leak-kinds=definite',
           '--keep-debuginfo=yes',
           "--log-file=$p/valgrind.log", $FT::NGINX, '-p', $p,
           '-c', "$p/nginx.conf", '-e', "$p/error.log" };
    POSIX::_exit(127);
}

FT::wait_port($t->port('http')) or die "nginx under valgrind did not start\n";
sleep 1;

for my $i (1 .. 20) {
    $t->post('/p', qq({"i":$i}));
    $t->post('/p', qq({"i":$i}));
    $t->post('/p', '{}', headers => { 'Cache-Control' => 'no-cache' });
    $t->post('/t', qq({"i":$i}));
    $t->post('/m', '{}');
    $t->post('/f', '{}');
    $t->get("/l?k=$_") for 1 .. 3;
    $t->get('/br');
    $t->post('/sh', qq({"i":$i}));
    $t->post('/rt', qq({"rt":$i}));
    $t->post('/hd', qq({"slow":$i}));
    $t->post('/st', '{}');
    $t->post('/sd', '{}');
    $t->post('/bt', qq({"instances":[$i,1,2,3,"x$i"]}));
    $t->post('/bf', qq({"instances":[$i,1,2]}));
    $t->post('/bt', '{"instances":[1],"instances":[2]}');
    $t->parallel(3, 'POST', '/mb', body => qq({"instances":[$i]}));
    $t->post('/mb', 'not json');
    $t->parallel(3, 'POST', '/oa', body => qq({"input":["a$i","bb"]}));
    $t->post('/bb', '{"instances":[' . join(',', 1 .. 40) . ']}');
    $t->request('PATCH', '/api', body => '{"location":"/w","target":"a","enabled":false}');
    $t->post("/sp?u=$_", '{}') for 1 .. 5;
    $t->post("/w?u=$_", '{}') for 1 .. 3;
    $t->request('PATCH', '/api', body => qq({"location":"/w","weights":{"v1":${\ ($i % 2 ? 100 : 0)},"v2":${\ ($i % 2 ? 0 : 100)}}}));
    $t->request('PATCH', '/api', body => '{"location":"/sp","shadow":"s","percent":50}');
    $t->request('PATCH', '/api', body => '{"location":"/br","target":"a","breaker":"open"}');
    $t->request('PATCH', '/api', body => '{"location":"/br","target":"a","breaker":"auto"}');
    $t->request('POST', '/api', body => '{"location":"/p","purge":true}') if $i % 5 == 0;
    $t->request('PATCH', '/api', body => '{"location":"/w","weights":{"v1":50}}');
    $t->request('PATCH', '/api', body => 'nope');
    $t->get('/api');
    # queued calls: granted, shed (full, timeout), and one whose client left
    $t->parallel(6, 'POST', "/q?ms=30&p=$i&u=" . ($i % 3), body => '{}');
    $t->parallel(4, 'POST', '/qa?ms=20', body => '{}');
    my $c = $t->connect;
    print $c "POST /q?ms=200 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    my $c2 = $t->connect;
    print $c2 "POST /q HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    sleep 0.02;
    close $c2;
    close $c;
}
$t->request('PATCH', '/api', body => '{"location":"/sp","ramp":"restart"}');
sleep 0.5;    # the last shadows end
$t->get('/fanout/status');

$t->redis_signal('r', 'KILL');
sleep 0.3;
$t->post('/p', '{"down":1}') for 1 .. 5;
$t->post('/sh', '{"down":1}') for 1 .. 5;
$t->request('PATCH', '/api', body => '{"location":"/w","weights":"config"}');
sleep 0.5;

kill 'QUIT', $pid;
waitpid($pid, 0);

my $log = FT::read_text("$p/valgrind.log");
my @records = split /\n(?===\d+== \n)/, $log;

my @invalid = grep { /Invalid (read|write|free)|uninitialised|Mismatched/ }
              @records;
# nginx keeps its environment copy to the end; every other loss is a leak
my @ours = grep { /definitely lost in loss record/
                  && !/ngx_set_environment/ }
           @records;

print @invalid || @ours ? join("\n", @invalid, @ours) . "\n" : '';
printf "leak-check: %d invalid accesses, %d leaks\n",
       scalar @invalid, scalar @ours;
print +($log =~ /(total heap usage[^\n]*)/)[0] // '', "\n";

$t->stop;
exit(@invalid || @ours ? 1 : 0);
