"""Test helpers: small real videos made with the same ffmpeg the toolkit uses."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media import run_ffmpeg  # noqa: E402

VIDEO_CODECS = {".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".mkv": ("libx264", "aac"),
                ".avi": ("mpeg4", "libmp3lame"), ".webm": ("libvpx", "libvorbis")}


def make_video(path, *, seconds=2.0, size=(160, 120), fps=30, audio="0.5*sin(2*PI*440*t)",
               sample_rate=44100, channels=1, extra=()):
    """Write a test-pattern video; `audio` is an ffmpeg aevalsrc expression of t (None: no sound track)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec = VIDEO_CODECS.get(path.suffix.lower(), ("libx264", "aac"))
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}"]
    if audio is not None:
        expr = "|".join([audio] * channels)
        args += ["-f", "lavfi", "-i", f"aevalsrc={expr}:s={sample_rate}:d={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    if audio is not None:
        args += ["-c:a", acodec]
    args += [*extra, "file:" + str(path)]
    run_ffmpeg(args)
    return path


@pytest.fixture
def video_factory(tmp_path):
    def factory(name="clip.mp4", **kw):
        return make_video(tmp_path / name, **kw)
    return factory
