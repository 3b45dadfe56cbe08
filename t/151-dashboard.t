# fanout_status html: the dashboard page. Served as one self-contained
# page (a CSP that allows only its own inline script and style, no other
# origin), ?format= on any status location, nginx -t on a bad format; then
# Debian's headless Chromium loads it under load: charts drawn, no console
# errors, the numbers on screen equal to the JSON's once the load stops, a
# breaker shown open, and a page that keeps working when fields are missing
# (an older module's JSON). The screenshot goes to FT_SCREENSHOT when set
# (make screenshot: the README's picture).

use strict;
use warnings;

use lib 't/lib';
use FT;
use FT::Browser;
use Test::More;
use JSON::PP;
use File::Copy qw(copy);
use POSIX ":sys_wait_h";
use Time::HiRes qw(sleep time);

my $missing = FT::Browser::missing();
if ($missing) {
    fail($missing);
    done_testing;
    exit;
}

my $t = FT->new;

$t->redis('r');
$t->mock('a', ms => 15, body => '{"label":"cat","p":0.91}');
$t->mock('b', ms => 40, body => '{"label":"cat","p":0.88}');
$t->mock('c', ms => 10, body => '{"label":"cat","p":0.93}');

my $dead = $t->port('dead');

# an older module's JSON: no instance, quantiles, breaker or cache
my $old = '{"version":"0.1.0","zone":"fanout","locations":{"/p":{"requests":5,'
        . '"responses":{"200":5},"targets":{"a":{"requests":5,"ok":5}}}}}';

$t->run(http => <<"EOC");
fanout_zone fanout 2m;
fanout_redis 127.0.0.1:%%REDIS_r%%;
fanout_instance dash-1;
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_a { internal; proxy_pass http://127.0.0.1:%%MOCK_a%%/; }
    location /_b { internal; proxy_pass http://127.0.0.1:%%MOCK_b%%/; }
    location /_c { internal; proxy_pass http://127.0.0.1:%%MOCK_c%%/; }
    location /_dead { internal; proxy_pass http://127.0.0.1:$dead/; }
    location /p {
        fanout_target a /_a max_inflight=64;
        fanout_target b /_b;
        fanout_split \$arg_u { 30% candidate; * control; }
        fanout_shadow sh /_c compare=label against=results.a.label;
        fanout_limit key=\$arg_k rate=50r/s burst=5;
        fanout_cache ttl=30s l1=1m;
    }
    location /q {
        fanout_target a /_a;
        fanout_target dead /_dead;
        fanout_quorum 1;
        fanout_breaker failures=3 cooldown=30s;
    }
    location /auto {
        fanout_target c /_c max_inflight=auto:2:64 queue=8;
    }
    location "/x<img src=x onerror=window.pwned=1>" {
        fanout_target a /_a;
    }
    location = /fanout/status { fanout_status html; allow 127.0.0.1; deny all; }
    location = /json { fanout_status; }
    location = /denied { fanout_status html; deny all; }
    location = /old/status {
        if (\$arg_format = json) { return 200 '$old'; }
        fanout_status html;
    }
}
EOC

# --- the page and ?format=, without a browser

my $r = $t->get('/fanout/status');
is($r->{status}, 200, 'fanout_status html answers 200');
like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8}, 'as HTML');
my $csp = $r->{headers}{'content-security-policy'} // '';
like($csp, qr/default-src 'none'/, 'a CSP that allows nothing by default');
like($csp, qr/script-src 'sha256-[A-Za-z0-9+\/]{43}='/, 'its script by its hash');
like($csp, qr/connect-src 'self'/, 'fetches only to its own origin');
is($r->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
unlike($r->{body}, qr{(?:src|href)=["']?(?:https?:)?//}i, 'nothing from another origin');
like($r->{body}, qr{<script>.*fetch\(SRC}s, 'the page polls the JSON');

$r = $t->get('/fanout/status?format=json');
ok($r->{json} && $r->{json}{locations}{'/p'}, '?format=json: the JSON');
is($r->{json}{instance}{name}, 'dash-1', 'fanout_instance names the instance');
$r = $t->get('/fanout/status?format=prometheus');
like($r->{body}, qr/^fanout_build_info\{instance_name="dash-1",version="[\d.]+",nginx_version="[\d.]+"\} 1$/m,
     '?format=prometheus: the metrics, with fanout_build_info');
$r = $t->get('/json?format=html');
like($r->{body}, qr/^<!DOCTYPE html>/, '?format=html on a JSON status location');
$r = $t->get('/fanout/status?format=xml');
is($r->{status}, 400, 'an unknown format: 400');
is($r->{json}{error}, 'bad_format', 'with a JSON error');
is($t->get('/denied')->{status}, 403, 'the page is behind allow/deny like the JSON');
$r = $t->request('HEAD', '/fanout/status');
is($r->{status}, 200, 'HEAD');
is($r->{body} // '', '', 'without a body');

# a learned limit for the page to show (a window is 10 calls)
$t->get('/auto') for 1 .. 12;

# --- load: a steady mix while the browser watches

my $load = fork() // die;
if ($load == 0) {
    my $i = 0;
    my $stop = time + 120;
    while (time < $stop) {
        $i++;
        $t->post("/p?u=" . ($i % 4) . "&k=" . ($i % 4), '{"x":' . ($i % 3 ? $i % 5 : $i) . '}');
        $t->post('/q', '{"y":1}') if $i % 3 == 0;
        sleep 0.01;
    }
    POSIX::_exit(0);
}

my $b = FT::Browser->new($t);
my $port = $t->port('http');

$b->visit("http://127.0.0.1:$port/fanout/status?every=400");

ok($b->wait_for('return window.fanoutDashboard && window.fanoutDashboard.polls >= 10', 30),
   'the page polled its JSON ten times')
    or diag(encode_json($b->js('return window.fanoutDashboard || null')));

my $charts = $b->js(<<'JS');
var out = {};
document.querySelectorAll('svg[data-chart]').forEach(function (s) {
    var pl = s.querySelectorAll('polyline'), most = 0;
    pl.forEach(function (p) { most = Math.max(most, p.getAttribute('points').split(' ').length); });
    var k = s.closest('section').getAttribute('data-location') + ' ' + s.getAttribute('data-chart');
    out[k] = most;
});
return out;
JS
cmp_ok($charts->{"/p requests/s"} // 0, '>=', 4, 'the requests/s chart of /p has its line');
cmp_ok($charts->{"/p latency, 1 min window"} // 0, '>=', 4, 'and the latency chart');
cmp_ok($charts->{"/q requests/s"} // 0, '>=', 4, '/q too');

# the counter tables (?format=fields): the error kinds and the headers' help
my $fields = $b->js(<<'JS');
var th = Array.prototype.filter.call(document.querySelectorAll('th'),
                                     function (h) { return h.textContent === 'retries'; })[0];
return { kinds: window.fanoutDashboard.fields || 0, help: th ? th.title : null };
JS
cmp_ok($fields->{kinds}, '>=', 9, "the error kinds read from the module's tables ($fields->{kinds})");
like($fields->{help} // '', qr/^fanout_retry: attempts tried again/,
     "a column's help is its counter's, from the tables");

my $rate = $b->js(<<'JS');
var s = document.querySelector('section[data-location="/p"] .kpi:nth-child(2) b');
return s ? s.textContent : null;
JS
ok(defined $rate && $rate =~ /^[\d.,]+$/ && $rate > 0, "requests/s under load is a number above 0 ($rate)");

my $names = $b->js(<<'JS');
var s = document.querySelector('section[data-location^="/x"]');
return { img: document.querySelectorAll('main img').length, pwned: window.pwned === 1,
         shown: s ? s.querySelector('h2').textContent : null };
JS
is($names->{shown}, '/x<img src=x onerror=window.pwned=1>', 'a location name with markup is shown as text');
ok(!$names->{img} && !$names->{pwned}, 'and never becomes markup');

my @errors = $b->console_errors;
is_deeply(\@errors, [], 'no error in the console');
is_deeply($b->js('return window.fanoutDashboard.errors'), [], 'no error the page caught');

my $shot = $t->dir . '/dashboard.png';
cmp_ok($b->screenshot($shot), '>', 20000, 'a screenshot under load');
open my $fh, '<:raw', $shot or die;
read $fh, my $magic, 8;
close $fh;
is($magic, "\x89PNG\r\n\x1a\n", 'a PNG');
if ($ENV{FT_SCREENSHOT}) {
    copy($shot, $ENV{FT_SCREENSHOT}) or die "$ENV{FT_SCREENSHOT}: $!";
    diag("screenshot in $ENV{FT_SCREENSHOT}");
}

# --- the numbers on screen are the JSON's, once the load has stopped

kill 'TERM', $load;
waitpid($load, 0);
sleep 1;    # the last answers, their shadows

my $polls = $b->js('return window.fanoutDashboard.polls');
ok($b->wait_for("return window.fanoutDashboard.polls >= $polls + 2", 10), 'two polls after the load');

my $json = $t->get('/json')->{json};
my $cells = $b->js(<<'JS');
return Array.prototype.map.call(document.querySelectorAll('[data-json]'), function (e) {
    return [JSON.parse(e.getAttribute('data-json')), e.textContent];
});
JS

sub at {
    my ($o, @path) = @_;
    for (@path) {
        return undef unless ref $o eq 'HASH' && exists $o->{$_};
        $o = $o->{$_};
    }
    return $o;
}

my @wrong;
for my $c (@$cells) {
    my ($path, $text) = @$c;
    (my $shown = $text) =~ s/,//g;
    my $want = at($json, @$path) // "\x{2013}";
    push @wrong, join('.', @$path) . ": shown $text, JSON $want" if $shown ne $want;
}
cmp_ok(scalar @$cells, '>=', 30, scalar(@$cells) . ' numbers on screen come from the JSON');
is_deeply(\@wrong, [], 'each equals the JSON');

my %shown = map { join("\0", @{ $_->[0] }) => $_->[1] } @$cells;
ok(exists $shown{"locations\0/p\0targets\0a\0requests"}, 'per target calls');
ok(exists $shown{"locations\0/p\0variants\0candidate\0requests"}, 'per variant requests');
ok(exists $shown{"locations\0/p\0shadows\0sh\0agree"}, 'shadow agreement');
ok(exists $shown{"locations\0/p\0limit\0limits\0\$arg_k 50r/s\0rejected"}, 'limit rejections');
ok(exists $shown{"locations\0/p\0cache\0l1_hit"}, 'L1 hits');
ok(exists $shown{"redis\0connections"}, 'Redis connections');

my $view = $b->js(<<'JS');
function rowOf(loc, name) {
    var rows = document.querySelectorAll('section[data-location="' + loc + '"] tr');
    for (var i = 0; i < rows.length; i++) {
        if (rows[i].firstChild.textContent === name) {
            return Array.prototype.map.call(rows[i].children, function (c) { return c.textContent; });
        }
    }
    return null;
}
return { dead: rowOf('/q', 'dead'), a: rowOf('/p', 'a'), cand: rowOf('/p', 'candidate'),
         auto: rowOf('/auto', 'c'),
         inst: document.getElementById('inst').textContent,
         hit: Array.prototype.map.call(document.querySelectorAll('section[data-location="/p"] .kpi'),
                                       function (k) { return k.textContent; }) };
JS

like($view->{dead}[8] // '', qr/^open\b.*retry in/, "the dead target's breaker shows open with its retry ($view->{dead}[8])");
like($view->{a}[9] // '', qr{^\d+ / 64$}, "in flight against max_inflight ($view->{a}[9])");
like($view->{auto}[9] // '', qr{^\d+ / \d+ \(learned\)$},
     "max_inflight=auto: in flight against the limit learned (" . ($view->{auto}[9] // '') . ")");
like($view->{inst}, qr/dash-1 .*module [\d.]+ .*nginx [\d.]+/, "the instance, the module's and nginx's version ($view->{inst})");

my $c = $json->{locations}{'/p'}{cache};
my $ratio = sprintf '%.1f%%', 100 * $c->{hit} / ($c->{hit} + $c->{miss});
ok((grep { $_ eq "${ratio}hit ratio" } @{ $view->{hit} }), "the cache hit ratio is the JSON's ($ratio)")
    or diag(join ' | ', @{ $view->{hit} });

my $v = $json->{locations}{'/p'}{variants};
my $all = $v->{candidate}{requests} + $v->{control}{requests};
is($view->{cand}[2], sprintf('%.1f%%', 100 * $v->{candidate}{requests} / $all), "the candidate's share ($view->{cand}[2])");

@errors = $b->console_errors;
is_deeply(\@errors, [], 'still no console error');

# --- an older module's JSON: what is missing shows as a dash

$b->visit("http://127.0.0.1:$port/old/status?every=300");
ok($b->wait_for('return window.fanoutDashboard && window.fanoutDashboard.rendered >= 2', 20),
   'the page renders an older JSON');
my $oldv = $b->js(<<'JS');
var s = document.querySelector('section[data-location="/p"]');
return { text: s ? s.textContent : '', errors: window.fanoutDashboard.errors,
         msg: document.getElementById('msg').textContent };
JS
like($oldv->{text}, qr/requests/, 'with its location');
like($oldv->{text}, qr/\x{2013}/, 'a dash where a field is missing');
is($oldv->{msg}, '', 'and no error banner');
is_deeply($oldv->{errors}, [], 'no error the page caught');
is_deeply([$b->console_errors], [], 'none in the console');

$b->quit;

$t->done;
