"""Convert every video under a folder into an FMRGB tensor file beside it: `<video name>.pt`.

    $ python create_fmrgbdata.py --target data --audiomethod simple --frequency_param 100 --fmrgb 5

Channels per frame, uint8: R, G, B (or grey with --fmrgb 3), amplitude, then the dominant
frequency (simple) or a log-mel image (mel). All files of a run get the frame count of the
longest video (its decoded count), shorter ones stretched linearly in time; --frames N sets
the count instead. Finished files are skipped on a re-run, so an interrupted run resumes.
"""
import argparse
import functools
import json
import sys
import threading
from pathlib import Path

import media
from features import FORMAT_VERSION, channel_names, convert_video, stretch_time

SCAN_FILE = "fmrgb_scan.json"
STATUS_ORDER = [("converted", "converted"), ("aligned", "aligned"), ("skipped", "skipped (up to date)")]


def output_path(video):
    return Path(video).with_name(Path(video).name + ".pt")


def read_record(path):
    import torch

    return torch.load(path, weights_only=True, mmap=True, map_location="cpu")


def existing_state(pt_path, settings, video=None):
    """(source_frames, stored frame count) of a finished .pt made with these settings (from this
    version of `video`, when given), or None."""
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
    if video is not None and rec.get("source_size") != Path(video).stat().st_size:
        return None  # the video was replaced since: convert it again
    return int(rec["source_frames"]), int(rec["frames"].shape[0])


def save_record(record, pt_path):
    import torch

    crc = torch.serialization.get_crc32_options()
    # the zip checksum costs more than writing the data, and atomic writes already rule out torn files
    torch.serialization.set_crc32_options(False)
    try:
        with media.atomic_output(pt_path) as tmp:
            torch.save(record, tmp)
    finally:
        torch.serialization.set_crc32_options(crc)


_per_thread = threading.local()


def convert_one(video, *, settings, frames=None, decoder_threads=None):
    """Convert one video and write its .pt; returns ('converted', source_frames)."""
    # each worker decodes video after video into the same memory; the record is saved and dropped
    # before the next one is made
    if not hasattr(_per_thread, "scratch"):
        _per_thread.scratch = media.ScratchBuffer()
    record = convert_video(video, frames=frames, scratch=_per_thread.scratch, decoder_threads=decoder_threads,
                           **settings)
    if not record["has_audio"]:
        media.warn(video, "no sound track; sound channels are 0")
    elif record["silent"]:
        media.warn(video, "sound track is digital silence; sound channels are 0")
    save_record(record, output_path(video))
    return "converted", record["source_frames"]


def align_one(video, *, settings, n_frames, decoder_threads=None):
    """Bring a .pt to n_frames: stretch it if it still holds the video's own frames, else convert
    again. Returns its status twice, so run_jobs hands back each file's status."""
    pt_path = output_path(video)
    source_frames, stored = existing_state(pt_path, settings)
    if stored == n_frames:
        return "skipped", "skipped"
    if stored != source_frames:  # already stretched once; going back to the video avoids resampling twice
        convert_one(video, settings=settings, frames=n_frames, decoder_threads=decoder_threads)
        return "aligned", "aligned"
    import torch

    record = dict(read_record(pt_path))
    record["frames"] = torch.from_numpy(stretch_time(record["frames"].numpy(), n_frames))
    save_record(record, pt_path)
    return "aligned", "aligned"


def file_stamp(path):
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def scan_tree(target, *, jobs=1):
    """Count the decoded frames of every video under `target` into target/fmrgb_scan.json, reusing
    counts of files unchanged since the last scan. Returns (scan dict, [failed videos])."""
    target = Path(target)
    old = read_scan(target) or {"files": {}}
    videos = media.find_videos(target)
    entries, todo = {}, []
    for v in videos:
        rel, stamp = v.relative_to(target).as_posix(), file_stamp(v)
        prev = old["files"].get(rel)
        if prev and all(prev.get(k) == stamp[k] for k in stamp):
            entries[rel] = prev
        else:
            todo.append(v)
    _, counted, failed = media.run_jobs(lambda v: ("scanned", media.count_frames(v)), todo, jobs=jobs, desc="scan")
    for v, n in counted.items():
        entries[v.relative_to(target).as_posix()] = {"frames": n, **file_stamp(v)}
    scan = {"files": dict(sorted(entries.items())), "max_frames": max((e["frames"] for e in entries.values()), default=0)}
    with media.atomic_output(target / SCAN_FILE) as tmp:
        tmp.write_text(json.dumps(scan, indent=1))
    return scan, failed


def read_scan(target):
    try:
        return json.loads((Path(target) / SCAN_FILE).read_text())
    except (OSError, ValueError):
        return None


def frames_from_scan(target, videos):
    """The scan's maximum frame count, after checking the scan still describes these videos."""
    scan = read_scan(target)
    if scan is None:
        raise ValueError(f"a sharded run needs the whole tree's frame count: run "
                         f"'create_fmrgbdata.py --target {target} --scan' once first, or give --frames N")
    for v in videos:
        entry = scan["files"].get(Path(v).relative_to(target).as_posix())
        if entry is None or any(entry.get(k) != val for k, val in file_stamp(v).items()):
            raise ValueError(f"{Path(target) / SCAN_FILE} is out of date ({v} is new or changed): run --scan again")
    return int(scan["max_frames"])


def warn_twice_converted(videos):
    """An original beside its resized_ copy would be converted twice: the same clip could then land
    in both the training and the test split."""
    present = set(videos)
    pairs = [v for v, out in media.resized_names([v for v in videos if not media.is_resized(v)]).items()
             if out in present]
    if pairs:
        media.warn(pairs[0], f"{len(pairs)} videos have a resized_ copy beside them and both are converted; "
                             "run delete_not_resized.py first, or the same clip is in the data twice")


def create_fmrgbdata(target, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None,
                     jobs=1, overwrite=False, shard=None):
    """Convert every video under `target` (or one shard 'i of n' of them).
    Returns ({status: count}, [failed videos])."""
    try:
        return _create_fmrgbdata(target, audiomethod=audiomethod, frequency_param=frequency_param, fmrgb=fmrgb,
                                 frames=frames, jobs=jobs, overwrite=overwrite, shard=shard)
    finally:
        vars(_per_thread).pop("scratch", None)  # a single-process run decoded here: give the memory back


def _create_fmrgbdata(target, *, audiomethod, frequency_param, fmrgb, frames, jobs, overwrite, shard):
    settings = {"audiomethod": audiomethod, "frequency_param": frequency_param, "fmrgb": fmrgb}
    videos = media.find_videos(target)
    if shard is not None and frames is None:
        # every shard must agree on the length, so the scan must still describe the whole tree
        frames = frames_from_scan(target, videos) or None
    videos = media.shard_of(videos, shard)
    warn_twice_converted(videos)
    state = {} if overwrite else {v: existing_state(output_path(v), settings, v) for v in videos}
    todo = [v for v in videos if state.get(v) is None]
    # with several workers the cores are taken by whole videos: more decoder threads only contend
    decoder_threads = 1 if jobs > 1 and len(todo) > 1 else None
    counts, source_frames, failed = media.run_jobs(
        functools.partial(convert_one, settings=settings, frames=frames, decoder_threads=decoder_threads), todo,
        jobs=jobs, desc="convert", processes=True)
    converted_here = set(source_frames)
    stored = {v: frames or n for v, n in source_frames.items()}  # a new file holds its own frames, or --frames
    stored.update({v: s[1] for v, s in state.items() if s is not None})
    source_frames.update({v: s[0] for v, s in state.items() if s is not None})
    if not source_frames:
        return counts, failed
    n_frames = frames or max(source_frames.values())
    to_align = sorted(v for v, n in stored.items() if n != n_frames)
    _, align_status, align_failed = media.run_jobs(
        functools.partial(align_one, settings=settings, n_frames=n_frames,
                          decoder_threads=1 if jobs > 1 and len(to_align) > 1 else None),
        to_align, jobs=jobs, desc="align", processes=True)
    # a video converted in this run counts once, as converted, whether or not it then needed stretching;
    # a file from an earlier run counts as aligned, or skipped when it already had the length
    for video in (v for v, s in state.items() if s is not None and v not in align_failed):
        status = align_status.get(video, "skipped")
        counts[status] = counts.get(status, 0) + 1
    counts["failed"] = counts.get("failed", 0) + len(align_failed)
    # a video converted here whose alignment then failed is not done: it counts as failed only
    unfinished = sum(v in converted_here for v in align_failed)
    if unfinished:
        counts["converted"] -= unfinished
    return counts, failed + align_failed


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively for videos")
    parser.add_argument("--audiomethod", default="simple", choices=["simple", "mel"],
                        help="last channel: dominant frequency (simple) or a log-mel image (mel)")
    parser.add_argument("--frequency_param", type=media.positive_int, default=100,
                        help="sound samples per video frame; the analysis rate is fps times this")
    parser.add_argument("--fmrgb", type=int, default=5, choices=[3, 5],
                        help="5: R, G, B + 2 sound channels; 3: grey + 2 sound channels")
    parser.add_argument("--frames", type=media.positive_int, default=None,
                        help="frame count of every output (default: the longest video's decoded count)")
    parser.add_argument("--jobs", type=media.positive_int, default=1, help="videos converted at once")
    parser.add_argument("--overwrite", action="store_true", help="convert again even if up to date")
    parser.add_argument("--shard", type=media.parse_shard, default=None, metavar="I/N",
                        help="convert only part I of N (I from 0) of the sorted videos, for job arrays; "
                             "needs --scan first or --frames")
    parser.add_argument("--scan", action="store_true",
                        help=f"only count every video's decoded frames into TARGET/{SCAN_FILE}, for sharded runs")
    return parser


@media.interruptible
def main(args):
    parser = get_args_parser()
    media.check_target_dir(parser, args.target)
    if args.scan:
        try:
            scan, failed = scan_tree(args.target, jobs=args.jobs)
        except OSError as e:
            print(media.fail_line(Path(args.target) / SCAN_FILE, e.strerror or e), file=sys.stderr)
            return 1
        print(f"scanned {len(scan['files'])} videos, longest {scan['max_frames']} frames: "
              f"{Path(args.target) / SCAN_FILE}, failed {len(failed)}")
        return 1 if failed else 0
    try:
        counts, failed = create_fmrgbdata(args.target, audiomethod=args.audiomethod,
                                          frequency_param=args.frequency_param, fmrgb=args.fmrgb, frames=args.frames,
                                          jobs=args.jobs, overwrite=args.overwrite, shard=args.shard)
    except ValueError as e:
        parser.error(str(e))
    print(media.summary(counts, STATUS_ORDER))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
