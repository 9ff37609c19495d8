"""One window of a long video made into the model's input, exactly as a record of that span would be:
the checkpoint's channels and sound settings, the record's frame count, then the clip recipe (fmrgb.training.clip).

    x = window_input(frames, audio, fps=30.0, recipe=ckpt.recipe)   # float32, one clip in the model's layout

Only the frames the model sees are made: of the record's pt_frames frames (timeline.stretch_plan of the
window's), the clip recipe's segment centres; each is blended from its two source frames as
convert_video(..., frames=pt_frames) blends it, and its sound is the sound of its nearest source frame's
span (sound.fuse with `at`), the sound track taken as if the span were cut out as its own file. Where a time
step stands for several record frames, its sound describes them all as training's does (clip.span_planes
over one pixel of every record frame's sound; clip.span_mels' rule, sound.span_mel, for a long mel segment).
"""
import numpy as np
import torch

from fmrgb.training.clip import (ClipRecipe, channel_indices, keep_channels, normalise, resize, segment_spans,
                                 span_planes)
from fmrgb.prepare.sound import MEL, SOUND_CHANNELS, analysis_rate, frame_starts, fuse, mel_window, span_mel
from fmrgb.prepare.timeline import blend, stretch_plan

DEFAULT_AUDIOMETHOD, DEFAULT_FREQUENCY_PARAM = "simple", 100  # convert_video's defaults (a checkpoint without them)


def sound_settings(record):
    """(audiomethod, frequency_param) of a checkpoint.RecordSettings, convert_video's defaults where unset."""
    method = DEFAULT_AUDIOMETHOD if record.audiomethod is None else record.audiomethod
    param = DEFAULT_FREQUENCY_PARAM if record.frequency_param is None else int(record.frequency_param)
    return method, param


def sample_rate(fps, record):
    """The analysis rate of the sound (sound.analysis_rate: one rate in Hz, whatever `fps`)."""
    return analysis_rate(sound_settings(record)[1])


def span_samples(first, n, *, fps, rate, start=0.0):
    """(first sample, end sample) of the sound of frames [first, first + n) of a video whose frame 0 shows at
    `start` s: from the first frame's start to the end of the last frame's own time span (sound.frame_bounds)."""
    lo = int(frame_starts(1, fps, rate, start + first / fps)[0])
    end = int(frame_starts(1, fps, rate, start + (first + n) / fps)[0])
    return lo, end


def _wanted(n_window, recipe):
    """(record frames the model sees (unique), where each of its frames is among them, the record's frame count)."""
    n_out = int(recipe.record.pt_frames or n_window)
    clip = ClipRecipe(recipe.frames, recipe.size)
    j = clip.indices(n_out)[clip.centres()]
    unique, inverse = torch.unique(j, return_inverse=True)
    return unique.numpy(), inverse, n_out


def window_input(frames, audio, *, fps, recipe):
    """uint8 window (n, H, W, P) (P = 3 RGB or 1 grey) and its sound (mono float32 at sample_rate(fps), sample 0
    at the window's first frame; None: none) -> the float32 input of the model (recipe: a checkpoint.Recipe)."""
    n, height, width, n_pic = frames.shape
    unique, inverse, n_out = _wanted(n, recipe)
    plan = None if n_out == n else stretch_plan(n, n_out)  # else as a --frames conversion
    spans = None if plan is None else plan.spans()

    def record_sound(idx, shape):
        """uint8 (len(idx), *shape, 2): the sound channels of the record's frames idx, as the record holds them."""
        out = np.empty((len(idx), *shape, SOUND_CHANNELS), np.uint8)
        method, param = sound_settings(recipe.record)
        at, own = (idx, None) if plan is None else (plan.nearest[idx], tuple(s[idx] for s in spans))
        return fuse(out, audio, fps=fps, audiomethod=method, frequency_param=param, source_frames=n, at=at,
                    spans=own)

    picture = frames[unique] if plan is None else blend(frames[plan.lo[unique]], frames[plan.hi[unique]],
                                                        plan.w[unique])  # (U, H, W, P)
    sound = record_sound(unique, (height, width))
    # resized apart, each from contiguous memory: the same numbers (each channel is resized on its own), in
    # half the time of one resize of the interleaved channels
    x = torch.cat([resize(torch.from_numpy(np.ascontiguousarray(picture)).permute(0, 3, 1, 2), recipe.size),
                   resize(torch.from_numpy(sound).permute(0, 3, 1, 2).contiguous(), recipe.size)], 1)[inverse]
    if recipe.frames < n_out:  # a time step stands for several record frames: its sound for them all
        segment_sound(x, record_sound, n_out=n_out, shape=(height, width), window=mel_window(fps, n_out, n),
                      recipe=recipe)
    use = recipe.use_channels
    x = keep_channels(x, None if use is None else channel_indices(recipe.record.channels, use))
    return normalise(x, mean=list(recipe.mean), std=list(recipe.std), layout=recipe.layout)


def segment_sound(x, record_sound, *, n_out, shape, window, recipe):
    """The time steps x (frames, C, S, S) uint8, one per segment of the record's n_out frames, given the sound
    training's clip recipe gives them (in place): the amplitude and frequency of the whole segment (span_planes
    over one pixel of every record frame's sound) and, for a segment longer than `window` frames (one mel
    image), the mel image of its whole span (span_mel over the record's images of shape `shape`)."""
    names = list(recipe.record.channels)
    pixels = np.zeros((n_out, 1, 1, len(names)), np.uint8)
    pixels[..., -SOUND_CHANNELS:] = record_sound(np.arange(n_out), (1, 1))
    for channel, values in span_planes(torch.from_numpy(pixels), recipe.frames, names).items():
        x[:, channel] = torch.from_numpy(values)[:, None, None]
    if MEL in names:
        lo, hi = segment_spans(n_out, recipe.frames)
        long, images = span_mel(lambda idx: record_sound(idx, shape)[..., -1], lo, hi, window, shape)
        if len(long):
            x[torch.from_numpy(long), names.index(MEL)] = resize(torch.from_numpy(images)[:, None], recipe.size)[:, 0]
