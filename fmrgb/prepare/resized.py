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
from fmrgb.prepare.decode import decoded_frame_count
from fmrgb.prepare.ffmpeg import (DiskFull, ffmpeg_error, input_arg, main_video_stream, parse_stream_info, probe, run_ffmpeg,
                          video_map, video_stream_length)
from fmrgb.prepare.record import UnreadableRecord, record_path, recorded_source_digest

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


def stamped_digest(copy):
    """The SHA-256 of the original's bytes that the stamp of `copy` names, or None (no stamp, an old
    one, or an unreadable file)."""
    try:
        stamp = read_stamp(probe(copy).comment)
    except RuntimeError:
        return None
    return (stamp or {}).get("sha256")


def converted_before(copy):
    """The record of the clip `copy` was made from, when that clip was converted before it was
    resized (its original's record beside the copy, made from the bytes the copy's stamp names),
    else None: converting the copy too would put the same clip in the data twice."""
    records = [p for p in map(record_path, files.originals_of(copy)) if p.is_file()]
    digest = stamped_digest(copy) if records else None
    for pt in records if digest else ():
        try:
            if recorded_source_digest(pt) == digest:
                return pt
        except UnreadableRecord:
            continue  # not a record: nothing of this clip
    return None
def original_identity(video):
    """{"original_sha256": the SHA-256 its stamp records} for a resized copy (a resized_ name with a stamp that
    records it), else {}: what a record of the copy keeps, so that copies of one video group together
    (fmrgb.training.survey) wherever they lie."""
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


TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}  # what mp4 takes as mov_text
H264 = ["libx264", "-preset", "veryfast", "-crf", "23"]


def _stream_args(info, main, scale):
    """-map and per-stream codec options that carry every stream an mp4 can hold: the main video
    first (and default), then the other videos, attached pictures as they are, every sound track
    (AAC copied, others encoded), text subtitles as mov_text. Data streams and picture subtitles are
    left out: missing_streams then keeps the original."""
    videos = [main] + [st for st in info.streams if st.kind == "Video" and st.index != main.index]
    args = []
    for j, st in enumerate(videos):
        args += ["-map", f"0:{st.index}"]
        if st.attached:
            args += [f"-c:v:{j}", "copy", f"-disposition:v:{j}", "attached_pic"]
        else:
            args += [f"-filter:v:{j}", scale, f"-c:v:{j}", *H264, f"-pix_fmt:v:{j}", "yuv420p",
                     f"-disposition:v:{j}", "default" if j == 0 else "0"]
    for j, st in enumerate(st for st in info.streams if st.kind == "Audio"):
        args += ["-map", f"0:{st.index}", f"-c:a:{j}", *(["copy"] if st.codec == "aac" else ["aac", f"-b:a:{j}", "128k"])]
    for j, st in enumerate(st for st in info.streams if st.kind == "Subtitle" and st.codec in TEXT_SUBTITLES):
        args += ["-map", f"0:{st.index}", f"-c:s:{j}", "mov_text"]
    return args


def resize_args(source, dest, *, mag, copy_audio=True, digest=None, video=None, info=None):
    """The ffmpeg arguments that write the resized copy of `source` to `dest` (an mp4); `digest`
    (files.file_digest of the source) is read from the file when not given. With `info` (the
    source's MediaInfo) every stream the copy can hold goes in (_stream_args); without it, the video
    stream `video` (a -map value, probed when not given) and every sound track, copied with
    copy_audio, else encoded as AAC. Frames keep their own times (-fps_mode passthrough): a
    variable-frame-rate original's copy holds the same frames."""
    # trunc(x/2)*2: H.264 needs even sizes; max(2, ...) keeps tiny videos valid
    side = "max(2\\,trunc({}/{}/2)*2)"
    scale = f"scale={side.format('iw', mag)}:{side.format('ih', mag)}"
    if info is not None:
        streams = _stream_args(info, main_video_stream(info, source), scale)
    else:
        audio = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", "128k"]
        streams = ["-map", video or video_map(source), "-map", "0:a?", "-vf", scale, "-c:v", *H264,
                   "-pix_fmt", "yuv420p", *audio]
    return ["-y", "-i", input_arg(source), *streams, *([] if info is not None else ["-sn"]), "-dn",
            "-fps_mode", "passthrough",
            "-metadata", f"comment={source_stamp(source, mag=mag, digest=digest)}",
            "-movflags", "+faststart", "-f", "mp4", input_arg(dest)]


def _carried(info):
    """{what: how many} of the streams a copy must hold for its original to go."""
    counts = {}
    for st in info.streams:
        if st.kind == "Video":
            what = "attached picture" if st.attached else "video stream"
        elif st.kind == "Audio":
            what = "sound track"
        elif st.kind == "Subtitle":
            what = "subtitle stream" if st.codec in TEXT_SUBTITLES else f"{st.codec} subtitle stream"
        else:  # data streams (timecode, GPS) and attachments (fonts), counted by kind
            what = f"{st.kind.lower()} stream"
        counts[what] = counts.get(what, 0) + 1
    return counts


def missing_streams(original, copy):
    """None when the copy (MediaInfo) holds as many streams of each kind as the original, else what
    it lacks, in words that follow "resized copy"."""
    have = _carried(copy)
    for what, n in _carried(original).items():
        if what.endswith("subtitle stream") and what != "subtitle stream":
            have_n = 0  # a picture subtitle cannot go into the mp4 copy
        else:
            have_n = have.get(what, 0)
        if have_n < n:
            return f"holds {have_n} of the original's {n} {what}{'s' if n > 1 else ''}"
    return None


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
        copy_info = probe(resized)
    except RuntimeError as e:
        return False, f"resized copy unreadable ({e})"
    stamp = read_stamp(copy_info.comment)
    problem = stamp_problem(stamp, source, digest or files.file_digest(source))
    if problem:
        return False, f"resized copy {problem}"
    if mag is not None and stamp.get("mag") != str(mag):
        return False, f"resized copy was made with --mag {stamp.get('mag', '?')}, not {mag}"
    try:
        lacks = missing_streams(probe(source), copy_info)
    except RuntimeError as e:
        return False, f"original unreadable ({e})"
    if lacks:
        return False, f"resized copy {lacks}"
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
    try:
        return _encode(source, dest, mag=mag, digest=digest)
    except DiskFull as e:  # ffmpeg names neither the file nor the cause: say both
        raise DiskFull(f"{e} writing {dest}") from None


def _encode(source, dest, *, mag, digest):
    with files.atomic_output(dest) as tmp:
        if source.suffix.lower() in AAC_LIKELY:
            # one ffmpeg run instead of probe + run: copy the sound and take the first video stream that
            # is not an attached picture, then check from ffmpeg's listing that the guesses were right
            # (all sound AAC, one video, nothing else an mp4 copy could hold)
            proc = run_ffmpeg(resize_args(source, tmp, mag=mag, copy_audio=True, digest=digest, video="0:V:0"),
                              check=False)
            info = parse_stream_info(proc.stderr)
            if proc.returncode == 0 and not _needs_stream_plan(info):
                return "resized"
            if not info.has_video and not info.has_audio:  # unreadable: ffmpeg says why
                raise RuntimeError(ffmpeg_error(proc.stderr))
        else:
            info = probe(source)
        if not info.has_video:
            raise RuntimeError("no video stream")
        run_ffmpeg(resize_args(source, tmp, mag=mag, digest=digest, info=info))
    return "resized"


def _needs_stream_plan(info):
    """True when the plain recipe (one video, the sound copied) would not carry every stream right."""
    return any(st.kind == "Video" and st.attached or st.kind == "Subtitle" or st.kind == "Audio" and st.codec != "aac"
               for st in info.streams) or sum(st.kind == "Video" for st in info.streams) > 1


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
