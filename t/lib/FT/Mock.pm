package FT::Mock;

# A mock model backend: a real HTTP/1.1 server (keepalive, Content-Length
# or chunked request bodies) in a forked process.  Its behaviour is set at
# start and can be overridden per request with query arguments:
#
#   ms=N        wait N ms before answering
#   status=N    answer with status N
#   mode=M      normal | echo | empty | truncate | big | slowbody | hang
#               | close | gzip-ish (see answer() below)
#   bytes=N     body size for mode=big
#   flaky=N     the first N calls with a given body answer flaky_status
#               (default 503), the later ones as usual: a model that fails
#               then recovers, whatever process serves the retry
#   retry_after=V   a Retry-After: V header on the answer
#   mode=sse    an OpenAI-style stream: text/event-stream, chunked, events
#               "data: {"model":NAME,"token":I}" every gap ms (default 50),
#               events=N of them (10) after first ms (0), then "data:
#               [DONE]" and the last chunk; die=K closes after K events
#               without it; a close by nginx is logged as "closed";
#               pad=N adds "pad":"ppp..." (N bytes) to each event
#   mode=llm    an OpenAI chat completion with "usage": prompt=N tokens in
#               (10), used=N out (the request's max_tokens, else 16),
#               total their sum; with mode=sse, usage=1 adds a final chunk
#               with that usage before [DONE] (stream_options.include_usage)
#   slow_pct=P  with probability P% (decimals allowed) wait slow_ms (default
#               1000) instead of ms: a model with a tail
#   slow_marked=MS  the first call with a given body that contains "slow"
#               waits MS, and logs a "closed" event if nginx closes the
#               connection meanwhile (a hedged call cut off); later calls
#               with that body, and other bodies, answer at once
#   mode=model  a model that answers each input from its value, so that a
#               swapped or lost input shows: proto=v1 (default) reads
#               "instances" (an array, or one input) and answers
#               "predictions" (or "prediction"); proto=v2 reads
#               inputs[0].data (rows by shape[0]) and answers outputs[0]
#               with shape [n] (two=1: "label" and "probabilities", in
#               that order, or reversed with rev=1; p=X: probabilities X);
#               proto=openai reads "input" (a string or an
#               array) and answers data[i].embedding (rev=1: data listed
#               in reverse, each with its index; badidx=dup|missing|range
#               lies about them) and usage (a token per
#               character of the inputs); proto=array reads
#               an array and answers an array.  An input's value is
#               f(x) = 2x + off for a number, length + off for a string,
#               the sum of f over an array, f(x.x) for an object; an input
#               "fail" makes the call a 500; the model's name is in the
#               answer (fail_status=N another status); short=1 loses the
#               last prediction of an array
#
# Every request is logged as one JSON line to $log: arrival time, method,
# URI, body length and SHA-1 (and the body itself up to 1 KB), and the
# request headers.

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

sub start {
    my (%o) = @_;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $o{port},
        Listen    => 128,
        ReuseAddr => 1,
        Proto     => 'tcp',
    ) or die "mock $o{name}: listen on $o{port}: $!";

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid) {
        close $listen;
        return $pid;
    }

    # its own process group, so that one kill ends every connection child
    setpgrp(0, 0);
    $SIG{CHLD} = 'IGNORE';

    while (1) {
        my $c = $listen->accept() or next;
        my $child = fork();

        if (defined $child && $child == 0) {
            close $listen;
            $SIG{TERM} = 'DEFAULT';
            serve($c, \%o);
            POSIX::_exit(0);
        }

        close $c;
    }
}

sub read_request {
    my ($c) = @_;

    local $/ = "\r\n";

    my $line = <$c>;
    return undef unless defined $line;
    $line =~ s/\r\n$//;

    my ($method, $uri) = split / /, $line;
    my (%h, %n);

    while (my $hl = <$c>) {
        $hl =~ s/\r\n$//;
        last if $hl eq '';
        my ($k, $v) = split /:\s*/, $hl, 2;
        $h{lc $k} = $v;
        $n{lc $k}++;
    }

    my $body = '';

    if (defined $h{'content-length'}) {
        my $left = $h{'content-length'};
        while ($left > 0) {
            my $n = read($c, my $chunk, $left);
            last unless $n;
            $body .= $chunk;
            $left -= $n;
        }

    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $size = <$c>;
            last unless defined $size;
            $size =~ s/\r\n$//;
            $size = hex $size;
            last if $size == 0;
            read($c, my $chunk, $size);
            $body .= $chunk;
            <$c>;
        }
        <$c>;
    }

    return { method => $method, uri => $uri, headers => \%h, body => $body,
             times => \%n };
}

sub serve {
    my ($c, $o) = @_;

    $c->autoflush(1);

    while (my $req = read_request($c)) {
        my %q = $req->{uri} =~ /[?&]([^=&]+)=([^&]*)/g;
        my %b = (%$o, %q);

        log_request($o->{log}, $req);

        if ($b{slow_pct} && rand(100) < $b{slow_pct}) {
            sleep(($b{slow_ms} // 1000) / 1000);
        } elsif ($b{ms}) {
            sleep($b{ms} / 1000);
        }

        my $keep = answer($c, $req, \%b);
        last unless $keep;
        last if ($req->{headers}{connection} // '') =~ /close/i;
    }

    close $c;
}

sub log_request {
    my ($log, $req) = @_;

    open my $fh, '>>', $log or return;
    print $fh encode_json({
        t       => time(),
        method  => $req->{method},
        uri     => $req->{uri},
        len     => length $req->{body},
        sha1    => sha1_hex($req->{body}),
        headers => $req->{headers},
        times   => $req->{times},    # each header's count: duplicates
        (length $req->{body} <= 1024 ? (body => $req->{body}) : ()),
    }), "\n";
    close $fh;
}

sub log_event {
    my ($log, $event) = @_;

    open my $fh, '>>', $log or return;
    print $fh encode_json({ t => time(), event => $event }), "\n";
    close $fh;
}

sub send_response {
    my ($c, $status, $ctype, $body, %x) = @_;

    my $len = $x{length} // length $body;
    my $head = "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
             . ($x{retry_after} ? "Retry-After: $x{retry_after}\r\n" : '')
             . "Content-Length: $len\r\nConnection: keep-alive\r\n\r\n";

    print $c $head . $body;
}

sub model_value {
    my ($x, $off) = @_;

    return 2 * $x + $off if !ref $x && $x =~ /^-?[0-9.eE+-]+$/;
    return length($x) + $off if !ref $x;
    if (ref $x eq 'ARRAY') {
        my $sum = 0;
        $sum += model_value($_, $off) for @$x;
        return $sum;
    }
    return model_value($x->{x} // 0, $off) if ref $x eq 'HASH';
    return $off;
}

sub model_answer {
    my ($text, $b) = @_;

    my $in = eval { decode_json($text) };
    my $proto = $b->{proto} // 'v1';

    if ($proto eq 'array' && ref $in eq 'ARRAY') {
        return (500, '{"error":"failed"}') if grep { !ref $_ && $_ eq 'fail' } @$in;
        return (200, encode_json([ map { model_value($_, $b->{off} // 0) } @$in ]));
    }

    return (400, '{"error":"not json"}') unless ref $in eq 'HASH';

    my $off = $b->{off} // 0;
    my $name = $b->{name};
    my $fails = sub {
        my @x = @_;
        return scalar grep { !ref $_ && $_ eq 'fail' } @x;
    };

    if ($proto eq 'v2') {
        my $t = $in->{inputs} && $in->{inputs}[0];
        return (400, '{"error":"no inputs"}')
            unless ref $t eq 'HASH' && ref $t->{data} eq 'ARRAY'
                   && ref $t->{shape} eq 'ARRAY';
        my ($rows, @rest) = @{ $t->{shape} };
        my $per = 1;
        $per *= $_ for @rest;
        my @flat = @{ $t->{data} };
        return (400, '{"error":"shape"}') unless @flat == $rows * $per;
        return (500, '{"error":"failed"}') if $fails->(@flat);
        my @out = map { model_value([ @flat[$_ * $per .. ($_ + 1) * $per - 1] ],
                                    $off) } 0 .. $rows - 1;
        my @outputs = ({ name => 'y', datatype => 'FP64',
                         shape => [ scalar @out ], data => \@out });
        if ($b->{two}) {
            # a classifier: labels and probabilities, in the order asked
            @outputs = ({ name => 'label', datatype => 'INT64',
                          shape => [ scalar @out ], data => [ map { $_ % 3 } @out ] },
                        { name => 'probabilities', datatype => 'FP64',
                          shape => [ scalar @out ],
                          data => [ map { defined $b->{p} ? 0 + $b->{p} : $_ / 100 + $off / 1000 } @out ] });
            @outputs = reverse @outputs if $b->{rev};
        }
        return (200, encode_json({
            model_name => $name,
            (exists $in->{id} ? (id => $in->{id}) : ()),
            outputs => \@outputs,
        }));
    }

    if ($proto eq 'openai') {
        my $x = $in->{input};
        my @x = ref $x eq 'ARRAY' ? @$x : ($x);
        return (500, '{"error":"failed"}') if $fails->(@x);
        # a token an input character, as a real model counts its inputs
        my $tokens = 0;
        $tokens += ref $_ ? scalar @$_ : length $_ for @x;
        my @data = map { { object => 'embedding', index => $_,
                           embedding => [ model_value($x[$_], $off) ] } }
                   0 .. $#x;
        @data = reverse @data if $b->{rev};
        # a lying model: badidx=dup (every index 0), missing, range (n)
        if (my $bad = $b->{badidx}) {
            $_->{index} = 0 for $bad eq 'dup' ? @data : ();
            delete $data[-1]{index} if $bad eq 'missing';
            $data[-1]{index} = scalar @data if $bad eq 'range';
        }
        return (200, encode_json({
            object => 'list', model => $name, data => \@data,
            usage => { prompt_tokens => $tokens, total_tokens => $tokens },
        }));
    }

    my $field = $b->{field} // 'instances';
    return (400, '{"error":"no instances"}') unless exists $in->{$field};
    my $x = $in->{$field};

    if (ref $x eq 'ARRAY') {
        return ($b->{fail_status} // 500, '{"error":"failed"}') if $fails->(@$x);
        my @p = map { model_value($_, $off) } @$x;
        pop @p if $b->{short};      # a model that loses an answer
        return (200, encode_json({ model => $name, calls_inputs => scalar @$x,
                                   predictions => \@p }));
    }

    return (500, '{"error":"failed"}') if $fails->($x);
    return (200, encode_json({ model => $name,
                               prediction => model_value($x, $off) }));
}

sub answer {
    my ($c, $req, $b) = @_;

    my $mode = $b->{mode} // 'normal';
    my $status = $b->{status} // 200;
    my $ctype = $b->{ctype} // 'application/json';
    my $body = $b->{body} // '{"label":"cat","score":0.5}';

    if ($b->{flaky}) {
        # the calls with this body so far, counted by exclusive files
        my $dir = "$b->{log}.flaky";
        mkdir $dir;
        my $key = sha1_hex($req->{body});
        my $i = 0;
        $i++ until sysopen(my $fh, "$dir/$key.$i",
                           POSIX::O_CREAT() | POSIX::O_EXCL() | POSIX::O_WRONLY());
        if ($i < $b->{flaky}) {
            $status = $b->{flaky_status} // 503;
            $body = '{"error":"flaky"}';
        }
    }

    if ($b->{slow_marked} && $req->{body} =~ /slow/) {
        my $dir = "$b->{log}.slow";
        mkdir $dir;
        if (sysopen(my $fh, "$dir/" . sha1_hex($req->{body}),
                    POSIX::O_CREAT() | POSIX::O_EXCL() | POSIX::O_WRONLY())) {
            my $rin = '';
            vec($rin, fileno($c), 1) = 1;
            if (select(my $rout = $rin, undef, undef, $b->{slow_marked} / 1000)) {
                log_event($b->{log}, 'closed');
                return 0;
            }
        }
    }

    if ($mode eq 'echo') {
        $body = encode_json({
            name     => $b->{name},
            method   => $req->{method},
            uri      => $req->{uri},
            len      => length $req->{body},
            sha1     => sha1_hex($req->{body}),
            ae       => $req->{headers}{'accept-encoding'},
            xtest    => $req->{headers}{'x-test'},
        });

    } elsif ($mode eq 'kserve') {
        # KServe v2: the request's id, when it has one, comes back
        my $in = eval { decode_json($req->{body}) } || {};
        $body = encode_json({
            (ref $in eq 'HASH' && exists $in->{id} ? (id => $in->{id}) : ()),
            model_name => $b->{name},
            outputs    => [ { name => 'p', datatype => 'FP32', shape => [1],
                              data => [ $b->{score} // 0.5 ] } ],
        });

    } elsif ($mode eq 'model') {
        # status= and flaky= still say how the call ends
        ($status, $body) = model_answer($req->{body}, $b) if $status == 200;

    } elsif ($mode eq 'cl_short') {
        # a Content-Length of 5, "123" sent, then a close: JSON, but cut
        print $c "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
               . "Content-Length: 5\r\nConnection: close\r\n\r\n123";
        return 0;

    } elsif ($mode eq 'chunk_cut') {
        # chunked, without its last chunk, then a close
        print $c "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
               . "Transfer-Encoding: chunked\r\n\r\n3\r\n123\r\n";
        return 0;

    } elsif ($mode eq 'stall') {
        # part of the body, then nothing until the caller gives up
        print $c "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
               . "Content-Length: 5\r\n\r\n123";
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        while (select(my $rout = $rin, undef, undef, 3600)) {
            last unless sysread($c, my $junk, 4096);
        }
        return 0;

    } elsif ($mode eq 'raw') {
        # no status line at all (HTTP/0.9): only a body, then a close
        print $c $body;
        return 0;

    } elsif ($mode eq 'empty') {
        $body = '';

    } elsif ($mode eq 'big') {
        my $n = $b->{bytes} // 100000;
        $body = '{"pad":"' . ('x' x ($n - 10)) . '"}';

    } elsif ($mode eq 'llm') {
        my $in = eval { decode_json($req->{body}) } || {};
        my $out = $b->{used}
                  // (ref $in eq 'HASH' && $in->{max_tokens}) // 16;
        my $prompt = $b->{prompt} // 10;
        $body = encode_json({
            id => 'chatcmpl-1', object => 'chat.completion',
            model => $b->{name},
            choices => [ { index => 0, finish_reason => 'stop',
                           message => { role => 'assistant',
                                        content => 'x' x $out } } ],
            usage => { prompt_tokens => $prompt + 0,
                       completion_tokens => $out + 0,
                       total_tokens => $prompt + $out },
        });

    } elsif ($mode eq 'sse') {
        print $c "HTTP/1.1 $status X\r\nContent-Type: text/event-stream\r\n"
               . "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
        my $n = $b->{events} // 10;
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        for my $i (0 .. $n) {
            my $wait = ($i == 0 ? ($b->{first} // 0) : ($b->{gap} // 50)) / 1000;
            if ($wait > 0 && select(my $rout = $rin, undef, undef, $wait)) {
                log_event($b->{log}, 'closed');
                return 0;
            }
            if (defined $b->{die} && $i == $b->{die}) {
                log_event($b->{log}, 'died');
                return 0;
            }
            my $pad = $b->{pad} ? ',"pad":"' . ('p' x $b->{pad}) . '"' : '';
            my $ev = $i == $n ? "data: [DONE]\n\n"
                   : qq(data: {"model":"$b->{name}","token":$i$pad}\n\n);
            if ($i == $n && $b->{usage}) {
                my ($p, $u) = ($b->{prompt} // 10, $b->{used} // $n);
                $ev = qq(data: {"choices":[],"usage":{"prompt_tokens":$p,)
                      . qq("completion_tokens":$u,"total_tokens":)
                      . ($p + $u) . "}}\n\n" . $ev;
            }
            printf $c "%x\r\n%s\r\n", length $ev, $ev;
        }
        print $c "0\r\n\r\n";
        return 1;

    } elsif ($mode eq 'chunked') {
        # no Content-Length: the size is only known while reading
        my $n = $b->{bytes} // 100000;
        my $data = '{"pad":"' . ('y' x ($n - 10)) . '"}';
        print $c "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
               . "Transfer-Encoding: chunked\r\n\r\n";
        while (length $data) {
            my $part = substr($data, 0, 1000, '');
            printf $c "%x\r\n%s\r\n", length $part, $part;
        }
        print $c "0\r\n\r\n";
        return 1;

    } elsif ($mode eq 'truncate') {
        # promise more than is sent, then close
        send_response($c, $status, $ctype, substr($body, 0, 10),
                      length => length($body) + 50);
        return 0;

    } elsif ($mode eq 'slowbody') {
        # the header at once, the body after slow_ms
        print $c "HTTP/1.1 $status X\r\nContent-Type: $ctype\r\n"
               . "Content-Length: " . length($body) . "\r\n\r\n"
               . substr($body, 0, 5);
        sleep(($b->{slow_ms} // 2000) / 1000);
        print $c substr($body, 5);
        return 1;

    } elsif ($mode eq 'hang') {
        # never answer; log when the caller closes the connection
        my $rin = '';
        vec($rin, fileno($c), 1) = 1;
        while (select(my $rout = $rin, undef, undef, 3600)) {
            last unless sysread($c, my $junk, 4096);
        }
        log_event($b->{log}, 'closed');
        return 0;

    } elsif ($mode eq 'close') {
        return 0;
    }

    send_response($c, $status, $ctype, $body,
                  $b->{retry_after} ? (retry_after => $b->{retry_after}) : ());
    return 1;
}

1;
