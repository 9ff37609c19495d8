"""The disk a conversion needs, checked before any video is decoded (as fmrgb.prepare.memory checks memory).

    need = estimate_records(videos, frames=32, size=112, channels=5)   # bytes the records will take
    check_disk(need, "data", frames=32, size=112)                       # NotEnoughDisk, with the figures

A record holds frames x height x width x channels bytes of uint8 and a small header (RECORD_HEADER at
most). The frame count and size come from each video's container (ffmpeg.probe: its duration times
its frame rate, an estimate) unless --frames and --size fix them; without --frames every record of a
run gets the longest video's count.
"""
import shutil

from fmrgb.prepare.ffmpeg import probe
from fmrgb.prepare.memory import size_text

RECORD_HEADER = 16_384  # torch's zip entries and a record's metadata, at most
HINT_SIZE, HINT_FRAMES = 112, 32  # what the hint proposes: the size and frames a backbone trains on


class NotEnoughDisk(RuntimeError):
    """The records of a conversion would not fit on the disk; the message gives the figures and the way out."""


def video_shape(video):
    """(frames, height, width) the container claims for `video`, or None when it says too little."""
    try:
        info = probe(video)
    except (RuntimeError, OSError):
        return None  # unreadable: its conversion fails, and takes no disk
    if not (info.width and info.height and info.fps and info.duration):
        return None
    return max(1, round(info.duration * info.fps)), int(info.height), int(info.width)


def estimate_records(videos, *, frames, size, channels, longest=0):
    """Bytes the records of `videos` will take: `frames` each (None: the longest video's count, at least
    `longest`), of size x size (None: each video's own), `channels` bytes a pixel."""
    shapes = [s for s in map(video_shape, videos) if s is not None]
    n = frames or max([longest, *(s[0] for s in shapes)])
    return sum(n * (size * size if size else h * w) * channels + RECORD_HEADER for _, h, w in shapes)


def check_disk(need, folder, *, frames, size, freed=0):
    """Raise NotEnoughDisk when `need` bytes (less `freed`, the bytes of the records they replace) do not
    fit in the free space of `folder`'s disk: the figures, and --size / --frames to make them smaller."""
    free = shutil.disk_usage(folder).free + freed
    if need > free:
        how = [f"--size {HINT_SIZE}" if not size or size > HINT_SIZE else None,
               f"--frames {HINT_FRAMES}" if not frames or frames > HINT_FRAMES else None]
        hint = " ".join(h for h in how if h) or "fewer videos at once (--shard)"
        raise NotEnoughDisk(f"the records need {size_text(need)}, only {size_text(free)} is free on the disk of "
                            f"{folder}: convert with {hint} (frames stored at that size and count)")
