"""Conversion: one video -> one FMRGB record, and a whole tree of videos -> records of one length.

    record = convert_video("clip.mp4", audiomethod="simple", frequency_param=100, fmrgb=5)
    counts, failed = convert_tree("data", report=runloop.Console(), audiomethod="mel", jobs=2)

A tree's records all get the frame count of its longest video (its decoded count; a record whose
video is gone counts with its own), shorter ones stretched in time, unless `frames` sets the
count. Finished records are skipped, so an interrupted run resumes.
"""
import dataclasses
import functools
import threading
from pathlib import Path

import numpy as np

from fmrgb import cli, files, runloop, scan
from fmrgb.decode import decode_media
from fmrgb.memory import ScratchBuffer
from fmrgb.resized import original_identity
from fmrgb.record import (FORMAT_VERSION, SUFFIX, Recipe, UnreadableRecord, load_record, made_from_problem,
                          recipe_problem, record_path, save_record, source_identity)
from fmrgb.sound import SOUND_CHANNELS, analysis_rate, channel_names, fuse
from fmrgb.timeline import stretch_time


def convert_video(path, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, scratch=None,
                  decoder_threads=None):
    """Decode a video and build its FMRGB record (the dict create_fmrgbdata.py saves).

    `frames` gives the record that many frames, made while the video is decoded (so memory does
    not grow with its length): bit for bit stretch_time(full record, frames, sound_channels=2).
    With a `scratch` (memory.ScratchBuffer) the record's frames live in its memory until its next
    use. `decoder_threads` goes to decode.decode_media (None: chosen by the clip's size).
    """
    import torch

    Recipe(audiomethod=audiomethod, frequency_param=frequency_param, fmrgb=fmrgb)  # checks the settings
    # ffmpeg decodes the sound on the other core while OpenCV decodes the frames
    media = decode_media(path, sample_rate_for=functools.partial(analysis_rate, frequency_param=frequency_param),
                         gray=fmrgb == 3, extra_channels=SOUND_CHANNELS, keep=None if frames is None else int(frames),
                         scratch=scratch, threads=decoder_threads)
    facts, audio = media.facts, media.audio
    fused = fuse(media.frames, audio, fps=facts.fps, audiomethod=audiomethod, frequency_param=frequency_param,
                 start=facts.start, source_frames=facts.frames, at=None if media.plan is None else media.plan.nearest)
    return {
        "frames": torch.from_numpy(fused),
        "channels": channel_names(fmrgb, audiomethod),
        "fps": float(facts.fps),
        "audiomethod": audiomethod,
        "frequency_param": int(frequency_param),
        "sample_rate": int(facts.sample_rate),
        "source": Path(path).name,
        "source_size": Path(path).stat().st_size,  # tells a later run whether the video has changed
        "source_frames": int(facts.frames),
        "damaged_frames": int(facts.damaged),  # frames that did not decode, between others that did
        "has_audio": audio is not None and len(audio) > 0,
        "silent": audio is None or not np.any(audio),
        "format_version": FORMAT_VERSION,
    }


# ----------------------------------------------------------------------------- a tree of videos

def existing_state(video, recipe, *, check_source=True):
    """(source_frames, stored frame count) of a finished record of `video` made with `recipe`
    (from this version of the video, with check_source), or None when it must be made again."""
    pt = record_path(video)
    if not pt.is_file():
        return None
    try:
        frames, meta = load_record(pt)
    except RuntimeError:
        return None  # unreadable: convert again
    if recipe_problem(meta, recipe) or (check_source and made_from_problem(meta, video)):
        return None
    return int(meta["source_frames"]), int(frames.shape[0])


_per_thread = threading.local()


def convert_one(video, *, recipe, frames=None, decoder_threads=None):
    """Convert one video and write its record; returns Outcome('converted', source_frames, warnings)."""
    # each worker decodes video after video into the same memory; the record is saved and dropped
    # before the next one is made
    if not hasattr(_per_thread, "scratch"):
        _per_thread.scratch = ScratchBuffer()
    # read before decoding: a video replaced meanwhile then fails the next run's check, never passes it
    identity = {**source_identity(video), **original_identity(video)}
    record = convert_video(video, frames=frames, scratch=_per_thread.scratch, decoder_threads=decoder_threads,
                           **dataclasses.asdict(recipe))
    warnings = []
    if not record["has_audio"]:
        warnings.append("no sound track; sound channels are 0")
    elif record["silent"]:
        warnings.append("sound track is digital silence; sound channels are 0")
    if record["damaged_frames"]:
        warnings.append(f"{record['damaged_frames']} damaged frames did not decode and were skipped "
                        f"({record['source_frames']} did)")
    save_record({**record, **identity}, record_path(video))
    return runloop.Outcome("converted", record["source_frames"], tuple(warnings))


def align_one(video, *, recipe, n_frames, decoder_threads=None):
    """Bring a record to n_frames: stretch it if it still holds the video's own frames, else convert
    again. Returns its status twice, so run_jobs hands back each file's status."""
    state = existing_state(video, recipe, check_source=False)
    if state is None:  # written a moment ago, yet it does not read back (a disk or name problem)
        raise RuntimeError(f"its .pt does not read back: {record_path(video).name}")
    source_frames, stored = state
    if stored == n_frames:
        return "skipped", "skipped"
    if stored != source_frames:  # already stretched once; going back to the video avoids resampling twice
        convert_one(video, recipe=recipe, frames=n_frames, decoder_threads=decoder_threads)
        return "aligned", "aligned"
    return align_record(record_path(video), n_frames=n_frames)


def align_record(pt, *, n_frames):
    """Stretch the frames a record holds to n_frames (for a record whose video is gone, they are all
    there is). Returns its status twice, like align_one."""
    import torch

    clip, meta = load_record(pt)
    if clip.shape[0] == n_frames:
        return "skipped", "skipped"
    stretched = stretch_time(clip.numpy(), n_frames, sound_channels=SOUND_CHANNELS)
    save_record({"frames": torch.from_numpy(stretched), **meta}, pt)
    return "aligned", "aligned"


def orphan_records(target, videos, recipe, report):
    """{record: (source_frames, stored frame count)} of the records under `target` whose video is
    gone (deleted once converted: they are the data now) and that were made with `recipe`, so that
    a run brings them to its length too. One made with other settings cannot be made again: a
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
            found[pt] = int(meta.get("source_frames", frames.shape[0])), int(frames.shape[0])
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


def convert_tree(target, *, report, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, jobs=1,
                 overwrite=False, shard=None):
    """Convert every video under `target` (or one shard 'i of n' of them) into records of one length.
    Warnings and failing videos go to `report` (runloop) as they come.
    Returns ({status: count}, [failed videos]); ValueError when a sharded run has no usable scan."""
    try:
        return _convert_tree(target, recipe=Recipe(audiomethod, frequency_param, fmrgb), frames=frames,
                             jobs=jobs, overwrite=overwrite, shard=shard, report=report)
    finally:
        vars(_per_thread).pop("scratch", None)  # a single-process run decoded here: give the memory back


def _convert_tree(target, *, recipe, frames, jobs, overwrite, shard, report):
    videos = files.find_videos(target, on_skip=report.warn)
    # records whose video is gone count for the length (never shrunk below their own frames) and
    # are brought to it
    orphans = orphan_records(target, videos, recipe, report)
    if shard is not None and frames is None:
        # every shard must agree on the length, so the scan must still describe the whole tree
        frames = max([scan.frames_from_scan(target, videos), *(s for s, _ in orphans.values())]) or None
    videos = cli.shard_of(videos, shard)
    orphans = {pt: orphans[pt] for pt in cli.shard_of(orphans, shard)}
    warn_twice_converted(videos, report)
    state = {} if overwrite else {v: existing_state(v, recipe) for v in videos}
    todo = [v for v in videos if state.get(v) is None]
    # with several workers the cores are taken by whole videos: more decoder threads only contend
    decoder_threads = 1 if jobs > 1 and len(todo) > 1 else None
    counts, source_frames, failed = runloop.run_jobs(
        functools.partial(convert_one, recipe=recipe, frames=frames, decoder_threads=decoder_threads), todo,
        report=report, jobs=jobs, desc="convert", processes=True)
    converted_here = set(source_frames)
    stored = {v: frames or n for v, n in source_frames.items()}  # a new file holds its own frames, or --frames
    stored.update({v: s[1] for v, s in state.items() if s is not None})
    source_frames.update({v: s[0] for v, s in state.items() if s is not None})
    if not source_frames and not orphans:
        return counts, failed
    n_frames = frames or max([*source_frames.values(), *(s for s, _ in orphans.values())])
    to_align = sorted(v for v, n in stored.items() if n != n_frames)
    _, align_status, align_failed = runloop.run_jobs(
        functools.partial(align_one, recipe=recipe, n_frames=n_frames,
                          decoder_threads=1 if jobs > 1 and len(to_align) > 1 else None),
        to_align, report=report, jobs=jobs, desc="align", processes=True)
    # a video converted in this run counts once, as converted, whether or not it then needed stretching;
    # a file from an earlier run counts as aligned, or skipped when it already had the length
    for video in (v for v, s in state.items() if s is not None and v not in align_failed):
        status = align_status.get(video, "skipped")
        counts[status] = counts.get(status, 0) + 1
    # a record whose video is gone is all there is of that clip: it may grow, never shrink
    for pt in sorted(pt for pt, (_, n) in orphans.items() if n > n_frames):
        report.warn(pt, f"its video is gone: kept at its {orphans[pt][1]} frames (shortening it to {n_frames} "
                        "would lose frames for good)")
    orphans_to_align = sorted(pt for pt, (_, n) in orphans.items() if n < n_frames)
    _, orphan_status, orphan_failed = runloop.run_jobs(functools.partial(align_record, n_frames=n_frames),
                                                       orphans_to_align, report=report, jobs=jobs, desc="align",
                                                       processes=True)
    for pt in (pt for pt in orphans if pt not in orphan_failed):
        status = orphan_status.get(pt, "skipped")
        counts[status] = counts.get(status, 0) + 1
    counts["failed"] = counts.get("failed", 0) + len(align_failed) + len(orphan_failed)
    # a video converted here whose alignment then failed is not done: it counts as failed only
    unfinished = sum(v in converted_here for v in align_failed)
    if unfinished:
        counts["converted"] -= unfinished
    return counts, failed + align_failed + orphan_failed
