"""Where decoded frames go: every frame kept, only those a stretched clip is made of, or none
(counted only). A decoder calls, per sink, start(height, width) at the first frame, then for
frame n: wants(n), slot(n) (the array to write the picture into) when it does, and done(n).

    sink = KeepAll(new_frame_array, claimed=300, channels=5, scratch=False)
    sink = Selection(new_frame_array, timeline.stretch_plan(300, 30), channels=5, n_pic=3)
    sink = Shrinking(KeepAll(...), size=112, n_pic=3)   # either, with every frame stored at 112 x 112
"""
import os

import numpy as np

from fmrgb.prepare.memory import check_memory
from fmrgb.prepare.timeline import blend

SHRINK_CHUNK = 16  # full-size frames resized at once: bounds what is held, whatever the video's length


def new_frame_array(shape):
    """Every frame array decoding makes that is not a ScratchBuffer's (tests watch their sizes)."""
    return np.empty(shape, np.uint8)


def initial_frames_limit_bytes():
    """A header may under-count or over-count: the first array is at most half the machine's
    memory (beyond it, the array grows as frames come)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


class Count:
    """Frames counted, none kept."""

    def start(self, height, width):
        pass

    def wants(self, n):
        return False

    def done(self, n):
        pass


class KeepAll:
    """Every frame, in an array sized by the header's count that grows when the header under-counted."""

    def __init__(self, alloc, claimed, channels, *, scratch):
        self.alloc = alloc
        self.claimed = claimed
        self.channels = channels
        self.scratch = scratch

    def start(self, height, width):
        frame_bytes = height * width * self.channels
        capacity = max(1, min(self.claimed or 1, initial_frames_limit_bytes() // frame_bytes))
        self.out = self.alloc((capacity, height, width, self.channels))

    def wants(self, n):
        return True

    def slot(self, n):
        if n == len(self.out):  # the container under-counted: grow (rare)
            check_memory(len(self.out), self.out[0].nbytes)
            grown = new_frame_array((2 * len(self.out), *self.out.shape[1:]))
            grown[:n] = self.out
            self.out = grown
        return self.out[n]

    def done(self, n):
        pass

    def frames(self, n):
        # the first n frames, a contiguous view; copied out when the buffer is larger than they are
        # and is not a scratch buffer, so the unused rest is not kept alive with them
        if self.scratch or n == len(self.out):
            return self.out[:n]
        return self.out[:n].copy()


class Selection:
    """The plan's output frames, blended from the two source frames around each as the video goes
    by: only the output and two source frames are ever held."""

    def __init__(self, alloc, plan, channels, n_pic):
        self.alloc = alloc
        self.plan = plan
        self.channels = channels
        self.n_pic = n_pic
        self.needed = np.union1d(plan.lo, plan.hi)  # the source frames any output frame is made of
        self.k = 0  # the first entry of `needed` not yet passed

    def start(self, height, width):
        self.out = self.alloc((self.plan.n_out, height, width, self.channels))
        self.ring = new_frame_array((2, height, width, self.n_pic))

    def wants(self, n):
        while self.k < len(self.needed) and self.needed[self.k] < n:
            self.k += 1
        return self.k < len(self.needed) and self.needed[self.k] == n

    def slot(self, n):
        return self.ring[n % 2]

    def done(self, n):
        plan = self.plan
        js = slice(np.searchsorted(plan.hi, n, "left"), np.searchsorted(plan.hi, n, "right"))
        if js.start < js.stop:  # outputs between frame n - 1 (or n itself, at the end) and frame n
            lo_frames = self.ring[plan.lo[js] % 2]
            self.out[js, ..., :self.n_pic] = blend(lo_frames, self.ring[n % 2][None], plan.w[js])

    def frames(self, n):
        return self.out


def resize(x, size):
    """uint8 (T, C, H, W) torch -> uint8 (T, C, size, size): bilinear with antialiasing, rounded (the small clip's
    recipe, and a --size conversion's: PyTorch's uint8 kernel, no float copy)."""
    import torch.nn.functional as F  # only resizing needs torch here: decoding alone does not load it

    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def shrink(pictures, size):
    """uint8 (k, H, W, P) -> uint8 (k, size, size, P), resized the way training resizes (resize above)."""
    import torch

    x = resize(torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2), size)
    return x.permute(0, 2, 3, 1).numpy()


class Shrinking:
    """Every frame `inner` (a KeepAll or a Selection, started at size x size) would get, resized to
    size x size (shrink) in chunks of SHRINK_CHUNK as the video is read: only those full-size frames
    are ever held besides what `inner` keeps. `inner` sees its calls in the decoder's order."""

    def __init__(self, inner, size, n_pic):
        self.inner, self.size, self.n_pic = inner, size, n_pic
        self.pending = []  # (frame, whether its picture is in `staging`), in order, not yet passed on
        self.written = -1

    @property
    def plan(self):
        return self.inner.plan

    def start(self, height, width):
        self.source_shape = (height, width)
        self.inner.start(self.size, self.size)
        self.staging = new_frame_array((SHRINK_CHUNK, height, width, self.n_pic))
        self.held = 0

    def wants(self, n):
        return self.inner.wants(n)

    def slot(self, n):
        self.written = n
        return self.staging[self.held]

    def done(self, n):
        wrote = self.written == n
        if not wrote and not self.pending:
            self.inner.done(n)
            return
        self.pending.append((n, wrote))
        self.held += wrote
        if self.held == SHRINK_CHUNK:
            self.flush()

    def flush(self):
        small = shrink(self.staging[:self.held], self.size) if self.held else None
        k = 0
        for n, wrote in self.pending:  # a chunk's frames handed on one by one, as the decoder would
            if wrote:
                self.inner.slot(n)[..., :self.n_pic] = small[k]
                k += 1
            self.inner.done(n)
        self.pending, self.held = [], 0

    def frames(self, n):
        self.flush()
        return self.inner.frames(n)
