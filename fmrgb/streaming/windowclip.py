"""One window of a long video made into the model's input, exactly as a record of that span would be:
the checkpoint's channels and sound settings, the record's frame count, then the clip recipe (fmrgb.training.clip).

    x = window_input(frames, audio, fps=30.0, recipe=ckpt.recipe)   # float32, one clip in the model's layout

Only the frames the model sees are made: of the record's pt_frames frames (timeline.stretch_plan of the
window's), the clip recipe's segment centres; each is blended from its two source frames as
convert_video(..., frames=pt_frames) blends it, and its sound is the sound of its nearest source frame's
span (sound.fuse with `at`), the sound track taken as if the span were cut out as its own file.
"""
import numpy as np
import torch

from fmrgb.training.clip import ClipRecipe, channel_indices, keep_channels, normalise, resize
from fmrgb.prepare.sound import SOUND_CHANNELS, analysis_rate, frame_starts, fuse
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
    spans = None
    if n_out == n:  # the record holds the window's own frames
        lo = hi = near = unique
        w = np.zeros(len(unique), np.float32)
    else:  # as a --frames conversion: each kept frame's sound describes its span
        plan = stretch_plan(n, n_out)
        lo, hi, w, near = plan.lo[unique], plan.hi[unique], plan.w[unique], plan.nearest[unique]
        spans = tuple(s[unique] for s in plan.spans())
    picture = frames[lo] if n_out == n else blend(frames[lo], frames[hi], w)          # (U, H, W, P)
    sound = np.empty((len(unique), height, width, SOUND_CHANNELS), np.uint8)
    method, param = sound_settings(recipe.record)
    fuse(sound, audio, fps=fps, audiomethod=method, frequency_param=param, source_frames=n, at=near,
         spans=spans)
    # resized apart, each from contiguous memory: the same numbers (each channel is resized on its own), in
    # half the time of one resize of the interleaved channels
    x = torch.cat([resize(torch.from_numpy(np.ascontiguousarray(picture)).permute(0, 3, 1, 2), recipe.size),
                   resize(torch.from_numpy(sound).permute(0, 3, 1, 2).contiguous(), recipe.size)], 1)[inverse]
    use = recipe.use_channels
    x = keep_channels(x, None if use is None else channel_indices(recipe.record.channels, use))
    return normalise(x, mean=list(recipe.mean), std=list(recipe.std), layout=recipe.layout)
