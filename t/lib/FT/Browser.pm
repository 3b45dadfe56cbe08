package FT::Browser;

# Debian's headless Chromium driven through chromedriver's WebDriver HTTP
# API (HTTP::Tiny and JSON::PP: no Selenium, nothing from CPAN). One
# browser per test, its profile and chromedriver's log in the test's dir.
#
#   my $b = FT::Browser->new($t);
#   $b->visit("http://127.0.0.1:$port/fanout/status");
#   $b->wait_for('return window.fanoutDashboard.polls >= 3', 20);
#   my $v = $b->js('return document.title');
#   $b->screenshot("$dir/page.png");
#   my @errors = $b->console_errors;

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX ":sys_wait_h";
use Time::HiRes qw(time sleep);

our $CHROMIUM = $ENV{FT_CHROMIUM} // '/usr/bin/chromium';
our $DRIVER = $ENV{FT_CHROMEDRIVER} // '/usr/bin/chromedriver';

sub missing {
    return -x $CHROMIUM && -x $DRIVER ? undef
        : "needs Debian's chromium and chromium-driver ($CHROMIUM, $DRIVER)";
}

sub new {
    my ($class, $t, %o) = @_;

    my $port = $t->port('chromedriver');
    my $dir = $t->dir;

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/chromedriver.log";
        open STDERR, '>&', \*STDOUT;
        exec $DRIVER, "--port=$port", '--allowed-ips=127.0.0.1',
             "--log-path=$dir/chromedriver.log";
        exit 127;
    }

    my $self = bless { pid => $pid, owner => $$,
                       base => "http://127.0.0.1:$port",
                       http => HTTP::Tiny->new(timeout => 60) }, $class;

    FT::wait_port($port) or die "chromedriver did not listen on $port";

    my $size = $o{size} // '1400,2200';
    my $res = $self->call(POST => '/session', { capabilities => {
        alwaysMatch => {
            browserName => 'chrome',
            'goog:chromeOptions' => {
                binary => $CHROMIUM,
                args => ['--headless=new', '--no-sandbox', '--disable-gpu',
                         '--disable-dev-shm-usage', '--no-first-run',
                         '--disable-extensions', "--window-size=$size",
                         "--user-data-dir=$dir/chromium"],
            },
            'goog:loggingPrefs' => { browser => 'ALL' },
        } } });

    $self->{session} = $res->{sessionId}
        or die "no WebDriver session: " . encode_json($res);

    return $self;
}

# one WebDriver command: its "value", dies on an error
sub call {
    my ($self, $method, $path, $body) = @_;

    my $url = $self->{base} . ($self->{session} && $path !~ m{^/session$}
                               ? "/session/$self->{session}$path" : $path);
    my $r = $self->{http}->request($method, $url, {
        headers => { 'Content-Type' => 'application/json' },
        defined $body ? (content => encode_json($body)) : () });

    my $v = eval { decode_json($r->{content}) };
    die "WebDriver $method $path: $r->{status} $r->{content}\n"
        unless $v && $r->{success};

    return $v->{value} // {};
}

sub visit { my ($self, $url) = @_; $self->call(POST => '/url', { url => $url }) }

# runs a function body in the page; its return value, as JSON gives it
sub js {
    my ($self, $script, @args) = @_;
    return $self->call(POST => '/execute/sync',
                       { script => $script, args => \@args });
}

# polls a condition (a function body) until it returns true
sub wait_for {
    my ($self, $script, $secs) = @_;

    my $end = time + ($secs // 20);
    while (time < $end) {
        my $v = eval { $self->js($script) };
        return $v if $v;
        sleep 0.1;
    }
    return;
}

sub screenshot {
    my ($self, $file) = @_;

    my $png = decode_base64($self->call(GET => '/screenshot'));
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh $png;
    close $fh;
    return length $png;
}

# the console's messages since the last call: [level, text]
sub console {
    my ($self) = @_;
    my $log = $self->call(POST => '/se/log', { type => 'browser' });
    return map { [$_->{level}, $_->{message}] } @$log;
}

sub console_errors {
    my ($self) = @_;
    return map { $_->[1] } grep { $_->[0] eq 'SEVERE' } $self->console;
}

sub quit {
    my ($self) = @_;

    return unless $self->{pid} && $self->{owner} == $$;

    eval { $self->call(DELETE => '') if $self->{session} };
    kill 'TERM', $self->{pid};

    for (1 .. 50) {
        last if waitpid($self->{pid}, WNOHANG) != 0;
        sleep 0.1;
    }
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->quit }

1;
