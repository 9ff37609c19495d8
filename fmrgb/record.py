"""The FMRGB record: one `<video name>.pt` beside its video. This module alone writes and reads it.

    rec = Recipe(audiomethod="simple", frequency_param=100, fmrgb=5)
    save_record(record_dict, record_path(video))
    frames, meta = load_record(record_path(video))  # uint8 (T, H, W, C) memory-mapped, and the rest
    made_from_problem(meta, video)                    # None when the record was made from this very file

On disk it is a dict of plain values and one tensor (so torch.load(weights_only=True) reads it):
frames uint8 (T, H, W, C), channels, fps, audiomethod, frequency_param, sample_rate, source,
source_size, source_sha256, source_frames (the frames the video decodes to), damaged_frames (frames that
did not decode and were skipped), has_audio, silent, format_version and, for a resized copy, original_sha256
(its original's, from the copy's stamp: fmrgb.resized). A bare uint8 tensor
is read too. A record without source_sha256 (made before content fingerprints) is still read, but
is never taken as made from any particular video: it is converted again and its video kept.
"""
import contextlib
import dataclasses
import os
from pathlib import Path

from fmrgb.cli import error_summary
from fmrgb.files import atomic_output, file_digest
from fmrgb.sound import channel_names

FORMAT_VERSION = 1
SUFFIX = ".pt"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The conversion settings a record is made with; two records with the same Recipe stack."""
    audiomethod: str = "simple"
    frequency_param: int = 100
    fmrgb: int = 5

    def __post_init__(self):
        assert self.audiomethod in ("simple", "mel"), f"audiomethod must be simple or mel, not {self.audiomethod!r}"
        assert self.fmrgb in (3, 5), f"fmrgb must be 3 or 5, not {self.fmrgb!r}"
        assert self.frequency_param >= 1, "frequency_param must be at least 1"

    @property
    def channels(self):
        return channel_names(self.fmrgb, self.audiomethod)


def record_path(video):
    """The record of a video: its full name plus .pt (a.mp4 -> a.mp4.pt), so a.mp4 and a.avi never share one."""
    return Path(video).with_name(Path(video).name + SUFFIX)


def generic_channels(names):
    """True for the placeholder names c0, c1, ... that a record without channel names gets."""
    return list(names) == [f"c{i}" for i in range(len(names))]


class UnreadableRecord(RuntimeError):
    """A file that is not an FMRGB record; `reason` says why, the message names the file."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: unreadable ({reason})")
        self.reason = reason


def save_record(record, path):
    """Write the record dict atomically."""
    import torch

    crc = torch.serialization.get_crc32_options()
    # the zip checksum costs more than writing the data, and atomic writes already rule out torn files
    torch.serialization.set_crc32_options(False)
    try:
        with atomic_output(path) as tmp:
            torch.save(record, tmp)
    finally:
        torch.serialization.set_crc32_options(crc)


@contextlib.contextmanager
def _utf8_path(path):
    """A name torch's memory-mapped load can take: `path` itself, or for a name that is not valid UTF-8
    (torch cannot encode it) the same open file under /proc/self/fd (the mapping outlives the fd)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        fd = os.open(path, os.O_RDONLY)
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
    else:
        yield path


def load_record(path):
    """(frames uint8 tensor [T, H, W, C], metadata dict) of one record, memory-mapped: only the
    frames indexed later are read. Accepts the format_version 1 dict and a bare tensor (its channels
    are then named c0, c1, ...). Anything else raises UnreadableRecord "<path>: unreadable (why)"."""
    import torch

    try:
        with _utf8_path(path) as name:
            try:
                obj = torch.load(name, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(name, map_location="cpu", weights_only=True)  # legacy (non-zip) torch.save format
    except Exception as e:
        reason = error_summary(e)
        if "weights_only" not in reason:  # torch's own words for a cut-off file are a bare number or errno
            reason = f"truncated or not a torch file: {reason}"
        raise UnreadableRecord(path, reason) from e
    if isinstance(obj, dict):
        frames = obj.get("frames")
        meta = {k: v for k, v in obj.items() if k != "frames"}
    else:
        frames, meta = obj, {}
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.dtype != torch.uint8:
        what = (f"{frames.dtype} tensor of shape {tuple(frames.shape)}" if isinstance(frames, torch.Tensor)
                else type(frames).__name__)
        raise UnreadableRecord(path, f"expected uint8 frames [T, H, W, C], found {what}")
    if frames.shape[0] == 0:
        raise UnreadableRecord(path, "no frames")
    channels = meta.get("channels")
    if not isinstance(channels, (list, tuple)) or len(channels) != frames.shape[-1]:
        meta["channels"] = [f"c{i}" for i in range(frames.shape[-1])]
    return frames, meta


def recipe_problem(meta, recipe):
    """None when a record was made with `recipe` in this format version, else why not."""
    if meta.get("format_version") != FORMAT_VERSION:
        return "made by another version of the toolkit"
    if (meta.get("audiomethod"), meta.get("frequency_param")) != (recipe.audiomethod, recipe.frequency_param):
        return "made with other settings"
    if list(meta.get("channels", [])) != recipe.channels:
        return "made with other channels"
    return None


def source_identity(video):
    """What a record keeps of its video: its name, size and the SHA-256 of its bytes, so that it is
    only ever taken for that very content (not for another clip given the same name, or size)."""
    video = Path(video)
    return {"source": video.name, "source_size": video.stat().st_size, "source_sha256": file_digest(video)}


def made_from_problem(meta, video):
    """None when a record's metadata says it was made from this very content of `video`, else why not."""
    if "source_sha256" not in meta:
        older = " (made before .pt files recorded it)" if "source_size" in meta else ""
        return f".pt does not record which video it was made from{older}: convert again, or use --all"
    video = Path(video)
    # name and size first: cheap, and enough to tell most other videos apart without reading them
    if (meta.get("source"), meta.get("source_size")) != (video.name, video.stat().st_size) \
            or meta["source_sha256"] != file_digest(video):
        return ".pt was made from another version of this video, or from another video (convert again)"
    return None


def conversion_problem(video):
    """None when the video's record is a valid FMRGB record made from this very file and holds at
    least as many frames as the video decodes to (source_frames), else why not."""
    pt = record_path(video)
    if not pt.is_file():
        return "no .pt file"
    try:
        frames, meta = load_record(pt)
    except UnreadableRecord as e:
        return f".pt does not load ({e.reason})"
    problem = made_from_problem(meta, video)
    if problem is None and frames.shape[0] < meta.get("source_frames", 0):
        # a --frames run kept fewer frames than the video has: the video is still the only full copy
        return (f".pt holds {frames.shape[0]} of the video's {meta['source_frames']} frames "
                "(convert without --frames, or a larger one, to delete it)")
    return problem
