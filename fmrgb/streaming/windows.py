"""Sliding windows over a video of any length, in plain values: which frames each window holds, the
frames held while a stream goes by (never the whole video), and events made of windows above a threshold.

    spec = WindowSpec.of(window=2.0, stride=1.0, fps=30.0)    # 60 frames a window, a new one every 30
    buf = WindowBuffer(spec)
    for start, frames in buf.push(chunk): ...                 # each full window, as soon as its frames are in
    for start, frames in buf.finish(): ...                    # the tail: the last `length` frames, if not yet seen
    tracker = EventTracker(classes, threshold=0.5)
    closed = tracker.add(start_s, end_s, probs)               # events that ended before this window

Window k holds frames [k * step, k * step + length); a video shorter than one window is one window of all
its frames, and a last window ending at the video's last frame covers a tail the stride left out. Times are
seconds from the first frame: a window of frames [a, b) spans a / fps .. b / fps.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """`length` frames a window, a new window every `step` frames, at `fps`."""
    length: int
    step: int
    fps: float

    @classmethod
    def of(cls, *, window, stride, fps):
        """From seconds: at least one frame each."""
        if window <= 0 or stride <= 0:
            raise ValueError(f"window and stride must be positive seconds, got {window} and {stride}")
        return cls(max(1, int(round(window * fps))), max(1, int(round(stride * fps))), float(fps))

    def seconds(self, start, n):
        """(start, end) in seconds of the window of n frames from frame `start`."""
        return start / self.fps, (start + n) / self.fps


def window_starts(n_frames, spec):
    """The first frame of every window over a video of n_frames (WindowBuffer's windows, for a known length)."""
    if n_frames <= spec.length:
        return [0] if n_frames else []
    starts = list(range(0, n_frames - spec.length + 1, spec.step))
    if starts[-1] + spec.length < n_frames:
        starts.append(n_frames - spec.length)  # the tail the stride left out
    return starts


class WindowBuffer:
    """Frames that arrive in chunks (uint8 (k, ...)) out as windows, holding only the chunks a window still
    needs: at most length + two chunks' frames at a time, whatever the video's length (`most_held`). A window
    is copied together from its chunks once; the chunks themselves are never copied."""

    def __init__(self, spec):
        self.spec = spec
        self.chunks = []         # [(index of its first frame, frames)], oldest first
        self.received = 0
        self.next_start = 0      # the first frame of the next window
        self.last_end = 0        # the end of the last window given out
        self.most_held = 0

    @property
    def held(self):
        return self.received - self.chunks[0][0] if self.chunks else 0

    def push(self, chunk):
        """[(first frame, frames (length, ...))] of the windows these frames complete."""
        if len(chunk) == 0:
            return []
        self.chunks.append((self.received, chunk))
        self.received += len(chunk)
        self.most_held = max(self.most_held, self.held)
        out = []
        while self.next_start + self.spec.length <= self.received:
            out.append(self._window(self.next_start, self.spec.length))
            self.next_start += self.spec.step
        # keep the last `length` frames too: the tail window may need them
        keep_from = min(self.next_start, max(0, self.received - self.spec.length))
        while self.chunks and self.chunks[0][0] + len(self.chunks[0][1]) <= keep_from:
            self.chunks.pop(0)
        return out

    def finish(self):
        """The last window, ending at the last frame, when no window has covered it yet."""
        if self.received == 0 or self.last_end >= self.received:
            return []
        start = max(0, self.received - self.spec.length)
        return [self._window(start, self.received - start)]

    def _window(self, start, n):
        self.last_end = start + n
        pieces = [frames[max(0, start - first):start + n - first] for first, frames in self.chunks
                  if first < start + n and first + len(frames) > start]
        return start, pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


# ----------------------------------------------------------------------------- events

@dataclasses.dataclass(frozen=True)
class Event:
    """Consecutive windows above the threshold for one class: from the first's start to the last's end."""
    label: str
    start: float
    end: float
    peak: float


class EventTracker:
    """Windows in order in, events out as soon as they end (a live stream), or all at the end (finish)."""

    def __init__(self, classes, threshold):
        self.classes, self.threshold = tuple(classes), float(threshold)
        self.open = {}  # class index -> [start, end, peak]

    def add(self, start, end, probs):
        """Take one window's class probabilities; the events it closes, in class order."""
        closed = []
        for k, p in enumerate(np.asarray(probs, np.float64).tolist()):
            if p > self.threshold:
                ev = self.open.setdefault(k, [start, end, p])
                ev[1], ev[2] = end, max(ev[2], p)
            elif k in self.open:
                closed.append(self._close(k))
        return closed

    def finish(self):
        return [self._close(k) for k in sorted(self.open)]

    def _close(self, k):
        start, end, peak = self.open.pop(k)
        return Event(self.classes[k], start, end, peak)


def find_events(starts, ends, probs, classes, threshold):
    """Every event of a whole timeline (EventTracker over its windows in order)."""
    tracker = EventTracker(classes, threshold)
    events = [ev for s, e, p in zip(starts, ends, probs) for ev in tracker.add(s, e, p)]
    return events + tracker.finish()
