"""The FMRGB record: one `<video name>.pt` beside its video. This module alone writes and reads it.

    rec = Recipe(audiomethod="simple", frequency_param=100, fmrgb=5)
    save_record(record_dict, record_path(video))
    frames, meta = load_record(record_path(video))  # uint8 (T, H, W, C) memory-mapped, and the rest
    made_from_problem(meta, video)                    # None when the record was made from this very file

On disk it is a dict of plain values and one tensor (so torch.load(weights_only=True) reads it):
frames uint8 (T, H, W, C), channels, fps, audiomethod, frequency_param, sample_rate, sound_scale
(SoundScale: what a sound value means in Hz; records made before it read as the frame-rate scale), source,
source_size, source_sha256, source_frames (the frames the video decodes to), source_shape (its picture's
[height, width]; a --size record's frames are smaller), damaged_frames (frames that did not decode and were
skipped), has_audio, silent, format_version and, for a resized copy, original_sha256 (its original's, from
the copy's stamp: fmrgb.prepare.resized). A bare uint8 tensor
is read too. A record without source_sha256 (made before content fingerprints) is still read, but
is never taken as made from any particular video: its video is kept, and it is never written over.
"""
import contextlib
import dataclasses
import os
from pathlib import Path

from fmrgb.cli import error_summary
from fmrgb.files import VANISHED, atomic_output, file_digest
from fmrgb.prepare.sound import analysis_rate, channel_names

FORMAT_VERSION = 1
SUFFIX = ".pt"


@dataclasses.dataclass(frozen=True)
class SoundScale:
    """What a record's sound values mean in Hz: analysed at `sample_rate` Hz for every file (frequency
    value 255 = sample_rate / 2, the mel bands spread over 0 .. sample_rate / 2) on a `axis` frequency
    axis, each frame its own time span. fixed=False: a record made before the rate was fixed, whose
    scale followed its own frame rate (sample_rate = fps x frequency_param)."""
    sample_rate: int
    axis: str = "linear"
    fixed: bool = True

    def to_meta(self):
        return {"sample_rate": int(self.sample_rate), "axis": self.axis}

    @classmethod
    def of(cls, meta):
        """The scale of a record's metadata; None for a record that says nothing of its sound."""
        stored = meta.get("sound_scale")
        if isinstance(stored, dict) and "sample_rate" in stored:
            return cls(int(stored["sample_rate"]), str(stored.get("axis", "linear")))
        rate = meta.get("sample_rate")
        return cls(int(rate), "linear", fixed=False) if isinstance(rate, (int, float)) and rate else None

    def describe(self):
        top = f"{self.axis} 0-{self.sample_rate / 2:g} Hz"
        return top if self.fixed else f"{top} (made before the scale was fixed: it follows the frame rate)"


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

    @property
    def scale(self):
        """The sound scale of every record made with this recipe."""
        return SoundScale(analysis_rate(self.frequency_param))


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


class _WholeWrites:
    """A file torch.save writes into through Python: every byte is written, or the system's OSError
    raised (torch's own writer, and a buffered file's short write, leave only "[enforce fail at
    inline_container.cc] unexpected pos")."""

    def __init__(self, fd, name):
        self.fd = fd
        self.name = name  # what a file object says it is

    def write(self, data):
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            view = view[os.write(self.fd, view):]
        return size

    def flush(self):
        pass


def save_record(record, path):
    """Write the record dict atomically. A write that fails (a full disk) raises OSError naming `path`
    with the system's reason, and leaves nothing behind."""
    import torch

    crc = torch.serialization.get_crc32_options()
    # the zip checksum costs more than writing the data, and atomic writes already rule out torn files
    torch.serialization.set_crc32_options(False)
    try:
        with atomic_output(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
            try:
                torch.save(record, _WholeWrites(fd, str(tmp)))
            except (OSError, RuntimeError) as e:
                # torch's zip writer, closing after a failed write, raises its own error over the OSError
                cause = e if isinstance(e, OSError) else e.__context__
                if isinstance(cause, OSError):
                    raise OSError(cause.errno, cause.strerror, str(path)) from e
                raise
            finally:
                os.close(fd)
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
    if SoundScale.of(meta) != recipe.scale:
        return "made on another sound scale"
    return None


def source_identity(video):
    """What a record keeps of its video: its name, size and the SHA-256 of its bytes, so that it is
    only ever taken for that very content (not for another clip given the same name, or size)."""
    video = Path(video)
    return {"source": video.name, "source_size": video.stat().st_size, "source_sha256": file_digest(video)}


def overwrite_problem(video, sha256):
    """None when `video` (whose bytes have this SHA-256) may get a new record: there is none, or what is
    there is not a record, or one made from these very bytes; else why not. A record made from other
    bytes, or that does not say which, may be the only copy of another clip: never written over."""
    pt = record_path(video)
    try:
        _, meta = load_record(pt)
    except UnreadableRecord:
        return None  # nothing there, or nothing any step could read
    if "source_sha256" not in meta:
        return (f"{pt.name} does not record which video it was made from (made by an older version), so it may "
                "be the only copy of another clip: not overwritten (if it is this video's, delete it, or move it "
                "away, to convert again)")
    if meta["source_sha256"] != sha256:
        return (f"{pt.name} was made from another clip ({meta.get('source')} of {meta.get('source_size')} bytes, "
                f"SHA-256 {meta['source_sha256'][:12]}...), the only copy of it: not overwritten (rename this "
                f"video, or move {pt.name} away, to convert it)")
    return None


def made_from_problem(meta, video):
    """None when a record's metadata says it was made from this very content of `video`, else why not."""
    if "source_sha256" not in meta:
        older = " (made before .pt files recorded it)" if "source_size" in meta else ""
        return (f".pt does not record which video it was made from{older}: move it away and convert again, "
                "or use --all")
    video = Path(video)
    # name and size first: cheap, and enough to tell most other videos apart without reading them
    if (meta.get("source"), meta.get("source_size")) != (video.name, video.stat().st_size) \
            or meta["source_sha256"] != file_digest(video):
        return ".pt was made from another version of this video, or from another video (convert again)"
    return None


def recorded_source_digest(pt):
    """The SHA-256 of the video bytes the record at `pt` was made from, None when it records none."""
    return load_record(pt)[1].get("source_sha256")


def conversion_problem(video, *, accept_loss=False):
    """None when the video's record is a valid FMRGB record made from this very file and holds its frames
    as they are: as many as the video decodes to (source_frames; not fewer, nor stretched to more), each as
    large as the video's (source_shape), else why not. accept_loss: other frames do (the user said so)."""
    pt = record_path(video)
    if not pt.is_file():
        return "no .pt file"
    try:
        frames, meta = load_record(pt)
    except UnreadableRecord as e:
        return f".pt does not load ({e.reason})"
    try:
        problem = made_from_problem(meta, video)
    except FileNotFoundError:
        return VANISHED
    if problem is not None or accept_loss:
        return problem
    shape = tuple(meta.get("source_shape") or frames.shape[1:3])
    if tuple(frames.shape[1:3]) != shape:
        # a --size run kept smaller frames: the video is still the only full-size copy
        return (f".pt holds {frames.shape[2]}x{frames.shape[1]} frames of the video's {shape[1]}x{shape[0]} "
                "(convert without --size, or pass --lose_frames_or_pixels, to delete it)")
    if frames.shape[0] < meta.get("source_frames", 0):
        # a --frames run kept fewer frames than the video has: the video is still the only full copy
        return (f".pt holds {frames.shape[0]} of the video's {meta['source_frames']} frames "
                "(convert without --frames, or a larger one, or pass --lose_frames_or_pixels, to delete it)")
    if frames.shape[0] > meta.get("source_frames", frames.shape[0]):
        # stretched to a longer clip's length (or a larger --frames): its frames blended, not as they were
        return (f".pt holds the video's {meta['source_frames']} frames stretched to {frames.shape[0]}, blended "
                "(convert it on its own, or pass --lose_frames_or_pixels, to delete it)")
    return problem
