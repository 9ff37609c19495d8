"""Shrink every video under a folder by an integer factor, keeping its sound.

    $ python resize_video.py --target data --mag 2

Each video X.mp4 gets a sibling resized_X.mp4, any other X.ext a sibling resized_X.ext.mp4
(H.264, width and height divided by --mag and rounded down to even numbers; AAC sound copied
when it already is AAC, else re-encoded; a video without sound stays without). Every video stream,
sound track, attached picture and text subtitle goes into the copy, each frame at its own time.
Videos named
resized_* are never resized again, and a finished copy made with the same --mag is skipped, so a
re-run only does what is missing. The copy's stamp records the SHA-256 of the original's bytes
and the --mag; a file at the copy's name that was not made from this very original (the user's
own, another video's copy, a copy of an older version, a link) is never written over: that
original fails with the reason.
"""
import argparse
import sys

from fmrgb import cli, runloop
from fmrgb.prepare.resized import resize_videos

STATUS_ORDER = [("resized", "resized"), ("skipped", "skipped (up to date)")]


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively for videos")
    parser.add_argument("--mag", type=cli.positive_int, default=2, help="divide width and height by this integer")
    parser.add_argument("--jobs", type=cli.positive_int, default=1, help="ffmpeg processes run at once")
    parser.add_argument("--shard", type=cli.parse_shard, default=None, metavar="I/N",
                        help="resize only part I of N (I from 0) of the sorted videos, for job arrays")
    return parser


@cli.interruptible
def main(args):
    cli.check_target_dir(args.target)
    with cli.hold_tree(args.target, shared=args.shard is not None):  # the shards of a job array run together
        counts, failed = resize_videos(args.target, mag=args.mag, report=runloop.Console(), jobs=args.jobs,
                                       shard=args.shard)
    print(runloop.summary(counts, STATUS_ORDER))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
