"""Conversion: one video -> one FMRGB record, and a whole tree of videos -> records of one length.

    record = convert_video("clip.mp4", audiomethod="simple", frequency_param=100, fmrgb=5)
    counts, failed = convert_tree("data", report=runloop.Console(), audiomethod="mel", jobs=2)

A tree's records all get the frame count of its longest video (its decoded count; a record whose
video is gone counts with the frames it holds), shorter ones stretched in time, unless `frames`
sets the count. A record whose video is gone is the only copy of its clip: it is never rewritten.
Finished records are skipped, so an interrupted run resumes.
"""
import dataclasses
import functools
import threading
from pathlib import Path

import numpy as np

from fmrgb import cli, files, runloop

from fmrgb.prepare import diskspace, scan
from fmrgb.prepare.decode import decode_media
from fmrgb.prepare.memory import ScratchBuffer
from fmrgb.prepare.record import (FORMAT_VERSION, SUFFIX, Recipe, UnreadableRecord, load_record, made_from_problem,
                                  overwrite_problem, recipe_problem, record_path, save_record, source_identity)
from fmrgb.prepare.resized import converted_before, original_identity
from fmrgb.prepare.sound import SOUND_CHANNELS, channel_names, fuse, mel_window, sound_planes
from fmrgb.prepare.timeline import stretch_time


def convert_video(path, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, size=None,
                  scratch=None, decoder_threads=None, notes=None):
    """Decode a video and build its FMRGB record (the dict create_fmrgbdata.py saves).

    `frames` gives the record that many frames, made while the video is decoded (so memory does
    not grow with its length): bit for bit stretch_time(full record, frames, sound_channels=2,
    planes=sound_planes(audiomethod), mel_window=mel_window(fps)): each kept frame's sound describes its whole span.
    With a `scratch` (memory.ScratchBuffer) the record's frames live in its memory until its next
    use. `decoder_threads` goes to decode.decode_media (None: chosen by the clip's size).
    `size` stores every frame at size x size, resized as training resizes while the video is read
    (the picture; the planes are uniform, the mel image is drawn at that size). A list given as
    `notes` gets a line for each thing about the sound worth a warning.
    """
    import torch

    scale = Recipe(audiomethod=audiomethod, frequency_param=frequency_param, fmrgb=fmrgb).scale  # checks them
    # ffmpeg decodes the sound on the other core while OpenCV decodes the frames, at one rate for every file
    media = decode_media(path, sample_rate_for=lambda fps: scale.sample_rate,
                         gray=fmrgb == 3, extra_channels=SOUND_CHANNELS, keep=None if frames is None else int(frames),
                         scratch=scratch, threads=decoder_threads, size=size)
    facts, audio = media.facts, media.audio
    if notes is not None:
        notes.extend(sound_notes(audio, facts.sample_rate, frequency_param))
    fused = fuse(media.frames, audio, fps=facts.fps, audiomethod=audiomethod, frequency_param=frequency_param,
                 start=facts.start, source_frames=facts.frames, at=None if media.plan is None else media.plan.nearest,
                 spans=None if media.plan is None else media.plan.spans())
    return {
        "frames": torch.from_numpy(fused),
        "channels": channel_names(fmrgb, audiomethod),
        "fps": float(facts.fps),
        "audiomethod": audiomethod,
        "frequency_param": int(frequency_param),
        "sample_rate": int(facts.sample_rate),
        "sound_scale": scale.to_meta(),
        "source": Path(path).name,
        "source_size": Path(path).stat().st_size,  # tells a later run whether the video has changed
        "source_frames": int(facts.frames),
        "source_shape": list(facts.source_shape),  # the video's picture (height, width): a --size record's is smaller
        "damaged_frames": int(facts.damaged),  # frames that did not decode, between others that did
        "has_audio": audio is not None,
        "silent": audio is None or not np.any(audio),
        "format_version": FORMAT_VERSION,
    }


def sound_notes(audio, sample_rate, frequency_param):
    """What a warning should say about a clip's sound: nothing for a track that gave samples."""
    if audio is None:
        return ["no sound track; sound channels are 0"]
    if not len(audio):
        # ffmpeg's resampler holds back about a second's worth of samples at very low rates
        return [f"the sound track gave no samples at the analysis rate of {sample_rate} Hz (30 x --frequency_param "
                f"{frequency_param}): too short for ffmpeg to resample that low; sound channels are 0 "
                "(a larger --frequency_param keeps its sound)"]
    if not np.any(audio):
        return ["sound track is digital silence; sound channels are 0"]
    return []


# ----------------------------------------------------------------------------- a tree of videos

def existing_state(video, recipe, *, check_source=True, size=None):
    """(source_frames, stored frame count) of a finished record of `video` made with `recipe` (and at
    `size` x `size`, or at the video's own size) from this version of the video (with check_source),
    or None when it must be made again."""
    pt = record_path(video)
    try:
        if not pt.is_file():
            return None
    except OSError:
        return None  # a name the file system refuses (too long): the conversion says so
    try:
        frames, meta = load_record(pt)
    except RuntimeError:
        return None  # unreadable: convert again
    if recipe_problem(meta, recipe) or (check_source and made_from_problem(meta, video)):
        return None
    if tuple(frames.shape[1:3]) != ((size, size) if size else tuple(meta.get("source_shape", frames.shape[1:3]))):
        return None  # made at another --size
    return int(meta["source_frames"]), int(frames.shape[0])


_per_thread = threading.local()


def convert_one(video, *, recipe, frames=None, size=None, decoder_threads=None):
    """Convert one video and write its record; returns Outcome('converted', source_frames, warnings)."""
    # each worker decodes video after video into the same memory; the record is saved and dropped
    # before the next one is made
    if not hasattr(_per_thread, "scratch"):
        _per_thread.scratch = ScratchBuffer()
    # read before decoding: a video replaced meanwhile then fails the next run's check, never passes it
    identity = {**source_identity(video), **original_identity(video)}
    problem = overwrite_problem(video, identity["source_sha256"])
    if problem:
        raise RuntimeError(problem)
    warnings = []
    record = convert_video(video, frames=frames, size=size, scratch=_per_thread.scratch,
                           decoder_threads=decoder_threads,
                           notes=warnings, **dataclasses.asdict(recipe))
    if record["damaged_frames"]:
        warnings.append(f"{record['damaged_frames']} damaged frames did not decode and were skipped "
                        f"({record['source_frames']} did)")
    save_record({**record, **identity}, record_path(video))
    return runloop.Outcome("converted", record["source_frames"], tuple(warnings))


def align_one(video, *, recipe, n_frames, size=None, decoder_threads=None):
    """Bring a record to n_frames: stretch it if it still holds the video's own frames, else convert
    again. Returns its status twice, so run_jobs hands back each file's status."""
    state = existing_state(video, recipe, check_source=False, size=size)
    if state is None:  # written a moment ago, yet it does not read back (a disk or name problem)
        raise RuntimeError(f"its .pt does not read back: {record_path(video).name}")
    source_frames, stored = state
    if stored == n_frames:
        return "skipped", "skipped"
    if stored != source_frames:  # already stretched once; going back to the video avoids resampling twice
        convert_one(video, recipe=recipe, frames=n_frames, size=size, decoder_threads=decoder_threads)
        return "aligned", "aligned"
    return align_record(record_path(video), n_frames=n_frames)


def align_record(pt, *, n_frames):
    """Stretch the frames a record holds to n_frames (only ever for a record whose video is there).
    Returns its status twice, like align_one."""
    import torch

    clip, meta = load_record(pt)
    if clip.shape[0] == n_frames:
        return "skipped", "skipped"
    stretched = stretch_time(clip.numpy(), n_frames, sound_channels=SOUND_CHANNELS,
                             planes=sound_planes(meta.get("audiomethod")), mel_window=mel_window(meta.get("fps")))
    save_record({"frames": torch.from_numpy(stretched), **meta}, pt)
    return "aligned", "aligned"


def orphan_records(target, videos, recipe, report):
    """{record: the frames it holds} of the records under `target` whose video is gone (deleted once
    converted: they are the data now, the only copy of their clips) and that were made with `recipe`,
    so that they count for the run's length. One made with other settings cannot be made again: a
    warning to `report` names it."""
    present = {record_path(v) for v in videos}
    found = {}
    for pt in files.find_files(target, {SUFFIX}):
        video_name = pt.name[:-len(SUFFIX)]
        if pt in present or Path(video_name).suffix.lower() not in files.VIDEO_EXTS:
            continue  # a video's own record, or not a video's record at all (a model, say)
        try:
            frames, meta = load_record(pt)
        except UnreadableRecord:
            continue  # not an FMRGB record: not ours to change
        problem = recipe_problem(meta, recipe)
        if problem:
            report.warn(pt, f"its video is gone and it was {problem}: left as it is ({frames.shape[0]} frames)")
        else:
            found[pt] = int(frames.shape[0])
    return found


def warn_twice_converted(videos, report):
    """An original beside its resized_ copy would be converted twice: the same clip could then land
    in both the training and the test split."""
    present = set(videos)
    pairs = [v for v, out in files.resized_names([v for v in videos if not files.is_resized(v)]).items()
             if out in present]
    if pairs:
        report.warn(pairs[0], f"{len(pairs)} videos have a resized_ copy beside them and both are converted; "
                              "run delete_not_resized.py first, or the same clip is in the data twice")


def convert_tree(target, *, report, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, size=None,
                 jobs=1, overwrite=False, shard=None):
    """Convert every video under `target` (or one shard 'i of n' of them) into records of one length
    (and, with `size`, frames of size x size).
    Warnings and failing videos go to `report` (runloop) as they come.
    Returns ({status: count}, [failed videos]); ValueError when a sharded run has no usable scan."""
    try:
        return _convert_tree(target, recipe=Recipe(audiomethod, frequency_param, fmrgb), frames=frames, size=size,
                             jobs=jobs, overwrite=overwrite, shard=shard, report=report)
    finally:
        vars(_per_thread).pop("scratch", None)  # a single-process run decoded here: give the memory back


def present_state(videos, recipe, overwrite, report, size=None):
    """{video: existing_state} of the videos still there (overwrite: None for each); one removed
    since it was listed is named to `report` and left out."""
    state = {}
    for v in videos:
        try:
            state[v] = None if overwrite else existing_state(v, recipe, size=size)
        except FileNotFoundError:
            report.warn(v, files.VANISHED)
    return state


def _convert_tree(target, *, recipe, frames, size, jobs, overwrite, shard, report):
    videos = files.find_videos(target, on_skip=report.warn)
    # records whose video is gone count for the length with the frames they hold; never rewritten
    orphans = orphan_records(target, videos, recipe, report)
    if shard is not None and frames is None:
        # every shard must agree on the length, so the scan must still describe the whole tree
        frames = max([scan.frames_from_scan(target, videos), *orphans.values()]) or None
    videos = cli.shard_of(videos, shard)
    orphans = {pt: orphans[pt] for pt in cli.shard_of(orphans, shard)}
    warn_twice_converted(videos, report)
    twice = same_clip_converted(videos)
    for copy, pt in twice.items():
        report.fail(copy, f"the same clip as {pt.name} (converted from {pt.name[:-len(SUFFIX)]} before it was "
                          "resized): delete one of the two, or it is in the data twice")
    videos = [v for v in videos if v not in twice]
    counts, failed = _convert_videos(target, videos, orphans, recipe=recipe, frames=frames, size=size, jobs=jobs,
                                     overwrite=overwrite, report=report)
    counts["failed"] = counts.get("failed", 0) + len(twice)
    return counts, failed + sorted(twice)


def same_clip_converted(videos):
    """{resized copy: the record of its clip} for copies whose clip was converted before it was resized
    and whose original is gone (KEEP_VIDEOS=1, then a plain run): converting them too would put the
    clip in the data twice, without a word (an original still there is warn_twice_converted's)."""
    copies = (v for v in videos if files.is_resized(v) and not any(o.exists() for o in files.originals_of(v)))
    return {v: pt for v in copies if (pt := converted_before(v)) is not None}


def _record_bytes(video):
    """Bytes of the record a conversion of `video` would replace: 0 when there is none, or when its name is
    one the file system refuses (too long: the conversion then says so in its line)."""
    try:
        return record_path(video).stat().st_size
    except OSError:
        return 0


def _convert_videos(target, videos, orphans, *, recipe, frames, size, jobs, overwrite, report):
    state = present_state(videos, recipe, overwrite, report, size)
    videos = list(state)
    state = {v: s for v, s in state.items() if s is not None}
    todo = [v for v in videos if v not in state]
    if todo:  # refused before a video is decoded when the records would not fit
        need = diskspace.estimate_records(todo, frames=frames, size=size, channels=recipe.fmrgb,
                                          longest=max([0, *orphans.values(), *(s[0] for s in state.values())]))
        replaced = sum(_record_bytes(v) for v in todo)
        diskspace.check_disk(need, target, frames=frames, size=size, freed=replaced)
    # with several workers the cores are taken by whole videos: more decoder threads only contend
    decoder_threads = 1 if jobs > 1 and len(todo) > 1 else None
    counts, source_frames, failed = runloop.run_jobs(
        functools.partial(convert_one, recipe=recipe, frames=frames, size=size, decoder_threads=decoder_threads), todo,
        report=report, jobs=jobs, desc="convert", processes=True)
    converted_here = set(source_frames)
    stored = {v: frames or n for v, n in source_frames.items()}  # a new file holds its own frames, or --frames
    stored.update({v: s[1] for v, s in state.items()})
    source_frames.update({v: s[0] for v, s in state.items()})
    counts["skipped"] = counts.get("skipped", 0) + len(orphans)  # left as they are, whatever the length
    if not source_frames:
        warn_orphan_lengths(orphans, frames, report)
        return counts, failed
    n_frames = frames or max([*source_frames.values(), *orphans.values()])
    to_align = sorted(v for v, n in stored.items() if n != n_frames)
    _, align_status, align_failed = runloop.run_jobs(
        functools.partial(align_one, recipe=recipe, n_frames=n_frames, size=size,
                          decoder_threads=1 if jobs > 1 and len(to_align) > 1 else None),
        to_align, report=report, jobs=jobs, desc="align", processes=True)
    # a video converted in this run counts once, as converted, whether or not it then needed stretching;
    # a file from an earlier run counts as aligned, or skipped when it already had the length
    for video in (v for v in state if v not in align_failed):
        status = align_status.get(video, "skipped")
        counts[status] = counts.get(status, 0) + 1
    warn_orphan_lengths(orphans, n_frames, report)
    counts["failed"] = counts.get("failed", 0) + len(align_failed)
    # a video converted here whose alignment then failed is not done: it counts as failed only
    unfinished = sum(v in converted_here for v in align_failed)
    if unfinished:
        counts["converted"] -= unfinished
    return counts, failed + align_failed


def warn_orphan_lengths(orphans, n_frames, report):
    """Name to `report` each record whose video is gone and whose length is not the run's: it keeps its frames."""
    for pt in sorted(pt for pt, n in orphans.items() if n_frames and n != n_frames):
        report.warn(pt, f"its video is gone: kept at its {orphans[pt]} frames, not brought to this run's {n_frames} "
                     "(it is the only copy of its clip)")
