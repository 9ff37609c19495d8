"""A video read as a stream, in pieces: its main video stream's frames and its sound, from one ffmpeg run, so that
a file of any length or a live stream on standard input goes by in bounded memory.

    stream = open_stream("long.mp4", gray=False, sample_rate_for=lambda fps: round(fps * 100))
    for frames, audio in stream.pieces():     # uint8 (k, H, W, P) or None, mono float32 or None
        ...
    stream = open_stream("-", ...)            # standard input (e.g. `ffmpeg ... -f matroska -`)

One ffmpeg writes the raw frames (rgb24, the grey made from them as fmrgb.prepare.decoders makes it) to one pipe
and the sound (mono float32 at the analysis rate, sample 0 at the file's start) to another; both are read
as they come, so neither can block the other. Standard input is first read for a head, to learn the frame
rate (which sets the sound's rate), then handed to ffmpeg, head first.
"""
import dataclasses
import fcntl
import os
import re
import selectors
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from fmrgb.prepare.decoders import cv2_module, usable_fps
from fmrgb.prepare.ffmpeg import (PROBE_TIMEOUT, ffmpeg_command, ffmpeg_error, input_arg, main_video_stream,
                          parse_stream_info, probe, run_ffmpeg)

HEAD_BYTES = 64 << 10       # of standard input, probed to learn the stream's frame rate before decoding it
MAX_HEAD_BYTES = 16 << 20   # the most read before giving up on learning it
READ_BYTES = 1 << 20
STDIN = "-"
_OUTPUT_VIDEO = re.compile(r"Stream #0:0.*: Video: .*\n")  # a whole line: ffmpeg writes stderr in pieces


@dataclasses.dataclass(frozen=True)
class StreamFacts:
    fps: float
    start: float              # seconds from sample 0 of the sound to the first frame
    duration: float | None    # as the container says (None: a live stream)
    has_audio: bool
    sample_rate: int          # the rate the sound comes at


class MediaStream:
    """One ffmpeg run over `source` (a path, or STDIN with its head already read); see pieces()."""

    def __init__(self, source, facts, *, stream_map, gray, head=b"", reader=None):
        self.source, self.facts, self.gray, self.head, self.reader = source, facts, gray, head, reader
        self.stream_map = stream_map
        self.sound_done = not facts.has_audio  # set once ffmpeg has closed the sound's pipe

    def _args(self, audio_fd):
        src = "pipe:0" if self.source == STDIN else input_arg(self.source)
        args = ["-i", src,
                "-map", self.stream_map, "-fps_mode", "passthrough",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        if self.facts.has_audio:
            args += ["-map", "0:a:0", "-vn", "-sn", "-dn",
                     "-af", "aresample=async=1:first_pts=0",   # sample 0 is the file's start, as decode.decode_sound
                     "-ac", "1", "-ar", str(self.facts.sample_rate),
                     "-f", "f32le", f"pipe:{audio_fd}"]
        return args

    def pieces(self):
        """Yield (frames uint8 (k, H, W, P) or None, sound float32 (m,) or None) as ffmpeg gives them; raises
        RuntimeError with ffmpeg's last words when it fails, or when no frame decodes."""
        audio_r, audio_w = os.pipe()
        cmd = ffmpeg_command(self._args(audio_w), stdin=self.source == STDIN)
        stdin = subprocess.PIPE if self.source == STDIN else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(audio_w,))
        os.close(audio_w)
        for fd in (proc.stdout.fileno(), audio_r):
            try:
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_BYTES)
            except OSError:
                pass  # a smaller pipe only costs more wake-ups
        if self.source == STDIN:
            threading.Thread(target=_feed, args=(self.head, self.reader, proc.stdin), daemon=True).start()
        try:
            yield from self._read(proc, audio_r)
        finally:
            os.close(audio_r)
            if proc.poll() is None:  # stopped early: end it
                proc.kill()
            proc.wait()

    def _read(self, proc, audio_r):
        err, video, sound, frame_bytes, shape, n = bytearray(), bytearray(), bytearray(), None, None, 0
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stderr, selectors.EVENT_READ)
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(audio_r, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    data = os.read(key.fd, READ_BYTES)
                    if not data:
                        sel.unregister(key.fileobj)
                        self.sound_done = self.sound_done or key.fileobj == audio_r
                    elif key.fileobj is proc.stderr:
                        err += data
                    elif key.fileobj is proc.stdout:
                        video += data
                    else:
                        sound += data
                if shape is None:
                    shape = _frame_shape(err)
                    frame_bytes = shape and shape[0] * shape[1] * 3
                frames = None
                if shape is not None and len(video) >= frame_bytes:
                    k = len(video) // frame_bytes
                    frames = self._picture(np.frombuffer(bytes(video[:k * frame_bytes]), np.uint8), k, shape)
                    del video[:k * frame_bytes]
                    n += k
                audio = None
                if len(sound) >= 4:
                    m = len(sound) // 4
                    audio = np.frombuffer(bytes(sound[:m * 4]), np.float32).copy()
                    del sound[:m * 4]
                if frames is not None or audio is not None:
                    yield frames, audio
        if proc.wait() != 0 and n == 0:
            raise RuntimeError(ffmpeg_error(bytes(err)))
        if n == 0:
            raise RuntimeError("no frame decodes")

    def _picture(self, flat, k, shape):
        rgb = flat.reshape(k, *shape, 3)
        if not self.gray:
            return rgb
        cv2 = cv2_module()  # the grey fmrgb.prepare.decoders makes: one conversion for the whole chunk
        return cv2.cvtColor(rgb.reshape(k * shape[0], shape[1], 3), cv2.COLOR_RGB2GRAY).reshape(k, *shape, 1)


def _frame_shape(stderr):
    """(height, width) of the raw frames, once ffmpeg has listed its first output's video stream (else None)."""
    text = bytes(stderr).decode("utf-8", "replace")
    listing = _OUTPUT_VIDEO.search(text.split("Output #0", 1)[1]) if "Output #0" in text else None
    if listing is None:
        return None
    out = parse_stream_info(listing.group(0))
    if not out.width or not out.height:
        raise RuntimeError("could not read the frame size")
    return out.height, out.width


def _feed(head, src, dst):
    """Copy the head, then the rest of standard input, into ffmpeg (a thread: ffmpeg's output is read meanwhile)."""
    try:
        dst.write(head)
        while True:
            data = src.read1(READ_BYTES) if hasattr(src, "read1") else src.read(READ_BYTES)
            if not data:
                break
            dst.write(data)
    except (BrokenPipeError, ValueError, OSError):
        pass  # ffmpeg stopped reading (done, or ended early): nothing more to give it
    finally:
        try:
            dst.close()
        except OSError:
            pass


def _facts(info, sample_rate_for, live):
    stream = main_video_stream(info)
    if stream is None:
        raise RuntimeError("no video stream")
    fps = usable_fps(stream.fps)
    start = max(0.0, stream.start - info.start) if stream.start is not None else 0.0
    return stream, StreamFacts(fps, start, None if live else info.duration, info.has_audio, int(sample_rate_for(fps)))


def _probe_head(head):
    proc = run_ffmpeg(["-i", "pipe:0"], input=head, check=False, timeout=PROBE_TIMEOUT)
    return parse_stream_info(proc.stderr), proc


def _open_stdin(src, *, gray, sample_rate_for):
    """A MediaStream of a stream read from `src` (standard input): its head probed, then handed to ffmpeg."""
    head, info, next_probe = b"", None, HEAD_BYTES
    # a live stream comes slowly: probe the head as it grows (at each doubling) until it shows the frame rate
    while len(head) < MAX_HEAD_BYTES:
        more = src.read1(READ_BYTES) if hasattr(src, "read1") else src.read(READ_BYTES)
        if not more:
            break
        head += more
        if len(head) >= next_probe or len(more) < READ_BYTES:  # a short read: what has come for now
            info, proc = _probe_head(head)
            next_probe = 2 * len(head)
            if info.has_video and info.fps:
                break
    if info is None or not (info.has_video and info.fps):  # the stream ended, or the most was read
        info, proc = _probe_head(head)
    if not info.has_video:
        raise RuntimeError(ffmpeg_error(proc.stderr) if proc.returncode and not info.has_audio else "no video stream")
    stream, facts = _facts(info, sample_rate_for, live=True)
    return MediaStream(STDIN, facts, stream_map=f"0:{stream.index}", gray=gray, head=head,
                       reader=src)


def open_stream(source, *, gray, sample_rate_for, stdin=None):
    """A MediaStream of a video file, or of standard input for STDIN ("-"); RuntimeError when it has no video."""
    if str(source) == STDIN:
        return _open_stdin(stdin or sys.stdin.buffer, gray=gray, sample_rate_for=sample_rate_for)
    path = Path(source)
    info = probe(path)
    stream, facts = _facts(info, sample_rate_for, live=False)
    return MediaStream(path, facts, stream_map=f"0:{stream.index}", gray=gray)
