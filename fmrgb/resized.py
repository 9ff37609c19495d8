"""Resized copies: the ffmpeg recipe that makes resized_X.mp4 from X, the stamp in the copy that
names its source, and "is this a finished copy of that very file?". This module alone writes and
reads the stamp.

    counts, failed = resize_videos("data", mag=2, report=runloop.Console(), jobs=2)
    ok, why = is_complete_copy(Path("data/a.mp4"), Path("data/resized_a.mp4"), decode=True)

The stamp (the mp4 `comment` tag) reads `fmrgb-source size=N name=H sha256=D mag=M`: the
original's size, a hash of its file name, the SHA-256 of its bytes and the --mag used. A file at
a copy's name is only ever replaced when its stamp names this very original (name and bytes);
anything else there (a user's own file, another video's copy, a copy of an older version of this
video, a link) is reported as a clash and left alone.
"""
import hashlib
from pathlib import Path

from fmrgb import cli, files, runloop
from fmrgb.decode import decoded_frame_count
from fmrgb.ffmpeg import (ffmpeg_error, input_arg, parse_stream_info, probe, run_ffmpeg, video_map,
                          video_stream_length)

FRAME_TOLERANCE = 2  # frames a re-encode may gain or lose at the ends


STAMP_PREFIX = "fmrgb-source"


def _name_hash(source):
    return hashlib.sha1(Path(source).name.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def source_stamp(source, *, mag, digest=None):
    """What a resized copy records of its original (size, name, the digest of its bytes) and of
    how it was made (--mag), so that a copy is only ever taken for the very content it was made
    from, not for another video, or another version of this one, that now has the same name."""
    source = Path(source)
    digest = digest or files.file_digest(source)
    return f"{STAMP_PREFIX} size={source.stat().st_size} name={_name_hash(source)} sha256={digest} mag={mag}"


def read_stamp(comment):
    """The fields of a stamp ({'size': ..., 'name': ..., 'sha256': ..., 'mag': ...}), or None when
    the comment is not one (a file resize_video.py did not make)."""
    words = (comment or "").split()
    if not words or words[0] != STAMP_PREFIX:
        return None
    return dict(w.split("=", 1) for w in words[1:] if "=" in w)


def original_identity(video):
    """{"original_sha256": the SHA-256 its stamp records} for a resized copy (a resized_ name with a stamp that
    records it), else {}: what a record of the copy keeps, so that copies of one video group together
    (fmrgb.survey) wherever they lie."""
    video = Path(video)
    if not video.name.startswith(files.RESIZED_PREFIX):
        return {}
    try:
        stamp = read_stamp(probe(video).comment)
    except Exception:  # unreadable here: the conversion reports it
        return {}
    return {"original_sha256": stamp["sha256"]} if stamp and "sha256" in stamp else {}


def stamp_problem(stamp, source, digest):
    """None when a stamp (read_stamp) says its copy was made from this very file: its name and the
    digest of its bytes; else why not, in words that follow "resized copy"."""
    if stamp is None:
        return "was not made by resize_video.py"
    if stamp.get("name") != _name_hash(source):
        return "was made from another file"
    if "sha256" not in stamp:
        return "was made by an older resize_video.py, which did not record the original's content"
    if stamp["sha256"] != digest:
        return "was made from another version of this file"
    return None


def owner_problem(source, dest, digest):
    """None when `dest` is absent or a copy made from this very `source` (so it may be replaced);
    else why the file there is not ours to write over."""
    if dest.is_symlink():
        return "is a symlink"
    if not dest.exists():
        return None
    try:
        stamp = read_stamp(probe(dest).comment)
    except RuntimeError:
        stamp = None  # unreadable: nothing says we made it
    return stamp_problem(stamp, source, digest)


AAC_LIKELY = {".mp4", ".m4v", ".mov"}  # containers whose sound is almost always AAC already


def resize_args(source, dest, *, mag, copy_audio, digest=None, video=None):
    """The ffmpeg arguments that write the resized copy of `source` to `dest` (an mp4); `digest`
    (files.file_digest of the source) is read from the file when not given, and `video` (the -map of
    the main video stream) is probed when not given."""
    # trunc(x/2)*2: H.264 needs even sizes; max(2, ...) keeps tiny videos valid
    side = "max(2\\,trunc({}/{}/2)*2)"
    scale = f"scale={side.format('iw', mag)}:{side.format('ih', mag)}"
    audio = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", "128k"]
    return ["-y", "-i", input_arg(source), "-map", video or video_map(source), "-map", "0:a:0?", "-sn", "-dn",
            "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            *audio, "-metadata", f"comment={source_stamp(source, mag=mag, digest=digest)}",
            "-movflags", "+faststart", "-f", "mp4", input_arg(dest)]


def is_complete_copy(source, resized, *, decode=False, mag=None, digest=None):
    """(True, '') when `resized` is a finished copy of `source`: made by resize_video.py from this very
    file (its stamp names the digest of the source's bytes; with `mag`, made with that --mag), it
    reads (decodes, with decode=True) without errors and holds as many video frames as the source
    (with decode=True: as the source decodes to), within FRAME_TOLERANCE; else (False, why). `digest`: files.file_digest(source), if known."""
    if not resized.is_file():
        return False, "no resized copy"
    if resized.is_symlink():  # it may point at the original itself: never the only copy
        return False, "resized copy is a symlink"
    try:
        stamp = probe(resized).comment
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    stamp = read_stamp(stamp)
    problem = stamp_problem(stamp, source, digest or files.file_digest(source))
    if problem:
        return False, f"resized copy {problem}"
    if mag is not None and stamp.get("mag") != str(mag):
        return False, f"resized copy was made with --mag {stamp.get('mag', '?')}, not {mag}"
    try:
        got, _, errors = video_stream_length(resized, decode=decode)
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    if errors:
        return False, f"resized copy has errors ({errors[-1]})"
    try:
        # deleting compares with what the original decodes to (the rule of every step); skipping a
        # resize needs only the packet count
        want = decoded_frame_count(source) if decode else video_stream_length(source)[0]
    except RuntimeError as e:
        return False, f"original unreadable ({e})"
    if abs(got - want) > FRAME_TOLERANCE:
        return False, f"resized copy has {got} frames, the original {want}"
    return True, ""


def resize_one(source, *, dest, mag):
    """Write dest, keeping the sound as AAC: copied when it already is, else encoded. A finished copy
    made with this --mag is skipped; a file at dest that was not made from this very source is
    never written over (RuntimeError saying so)."""
    digest = files.file_digest(source)  # before encoding: a source changed meanwhile then fails the check
    problem = owner_problem(source, dest, digest)
    if problem:
        # it may be the only copy of what it shows (its original deleted): the user decides
        raise RuntimeError(f"{dest.name} is there and {problem}: not overwritten "
                           f"(move it away to resize {source.name})")
    if is_complete_copy(source, dest, mag=mag, digest=digest)[0]:
        return "skipped"
    with files.atomic_output(dest) as tmp:
        if source.suffix.lower() in AAC_LIKELY:
            # one ffmpeg run instead of probe + run: copy the sound and take the first video stream that
            # is not an attached picture, then check from ffmpeg's listing that both guesses were right
            proc = run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=True, digest=digest, video="0:V:0"),
                              check=False)
            info = parse_stream_info(proc.stderr)
            videos = [st for st in info.streams if st.kind == "Video" and not st.attached]
            if proc.returncode == 0 and info.audio_codec in (None, "aac") and len(videos) <= 1:
                return "resized"
            if not info.has_video and not info.has_audio:  # unreadable: ffmpeg says why
                raise RuntimeError(ffmpeg_error(proc.stderr))
        else:
            info = probe(source)
        if not info.has_video:
            raise RuntimeError("no video stream")
        run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=info.audio_codec == "aac", digest=digest,
                               video=video_map(source, info)))
    return "resized"


def resize_videos(target, *, mag, report, jobs=1, shard=None):
    """Resize every video under `target` (or one shard 'i of n' of them); warnings and failing videos
    go to `report` as they come.
    Returns ({status: count}, [failed videos])."""
    sources = [v for v in files.find_videos(target, on_skip=report.warn) if not files.is_resized(v)]
    names = files.resized_names(sources)
    sharing = {}
    for v, out in names.items():  # over all videos, so every shard sees the same clashes
        sharing.setdefault(out, []).append(v)
    sources = cli.shard_of(sources, shard)
    # two videos with one copy name (a.avi, a.avi.mp4): the stamp of an existing copy says whose it
    # is (resize_one refuses the other); with no copy yet, neither may write it
    failed_names = [v for v in sources if len(sharing[names[v]]) > 1 and not names[v].exists()
                    and not names[v].is_symlink()]
    for v in failed_names:
        other = next(o for o in sharing[names[v]] if o != v)
        report.fail(v, f"its copy's name {names[v].name} is also {other.name}'s: rename one of them")
    names = {v: names[v] for v in sources if v not in failed_names}

    def work(source):
        return resize_one(source, dest=names[source], mag=mag)

    # threads, not processes: the work happens inside ffmpeg
    counts, _, failed = runloop.run_jobs(work, sorted(names), report=report, jobs=jobs, desc="resize")
    counts["failed"] = counts.get("failed", 0) + len(failed_names)
    return counts, failed + failed_names
