"""ffmpeg itself (from the imageio-ffmpeg wheel): running it and reading what it reports; and the
stream facts of a file, read with PyAV (the `av` wheel's own FFmpeg libraries, in-process).

    proc = run_ffmpeg(["-i", input_arg("a.mp4"), "-f", "null", "-"])   # a CompletedProcess
    info = probe("a.mp4")                    # MediaInfo: duration, streams, their start times
    stream = main_video_stream(info, "a.mp4")   # the one video stream every step uses

ffmpeg is always called with an argument list (never a shell), `-nostdin`, captured output and a
deadline that grows with the input's duration; a failure is re-raised with ffmpeg's own last words.
"""
import contextlib
import dataclasses
import fcntl
import functools
import os
import re
import selectors
import struct
import subprocess
import time
from pathlib import Path

FFMPEG_TIMEOUT = 600  # seconds: the least any run gets; a 10 s clip takes well under one
PROBE_TIMEOUT = 60  # seconds for reading a container's header (standard input's head included)
TIMEOUT_PER_SECOND = 20  # seconds of ffmpeg time allowed per second of video (a slow HD encode runs ~1x)
PIPE_SIZE = 1 << 20  # a larger pipe: fewer wake-ups per decoded HD frame


@functools.lru_cache(maxsize=1)
def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def timeout_for(duration):
    """ffmpeg's time limit for an input of `duration` seconds (None: unknown): it only catches hangs,
    so an honest run on a long video must never reach it."""
    return max(FFMPEG_TIMEOUT, TIMEOUT_PER_SECOND * (duration or 0.0))


def ffmpeg_command(args, *, stdin=True):
    cmd = [ffmpeg_exe(), "-hide_banner", *[str(a) for a in args]]
    if not stdin:
        cmd.insert(1, "-nostdin")  # never let ffmpeg read the terminal
    return cmd


def run_ffmpeg(args, *, timeout=None, check=True, input=None):
    """Run ffmpeg with `args` (bytes in `input` reach it as pipe:0) and return its CompletedProcess;
    on failure raise RuntimeError carrying ffmpeg's own last words. Without `timeout` the limit is
    timeout_for(the duration ffmpeg reports for its first input)."""
    if input is not None:
        cmd = ffmpeg_command(args)
        try:
            return subprocess.run(cmd, capture_output=True, check=check, timeout=timeout or FFMPEG_TIMEOUT,
                                  input=input)
        except subprocess.CalledProcessError as e:
            raise ffmpeg_failure(e.stderr) from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"ffmpeg did not finish within {timeout or FFMPEG_TIMEOUT} s") from None
    run = FfmpegRun(args, timeout=timeout)
    stdout = b"".join(run.chunks())
    if check and run.returncode != 0:
        raise ffmpeg_failure(run.stderr)
    return subprocess.CompletedProcess(run.cmd, run.returncode, stdout, run.stderr)


class FfmpegRun:
    """One ffmpeg process whose stdout is read piece by piece (`chunks()`), so a caller can take
    decoded frames as they come; stderr is collected alongside into `.stderr`. It is killed past
    its deadline: `timeout`, or timeout_for(the input's duration) once ffmpeg has printed it."""

    def __init__(self, args, *, timeout=None):
        self.cmd = ffmpeg_command(args, stdin=False)
        self.timeout, self.returncode, self._err = timeout, None, bytearray()

    @property
    def stderr(self):
        return bytes(self._err)

    def chunks(self):
        started = time.monotonic()
        limit, scaled = self.timeout or FFMPEG_TIMEOUT, self.timeout is not None
        with subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as proc:
            try:
                try:
                    fcntl.fcntl(proc.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
                except OSError:
                    pass  # a smaller pipe only costs more wake-ups
                with selectors.DefaultSelector() as sel:
                    sel.register(proc.stderr, selectors.EVENT_READ)
                    sel.register(proc.stdout, selectors.EVENT_READ)
                    while sel.get_map():
                        left = started + limit - time.monotonic()
                        if left <= 0:
                            raise RuntimeError(f"ffmpeg did not finish within {limit:.0f} s")
                        # stderr first: what ffmpeg says about a stream is there before the stream's data
                        ready = sorted(sel.select(min(left, 5.0)), key=lambda k: k[0].fileobj is proc.stdout)
                        for key, _ in ready:
                            data = os.read(key.fd, PIPE_SIZE)
                            if not data:
                                sel.unregister(key.fileobj)
                            elif key.fileobj is proc.stderr:
                                self._err += data
                                if not scaled and b"Stream #" in self._err:  # the input's duration is printed by now
                                    limit, scaled = timeout_for(reported_duration(self._err)), True
                            else:
                                yield data
                self.returncode = proc.wait()
            finally:
                if proc.poll() is None:  # stopped early (timeout, or the caller gave up): end it
                    proc.kill()
                    proc.wait()


class DiskFull(RuntimeError):
    """ffmpeg could not write its output: no space left on the device (or the quota is used up)."""


FULL_DISK = {"No space left on device": "no space left on device", "Disk quota exceeded": "disk quota exceeded"}


def ffmpeg_failure(stderr):
    """The exception for a failed run: DiskFull when ffmpeg ran out of room to write (its last words
    then are only "Conversion failed!"), else RuntimeError with its last words."""
    text = stderr.decode("utf-8", "replace")
    full = next((words for cause, words in FULL_DISK.items() if cause in text), None)
    return DiskFull(full) if full else RuntimeError(ffmpeg_error(stderr))


def ffmpeg_error(stderr):
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return "ffmpeg: " + (lines[-1] if lines else "failed without a message")


def input_arg(path):
    # "file:" stops ffmpeg reading a name like "-x.mp4" as an option or "a:b.mp4" as a protocol
    return "file:" + os.fspath(Path(path).absolute())


# ----------------------------------------------------------------------------- stream facts

@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """One stream as ffmpeg lists it: its index in the file, kind ("Video", "Audio", "Subtitle", "Data",
    "Attachment"), codec (for a data stream without one, its tag), dispositions."""
    index: int
    kind: str
    codec: str
    start: float | None  # its first timestamp in seconds, None when ffmpeg printed none (= the file's start)
    default: bool
    attached: bool  # cover art or a thumbnail: a picture attached to the file, not its video
    fps: float | None = None
    width: int | None = None
    height: int | None = None


@dataclasses.dataclass
class MediaInfo:
    duration: float | None  # container duration in seconds (an estimate; decoding is the truth)
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None
    audio_codec: str | None
    video_codec: str | None
    comment: str | None = None  # the container's "comment" tag (resize_video.py stamps its source there)
    start: float = 0.0  # the file's start time: what ffmpeg's output (the decoded sound) counts from
    streams: tuple = ()  # StreamInfo of every stream, in file order


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_FILE_START = re.compile(r"Duration: [^,\n]*, start: (-?\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #(\d+):(\d+).*?: (Video|Audio|Subtitle|Data|Attachment): (\w+)(.*)")
_TAG = re.compile(r" \((\w+) / 0x")
_SIZE = re.compile(r"[ ,](\d{1,5})x(\d{1,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_START = re.compile(r", start (-?\d+(?:\.\d+)?)")
_COMMENT = re.compile(r"^\s*comment\s*:\s?(.*)$", re.M)


def reported_duration(stderr):
    """The duration ffmpeg printed for its first input, or None."""
    m = _DURATION.search(stderr.decode("utf-8", "replace") if isinstance(stderr, (bytes, bytearray)) else stderr)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def parse_stream_info(stderr, file_index=0):
    """Read what ffmpeg printed about input `file_index` (or output, for "Output #") into MediaInfo;
    the has_video/fps/size fields describe the first video stream that is not an attached picture."""
    text = stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")
    info = MediaInfo(None, False, False, None, None, None, None, None)
    input_part = text.split("Output #0", 1)[0]
    m = _COMMENT.search(input_part.split("Stream #", 1)[0])  # the file's own tags, before its streams'
    if m:
        info.comment = m.group(1).strip()
    info.duration = reported_duration(text)
    m = _FILE_START.search(text)
    info.start = float(m.group(1)) if m else 0.0
    listed = {}
    for m in _STREAM.finditer(input_part if "Input #" in input_part else text):
        # ffmpeg 8+ lists a stream that belongs to a "Stream group" there, out of file order
        if int(m.group(1)) == file_index:
            listed.setdefault(int(m.group(2)), m)
    streams = []
    for m in (listed[i] for i in sorted(listed)):
        kind, codec, rest = m.group(3), m.group(4), m.group(5)
        tag = _TAG.match(rest)
        if codec == "none" and tag:  # a data stream ffmpeg has no codec for: its tag (tmcd, gpmd) says what it is
            codec = tag.group(1)
        start = _START.search(rest)
        size = _SIZE.search(rest)
        rates = {unit: float(v) * (1000 if k else 1) for v, k, unit in _FPS.findall(rest)}
        stream = StreamInfo(int(m.group(2)), kind, codec, float(start.group(1)) if start else None,
                            "(default)" in rest, "(attached pic)" in rest or "(timed thumbnails)" in rest,
                            (rates.get("fps") or rates.get("tbr")) if kind == "Video" else None,
                            int(size.group(1)) if size and kind == "Video" else None,
                            int(size.group(2)) if size and kind == "Video" else None)
        streams.append(stream)
        if kind == "Audio" and not info.has_audio:
            info.has_audio, info.audio_codec = True, codec
        elif kind == "Video" and not info.has_video and not stream.attached:
            info.has_video, info.video_codec = True, codec
            info.width, info.height, info.fps = stream.width, stream.height, stream.fps
    info.streams = tuple(streams)
    return info


@contextlib.contextmanager
def _av_open(path):
    """`path` opened by PyAV (names that are not UTF-8 go as an open file); RuntimeError with PyAV's
    reason when it cannot be read."""
    import av

    name = os.fspath(Path(path).absolute())
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # PyAV takes names as UTF-8: this one goes as an open file
        name = open(name, "rb")  # noqa: SIM115 (closed below)
    try:
        try:
            container = av.open(name)
        except av.FFmpegError as e:
            raise RuntimeError(f"cannot read it: {e.strerror or e}") from None
        with container:
            yield container
    finally:
        if not isinstance(name, str):
            name.close()


_KINDS = {"video": "Video", "audio": "Audio", "subtitle": "Subtitle", "data": "Data", "attachment": "Attachment"}


def _stream_info(st):
    import av

    kind = _KINDS.get(st.type, st.type.capitalize())
    has_codec = kind in ("Video", "Audio", "Subtitle") and st.codec_context is not None
    codec = st.codec_context.codec.canonical_name if has_codec else st.metadata.get("handler_name", kind.lower())
    flags = av.stream.Disposition
    attached = bool(st.disposition & (flags.attached_pic | flags.timed_thumbnails))
    video = kind == "Video" and has_codec
    fps = float(st.average_rate or st.base_rate or 0) or None if video else None
    return StreamInfo(st.index, kind, codec, float(st.start_time * st.time_base) if st.start_time is not None else None,
                      bool(st.disposition & flags.default), attached, fps,
                      st.codec_context.width if video else None, st.codec_context.height if video else None)


def probe(path):
    """Container facts (MediaInfo), read with PyAV: in-process, about 3 ms a file against 45-110 ms
    for running `ffmpeg -i` and reading its listing. Raises on unreadable files."""
    with _av_open(path) as container:
        streams = tuple(_stream_info(st) for st in container.streams)
        info = MediaInfo(container.duration / 1e6 if container.duration else None, False, False, None, None, None,
                         None, None, comment=container.metadata.get("comment"),
                         start=(container.start_time or 0) / 1e6, streams=streams)
    for st in streams:
        if st.kind == "Audio" and not info.has_audio:
            info.has_audio, info.audio_codec = True, st.codec
        elif st.kind == "Video" and not info.has_video and not st.attached:
            info.has_video, info.video_codec = True, st.codec
            info.width, info.height, info.fps = st.width, st.height, st.fps
    if not info.has_video and not info.has_audio:
        raise RuntimeError("no video or audio stream")
    return info


# container formats that carry no display matrix and that PyAV's own FFmpeg cannot decode (animated WebP)
NO_DISPLAY_MATRIX = {"webp_pipe"}


def display_matrix(path, stream):
    """The 2x2 part (a, b, c, d) of the display matrix of video stream `stream` (an index), the
    rotation and mirroring a player applies, or None when it has none. Read from the first decoded
    frame: ffmpeg's listing prints only a rotation angle (a horizontal flip reads as "rotation of
    -180.00 degrees", like a half turn), and PyAV has no stream-level getter for it."""
    import av

    with _av_open(path) as container:
        if container.format.name in NO_DISPLAY_MATRIX:
            return None
        try:
            for frame in container.decode(container.streams[stream]):
                for side in frame.side_data:
                    if side.type.name == "DISPLAYMATRIX":
                        m = struct.unpack("<9i", bytes(side)[:36])
                        return tuple(v / 65536 for v in (m[0], m[1], m[3], m[4]))
                return None
        except (av.FFmpegError, IndexError) as e:
            raise RuntimeError(f"cannot read the display matrix ({e})") from None
    return None


def main_video_stream(info, path=None):
    """The StreamInfo of the video every step uses, or None: never an attached picture (cover art),
    never a one-frame still when a stream with more frames is there (counted, with `path`, only
    when there is a choice), and the one marked default among several."""
    candidates = [s for s in info.streams if s.kind == "Video" and not s.attached]
    if len(candidates) > 1 and path is not None:
        packets = stream_packet_counts(path)
        candidates = [s for s in candidates if packets.get(s.index, 0) > 1] or candidates
    return next((s for s in candidates if s.default), candidates[0] if candidates else None)


def first_video_stream(info):
    """The stream OpenCV decodes (it cannot be told another): the first video stream of any kind."""
    return next((s for s in info.streams if s.kind == "Video"), None)


def video_map(path, info=None):
    """The ffmpeg `-map` value of the main video stream of `path` (probed unless `info` is given)."""
    stream = main_video_stream(info or probe(path), path)
    if stream is None:
        raise RuntimeError("no video stream")
    return f"0:{stream.index}"


_PACKETS = re.compile(r"Input stream #0:(\d+) \((?:video|audio)\): (\d+) packets read")


def stream_packet_counts(path):
    """{stream index: packets stored} of every video stream, read without decoding."""
    proc = run_ffmpeg(["-v", "verbose", "-i", input_arg(path), "-map", "0:v", "-c", "copy", "-f", "null", "-"],
                      check=False)
    return {int(i): int(n) for i, n in _PACKETS.findall(proc.stderr.decode("utf-8", "replace"))}


_STATS = re.compile(r"frame=\s*(\d+).*?time=\s*(-?[\d:.]+|N/A)")


def video_stream_length(path, *, decode=False, stream=None, strict=True):
    """(frames, seconds, errors) of the main video stream (or `stream`, an index): packets as
    stored (fast, demux only), or with decode=True the frames that really decode, each one once
    (no frame-rate conversion), plus every error the decoder reported. Raises when ffmpeg fails,
    or with strict=False only when it counted nothing."""
    if stream is None:
        stream = video_map(path).split(":")[1]
    args = ["-v", "error", "-stats", "-i", input_arg(path), "-map", f"0:{stream}"]
    args += (["-fps_mode", "passthrough"] if decode else ["-c", "copy"]) + ["-f", "null", "-"]
    proc = run_ffmpeg(args, check=False)
    text = proc.stderr.decode("utf-8", "replace").replace("\r", "\n")
    stats = _STATS.findall(text)
    errors = [ln.strip() for ln in text.splitlines() if ln.strip() and not _STATS.search(ln)]
    if not stats or (proc.returncode != 0 and (strict or stats[-1][0] == "0")):
        raise RuntimeError("ffmpeg: " + (errors[-1] if errors else "cannot read the video stream"))
    frames, clock = stats[-1]
    seconds = None
    if clock != "N/A":
        h, m, sec = clock.split(":")
        seconds = abs(int(h)) * 3600 + int(m) * 60 + float(sec)
    return int(frames), seconds, errors
