package FT;

# A small harness for testing ngx_http_fanout_module with the real nginx:
# a temp dir per test, free loopback ports, nginx.conf from a template,
# forked mock models (FT::Mock), a raw HTTP/1.1 client, and a check of
# error.log for [alert], [crit], [emerg] and crashed workers at the end.
#
#   my $t = FT->new;
#   $t->mock('a', ms => 100);
#   $t->run(http => '... %%PORT_http%% ... %%MOCK_a%% ...');
#   my $res = $t->get('/predict');
#   $t->done;          # stops everything, checks error.log

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX ":sys_wait_h";
use Test::More;
use Time::HiRes qw(time sleep);

use FT::Mock;

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $NGINX = $ENV{FT_NGINX} // '/usr/sbin/nginx';
# FT_MODULE=static: FT_NGINX has the module built in (--add-module)
our $STATIC = ($ENV{FT_MODULE} // '') eq 'static';
our $MODULE = $STATIC ? 'static'
    : abs_path($ENV{FT_MODULE} // "$ROOT/build/ngx_http_fanout_module.so");
# the echo module some tests' model servers use, built for FT_NGINX
our $ECHO_MODULE = $ENV{FT_ECHO_MODULE}
    // '/usr/lib/nginx/modules/ngx_http_echo_module.so';

my %used_ports;

# FT_ASAN=1 (make test-asan): the module is built with ASan and UBSan; nginx
# (and only nginx) runs with their runtimes preloaded; their reports go to
# the instance's stderr (stdout.log), and done() fails on any.
sub nginx_env {
    my ($p) = @_;

    return () unless $ENV{FT_ASAN};

    my $libs = join ':', map { chomp(my $l = `gcc -print-file-name=$_`); $l }
                         qw(libasan.so libubsan.so);

    return (LD_PRELOAD => $libs,
            ASAN_OPTIONS => 'detect_leaks=0',
            UBSAN_OPTIONS => 'print_stacktrace=1');
}

sub new {
    my ($class, %o) = @_;

    die "module not built: $MODULE (run make)\n"
        unless $STATIC || -f $MODULE;

    my $dir = tempdir('ft-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{FT_KEEP});
    diag("test dir $dir") if $ENV{FT_KEEP};

    return bless { dir => $dir, ports => {}, mocks => {}, owner => $$ },
                 $class;
}

sub dir { $_[0]{dir} }

# A free loopback port, stable per name within a test.
sub port {
    my ($self, $name) = @_;

    return $self->{ports}{$name} if $self->{ports}{$name};

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Listen => 1,
                                      ReuseAddr => 1) or next;
        my $p = $s->sockport;
        close $s;
        next if $used_ports{$p}++;
        return $self->{ports}{$name} = $p;
    }

    die "no free port";
}

sub mock {
    my ($self, $name, %o) = @_;

    my $port = $self->port("mock_$name");
    my $log = "$self->{dir}/mock_$name.log";

    $self->{mocks}{$name} = FT::Mock::start(%o, name => $name, port => $port,
                                            log => $log);
    wait_port($port);

    return $port;
}

# A real redis-server on a free loopback port (and a unix socket when
# asked), without persistence.  Options: password, unix (1), args (more
# of redis-server's arguments).
sub redis {
    my ($self, $name, %o) = @_;

    my $port = $self->port("redis_$name");
    my $dir = "$self->{dir}/redis_$name";
    mkdir $dir;

    my @args = ('--port', $port, '--bind', '127.0.0.1', '--save', '',
                '--appendonly', 'no', '--dir', $dir, '--daemonize', 'no',
                '--logfile', "$dir/redis.log");
    push @args, '--requirepass', $o{password} if $o{password};
    push @args, @{ $o{args} } if $o{args};     # e.g. --replicaof HOST PORT
    push @args, '--unixsocket', "$dir/redis.sock", '--unixsocketperm', '700'
        if $o{unix};

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        { exec 'redis-server', @args };
        POSIX::_exit(127);
    }

    $self->{redis}{$name} = { pid => $pid, port => $port, args => \@args,
                              password => $o{password} };

    for (1 .. 200) {
        last if ($self->redis_cli($name, 'PING') // '') eq 'PONG';
        sleep 0.025;
    }

    # ACL users, in order: the first with a password (">...") is the one
    # redis_cli() speaks as from then on (the default user may go off)
    for my $u (@{ $o{acl} || [] }) {
        $self->redis_cli($name, 'ACL', 'SETUSER', @$u);
        my ($pass) = map { /^>(.*)/ ? $1 : () } @$u;
        $self->{redis}{$name}{user} //= [$u->[0], $pass] if defined $pass;
    }

    return $port;
}

# A CA of the test's own and a certificate it signs for 127.0.0.1, made
# once per test with openssl, and a second CA that signed nothing: the
# paths (ca, cert, key, other_ca).
sub tls_files {
    my ($self) = @_;

    return $self->{tls} if $self->{tls};

    my $d = "$self->{dir}/tls";
    mkdir $d;

    my $sh = sub { my $o = `$_[0] 2>&1`; die "$_[0]: $o" if $?; };
    my $req = 'openssl req -newkey rsa:2048 -nodes';

    $sh->("$req -x509 -days 2 -subj /CN=test-ca -keyout $d/ca.key -out $d/ca.pem");
    $sh->("$req -subj /CN=127.0.0.1 -keyout $d/server.key -out $d/server.csr");
    write_file("$d/ext.cnf", "subjectAltName=IP:127.0.0.1\n");
    $sh->("openssl x509 -req -in $d/server.csr -CA $d/ca.pem -CAkey $d/ca.key "
          . "-CAcreateserial -days 2 -extfile $d/ext.cnf -out $d/server.pem");
    $sh->("$req -x509 -days 2 -subj /CN=other-ca -keyout $d/other.key -out $d/other.pem");
    chmod 0644, "$d/server.key";

    return $self->{tls} = { ca => "$d/ca.pem", cert => "$d/server.pem",
                            key => "$d/server.key", other_ca => "$d/other.pem" };
}

# redis() with TLS on a port of its own (%%REDIS_NAME_tls%%), its plain
# port kept for redis_cli(): the certificate is tls_files()'s.
sub redis_tls {
    my ($self, $name, %o) = @_;

    my $f = $self->tls_files;
    my $tls = $self->port("redis_${name}_tls");

    $self->redis($name, %o, args => [
        '--tls-port', $tls, '--tls-cert-file', $f->{cert},
        '--tls-key-file', $f->{key}, '--tls-ca-cert-file', $f->{ca},
        '--tls-auth-clients', 'no', @{ $o{args} || [] }]);

    return $tls;
}

# Debian's redis-sentinel (needs() it) watching redis(MASTER) as
# mymaster: down after down_after ms (1000), failovers within
# failover_timeout (4000), password; its port is %%SENTINEL_NAME%%;
# sentinel_cli() asks it.  Stopped with everything else.
sub sentinel {
    my ($self, $name, %o) = @_;

    my $bin = needs('redis-sentinel');
    my $port = $self->port("sentinel_$name");
    my $dir = "$self->{dir}/sentinel_$name";
    my $master = $self->port("redis_$o{master}");
    mkdir $dir;

    write_file("$dir/sentinel.conf", join "\n",
        "port $port", 'bind 127.0.0.1', "dir $dir",
        "sentinel monitor mymaster 127.0.0.1 $master 1",
        'sentinel down-after-milliseconds mymaster ' . ($o{down_after} // 1000),
        'sentinel failover-timeout mymaster ' . ($o{failover_timeout} // 4000),
        'sentinel parallel-syncs mymaster 1',
        ($o{password} ? ("requirepass $o{password}") : ()), '');

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>', "$dir/sentinel.log";
        open STDERR, '>&', \*STDOUT;
        { exec $bin, "$dir/sentinel.conf" };
        POSIX::_exit(127);
    }

    $self->{sentinels}{$name} = { pid => $pid, port => $port,
                                  password => $o{password} };
    wait_port($port) or die 'redis-sentinel did not start';

    return $port;
}

sub sentinel_cli {
    my ($self, $name, @cmd) = @_;

    my $s = $self->{sentinels}{$name};
    my @auth = $s->{password} ? ('-a', $s->{password}, '--no-auth-warning')
                              : ();
    my $args = join ' ', map { "'$_'" } @auth, @cmd;
    my $out = `redis-cli -p $s->{port} $args 2>/dev/null`;
    chomp $out;

    return $out;
}

sub redis_cli {
    my ($self, $name, @cmd) = @_;

    my $r = $self->{redis}{$name};
    my @auth = $r->{user} ? ('--user', $r->{user}[0], '--pass', $r->{user}[1],
                             '--no-auth-warning')
             : $r->{password} ? ('-a', $r->{password}, '--no-auth-warning')
             : ();
    my $args = join ' ', map { "'$_'" } @auth, @cmd;

    my $out = `redis-cli -h 127.0.0.1 -p $r->{port} $args 2>/dev/null`;
    chomp $out;

    return $out;
}

sub redis_signal {
    my ($self, $name, $signal) = @_;

    my $r = $self->{redis}{$name};
    kill $signal, $r->{pid};

    if ($signal eq 'KILL' || $signal eq 'TERM') {
        waitpid($r->{pid}, 0);
    }
}

# Starts a killed Redis again, on the same port.
sub redis_restart {
    my ($self, $name) = @_;

    my $r = $self->{redis}{$name};
    my $pid = fork();

    if ($pid == 0) {
        { exec 'redis-server', @{ $r->{args} } };
        POSIX::_exit(127);
    }

    $r->{pid} = $pid;

    for (1 .. 200) {
        last if ($self->redis_cli($name, 'PING') // '') eq 'PONG';
        sleep 0.025;
    }
}

# A program the test cannot do without (Debian's haproxy, redis-sentinel):
# its path, or the test fails saying so and ends.
sub needs {
    my ($cmd) = @_;

    my $path = `sh -c 'command -v $cmd'`;
    chomp $path;
    return $path if $path;

    Test::More::fail("needs Debian's $cmd");
    Test::More::done_testing();
    exit;
}

# Debian's HAProxy in front of instances (names, each listening on
# port($name)), checking GET /health every 200 ms (fall 2, rise 2):
# returns the port clients use; haproxy_states() reads its view.  Stopped
# with everything else.
sub haproxy {
    my ($self, @names) = @_;

    my $bin = needs('haproxy');

    my $dir = $self->{dir};
    my $lb = $self->port('lb');
    my $stats = $self->port('haproxy_stats');
    my $servers = join '', map {
        "    server $_ 127.0.0.1:" . $self->port($_)
        . " check inter 200ms fall 2 rise 2\n"
    } @names;

    write_file("$dir/haproxy.cfg", <<"EOC");
global
    maxconn 1000
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 0
frontend fe
    bind 127.0.0.1:$lb
    default_backend fanout
frontend stats
    bind 127.0.0.1:$stats
    stats enable
    stats uri /stats
backend fanout
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
$servers
EOC

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/haproxy.log";
        open STDERR, '>&', \*STDOUT;
        { exec $bin, '-db', '-f', "$dir/haproxy.cfg" };
        POSIX::_exit(127);
    }

    $self->{haproxy} = $pid;
    wait_port($lb) or die "haproxy did not start";

    return $lb;
}

# HAProxy's view: server => UP / DOWN / ...
sub haproxy_states {
    my ($self) = @_;

    my $csv = $self->get('/stats;csv', port => $self->port('haproxy_stats'))->{body} // '';
    my ($head, @rows) = split /\n/, $csv;
    return {} unless $head;
    $head =~ s/^# //;
    my @h = split /,/, $head;
    my %i = map { $h[$_] => $_ } 0 .. $#h;
    my %s;
    for (@rows) {
        my @f = split /,/;
        next unless ($f[$i{pxname}] // '') eq 'fanout';
        next if $f[$i{svname}] eq 'BACKEND';
        $s{$f[$i{svname}]} = $f[$i{status}];
    }
    return \%s;
}

sub kill_mock {
    my ($self, $name) = @_;

    my $pid = delete $self->{mocks}{$name} or return;
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# The requests a mock received, oldest first.
sub hits {
    my ($self, $name) = @_;

    open my $fh, '<', "$self->{dir}/mock_$name.log" or return ();
    my @hits = map { decode_json($_) } <$fh>;
    close $fh;

    return @hits;
}

sub expand {
    my ($self, $text) = @_;

    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $text =~ s/%%MOCK_(\w+)%%/$self->port("mock_$1")/ge;
    $text =~ s/%%REDIS_(\w+)%%/$self->port("redis_$1")/ge;
    $text =~ s/%%SENTINEL_(\w+)%%/$self->port("sentinel_$1")/ge;
    $text =~ s/%%TESTDIR%%/$self->{dir}/g;
    $text =~ s/%%MODULE%%/$MODULE/g;

    return $text;
}

# nginx.conf around the test's http block; "prefix" names the instance.
sub conf_text {
    my ($self, %o) = @_;

    my $p = "$self->{dir}/" . ($o{prefix} // 'nginx');
    mkdir $p;
    mkdir "$p/logs";

    my $user = $> == 0 ? "user root;\n" : '';

    # a complete configuration of its own (the demo's conf-examples)
    return $self->expand($user . "pid $p/nginx.pid;\n"
                         . "error_log $p/error.log info;\n"
                         . "daemon off;\n" . $o{raw})
        if $o{raw};

    my $main = $o{main} // '';
    my $http = $o{http} // '';

    my $load = $STATIC ? '' : "load_module %%MODULE%%;";

    return $self->expand(<<"EOC");
$load
$user
worker_processes ${\ ($o{workers} // 1)};
pid $p/nginx.pid;
error_log $p/error.log ${\ ($o{log_level} // 'info')};
daemon off;
$main

events {
    worker_connections ${\ ($o{connections} // 1024)};
}

http {
    access_log $p/access.log;
    client_body_temp_path $p/client_body;
    proxy_temp_path $p/proxy;
    fastcgi_temp_path $p/fastcgi;
    uwsgi_temp_path $p/uwsgi;
    scgi_temp_path $p/scgi;

$http
}
EOC
}

# Instances of one configuration, one per name: in http, %%SELF%% is the
# instance's name and %%PORT_SELF%% its port; the other options are
# run()'s (workers, ...).  Returns the names.
sub fleet {
    my ($self, $names, %o) = @_;

    my $http = delete $o{http};

    for my $name (@$names) {
        (my $h = $http) =~ s/%%SELF%%/$name/g;
        $h =~ s/%%PORT_SELF%%/%%PORT_${name}%%/g;
        $self->run(%o, prefix => $name, port => $self->port($name),
                   http => $h);
    }

    return @$names;
}

# The internal locations that call mock models: /_NAME proxies to
# mock(NAME), one per name, for an http block's server.
sub model_locations {
    my ($self, @names) = @_;

    return join '', map {
        "    location /_$_ { internal; proxy_pass http://127.0.0.1:%%MOCK_$_%%/; }\n"
    } @names;
}

# Writes nginx.conf and runs nginx -t: (exit status, output).
sub nginx_t {
    my ($self, %o) = @_;

    my $p = "$self->{dir}/" . ($o{prefix} // 'check');
    my $conf = $self->conf_text(%o, prefix => $o{prefix} // 'check');

    write_file("$p/nginx.conf", $conf);

    local %ENV = (%ENV, nginx_env($p));
    my $out = `$NGINX -t -p $p -c $p/nginx.conf -e $p/error.log 2>&1`;
    return ($? >> 8, $out);
}

sub run {
    my ($self, %o) = @_;

    my $name = $o{prefix} // 'nginx';
    my $p = "$self->{dir}/$name";

    write_file("$p/nginx.conf", $self->conf_text(%o, prefix => $name));

    local %ENV = (%ENV, nginx_env($p));

    my $out = `$NGINX -t -p $p -c $p/nginx.conf -e $p/error.log 2>&1`;
    die "nginx -t failed:\n$out" if $?;

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>>', "$p/stdout.log";
        open STDERR, '>>', "$p/stdout.log";
        { exec $NGINX, "-p", $p, "-c", "$p/nginx.conf", "-e", "$p/error.log" };
        POSIX::_exit(127);
    }

    $self->{instances}{$name} = { pid => $pid, prefix => $p };

    my $http = $o{port} // $self->port('http');
    wait_port($http) or die "nginx did not listen on $http";

    return $self;
}

sub error_log {
    my ($self, $name) = @_;

    my $p = "$self->{dir}/" . ($name // 'nginx');
    open my $fh, '<', "$p/error.log" or return '';
    local $/;
    my $log = <$fh>;
    close $fh;

    return $log;
}

sub access_log {
    my ($self, $name) = @_;

    my $p = "$self->{dir}/" . ($name // 'nginx');
    open my $fh, '<', "$p/access.log" or return ();
    my @lines = <$fh>;
    close $fh;
    chomp @lines;

    return @lines;
}

sub reload {
    my ($self, $name, %o) = @_;

    $name //= 'nginx';
    my $inst = $self->{instances}{$name};

    write_file("$inst->{prefix}/nginx.conf",
               $self->conf_text(%o, prefix => $name)) if %o;

    my $before = () = $self->error_log($name) =~ /start worker process/g;
    kill 'HUP', $inst->{pid};

    for (1 .. 100) {
        my $now = () = $self->error_log($name) =~ /start worker process/g;
        return 1 if $now > $before;
        sleep 0.05;
    }

    return 0;
}

# Worker pids of an instance, from its master's children.
sub workers {
    my ($self, $name) = @_;

    my $master = $self->{instances}{$name // 'nginx'}{pid};
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh>;
        close $fh;
        next unless $line;
        my @f = split / /, ($line =~ /\)\s(.*)/)[0];
        push @pids, ($stat =~ m{/proc/(\d+)/})[0] if $f[1] == $master;
    }

    return @pids;
}

# Waits until none of these worker pids runs any more (after a reload).
sub workers_gone {
    my ($self, @old) = @_;

    for (1 .. 60) {
        my %now = map { $_ => 1 } $self->workers;
        return 1 unless grep { $now{$_} } @old;
        sleep 0.1;
    }

    return 0;
}

sub stop_instance {
    my ($self, $name) = @_;

    my $inst = delete $self->{instances}{$name} or return;

    kill 'QUIT', $inst->{pid};

    for (1 .. 100) {
        return if waitpid($inst->{pid}, WNOHANG) == $inst->{pid};
        sleep 0.05;
    }

    kill 'TERM', $inst->{pid};
    sleep 0.5;
    kill 'KILL', $inst->{pid};
    waitpid($inst->{pid}, 0);
}

sub stop {
    my ($self) = @_;

    $self->stop_instance($_) for keys %{ $self->{instances} || {} };

    if (my $hp = delete $self->{haproxy}) {
        kill 'TERM', $hp;
        waitpid($hp, 0);
    }

    for my $pid (values %{ $self->{mocks} }) {
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }

    $self->{mocks} = {};

    for my $r (values %{ $self->{redis} || {} }) {
        kill 'CONT', $r->{pid};
        kill 'KILL', $r->{pid};
        waitpid($r->{pid}, 0);
    }

    $self->{redis} = {};

    for my $sn (values %{ $self->{sentinels} || {} }) {
        kill 'KILL', $sn->{pid};
        waitpid($sn->{pid}, 0);
    }

    $self->{sentinels} = {};
}

# Stops everything and fails on serious error.log lines.
sub done {
    my ($self, %o) = @_;

    my @names = keys %{ $self->{instances} || {} };
    push @names, @{ $self->{stopped} || [] };

    $self->stop;

    for my $name (sort(@names)) {
        my $log = $self->error_log($name);
        # a worker that exits with a code is one that died (ASan exits 1)
        my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal|exited with code [1-9]|Sanitizer|runtime error/ }
                  split /\n/, $log;
        @bad = grep { !/$o{allow}/ } @bad if $o{allow};

        ok(!@bad, "$name: no alert, crit, emerg or crash in error.log")
            or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);

        my @reports = grep { /Sanitizer|runtime error/ }
                      split /\n/, read_text("$self->{dir}/$name/stdout.log");
        ok(!@reports, "$name: no sanitizer reports")
            or diag(join "\n", @reports[0 .. ($#reports < 9 ? $#reports : 9)]);
    }

    done_testing();
}

sub DESTROY {
    my ($self) = @_;

    # a forked child must not stop what its parent runs
    $self->stop if $$ == $self->{owner};
}

# HTTP: one request on a new connection.
sub request {
    my ($self, $method, $uri, %o) = @_;

    my $s = $self->connect($o{port});
    my $res = $self->send_request($s, $method, $uri, %o,
                                  headers => { Connection => 'close',
                                               %{ $o{headers} || {} } });
    close $s;

    return $res;
}

sub get  { my $self = shift; $self->request('GET', @_) }
sub post { my ($self, $uri, $body, %o) = @_;
           $self->request('POST', $uri, body => $body, %o) }

# A port, or "ADDR:PORT" for an instance on another loopback address (a
# fleet's instances listen on the same port, on addresses of their own).
sub peer {
    my ($port) = @_;

    return $port =~ /^(.+):(\d+)$/ ? ($1, $2) : ('127.0.0.1', $port);
}

sub connect {
    my ($self, $port) = @_;

    my ($addr, $p) = peer($port // $self->port('http'));
    my $s = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $p,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    $s->autoflush(1);

    return $s;
}

# Sends one request on $s and reads its response (keepalive-safe).
sub send_request {
    my ($self, $s, $method, $uri, %o) = @_;

    my $body = $o{body} // '';
    my %h = (Host => 'localhost', %{ $o{headers} || {} });

    $h{'Content-Length'} = length $body
        if length $body || $method eq 'POST' || $method eq 'PUT';
    $h{'Content-Type'} //= 'application/json' if length $body;

    my $req = "$method $uri HTTP/1.1\r\n"
            . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";

    my $t0 = time();
    print $s $req . $body;

    return read_response($s, $t0, $o{timeout} // 10, $method eq 'HEAD');
}

sub read_response {
    my ($s, $t0, $timeout, $head) = @_;

    my $buf = '';
    my $deadline = time() + $timeout;
    my $res;

    while (1) {
        if (!defined $res && $buf =~ /\r\n\r\n/) {
            my ($top, $rest) = split /\r\n\r\n/, $buf, 2;
            my ($line, @hl) = split /\r\n/, $top;
            my %h;
            for (@hl) {
                my ($k, $v) = split /:\s*/, $_, 2;
                $h{lc $k} = $v;
            }
            $res = { status => (split / /, $line)[1], headers => \%h };
            $buf = $rest;
        }

        if (defined $res) {
            my $h = $res->{headers};

            if ($head) {
                $res->{body} = '';
                last;
            }

            if (defined $h->{'content-length'}
                && length $buf >= $h->{'content-length'})
            {
                $res->{body} = substr($buf, 0, $h->{'content-length'});
                last;
            }

            if (($h->{'transfer-encoding'} // '') =~ /chunked/
                && $buf =~ /(?:^|\r\n)0\r\n\r\n$/)
            {
                my $body = '';
                while ($buf =~ s/^([0-9a-fA-F]+)\r\n//) {
                    my $n = hex $1;
                    last if $n == 0;
                    $body .= substr($buf, 0, $n, '');
                    $buf =~ s/^\r\n//;
                }
                $res->{body} = $body;
                last;
            }
        }

        my $left = $deadline - time();
        if ($left <= 0) {
            return { status => 0, error => 'timeout', headers => {},
                     body => $buf, time => time() - $t0 };
        }

        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, $left);

        my $n = sysread($s, my $chunk, 65536);

        if (!$n) {
            if (defined $res && !defined $res->{headers}{'content-length'}) {
                $res->{body} = $buf;
                last;
            }
            return { status => 0, error => 'closed', headers => {},
                     body => $buf, time => time() - $t0 };
        }

        $buf .= $chunk;
    }

    $res->{time} = time() - $t0;
    $res->{json} = eval { JSON::PP->new->allow_nonref->decode($res->{body}) }
        if ($res->{headers}{'content-type'} // '') =~ /json/;

    return $res;
}

# The same request n times at once (concurrent() below); the responses.
sub parallel {
    my ($self, $n, $method, $uri, %o) = @_;

    return $self->concurrent([ map { [ $method, $uri, %o ] } 1 .. $n ]);
}

# Requests at once, each its own: [METHOD, URI, %options] each, in a child
# of its own; returns their responses in order (status, headers, body,
# json).  during => CODE runs in the parent while they are under way.
sub concurrent {
    my ($self, $requests, %o) = @_;

    my $dir = $self->{dir};
    my @pids;

    for my $i (0 .. $#$requests) {
        my $pid = fork();
        if ($pid == 0) {
            my ($method, $uri, %ro) = @{ $requests->[$i] };
            my $res = $self->request($method, $uri, %ro);
            open my $fh, '>', "$dir/conc.$i" or POSIX::_exit(1);
            delete $res->{json};
            print $fh encode_json($res);
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }

    $o{during}->() if $o{during};

    waitpid($_, 0) for @pids;

    my @res;
    for my $i (0 .. $#$requests) {
        my $res = eval { decode_json(read_text("$dir/conc.$i")) } || {};
        $res->{json} = eval { decode_json($res->{body} // '') };
        unlink "$dir/conc.$i";
        push @res, $res;
    }

    return @res;
}

sub status_json {
    my ($self, $uri) = @_;

    my $res = $self->get($uri // '/fanout/status');
    return $res->{json};
}

# Every request a location counted ended in one outcome: its responses and
# aborted add up to requests, and so do each variant's.  Asked once the
# location is idle (retried briefly: a client's last request may still be
# finishing its log stage in another worker).
sub outcomes_add_up {
    my ($self, %o) = @_;

    my @bad;
    for (1 .. 20) {
        @bad = ();
        my $st = $self->get($o{uri} // '/fanout/status',
                            $o{port} ? (port => $o{port}) : ())->{json};
        for my $l (sort keys %{ $st->{locations} || {} }) {
            my $loc = $st->{locations}{$l};
            my $sum = $loc->{aborted} // 0;
            $sum += $_ for values %{ $loc->{responses} || {} };
            push @bad, "$l: requests $loc->{requests}, outcomes $sum"
                if $sum != $loc->{requests};
            for my $v (sort keys %{ $loc->{variants} || {} }) {
                my $var = $loc->{variants}{$v};
                my $n = 0;
                $n += $var->{$_} // 0 for qw(200 502 504 other);
                push @bad, "$l variant $v: requests $var->{requests}, outcomes $n"
                    if $n != $var->{requests};
            }
        }
        last unless @bad;
        select(undef, undef, undef, 0.1);
    }

    Test::More::ok(!@bad, 'every request counted ends in one outcome')
        or Test::More::diag(join "\n", @bad);
}

# Helpers.

sub wait_port {
    my ($port) = @_;

    my ($addr, $p) = peer($port);

    for (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $p,
                                      Proto => 'tcp');
        if ($s) {
            close $s;
            return 1;
        }
        sleep 0.025;
    }

    return 0;
}

sub read_text {
    my ($path) = @_;

    open my $fh, '<', $path or return '';
    local $/;
    my $text = <$fh>;
    close $fh;

    return $text;
}

sub write_file {
    my ($path, $text) = @_;

    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

1;
