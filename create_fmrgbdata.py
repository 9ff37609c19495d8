"""Convert every video under a folder into an FMRGB tensor file beside it: `<video name>.pt`.

    $ python create_fmrgbdata.py --target data --audiomethod simple --frequency_param 100 --fmrgb 5
    $ python create_fmrgbdata.py --target untrimmed --segments segments.csv

Channels per frame, uint8: R, G, B (or grey with --fmrgb 3), amplitude, then the dominant
frequency (simple) or a log-mel image (mel). The files a run converts get the frame count of the
longest video (its decoded count), shorter ones stretched linearly in time; records whose video is
gone keep their own length; --frames N sets the count instead. Finished files are skipped on a
re-run, so an interrupted run resumes.

--segments FILE (a CSV video,start,end,label in seconds, or UCF-Crime's temporal annotation file) writes
one record per annotated segment instead, TARGET/<label>/<video name>@<start>-<end>s.pt, read from the long
video without cutting it, tied to it like any record (fmrgb.streaming.segments).
"""
import argparse
import sys
from pathlib import Path

from fmrgb import cli, runloop
from fmrgb.streaming.annotations import read_annotations
from fmrgb.prepare.convert import convert_tree
from fmrgb.prepare.diskspace import NotEnoughDisk
from fmrgb.prepare.record import Recipe
from fmrgb.prepare.scan import SCAN_FILE, scan_tree
from fmrgb.streaming.segments import convert_segments

STATUS_ORDER = [("converted", "converted"), ("aligned", "aligned"), ("skipped", "skipped (up to date)")]


def run(args):
    """The scan or the conversion of args.target; the exit status."""
    if args.scan:
        try:
            scan, failed = scan_tree(args.target, report=runloop.Console(), jobs=args.jobs)
        except OSError as e:
            print(cli.fail_line(Path(args.target) / SCAN_FILE, e.strerror or e), file=sys.stderr)
            return 1
        print(f"scanned {len(scan['files'])} videos, longest {scan['max_frames']} frames: "
              f"{Path(args.target) / SCAN_FILE}, failed {len(failed)}")
        return 1 if failed else 0
    try:
        counts, failed = convert_tree(args.target, report=runloop.Console(), audiomethod=args.audiomethod,
                                      frequency_param=args.frequency_param, fmrgb=args.fmrgb, frames=args.frames,
                                      size=args.size, jobs=args.jobs, overwrite=args.overwrite, shard=args.shard)
    except (ValueError, NotEnoughDisk) as e:
        cli.usage_error(str(e))
    print(runloop.summary(counts, STATUS_ORDER))
    return 1 if failed else 0


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively for videos")
    parser.add_argument("--audiomethod", default="simple", choices=["simple", "mel"],
                        help="last channel: dominant frequency (simple) or a log-mel image (mel)")
    parser.add_argument("--frequency_param", type=cli.positive_int, default=100,
                        help="the sound's analysis rate is 30 times this in Hz for every file, whatever its "
                             "frame rate (this many samples per frame at 30 fps); frequency 255 = 15 times this Hz")
    parser.add_argument("--fmrgb", type=int, default=5, choices=[3, 5],
                        help="5: R, G, B + 2 sound channels; 3: grey + 2 sound channels")
    parser.add_argument("--frames", type=cli.positive_int, default=None,
                        help="frame count of every output (default: the longest video's decoded count)")
    parser.add_argument("--size", type=cli.positive_int, default=None,
                        help="store every frame at SIZE x SIZE, resized as train.py --size SIZE resizes, while the "
                             "video is read (default: as the video is; 112 with --frames 32 is ~345x smaller for 720p)")
    parser.add_argument("--jobs", type=cli.positive_int, default=1, help="videos converted at once")
    parser.add_argument("--overwrite", action="store_true", help="convert again even if up to date")
    parser.add_argument("--shard", type=cli.parse_shard, default=None, metavar="I/N",
                        help="convert only part I of N (I from 0) of the sorted videos, for job arrays; "
                             "needs --scan first or --frames")
    parser.add_argument("--scan", action="store_true",
                        help=f"only count every video's decoded frames into TARGET/{SCAN_FILE}, for sharded runs")
    parser.add_argument("--segments", default=None,
                        help="CSV video,start,end,label (seconds) or UCF-Crime's temporal annotation file: one "
                             "record per segment in TARGET/<label>/")
    return parser


def segments_main(args):
    """--segments: one record per annotated segment; the exit status."""
    if args.shard is not None or args.scan:
        cli.usage_error(f"--segments does not take {'--shard' if args.shard is not None else '--scan'}")
    try:
        notes = read_annotations(args.segments)
    except (OSError, ValueError) as e:
        cli.usage_error(f"--segments {args.segments}: {cli.error_summary(e)}")
    counts, failed = convert_segments(args.target, notes, recipe=Recipe(args.audiomethod, args.frequency_param,
                                                                        args.fmrgb),
                                      report=runloop.Console(), frames=args.frames, overwrite=args.overwrite)
    print(f"segments: {counts['records']} records from {counts['videos']} videos, "
          f"{counts['skipped']} videos up to date, failed {len(failed)}")
    return 1 if failed else 0


@cli.interruptible
def main(args):
    cli.check_target_dir(args.target)
    # the shards of a job array share the tree, each with its own files; any other run holds it alone
    with cli.hold_tree(args.target, shared=args.shard is not None and not args.scan):
        if args.segments is not None:
            return segments_main(args)
        return run(args)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
