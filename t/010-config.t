# Configuration mistakes are refused by nginx -t with the file and line.

use strict;
use warnings;

use lib 't/lib';
use FT;
use Test::More;

my $t = FT->new;

sub conf {
    my ($loc, %o) = @_;
    my $zone = exists $o{zone} ? $o{zone} : 'fanout_zone fanout 1m;';
    return (http => <<"EOC");
$zone
server {
    listen 127.0.0.1:%%PORT_http%%;
    location /_m/a { internal; return 200 '{}'; }
    location /_m/b { internal; return 200 '{}'; }
    location /p {
$loc
    }
}
EOC
}

my ($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;\n"
                                  . "fanout_target b /_m/b weight=2.5 timeout=300ms;\n"
                                  . "fanout_merge mean output.scores;\n"
                                  . "fanout_quorum 2; fanout_timeout 1s;"));
is($rc, 0, 'a valid configuration passes nginx -t') or diag($out);

my @bad = (
    [ "fanout_target a /_m/a; fanout_merge median x;",
      qr/unknown merge mode "median".*nginx\.conf:\d+/, 'unknown merge mode' ],
    [ "fanout_target a /_m/a; fanout_merge mean;",
      qr/merge mode "mean" needs a FIELD.*nginx\.conf:\d+/, 'mean without FIELD' ],
    [ "fanout_target a /_m/a; fanout_merge vote;",
      qr/merge mode "vote" needs a FIELD/, 'vote without FIELD' ],
    [ "fanout_target a /_m/a; fanout_merge all label;",
      qr/merge mode "all" takes no FIELD/, 'all with a FIELD' ],
    [ "fanout_target a /_m/a; fanout_merge mean a..b;",
      qr/invalid FIELD "a\.\.b"/, 'empty path segment' ],
    [ "fanout_target a /_m/a; fanout_target a /_m/b;",
      qr/duplicate target name "a".*nginx\.conf:\d+/, 'duplicate target name' ],
    [ "fanout_target a /_m/a weight=0;",
      qr/invalid parameter "weight=0": a number from 0\.001 to .* decimals.*nginx\.conf:\d+/, 'zero weight' ],
    [ "fanout_target a /_m/a weight=heavy;",
      qr/invalid parameter "weight=heavy"/, 'bad weight' ],
    [ "fanout_target a /_m/a timeout=soon;",
      qr/invalid parameter "timeout=soon": a time/, 'bad target timeout' ],
    [ "fanout_target a /_m/a; fanout_timeout forever;",
      qr/"fanout_timeout" directive invalid value/, 'bad fanout_timeout' ],
    [ "fanout_target a /_m/a max_inflight=0;",
      qr/invalid parameter "max_inflight=0"/, 'bad max_inflight' ],
    [ "fanout_target a /_m/a color=red;",
      qr/invalid parameter "color=red"/, 'unknown parameter' ],
    [ "fanout_target a http://x/;",
      qr/invalid target URI "http:\/\/x\/"/, 'URI not local' ],
    [ "fanout_target 'a b' /_m/a;",
      qr/invalid target name "a b"/, 'bad name' ],
    [ "fanout_target a /_m/a; fanout_target b /_m/b;\nfanout_quorum 3;",
      sub { qr/"fanout_quorum 3" is more than the 2 targets of location "\/p" in .*nginx\.conf:$_[0]{'fanout_quorum 3'}\b/ },
      'quorum larger than the targets, with the quorum line' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_quorum 2;\nfanout_split \$arg_u { 50% x; * y; }",
      sub { qr/variant "x" of location "\/p" has 1 target, fewer than "fanout_quorum 2" in .*nginx\.conf:$_[0]{'fanout_quorum 2'}\b/ },
      'a quorum that a variant cannot meet' ],
    [ "fanout_target a /_m/a variant=x;\nfanout_split \$arg_u { 50% x; * y; }",
      qr/variant "y" of the "fanout_split" in .*nginx\.conf:\d+ has no target/,
      'a variant without a target' ],
    [ "fanout_target a /_m/a variant=x;\nfanout_split \$arg_u { 40.5% x; }",
      qr/"fanout_split" in .*nginx\.conf:\d+ leaves 59\.50% of requests without a variant, and no target runs without one/,
      'a split that leaves requests with no target' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b;\n"
      . "fanout_quorum 2;\nfanout_split \$arg_u { 50% x; }",
      qr/leaves 50\.00% of requests without a variant, and the untagged targets are fewer than the quorum/,
      'a split whose requests without a variant cannot meet the quorum' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,50% every=10s { 5% x; * y; }",
      qr/invalid parameter "ramp=5%,50%": use rising shares that end at 100%.*nginx\.conf:\d+/,
      'a ramp that does not end at 100%' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=50%,5%,100% every=10s { 5% x; * y; }",
      qr/invalid parameter "ramp=50%,5%,100%"/, 'a ramp that does not rise' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% { 5% x; * y; }",
      qr/a ramp needs "ramp=" and "every="/, 'a ramp without every=' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s rollback_if=p99>300ms { 5% x; * y; }",
      qr/invalid parameter "rollback_if=p99>300ms": .*histogram's bounds/, 'a p99 bound off the histogram' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s rollback_if=errors>2% { 5% x; * y; }",
      qr/invalid parameter "rollback_if=errors>2%"/, 'an unknown rollback bound' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s rollback_if=ttft_p99>300ms { 5% x; * y; }",
      qr/invalid parameter "rollback_if=ttft_p99>300ms": .*ttft_p99>Nms.*histogram's bounds.*nginx\.conf:\d+/,
      'a ttft_p99 bound off the histogram, with file and line' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s rollback_if=ttft_p99>250ms,ttft_p99>500ms { 5% x; * y; }",
      qr/invalid parameter "rollback_if=ttft_p99>250ms,ttft_p99>500ms"/, 'a ttft_p99 bound twice' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s candidate=z { 5% x; * y; }",
      qr/candidate=z of the "fanout_split" in .*nginx\.conf:\d+ is not one of its variants/,
      'a candidate that is not a variant' ],
    [ "fanout_target a /_m/a variant=x; fanout_target b /_m/b variant=y;\n"
      . "fanout_split \$arg_u ramp=5%,100% every=10s speed=2 { 5% x; * y; }",
      qr/invalid parameter "speed=2"/, 'an unknown ramp parameter' ],
    [ "fanout_target a /_m/a; fanout_quorum 0;",
      qr/value must be between 1 and 32 in .*nginx\.conf:\d+/, 'quorum 0' ],
    [ "fanout_target a /_m/a; proxy_pass http://127.0.0.1:1;",
      qr/cannot be combined with another content handler/, 'with proxy_pass' ],
    [ "fanout_target a /_m/a; fanout_merge all; fanout_merge first;",
      qr/"fanout_merge" directive is duplicate/, 'duplicate fanout_merge' ],
    [ "fanout_target a /_m/a; fanout_batch a..b;",
      qr/invalid FIELD "a\.\.b".*nginx\.conf:\d+/, 'fanout_batch: a bad FIELD' ],
    [ "fanout_target a /_m/a; fanout_batch 'a\"b';",
      qr/invalid FIELD/, 'fanout_batch: a quote in FIELD' ],
    [ "fanout_target a /_m/a; fanout_batch x max_items=0;",
      qr/invalid parameter "max_items=0": a number from 1 to 16384.*nginx\.conf:\d+/,
      'fanout_batch: max_items=0' ],
    [ "fanout_target a /_m/a; fanout_batch x chunk=lots;",
      qr/invalid parameter "chunk=lots"/, 'fanout_batch: a bad chunk' ],
    [ "fanout_target a /_m/a; fanout_batch x concurrency=0;",
      qr/invalid parameter "concurrency=0"/, 'fanout_batch: concurrency=0' ],
    [ "fanout_target a /_m/a; fanout_batch x size=3;",
      qr/invalid parameter "size=3"/, 'fanout_batch: an unknown parameter' ],
    [ "fanout_target a /_m/a; fanout_batch x; fanout_batch y;",
      qr/"fanout_batch" directive is duplicate/, 'fanout_batch twice' ],
    [ "fanout_target a /_m/a; fanout_target b /_m/b;\nfanout_batch x max_items=9000;",
      sub { qr/"fanout_batch" max_items=9000 with 2 targets makes more than 16384 calls a request \(location "\/p"\) in .*nginx\.conf:$_[0]{'fanout_batch x max_items=9000'}\b/ },
      'fanout_batch: too many calls a request, with its line' ],
    [ "fanout_batch x;\nreturn 200;",
      sub { qr/"fanout_batch" works only in a location with "fanout_target" \(location "\/p"\) in .*nginx\.conf:$_[0]{'fanout_batch x'}\b/ },
      'fanout_batch without targets' ],
    [ "fanout_target a /_m/a; fanout_merge mean outputs[name=p.data;",
      qr/invalid FIELD "outputs\[name=p\.data".*nginx\.conf:\d+/,
      'a selector not closed' ],
    [ "fanout_target a /_m/a; fanout_merge mean outputs[name].data;",
      qr/invalid FIELD "outputs\[name\]\.data"/, 'a selector without =' ],
    [ "fanout_target a /_m/a; fanout_merge vote [name=x].data;",
      qr/invalid FIELD "\[name=x\]\.data"/, 'a selector without a key' ],
    [ "fanout_target a /_m/a; fanout_merge mean p format=v3;",
      qr/invalid parameter "format=v3": use "v2"/,
      'format=v3' ],
    [ "fanout_target a /_m/a; fanout_merge mean p precision=18;",
      qr/invalid parameter "precision=18": significant digits from 1 to 17, fp32 or fp64/,
      'precision=18' ],
    [ "fanout_target a /_m/a; fanout_merge vote p precision=3;",
      qr/invalid parameter "precision=3"/, 'precision with vote' ],
    [ "fanout_target a /_m/a; fanout_merge mean p model=m;",
      qr/"model=" and "output=" go with "format=v2"/, 'model= without format=v2' ],
    [ "fanout_target a /_m/a; fanout_merge all format=v2;",
      qr/merge mode "all" takes no FIELD/, 'format=v2 with all' ],
    [ "fanout_target a /_m/a batch=1;",
      qr/invalid parameter "batch=1": a number from 2 to 1024.*nginx\.conf:\d+/,
      'batch=1' ],
    [ "fanout_target a /_m/a batch=2000;", qr/invalid parameter "batch=2000"/, 'batch=2000' ],
    [ "fanout_target a /_m/a batch=8 batch_wait=5s;",
      qr/invalid parameter "batch_wait=5s": a time from 0ms to 1s/, 'batch_wait=5s' ],
    [ "fanout_target a /_m/a batch=8 batch_format=grpc;",
      qr/invalid parameter "batch_format=grpc": use "instances", "v2", "openai" or "array"/,
      'batch_format=grpc' ],
    [ "fanout_target a /_m/a batch_wait=5ms;",
      qr/"batch_wait=" and "batch_format=" need "batch=N" \(target "a"\)/,
      'batch_wait without batch=' ],
    [ "fanout_target a /_m/a; fanout_batch x;\nfanout_shadow s /_m/b;",
      qr/"fanout_batch" cannot be combined with "fanout_shadow"/,
      'fanout_batch with a shadow' ],
);

# line numbers of directives in the last nginx.conf written
sub lines {
    open my $fh, '<', $t->dir . '/check/nginx.conf' or die;
    my %at;
    my $n = 0;
    while (my $l = <$fh>) {
        $n++;
        $at{$1} //= $n while $l =~ /(fanout_\w+ [^;]*?)\s*;/g;
    }
    return \%at;
}

for my $case (@bad) {
    my ($loc, $re, $name) = @$case;
    ($rc, $out) = $t->nginx_t(conf($loc));
    $re = $re->(lines()) if ref $re eq 'CODE';
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: message") or diag($out);
    like($out, qr/\[emerg\]/, "$name: at emerg level");
}

# fanout_target with no fanout_zone: named with the target's line
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;", zone => ''));
isnt($rc, 0, 'no zone: nginx -t fails');
my $line = lines()->{'fanout_target a /_m/a'};
like($out, qr/"fanout_target" needs a "fanout_zone" in the http block in .*nginx\.conf:$line\b/,
     'no zone: message with the file and line of the target');

# zone mistakes
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                               zone => 'fanout_zone fanout 1k;'));
like($out, qr/zone "fanout" is too small/, 'zone too small');

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                               zone => 'fanout_zone fanout lots;'));
like($out, qr/invalid zone size "lots"/, 'bad zone size');

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                               zone => "fanout_zone a 1m;\nfanout_zone b 1m;"));
like($out, qr/"fanout_zone" directive is duplicate/, 'two zones');

($rc, $out) = $t->nginx_t(conf("fanout_status;", zone => ''));
like($out, qr/"fanout_status" needs a "fanout_zone" in the http block in .*nginx\.conf:\d+/,
     'fanout_status without a zone');

# the cache and Redis
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; fanout_cache ttl=10s;"));
$line = lines()->{'fanout_cache ttl=10s'};
like($out, qr/"fanout_cache" needs a "fanout_redis" in the http block in .*nginx\.conf:$line\b/,
     'fanout_cache without fanout_redis');

my %redis_bad = (
    'fanout_redis nowhere;' => qr/invalid Redis address "nowhere"/,
    'fanout_redis 127.0.0.1:6379 timeout=soon;' => qr/invalid parameter "timeout=soon"/,
    'fanout_redis 127.0.0.1:6379 pool=0;' => qr/invalid parameter "pool=0"/,
    'fanout_redis 127.0.0.1:6379 db=x;' => qr/invalid parameter "db=x"/,
    'fanout_redis 127.0.0.1:6379 colour=red;' => qr/invalid parameter "colour=red"/,
    "fanout_redis 127.0.0.1:6379;\nfanout_redis 127.0.0.1:6380;" => qr/"fanout_redis" directive is duplicate/,
);

for my $r (sort keys %redis_bad) {
    ($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                                   zone => "fanout_zone fanout 1m;\n$r"));
    isnt($rc, 0, "$r: nginx -t fails");
    like($out, $redis_bad{$r}, "$r: message") or diag($out);
}

my %cache_bad = (
    'fanout_cache ttl=soon;' => qr/invalid parameter "ttl=soon"/,
    'fanout_cache max_size=big ttl=1s;' => qr/invalid parameter "max_size=big"/,
    'fanout_cache ttl=1s ignore=a..b;' => qr/invalid parameter "ignore=a\.\.b"/,
    'fanout_cache max_size=1k;' => qr/"fanout_cache" needs ttl=/,
    'fanout_cache ttl=1s level=block;' => qr/invalid parameter "level=block"/,
    'fanout_cache ttl=1s coalesce=maybe;' => qr/invalid parameter "coalesce=maybe"/,
    'fanout_cache ttl=1s stale=later;' => qr/invalid parameter "stale=later"/,
);

for my $c (sort keys %cache_bad) {
    ($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; $c",
                                   zone => "fanout_zone fanout 1m;\n"
                                           . "fanout_redis 127.0.0.1:6379;"));
    isnt($rc, 0, "$c: nginx -t fails");
    like($out, $cache_bad{$c}, "$c: message") or diag($out);
}

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;\n"
                               . "fanout_cache ttl=30s vary=\$http_x_tenant "
                               . "key=\$arg_q ignore=id,meta.ts max_size=64k;\n"
                               . "fanout_cache_bypass \$http_x_refresh \$arg_fresh;",
                               zone => "fanout_zone fanout 1m;\n"
                                       . "fanout_redis unix:/tmp/r.sock db=2 "
                                       . "password=x connect_timeout=1s "
                                       . "timeout=20ms pool=4;"));
is($rc, 0, 'a full cache configuration passes') or diag($out);

# fanout_limit
my %limit_bad = (
    'fanout_limit rate=1r/s;' => qr/"fanout_limit" needs key= and rate=/,
    'fanout_limit key=$x;' => qr/"fanout_limit" needs key= and rate=/,
    'fanout_limit key=$x rate=10r/h;' => qr/invalid parameter "rate=10r\/h"/,
    'fanout_limit key=$x rate=fast;' => qr/invalid parameter "rate=fast"/,
    'fanout_limit key=$x rate=1r/s burst=0;' => qr/invalid parameter "burst=0"/,
    'fanout_limit key=$x rate=1r/s status=200;' => qr/invalid parameter "status=200"/,
    'fanout_limit key=$x rate=1r/s cost=3;' => qr/cost=3 is more than the burst of 1/,
    'fanout_limit key=$x rate=1r/s scope=cluster;' => qr/"scope=cluster" needs a "fanout_redis" in the http block in \S+nginx.conf:\d+/,
    'fanout_limit key=$x rate=1r/s scope=fleet;' => qr/invalid parameter "scope=fleet"/,
    'fanout_limit key=$x rate=1r/s on_redis_error=retry;' => qr/invalid parameter "on_redis_error=retry"/,
);

for my $l (sort keys %limit_bad) {
    ($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; $l"));
    isnt($rc, 0, "$l: nginx -t fails");
    like($out, $limit_bad{$l}, "$l: message") or diag($out);
}

($rc, $out) = $t->nginx_t(http => <<'EOC');
fanout_zone fanout 1m;
server { listen 127.0.0.1:%%PORT_http%%;
         location /x { fanout_limit key=$x rate=1r/s; return 200; } }
EOC
like($out, qr/"fanout_limit" works only in a location with "fanout_target"/,
     'fanout_limit without targets');

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;\n"
                               . "fanout_limit key=\$binary_remote_addr rate=100r/s burst=20 cost=2 status=503 dry_run;\n"
                               . "fanout_limit key=\$http_x_api_key rate=600r/m;"));
is($rc, 0, 'a full fanout_limit configuration passes') or diag($out);

# fanout_breaker
my %breaker_bad = (
    'fanout_breaker failures=x;' => qr/invalid parameter "failures=x"/,
    'fanout_breaker error_rate=50;' => qr/invalid parameter "error_rate=50"/,
    'fanout_breaker error_rate=150%;' => qr/invalid parameter "error_rate=150%"/,
    'fanout_breaker cooldown=never;' => qr/invalid parameter "cooldown=never"/,
    'fanout_breaker half_open=0;' => qr/invalid parameter "half_open=0"/,
    'fanout_breaker failures=0;' => qr/with failures=0 needs error_rate=/,
    'fanout_breaker scope=cluster;' => qr/"scope=cluster" needs a "fanout_redis" in the http block in \S+nginx.conf:\d+/,
    'fanout_breaker scope=fleet;' => qr/invalid parameter "scope=fleet"/,
    'fanout_target b /_m/b fallback=x;' => qr/invalid parameter "fallback=x": a local URI/,
    'fanout_breaker; fanout_breaker;' => qr/"fanout_breaker" directive is duplicate/,
);

for my $b (sort keys %breaker_bad) {
    ($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; $b"));
    isnt($rc, 0, "$b: nginx -t fails");
    like($out, $breaker_bad{$b}, "$b: message") or diag($out);
}

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a breaker=off;\n"
                               . "fanout_target b /_m/b;\n"
                               . "fanout_breaker failures=3 error_rate=50% "
                               . "min_requests=10 window=30s cooldown=5s "
                               . "max_cooldown=1m half_open=2;"));
is($rc, 0, 'a full fanout_breaker configuration passes') or diag($out);

# fanout_shadow
my %shadow_bad = (
    'fanout_shadow s /_m/b;' =>
        qr/"fanout_shadow" works only in a location with "fanout_target" in .*nginx\.conf:\d+/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b percent=-1;' =>
        qr/invalid parameter "percent=-1": a number from 0 to 100, with at most 2 decimals/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b percent=101;' =>
        qr/invalid parameter "percent=101"/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b tolerance=-1;' =>
        qr/invalid parameter "tolerance=-1": a number of 0 or more/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b tolerance=0.1x;' =>
        qr/invalid parameter "tolerance=0.1x"/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b compare=a..b;' =>
        qr/invalid parameter "compare=a\.\.b": a dot path/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b; fanout_shadow s /_m/a;' =>
        qr/duplicate shadow name "s".*nginx\.conf:\d+/,
    'fanout_target a /_m/a; fanout_shadow s http://x/;' =>
        qr/invalid shadow URI "http:\/\/x\/"/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b max_inflight=0;' =>
        qr/invalid parameter "max_inflight=0"/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b sample_max=5;' =>
        qr/"sample_max=" needs "sample=redis"/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b sample=redis;' =>
        qr/"sample=redis" needs a "fanout_redis" in the http block in .*nginx\.conf:\d+/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b colour=red;' =>
        qr/invalid parameter "colour=red"/,
);

for my $s (sort keys %shadow_bad) {
    ($rc, $out) = $t->nginx_t(conf($s));
    isnt($rc, 0, "$s: nginx -t fails");
    like($out, $shadow_bad{$s}, "$s: message") or diag($out);
}

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;\n"
                               . "fanout_split \$arg_u { 10% x; * y; }\n"
                               . "fanout_shadow s /_m/b percent=12.5 "
                               . "compare=out.label against=results.a.label "
                               . "tolerance=0.01 timeout=2s max_inflight=8 "
                               . "sample=redis sample_max=100;",
                               zone => "fanout_zone fanout 1m;\n"
                                       . "fanout_redis 127.0.0.1:6379;"));
is($rc, 0, 'a full fanout_shadow configuration passes') or diag($out);

($rc, $out) = $t->nginx_t(conf("fanout_status yaml;"));
like($out, qr/invalid format "yaml"/, 'bad status format');

($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a breaker_key=a/b;"));
like($out, qr/invalid parameter "breaker_key=a\/b": use 1 to 64 letters/, 'a bad breaker_key');
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; fanout_limit key=x rate=1r/s instances=3;"));
like($out, qr/"instances=" goes with "on_redis_error=local_share"/, 'instances= without local_share');
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; fanout_limit key=x rate=1r/s instances=0 on_redis_error=local_share;"));
like($out, qr/invalid parameter "instances=0"/, 'instances=0');

# fanout_health, fanout_api, fanout_drain_on_quit
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; }\n"
                               . "location = /h { fanout_health /p;"));
is($rc, 0, 'fanout_health of a fan-out location passes') or diag($out);
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; }\n"
                               . "location = /h { fanout_health /nowhere;"));
like($out, qr/"fanout_health": no fan-out location "\/nowhere" in .*nginx\.conf:\d+/,
     'fanout_health of an unknown location');
($rc, $out) = $t->nginx_t(conf("fanout_health;", zone => ''));
like($out, qr/"fanout_health" needs a "fanout_zone" in the http block in .*nginx\.conf:\d+/,
     'fanout_health without a zone');
($rc, $out) = $t->nginx_t(conf("fanout_health; fanout_health;"));
like($out, qr/"fanout_health" directive is duplicate/, 'fanout_health twice');
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a; fanout_health;"));
like($out, qr/"fanout_health" cannot be combined with another content handler/,
     'fanout_health in a fan-out location');
($rc, $out) = $t->nginx_t(conf("fanout_api;", zone => ''));
like($out, qr/"fanout_api" needs a "fanout_zone" in the http block in .*nginx\.conf:\d+/,
     'fanout_api without a zone');
($rc, $out) = $t->nginx_t(conf("fanout_api read;"));
like($out, qr/invalid parameter "read": only "write"/, 'fanout_api read');
($rc, $out) = $t->nginx_t(conf("fanout_api write; fanout_status;"));
like($out, qr/"fanout_status" cannot be combined with another content handler/,
     'fanout_api and fanout_status in one location');
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                               zone => "fanout_drain_on_quit soon;"));
like($out, qr/"fanout_drain_on_quit" directive invalid value/, 'fanout_drain_on_quit soon');
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a;",
                               zone => "fanout_drain_on_quit 5s;"));
like($out, qr/"fanout_drain_on_quit" needs a "fanout_zone"/, 'fanout_drain_on_quit without a zone');

# every directive's "key=value" parameters are read over one table of
# kinds (ngx_http_fanout_conf.c): a key given twice, a bare word where a
# value is needed, a value out of its kind's bounds, each with what a valid
# value is, the file and the line
my %params = (
    'fanout_target a /_m/a weight=2 weight=3;' => qr/duplicate parameter "weight=3" in \S+nginx\.conf:\d+/,
    'fanout_target a /_m/a breaker=maybe;' => qr/invalid parameter "breaker=maybe": use "on" or "off"/,
    'fanout_target a /_m/a max_inflight;' => qr/invalid parameter "max_inflight"/,
    'fanout_target a /_m/a; fanout_cache ttl=1s ttl=2s;' => qr/duplicate parameter "ttl=2s"/,
    'fanout_target a /_m/a; fanout_cache ttl=1s max_size=0;' => qr/invalid parameter "max_size=0": a size from 1 /,
    'fanout_target a /_m/a; fanout_cache ttl=1s level=block;' => qr/invalid parameter "level=block": use "response" or "target"/,
    'fanout_target a /_m/a; fanout_limit key=$x rate=1r/s dry_run=1;' => qr/invalid parameter "dry_run=1"/,
    'fanout_target a /_m/a; fanout_limit key=$x rate=1r/s on_redis_error=retry;' => qr/use "local", "open", "closed" or "local_share"/,
    'fanout_target a /_m/a; fanout_limit key= rate=1r/s;' => qr/invalid parameter "key=": a value, variables allowed/,
    'fanout_target a /_m/a; fanout_breaker error_rate=150%;' => qr/invalid parameter "error_rate=150%": a percentage from 1% to 100%/,
    'fanout_target a /_m/a; fanout_hedge after=p99 max_hedges=0;' => qr/invalid parameter "max_hedges=0": a number from 1 to \d+/,
    'fanout_target a /_m/a; fanout_hedge after=p99 after=10ms;' => qr/duplicate parameter "after=10ms"/,
    'fanout_target a /_m/a; fanout_retry on=error,,timeout;' => qr/invalid parameter "on=error,,timeout": use error, timeout/,
    'fanout_target a /_m/a; fanout_retry budget=101%;' => qr/invalid parameter "budget=101%": a share from 0% to 100%/,
    'fanout_target a /_m/a; fanout_shadow s /_m/b sample=redis2;' => qr/invalid parameter "sample=redis2": use "off" or "redis"/,
    'fanout_target a /_m/a; fanout_call_log logs/c.log buffer=1k;' => qr/invalid parameter "buffer=1k": a size from 4k /,
);
for my $c (sort keys %params) {
    ($rc, $out) = $t->nginx_t(conf($c));
    isnt($rc, 0, "$c: nginx -t fails");
    like($out, $params{$c}, "$c: message") or diag($out);
}
($rc, $out) = $t->nginx_t(conf("fanout_target a /_m/a breaker=on weight=0.5 batch=4 batch_format=v2 batch_wait=0;\n"
                               . "fanout_target b /_m/b breaker=off fallback=/_m/a?x=1;\n"
                               . "fanout_retry on=5xx,429 budget=12.5% min_retries=2/s;\n"
                               . "fanout_shadow s /_m/b percent=0.25 compare=out.x sample=off;"));
is($rc, 0, 'every kind of value, at its bounds, passes') or diag($out);

# conf-examples/nginx.conf, laid out as the Dockerfile does
{
    my $d = $t->dir . '/docker';
    system("mkdir -p $d/logs && cp -r $FT::ROOT/conf-examples $d/ "
           . "&& cp $FT::ROOT/conf-examples/nginx.conf $d/nginx.conf");
    my $conf = FT::read_text("$d/nginx.conf");
    $conf =~ s{^load_module .*$}{$FT::STATIC ? '' : "load_module $FT::MODULE;"}me;
    $conf =~ s{/var/log/nginx/}{$d/logs/}g;
    FT::write_file("$d/nginx.conf", $conf);

    my %env = FT::nginx_env($d);
    local @ENV{keys %env} = values %env;
    my $out = `$FT::NGINX -t -p $d -c $d/nginx.conf -e $d/logs/error.log -g 'pid $d/nginx.pid;' 2>&1`;
    is($? >> 8, 0, 'conf-examples/nginx.conf passes nginx -t') or diag($out);
}

done_testing();
