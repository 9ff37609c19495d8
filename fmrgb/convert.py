"""Conversion: one video -> one FMRGB record, and a whole tree of videos -> records of one length.

    record = convert_video("clip.mp4", audiomethod="simple", frequency_param=100, fmrgb=5)
    counts, failed = convert_tree("data", recipe=Recipe(audiomethod="mel"), jobs=2)

A tree's records all get the frame count of its longest video (its decoded count), shorter ones
stretched in time, unless `frames` sets the count. Finished records are skipped, so an
interrupted run resumes.
"""
import dataclasses
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fmrgb import cli, files, scan
from fmrgb.decode import ScratchBuffer, decode_audio, decode_video
from fmrgb.record import (FORMAT_VERSION, Recipe, load_record, made_from_problem, recipe_problem, record_path,
                          save_record)
from fmrgb.sound import analysis_rate, channel_names, fuse, to_uint8

STRETCH_CHUNK = 16  # frames blended at once: bounds the float copy, whatever the video's length


def stretch_time(frames, n_out):
    """Linear resampling along time to `n_out` frames, as scipy.ndimage.zoom(order=1) maps
    coordinates (first and last frames kept), in bounded-size chunks so no float copy of the
    whole video is made."""
    n_in = frames.shape[0]
    if n_in == n_out:
        return frames
    pos = np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (pos - lo).astype(np.float32)
    out = np.empty((n_out, *frames.shape[1:]), np.uint8)
    for start in range(0, n_out, STRETCH_CHUNK):  # chunks of frames, not single frames: memory, not speed
        sl = slice(start, start + STRETCH_CHUNK)
        wk = w[sl].reshape(-1, *([1] * (frames.ndim - 1)))
        mixed = frames[lo[sl]].astype(np.float32) * (1 - wk) + frames[hi[sl]].astype(np.float32) * wk
        out[sl] = to_uint8(mixed)
    return out




def convert_video(path, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, scratch=None,
                  decoder_threads=None):
    """Decode a video and build its FMRGB record (the dict create_fmrgbdata.py saves).

    `frames` stretches or shrinks the result in time to that many frames. With a `scratch`
    (decode.ScratchBuffer) the record's frames live in its memory until its next use.
    `decoder_threads` goes to decode.decode_video (None: chosen by the clip's size).
    """
    import torch

    Recipe(audiomethod=audiomethod, frequency_param=frequency_param, fmrgb=fmrgb)  # checks the settings
    with ThreadPoolExecutor(1) as pool:
        # ffmpeg decodes the sound on the other core while OpenCV decodes the frames
        sound = []
        video, fps = decode_video(path, gray=fmrgb == 3, extra_channels=2, scratch=scratch, threads=decoder_threads,
                                  on_fps=lambda r: sound.append(pool.submit(decode_audio, path,
                                                                            analysis_rate(r, frequency_param))))
        audio = sound[0].result()
    sr = analysis_rate(fps, frequency_param)
    fused = fuse(video, audio, fps=fps, audiomethod=audiomethod, frequency_param=frequency_param)
    source_frames = fused.shape[0]
    if frames is not None:
        fused = stretch_time(fused, int(frames))
    return {
        "frames": torch.from_numpy(fused),
        "channels": channel_names(fmrgb, audiomethod),
        "fps": float(fps),
        "audiomethod": audiomethod,
        "frequency_param": int(frequency_param),
        "sample_rate": int(sr),
        "source": Path(path).name,
        "source_size": Path(path).stat().st_size,  # tells a later run whether the video has changed
        "source_frames": int(source_frames),
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
    record = convert_video(video, frames=frames, scratch=_per_thread.scratch, decoder_threads=decoder_threads,
                           **dataclasses.asdict(recipe))
    warnings = []
    if not record["has_audio"]:
        warnings.append("no sound track; sound channels are 0")
    elif record["silent"]:
        warnings.append("sound track is digital silence; sound channels are 0")
    save_record(record, record_path(video))
    return cli.Outcome("converted", record["source_frames"], tuple(warnings))


def align_one(video, *, recipe, n_frames, decoder_threads=None):
    """Bring a record to n_frames: stretch it if it still holds the video's own frames, else convert
    again. Returns its status twice, so run_jobs hands back each file's status."""
    import torch

    source_frames, stored = existing_state(video, recipe, check_source=False)
    if stored == n_frames:
        return "skipped", "skipped"
    if stored != source_frames:  # already stretched once; going back to the video avoids resampling twice
        convert_one(video, recipe=recipe, frames=n_frames, decoder_threads=decoder_threads)
        return "aligned", "aligned"
    clip, meta = load_record(record_path(video))
    save_record({"frames": torch.from_numpy(stretch_time(clip.numpy(), n_frames)), **meta}, record_path(video))
    return "aligned", "aligned"


def warn_twice_converted(videos):
    """An original beside its resized_ copy would be converted twice: the same clip could then land
    in both the training and the test split."""
    present = set(videos)
    pairs = [v for v, out in files.resized_names([v for v in videos if not files.is_resized(v)]).items()
             if out in present]
    if pairs:
        cli.warn(pairs[0], f"{len(pairs)} videos have a resized_ copy beside them and both are converted; "
                           "run delete_not_resized.py first, or the same clip is in the data twice")


def convert_tree(target, *, audiomethod="simple", frequency_param=100, fmrgb=5, frames=None, jobs=1,
                 overwrite=False, shard=None):
    """Convert every video under `target` (or one shard 'i of n' of them) into records of one length.
    Returns ({status: count}, [failed videos]); ValueError when a sharded run has no usable scan."""
    try:
        return _convert_tree(target, recipe=Recipe(audiomethod, frequency_param, fmrgb), frames=frames,
                             jobs=jobs, overwrite=overwrite, shard=shard)
    finally:
        vars(_per_thread).pop("scratch", None)  # a single-process run decoded here: give the memory back


def _convert_tree(target, *, recipe, frames, jobs, overwrite, shard):
    videos = files.find_videos(target)
    if shard is not None and frames is None:
        # every shard must agree on the length, so the scan must still describe the whole tree
        frames = scan.frames_from_scan(target, videos) or None
    videos = cli.shard_of(videos, shard)
    warn_twice_converted(videos)
    state = {} if overwrite else {v: existing_state(v, recipe) for v in videos}
    todo = [v for v in videos if state.get(v) is None]
    # with several workers the cores are taken by whole videos: more decoder threads only contend
    decoder_threads = 1 if jobs > 1 and len(todo) > 1 else None
    counts, source_frames, failed = cli.run_jobs(
        functools.partial(convert_one, recipe=recipe, frames=frames, decoder_threads=decoder_threads), todo,
        jobs=jobs, desc="convert", processes=True)
    converted_here = set(source_frames)
    stored = {v: frames or n for v, n in source_frames.items()}  # a new file holds its own frames, or --frames
    stored.update({v: s[1] for v, s in state.items() if s is not None})
    source_frames.update({v: s[0] for v, s in state.items() if s is not None})
    if not source_frames:
        return counts, failed
    n_frames = frames or max(source_frames.values())
    to_align = sorted(v for v, n in stored.items() if n != n_frames)
    _, align_status, align_failed = cli.run_jobs(
        functools.partial(align_one, recipe=recipe, n_frames=n_frames,
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
