"""Shrink every video under a folder by an integer factor, keeping its sound.

    $ python resize_video.py --target data --mag 2

Each video X.ext gets a sibling resized_X.mp4 (H.264, width and height divided by --mag and
rounded down to even numbers; AAC sound copied when it already is AAC, else re-encoded; a
video without sound stays without). Videos named resized_* are never resized again, and a
finished resized_ file is skipped, so a re-run only does what is missing.
"""
import argparse
import hashlib
import sys
from pathlib import Path

import media

STATUS_ORDER = [("resized", "resized"), ("skipped", "skipped (up to date)")]
FRAME_TOLERANCE = 2  # frames a re-encode may gain or lose at the ends


def source_stamp(source):
    """What a resized copy records of its original (size and name), so that a copy is only ever
    taken for the file it was made from, not for another video that now has the same name."""
    source = Path(source)
    name = hashlib.sha1(source.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"fmrgb-source size={source.stat().st_size} name={name}"


AAC_LIKELY = {".mp4", ".m4v", ".mov"}  # containers whose sound is almost always AAC already


def resize_args(source, dest, *, mag, copy_audio):
    """The ffmpeg arguments that write the resized copy of `source` to `dest` (an mp4)."""
    # trunc(x/2)*2: H.264 needs even sizes; max(2, ...) keeps tiny videos valid
    side = "max(2\\,trunc({}/{}/2)*2)"
    scale = f"scale={side.format('iw', mag)}:{side.format('ih', mag)}"
    audio = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", "128k"]
    return ["-y", "-i", media.input_arg(source), "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn",
            "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            *audio, "-metadata", f"comment={source_stamp(source)}", "-movflags", "+faststart", "-f", "mp4",
            media.input_arg(dest)]


def is_complete_copy(source, resized, *, decode=False):
    """(True, '') when `resized` is a finished copy of `source`: made by resize_video.py from this very
    file (its stamp), it reads (decodes, with decode=True) without errors and holds as many video
    frames as the source, within FRAME_TOLERANCE; else (False, why)."""
    if not resized.is_file():
        return False, "no resized copy"
    if resized.is_symlink():  # it may point at the original itself: never the only copy
        return False, "resized copy is a symlink"
    try:
        stamp = media.probe(resized).comment
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    if stamp != source_stamp(source):
        return False, "resized copy was not made from this file (another version, or another tool)"
    try:
        got, _, errors = media.video_stream_length(resized, decode=decode)
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    if errors:
        return False, f"resized copy has errors ({errors[-1]})"
    try:
        want, _, _ = media.video_stream_length(source)
    except RuntimeError as e:
        return False, f"original unreadable ({e})"
    if abs(got - want) > FRAME_TOLERANCE:
        return False, f"resized copy has {got} frames, the original {want}"
    return True, ""


def resize_one(source, *, dest, mag):
    """Write dest, keeping the sound as AAC: copied when it already is, else encoded."""
    if is_complete_copy(source, dest)[0]:
        return "skipped"
    with media.atomic_output(dest) as tmp:
        if source.suffix.lower() in AAC_LIKELY:
            # one ffmpeg run instead of probe + run: copy the sound, then check what it was
            proc = media.run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=True), check=False)
            info = media.parse_stream_info(proc.stderr)
            if proc.returncode == 0 and info.audio_codec in (None, "aac"):
                return "resized"
            if not info.has_video and not info.has_audio:  # unreadable: ffmpeg says why
                raise RuntimeError(media.ffmpeg_error(proc.stderr))
        else:
            info = media.probe(source)
        if not info.has_video:
            raise RuntimeError("no video stream")
        media.run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=info.audio_codec == "aac"))
    return "resized"


def resize_videos(target, *, mag, jobs=1, shard=None):
    """Resize every video under `target` (or one shard 'i of n' of them).
    Returns ({status: count}, [failed videos])."""
    sources = [v for v in media.find_videos(target) if not media.is_resized(v)]
    names = media.resized_names(sources)  # over all videos, so every shard picks the same names
    sources = media.shard_of(sources, shard)
    names = {v: names[v] for v in sources if v in names}
    failed_names = [v for v in sources if v not in names]
    for v in failed_names:
        print(media.fail_line(v, "its resized_ name would clash with another video's"), file=sys.stderr)

    def work(source):
        return resize_one(source, dest=names[source], mag=mag)

    # threads, not processes: the work happens inside ffmpeg
    counts, _, failed = media.run_jobs(work, sorted(names), jobs=jobs, desc="resize")
    counts["failed"] = counts.get("failed", 0) + len(failed_names)
    return counts, failed + failed_names


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="folder searched recursively for videos")
    parser.add_argument("--mag", type=media.positive_int, default=2, help="divide width and height by this integer")
    parser.add_argument("--jobs", type=media.positive_int, default=1, help="ffmpeg processes run at once")
    parser.add_argument("--shard", type=media.parse_shard, default=None, metavar="I/N",
                        help="resize only part I of N (I from 0) of the sorted videos, for job arrays")
    return parser


@media.interruptible
def main(args):
    media.check_target_dir(get_args_parser(), args.target)
    counts, failed = resize_videos(args.target, mag=args.mag, jobs=args.jobs, shard=args.shard)
    print(media.summary(counts, STATUS_ORDER))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
