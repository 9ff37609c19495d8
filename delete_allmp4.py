"""Delete the videos that have been converted, keeping every one that has no valid .pt.

    $ python delete_allmp4.py --target data --dry-run

A video goes when `<video name>.pt` beside it loads (torch.load with weights_only=True), holds a
uint8 [T, H, W, C] tensor, and was made from this very file (its recorded name and size match).
Videos without such a .pt are kept and listed, unless --all.
Only video files are ever deleted; symlinked files are never followed, converted or deleted.
"""
import argparse
import sys

import media


def conversion_problem(video):
    """None when the video's .pt is a valid FMRGB file, else why not."""
    import torch

    pt = video.with_name(video.name + ".pt")
    if not pt.is_file():
        return "no .pt file"
    try:
        record = torch.load(pt, weights_only=True, mmap=True, map_location="cpu")
    except Exception as e:
        return f".pt does not load ({media.error_summary(e)})"
    frames = record.get("frames") if isinstance(record, dict) else record
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[0] == 0:
        return ".pt holds no uint8 [T, H, W, C] frames"
    if not isinstance(record, dict) or "source_size" not in record:
        return ".pt does not record which video it was made from (convert again, or use --all)"
    if record["source_size"] != video.stat().st_size or record.get("source") != video.name:
        return ".pt was made from another version of this video (convert again)"
    return None


def deletion_plan(target, *, delete_all=False):
    videos = media.find_videos(target)
    return [(v, None if delete_all else conversion_problem(v))
            for v in media.progress(videos, len(videos), "check")]


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively")
    parser.add_argument("--all", dest="delete_all", action="store_true",
                        help="delete every video, converted or not")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print what would be deleted, delete nothing")
    return parser


@media.interruptible
def main(args):
    media.check_target_dir(get_args_parser(), args.target)
    counts, failed = media.apply_deletions(deletion_plan(args.target, delete_all=args.delete_all),
                                           dry_run=args.dry_run)
    print(media.deletion_summary(counts, args.dry_run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
