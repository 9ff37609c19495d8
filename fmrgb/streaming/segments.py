"""Training records from long annotated videos: one record per annotated segment, without cutting the videos.

    counts, failed = convert_segments("data", read_annotations("segments.csv"), recipe=Recipe(), report=report)

Each segment of fmrgb.streaming.annotations becomes TARGET/<label>/<video name>@<start>-<end>s.pt: the frames of its span
(a frame is in when its centre is), read from the video as a stream (fmrgb.streaming.stream, once per video whatever its
length), with the sound of the span as if it were cut out as its own file, then brought to one frame count
(--frames, or the longest segment's) as convert_tree brings whole videos (timeline.stretch_time). The record
carries its video's identity (record.source_identity) and the span (segment_start, segment_end in seconds,
segment_label), so it is tied to its source like any record; an up-to-date one is skipped.
"""
from pathlib import Path

import numpy as np

from fmrgb import files, runloop
from fmrgb.prepare.ffmpeg import probe
from fmrgb.prepare.decoders import usable_fps
from fmrgb.prepare.record import (FORMAT_VERSION, SUFFIX, UnreadableRecord, load_record, made_from_problem, recipe_problem,
                          save_record, source_identity)
from fmrgb.prepare.sound import SOUND_CHANNELS, analysis_rate, channel_names, fuse, mel_window, sound_planes
from fmrgb.streaming.stream import open_stream
from fmrgb.prepare.timeline import stretch_time
from fmrgb.streaming.windowclip import span_samples


def segment_record_path(target, video, segment):
    """TARGET/<label>/<video name>@<start>-<end>s.pt (seconds, or f<first>-<last> for frame numbers)."""
    span = f"f{segment.start:g}-{segment.end:g}" if segment.in_frames else f"{segment.start:g}-{segment.end:g}s"
    return Path(target) / segment.label / f"{Path(video).name}@{span}{SUFFIX}"


def _up_to_date(pt, video, recipe, n_frames):
    try:
        frames, meta = load_record(pt)
    except (UnreadableRecord, RuntimeError, OSError):
        return False
    return not recipe_problem(meta, recipe) and not made_from_problem(meta, video) and frames.shape[0] == n_frames


def _collect(video, ranges, recipe):
    """(each range's frames uint8 (n, H, W, P), the sound from sample 0 to the last range's end or None, facts):
    one pass over the video, stopped once the last range and its sound are in."""
    param = recipe.frequency_param
    stream = open_stream(video, gray=recipe.fmrgb == 3, sample_rate_for=lambda fps: analysis_rate(param))
    facts = stream.facts
    stop = max(b for _, b in ranges)
    need = span_samples(0, stop, fps=facts.fps, rate=facts.sample_rate, start=facts.start)[1]
    parts, sound, seen, heard = [[] for _ in ranges], [], 0, 0
    for frames, audio in stream.pieces():
        if audio is not None and heard < need:
            sound.append(audio)
            heard += len(audio)
        if frames is not None:
            for part, (a, b) in zip(parts, ranges):
                lo, hi = max(a, seen), min(b, seen + len(frames))
                if hi > lo:
                    part.append(frames[lo - seen:hi - seen])
            seen += len(frames)
        if seen >= stop and (heard >= need or not facts.has_audio):
            break
    clips = [np.concatenate(p) if p else None for p in parts]
    return clips, (np.concatenate(sound) if sound else None), facts


def segment_record(clip, sound, facts, *, first, recipe, n_frames):
    """The record dict of a span of frames from `first` on (no identity yet)."""
    n, height, width, n_pic = clip.shape
    made = np.empty((n, height, width, n_pic + SOUND_CHANNELS), np.uint8)
    made[..., :n_pic] = clip
    audio = None
    if sound is not None:
        lo, hi = span_samples(first, n, fps=facts.fps, rate=facts.sample_rate, start=facts.start)
        audio = np.zeros(hi - lo, np.float32)
        piece = sound[lo:hi]
        audio[:len(piece)] = piece
    fuse(made, audio, fps=facts.fps, audiomethod=recipe.audiomethod, frequency_param=recipe.frequency_param)
    import torch

    stretched = stretch_time(made, n_frames, sound_channels=SOUND_CHANNELS, planes=sound_planes(recipe.audiomethod),
                             mel_window=mel_window(facts.fps))
    return {"frames": torch.from_numpy(stretched),
            "channels": channel_names(recipe.fmrgb, recipe.audiomethod), "fps": float(facts.fps),
            "audiomethod": recipe.audiomethod, "frequency_param": int(recipe.frequency_param),
            "sample_rate": int(facts.sample_rate), "sound_scale": recipe.scale.to_meta(), "source_frames": int(n),
            "source_shape": [int(height), int(width)], "damaged_frames": 0,
            "has_audio": audio is not None, "silent": audio is None or not np.any(audio),
            "format_version": FORMAT_VERSION}


def convert_video_segments(video, *, segments, target, recipe, n_frames, overwrite=False):
    """Write the records of one video's segments; Outcome('converted' or 'skipped', records written)."""
    fps = usable_fps(probe(video).fps)
    todo = [s for s in segments if overwrite or not _up_to_date(segment_record_path(target, video, s), video,
                                                                   recipe, n_frames)]
    if not todo:
        return runloop.Outcome("skipped", 0)
    identity = source_identity(video)  # read before decoding: a video replaced meanwhile fails the next check
    ranges = [s.frame_range(fps) for s in todo]
    clips, sound, facts = _collect(video, ranges, recipe)
    warnings = []
    for seg, (a, _), clip in zip(todo, ranges, clips):
        if clip is None:
            warnings.append(f"segment {seg.start:g}-{seg.end:g} lies past the video's end: no record")
            continue
        record = segment_record(clip, sound, facts, first=a, recipe=recipe, n_frames=n_frames)
        span = {"segment_start": a / facts.fps, "segment_end": (a + len(clip)) / facts.fps, "segment_label": seg.label}
        pt = segment_record_path(target, video, seg)
        pt.parent.mkdir(parents=True, exist_ok=True)  # the label's folder
        save_record({**record, **identity, **span}, pt)
    return runloop.Outcome("converted", len(todo), tuple(warnings))


def convert_segments(target, annotations, *, recipe, report, frames=None, overwrite=False):
    """One record per segment of `annotations` whose video (by file name) is under `target`; ({"records": written,
    "videos": converted, "skipped": videos up to date}, [failed videos]). Without `frames` every record gets the
    longest segment's frame count."""
    videos = {v.name: v for v in files.find_videos(target, on_skip=report.warn)}
    todo = {}
    for seg in annotations.segments:
        if seg.video not in videos:
            report.warn(Path(target) / seg.video, "annotated, but no such video under --target: its segments are left out")
            continue
        todo.setdefault(videos[seg.video], []).append(seg)
    if frames is None:
        lengths = [b - a for v, segs in todo.items() for a, b in
                   (s.frame_range(usable_fps(probe(v).fps)) for s in segs)]
        frames = max(lengths, default=1)
    items = sorted(todo)
    counts, written, failed = runloop.run_jobs(
        lambda v: convert_video_segments(v, segments=todo[v], target=target, recipe=recipe, n_frames=frames,
                                         overwrite=overwrite), items, report=report, desc="segments")
    return {"records": sum(written.values()), "videos": counts.get("converted", 0),
            "skipped": counts.get("skipped", 0)}, failed
