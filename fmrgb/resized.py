"""Resized copies: the ffmpeg recipe that makes resized_X.mp4 from X, the stamp in the copy that
names its source, and "is this a finished copy of that very file?". This module alone writes and
reads the stamp.

    counts, failed = resize_videos("data", mag=2, jobs=2)
    ok, why = is_complete_copy(Path("data/a.mp4"), Path("data/resized_a.mp4"), decode=True)
"""
import hashlib
from pathlib import Path

from fmrgb import cli, files
from fmrgb.decode import ffmpeg_error, input_arg, parse_stream_info, probe, run_ffmpeg, video_stream_length

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
    return ["-y", "-i", input_arg(source), "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn",
            "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            *audio, "-metadata", f"comment={source_stamp(source)}", "-movflags", "+faststart", "-f", "mp4",
            input_arg(dest)]


def is_complete_copy(source, resized, *, decode=False):
    """(True, '') when `resized` is a finished copy of `source`: made by resize_video.py from this very
    file (its stamp), it reads (decodes, with decode=True) without errors and holds as many video
    frames as the source, within FRAME_TOLERANCE; else (False, why)."""
    if not resized.is_file():
        return False, "no resized copy"
    if resized.is_symlink():  # it may point at the original itself: never the only copy
        return False, "resized copy is a symlink"
    try:
        stamp = probe(resized).comment
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    if stamp != source_stamp(source):
        return False, "resized copy was not made from this file (another version, or another tool)"
    try:
        got, _, errors = video_stream_length(resized, decode=decode)
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    if errors:
        return False, f"resized copy has errors ({errors[-1]})"
    try:
        want, _, _ = video_stream_length(source)
    except RuntimeError as e:
        return False, f"original unreadable ({e})"
    if abs(got - want) > FRAME_TOLERANCE:
        return False, f"resized copy has {got} frames, the original {want}"
    return True, ""


def resize_one(source, *, dest, mag):
    """Write dest, keeping the sound as AAC: copied when it already is, else encoded."""
    if is_complete_copy(source, dest)[0]:
        return "skipped"
    with files.atomic_output(dest) as tmp:
        if source.suffix.lower() in AAC_LIKELY:
            # one ffmpeg run instead of probe + run: copy the sound, then check what it was
            proc = run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=True), check=False)
            info = parse_stream_info(proc.stderr)
            if proc.returncode == 0 and info.audio_codec in (None, "aac"):
                return "resized"
            if not info.has_video and not info.has_audio:  # unreadable: ffmpeg says why
                raise RuntimeError(ffmpeg_error(proc.stderr))
        else:
            info = probe(source)
        if not info.has_video:
            raise RuntimeError("no video stream")
        run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=info.audio_codec == "aac"))
    return "resized"


def resize_videos(target, *, mag, jobs=1, shard=None):
    """Resize every video under `target` (or one shard 'i of n' of them).
    Returns ({status: count}, [failed videos])."""
    sources = [v for v in files.find_videos(target) if not files.is_resized(v)]
    names = files.resized_names(sources)  # over all videos, so every shard picks the same names
    sources = cli.shard_of(sources, shard)
    names = {v: names[v] for v in sources if v in names}
    failed_names = [v for v in sources if v not in names]
    for v in failed_names:
        cli.report_failure(v, "its resized_ name would clash with another video's")

    def work(source):
        return resize_one(source, dest=names[source], mag=mag)

    # threads, not processes: the work happens inside ffmpeg
    counts, _, failed = cli.run_jobs(work, sorted(names), jobs=jobs, desc="resize")
    counts["failed"] = counts.get("failed", 0) + len(failed_names)
    return counts, failed + failed_names
