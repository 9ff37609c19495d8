"""A model slid along a video: window after window classified as the stream goes by (fmrgb.streaming.stream), each
made as a record of its span would be (fmrgb.streaming.windowclip), in the memory of a few windows.

    for row in classify_stream(model, recipe, stream, window=2.0, stride=1.0):
        row.start, row.end, row.probs        # seconds from the first frame, class probabilities (K,) float64

A window waits for its sound (the two come from ffmpeg side by side) and goes as soon as it is complete, or
once the picture is SOUND_LAG_S ahead of the sound (a track shorter than the video); the sound before the
oldest window still to come is dropped.
"""
import dataclasses

import numpy as np
import torch

from fmrgb.streaming.windowclip import span_samples, window_input
from fmrgb.streaming.windows import WindowBuffer, WindowSpec


SOUND_LAG_S = 5.0  # the picture this far ahead of the sound: the sound has ended (files interleave within ~1 s)


@dataclasses.dataclass(frozen=True)
class WindowResult:
    start: float
    end: float
    probs: np.ndarray   # (K,) float64


class _Sound:
    """The sound track from sample `first` on, as it arrives."""

    def __init__(self):
        self.samples, self.first, self.ended = np.zeros(0, np.float32), 0, False

    def add(self, piece):
        self.samples = np.concatenate([self.samples, piece])

    def covers(self, hi):
        return self.ended or self.first + len(self.samples) >= hi

    def span(self, lo, hi):
        """Samples [lo, hi), zeros where the track has none (before its start, past its end)."""
        out = np.zeros(hi - lo, np.float32)
        a, b = max(lo, self.first), min(hi, self.first + len(self.samples))
        if b > a:
            out[a - lo:b - lo] = self.samples[a - self.first:b - self.first]
        return out

    def drop_before(self, lo):
        if lo > self.first:
            self.samples = self.samples[lo - self.first:].copy()
            self.first = lo


@torch.no_grad()
def classify_stream(model, recipe, stream, *, window, stride, device="cpu", buffer=None):
    """Yield a WindowResult for every window of `stream` (a fmrgb.streaming.stream.MediaStream), in order, as soon as it is
    classified. `buffer`: a WindowBuffer to use (its most_held tells what was held)."""
    facts = stream.facts
    spec = WindowSpec.of(window=window, stride=stride, fps=facts.fps)
    buffer = buffer or WindowBuffer(spec)
    sound = _Sound()
    sound.ended = not facts.has_audio
    pending = []

    def span(start, n):
        return span_samples(start, n, fps=facts.fps, rate=facts.sample_rate, start=facts.start)

    def waits(start, n):
        """Whether a window still waits for its sound: not while the picture is SOUND_LAG_S ahead of it (a sound
        track that ended before the picture: ffmpeg closes its pipe only at the very end)."""
        lead = buffer.received / facts.fps - (sound.first + len(sound.samples)) / facts.sample_rate
        return not sound.covers(span(start, n)[1]) and lead <= SOUND_LAG_S

    def ready():
        while pending and not waits(pending[0][0], len(pending[0][1])):
            start, frames = pending.pop(0)
            lo, hi = span(start, len(frames))
            audio = sound.span(lo, hi) if facts.has_audio else None
            x = window_input(frames, audio, fps=facts.fps, recipe=recipe)
            probs = torch.softmax(model(x.unsqueeze(0).to(device)).double(), dim=1)[0].cpu().numpy()
            yield WindowResult(*spec.seconds(start, len(frames)), probs)
        oldest = pending[0][0] if pending else max(0, min(buffer.next_start, buffer.received - spec.length))
        sound.drop_before(span(oldest, 1)[0])

    for frames, audio in stream.pieces():
        if audio is not None:
            sound.add(audio)
        sound.ended = stream.sound_done
        if frames is not None:
            pending += buffer.push(frames)
        yield from ready()
    sound.ended = True
    pending += buffer.finish()
    yield from ready()
