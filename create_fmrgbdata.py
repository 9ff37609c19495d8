"""Convert every video under a folder into an FMRGB tensor file beside it: `<video name>.pt`.

    $ python create_fmrgbdata.py --target data --audiomethod simple --frequency_param 100 --fmrgb 5

Channels per frame, uint8: R, G, B (or grey with --fmrgb 3), amplitude, then the dominant
frequency (simple) or a log-mel image (mel). All files of a run get the frame count of the
longest video (its decoded count), shorter ones stretched linearly in time; --frames N sets
the count instead. Finished files are skipped on a re-run, so an interrupted run resumes.
"""
import argparse
import functools
import sys
from pathlib import Path

import media
from features import FORMAT_VERSION, channel_names, convert_video, stretch_time

STATUS_ORDER = [("converted", "converted"), ("aligned", "aligned"), ("skipped", "skipped (up to date)")]


def output_path(video):
    return Path(video).with_name(Path(video).name + ".pt")


def settings_of(args):
    return {"audiomethod": args.audiomethod, "frequency_param": args.frequency_param, "fmrgb": args.fmrgb}


def read_record(path):
    import torch

    return torch.load(path, weights_only=True, mmap=True, map_location="cpu")


def existing_state(pt_path, settings):
    """(source_frames, stored frame count) of a finished .pt made with these settings, or None."""
    if not pt_path.is_file():
        return None
    try:
        rec = read_record(pt_path)
    except Exception:
        return None  # unreadable: convert again
    if not isinstance(rec, dict) or rec.get("format_version") != FORMAT_VERSION:
        return None
    if (rec.get("audiomethod"), rec.get("frequency_param")) != (settings["audiomethod"], settings["frequency_param"]):
        return None
    if rec.get("channels") != channel_names(settings["fmrgb"], settings["audiomethod"]):
        return None
    return int(rec["source_frames"]), int(rec["frames"].shape[0])


def save_record(record, pt_path):
    import torch

    with media.atomic_output(pt_path) as tmp:
        torch.save(record, tmp)


def convert_one(video, *, settings, frames=None):
    """Convert one video and write its .pt; returns ('converted', source_frames)."""
    record = convert_video(video, frames=frames, **settings)
    if not record["has_audio"]:
        media.warn(video, "no sound track; sound channels are 0")
    elif record["silent"]:
        media.warn(video, "sound track is digital silence; sound channels are 0")
    save_record(record, output_path(video))
    return "converted", record["source_frames"]


def align_one(video, *, settings, n_frames):
    """Bring a .pt to n_frames: stretch it if it still holds the video's own frames, else convert
    again. Returns its status twice, so run_jobs hands back each file's status."""
    pt_path = output_path(video)
    source_frames, stored = existing_state(pt_path, settings)
    if stored == n_frames:
        return "skipped", "skipped"
    if stored != source_frames:  # already stretched once; going back to the video avoids resampling twice
        convert_one(video, settings=settings, frames=n_frames)
        return "aligned", "aligned"
    import torch

    record = dict(read_record(pt_path))
    record["frames"] = torch.from_numpy(stretch_time(record["frames"].numpy(), n_frames))
    save_record(record, pt_path)
    return "aligned", "aligned"


def create_fmrgbdata(target, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None,
                     jobs=1, overwrite=False):
    """Convert every video under `target`. Returns ({status: count}, [failed videos])."""
    settings = {"audiomethod": audiomethod, "frequency_param": frequency_param, "fmrgb": fmrgb}
    videos = media.find_videos(target)
    state = {} if overwrite else {v: existing_state(output_path(v), settings) for v in videos}
    todo = [v for v in videos if state.get(v) is None]
    counts, source_frames, failed = media.run_jobs(
        functools.partial(convert_one, settings=settings, frames=frames), todo,
        jobs=jobs, desc="convert", processes=True)
    source_frames_new = set(source_frames)
    source_frames.update({v: s[0] for v, s in state.items() if s is not None})
    if not source_frames:
        return counts, failed
    n_frames = frames or max(source_frames.values())
    _, align_status, align_failed = media.run_jobs(
        functools.partial(align_one, settings=settings, n_frames=n_frames), sorted(source_frames),
        jobs=jobs, desc="align", processes=True)
    # a video converted in this run counts once, as converted, whether or not it then needed stretching
    for video, status in align_status.items():
        if video not in source_frames_new:
            counts[status] = counts.get(status, 0) + 1
    counts["failed"] = counts.get("failed", 0) + len(align_failed)
    return counts, failed + align_failed


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively for videos")
    parser.add_argument("--audiomethod", default="simple", choices=["simple", "mel"],
                        help="last channel: dominant frequency (simple) or a log-mel image (mel)")
    parser.add_argument("--frequency_param", type=int, default=100,
                        help="sound samples per video frame; the analysis rate is fps times this")
    parser.add_argument("--fmrgb", type=int, default=5, choices=[3, 5],
                        help="5: R, G, B + 2 sound channels; 3: grey + 2 sound channels")
    parser.add_argument("--frames", type=int, default=None,
                        help="frame count of every output (default: the longest video's decoded count)")
    parser.add_argument("--jobs", type=int, default=1, help="videos converted at once")
    parser.add_argument("--overwrite", action="store_true", help="convert again even if up to date")
    return parser


def main(args):
    parser = get_args_parser()
    media.check_target_dir(parser, args.target)
    if args.frequency_param < 1:
        parser.error("--frequency_param must be at least 1")
    if args.frames is not None and args.frames < 1:
        parser.error("--frames must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    counts, failed = create_fmrgbdata(args.target, audiomethod=args.audiomethod,
                                      frequency_param=args.frequency_param, fmrgb=args.fmrgb,
                                      frames=args.frames, jobs=args.jobs, overwrite=args.overwrite)
    print(media.summary(counts, STATUS_ORDER))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
