# The C unit tests of the pure core (src/fanout_*.c), built by make unit;
# each binary prints TAP, passed through as subtests.

use strict;
use warnings;

use FindBin;
use Test::More;

my $dir = "$FindBin::Bin/../build/unit";

for my $name (qw(json_test merge_test cache_key_test limit_test
                  breaker_test split_test compare_test call_test
                  batch_test microbatch_test trace_test)) {
    subtest $name => sub {
        plan skip_all => "$dir/$name is not built (make unit)"
            unless -x "$dir/$name";

        my $out = `$dir/$name 2>&1`;
        my $rc = $? >> 8;

        for (split /\n/, $out) {
            if (/^(not )?ok \d+ - (.*)$/) {
                ok(!$1, $2);
            } elsif (/^#/) {
                diag($_);
            }
        }

        is($rc, 0, "$name exits 0, no sanitizer report")
            or diag($out);
    };
}

done_testing();
