# The C unit tests of the pure core (src/core/fanout_*.c), built by make unit;
# each binary prints TAP, passed through as subtests.

use strict;
use warnings;

use FindBin;
use Test::More;

my $dir = "$FindBin::Bin/../build/unit";

# every t/unit/NAME_test.c, as the Makefile builds them
my @names = map { m{([^/]+)\.c$} ? $1 : () } glob("$FindBin::Bin/unit/*_test.c");
ok(@names >= 11, scalar(@names) . ' unit test programs');

for my $name (@names) {
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
