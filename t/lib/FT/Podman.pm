package FT::Podman;

# What docker/test-image.t and docker/test-pod.t share: both run only under
# make test-image (docker/podman-env sets FANOUT_PODMAN_DIR, the temporary
# storage), call podman for its status and output, and build an image from
# a directory as the docs do (no pull, host network for apt).
#
#   use FT::Podman;                    # skip_all outside make test-image
#   my ($rc, $out) = podman('image', 'exists', $img);
#   is(podman_build($dir, $tag, "$log"), 0, 'the image builds');

use strict;
use warnings;

use Exporter qw(import);
use Test::More ();
use Time::HiRes qw(time);

our @EXPORT = qw(podman podman_build);

sub import_guard {
    Test::More::plan(skip_all => 'run by make test-image (docker/podman-env)')
        unless $ENV{FANOUT_PODMAN_DIR};
}

# podman ARGS...: (exit status, stdout and stderr)
sub podman {
    my $cmd = join ' ', 'podman', map { "'$_'" } @_;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# podman build of DIR (or -f FILE in DIR) tagged TAG, its output in LOG:
# its exit status; the time taken, and the log's end if it failed, as diag
sub podman_build {
    my ($dir, $tag, $log, @more) = @_;

    my $t0 = time();
    my $cmd = join ' ', 'podman build --pull=never --network=host',
                        (map { "'$_'" } @more), "-t '$tag' '$dir'";
    system("$cmd > '$log' 2>&1");
    my $rc = $? >> 8;
    Test::More::diag(sprintf "podman build %s: %.0f s", $tag, time() - $t0);
    if ($rc) {
        open my $fh, '<', $log or return $rc;
        my @l = <$fh>;
        Test::More::diag(join '', @l[($#l > 40 ? $#l - 40 : 0) .. $#l]);
    }
    return $rc;
}

BEGIN { import_guard() }

1;
