"""Synthetic videos for tests and benchmarks: an ffmpeg test pattern with a sound given as an
expression of time, in the codecs the extension suggests.

    write_test_video("tone.mp4", seconds=2, audio="0.5*sin(2*PI*440*t)")
"""
from pathlib import Path

from fmrgb.prepare.ffmpeg import input_arg, run_ffmpeg

TEST_CODECS = {".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".mkv": ("libx264", "aac"),
               ".avi": ("mpeg4", "libmp3lame"), ".webm": ("libvpx", "libvorbis")}


def write_test_video(path, *, seconds=2.0, size=(160, 120), fps=30, audio="0.5*sin(2*PI*440*t)",
                     sample_rate=44100, channels=1, extra=()):
    """A test-pattern video with a sound given as an ffmpeg aevalsrc expression of t (None: no
    sound track), for tests and benchmarks; the codecs follow the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec = TEST_CODECS.get(path.suffix.lower(), ("libx264", "aac"))
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}"]
    if audio is not None:
        args += ["-f", "lavfi", "-i", f"aevalsrc={'|'.join([audio] * channels)}:s={sample_rate}:d={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"] + (["-preset", "ultrafast"] if vcodec == "libx264" else [])
    args += (["-c:a", acodec] if audio is not None else []) + [*extra, input_arg(path)]
    run_ffmpeg(args)
    return path
