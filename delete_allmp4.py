"""Delete the videos that have been converted, keeping every one that has no valid .pt.

    $ python delete_allmp4.py --target data --dry-run

A video goes when `<video name>.pt` beside it loads (torch.load with weights_only=True), holds a
uint8 [T, H, W, C] tensor, and was made from this very file (its recorded name, size and SHA-256
of the bytes match) and holds every frame at the video's size; right before the delete the video and
its .pt must still be the files that were checked. A .pt made with --frames or --size holds fewer or
smaller frames, one stretched to a longer clip's length blended ones: its video is kept unless
--lose_frames_or_pixels. Videos without such a .pt are kept
and listed, unless --all.
Only video files are ever deleted; symlinked files are never followed, converted or deleted.
"""
import argparse
import sys

from fmrgb import cli, runloop
from fmrgb.prepare.deletion import converted_videos


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively")
    parser.add_argument("--all", dest="delete_all", action="store_true",
                        help="delete every video, converted or not")
    parser.add_argument("--lose_frames_or_pixels", action="store_true",
                        help="also delete videos whose .pt holds fewer frames (--frames), smaller ones (--size) "
                             "or blended ones (stretched): those frames and pixels are then gone for good")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print what would be deleted, delete nothing")
    return parser


@cli.interruptible
def main(args):
    cli.check_target_dir(args.target)
    with cli.hold_tree(args.target):
        plan = converted_videos(args.target, report=runloop.Console(), delete_all=args.delete_all,
                                accept_loss=args.lose_frames_or_pixels)
        counts, failed = runloop.apply_deletions(plan, dry_run=args.dry_run)
    print(runloop.deletion_summary(counts, args.dry_run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
