"""Delete the original videos that have a finished resized copy, and nothing else.

    $ python delete_not_resized.py --target data --dry-run

A video X.ext goes only when its resized_X.mp4 sibling (as resize_video.py names it) decodes
without errors and holds as many frames as X.ext, within two. Every other file stays: .pt,
.csv, models, folders, resized copies, and originals whose copy is missing or broken (listed
as kept, with the reason). Symlinked files are never followed or deleted.
"""
import argparse
import sys

import media
from resize_video import is_complete_copy


def deletion_plan(target):
    """[(original, None)] for originals that may go, [(original, reason)] for those that stay."""
    originals = [v for v in media.find_videos(target) if not media.is_resized(v)]
    names = media.resized_names(originals)
    plan = []
    for video in media.progress(originals, len(originals), "check"):
        if video not in names:
            plan.append((video, "its resized_ name clashes with another video's"))
            continue
        ok, why = is_complete_copy(video, names[video], decode=True)
        plan.append((video, None if ok else why))
    return plan


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print what would be deleted, delete nothing")
    return parser


@media.interruptible
def main(args):
    media.check_target_dir(get_args_parser(), args.target)
    counts, failed = media.apply_deletions(deletion_plan(args.target), dry_run=args.dry_run)
    print(media.deletion_summary(counts, args.dry_run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
