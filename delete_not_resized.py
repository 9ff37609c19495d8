"""Delete the original videos that have a finished resized copy, and nothing else.

    $ python delete_not_resized.py --target data --dry-run

A video X.ext goes only when its resized copy (as resize_video.py names it: resized_X.mp4 for an
.mp4, else resized_X.ext.mp4) is not a link, was made from this very file (its stamp names the
SHA-256 of X.ext's bytes), decodes without errors, holds as many frames as X.ext, within two, and
as many streams of each kind (video, sound, attached pictures, subtitles; an original with a stream
an mp4 cannot hold, such as a data stream, stays). Right before each delete the original must
still be the file that was checked (same file, same SHA-256) and its copy unchanged; a file gone
meanwhile is named in one line. Every other file stays: .pt, .csv, models, folders, resized copies, and originals whose copy is
missing or broken (listed as kept, with the reason). Symlinked files are never followed or deleted.
"""
import argparse
import sys

from fmrgb import cli, runloop
from fmrgb.prepare.deletion import originals_with_copies


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print what would be deleted, delete nothing")
    return parser


@cli.interruptible
def main(args):
    cli.check_target_dir(args.target)
    with cli.hold_tree(args.target):
        plan = originals_with_copies(args.target, report=runloop.Console())
        counts, failed = runloop.apply_deletions(plan, dry_run=args.dry_run)
    print(runloop.deletion_summary(counts, args.dry_run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
