"""Helpers every test module shares: real videos made with the toolkit's own ffmpeg, the step
scripts run as a user runs them, small labelled record sets, and readers for what the steps write.
Test modules import these from here and never from one another."""
import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmrgb.prepare import ffmpeg  # noqa: E402
from fmrgb.runloop import Console  # noqa: E402
from dataset import prepare_split  # noqa: E402
from fmrgb.training.splits import train_val_test  # noqa: E402
from fmrgb.training.survey import survey_data  # noqa: E402
from fmrgb.prepare.synthetic import write_test_video as make_video  # noqa: E402

# one fixed Hypothesis profile: the same examples on every machine, no deadline on a loaded 2-core CI
settings.register_profile("fmrgb", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fmrgb")

# the report the step scripts give the library functions: each warning and failure on stderr
REPORT = Console()

CHANNELS5 = ["red", "green", "blue", "amplitude", "frequency"]
CHANNELS3 = ["grey", "amplitude", "frequency"]


@pytest.fixture
def video_factory(tmp_path):
    def factory(name="clip.mp4", **kw):
        return make_video(tmp_path / name, **kw)
    return factory


def run_script(script, *args, cwd=None, timeout=300, env=None):
    """A step script run as a user runs it: its CompletedProcess, with text stdout and stderr."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def read_csv(path):
    """The rows of a CSV file as dicts."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_pt(path):
    """What a step saved in a .pt file (a record or a checkpoint), loaded as the toolkit loads it."""
    return torch.load(path, weights_only=True)


def pt_dict(frames, **meta):
    """A record dict as create_fmrgbdata.py writes it, around the given uint8 frames (T, H, W, C)."""
    C = frames.shape[-1]
    d = {"frames": frames, "channels": CHANNELS5 if C == 5 else CHANNELS3 if C == 3 else [f"c{i}" for i in range(C)],
         "fps": 30.0, "audiomethod": "simple", "frequency_param": 100, "sample_rate": 44100, "source": "x.mp4",
         "source_frames": frames.shape[0], "has_audio": True, "format_version": 1}
    d.update(meta)
    return d


def write_dataset(root, *, per_class=10, T=8, H=16, W=16, C=5, seed=0, classes=("calm", "loud"), level=None):
    """A learnable set of .pt dicts in root/<class>/: noise everywhere, the amplitude channel
    (second to last) is dark for the first class and bright for the others. Returns the paths."""
    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            x = torch.randint(0, 256, (T, H, W, C), generator=g).float()
            base = 40 + 120 * k / max(len(classes) - 1, 1) if level is None else level[k]
            x[..., -2] = base + 40 * torch.rand((T, H, W), generator=g)
            p = root / cls / f"{cls}_{i:02d}.pt"
            torch.save(pt_dict(x.clamp(0, 255).to(torch.uint8)), p)
            paths.append(p)
    return paths


# ----------------------------------------------------------------------------- small media, broken media

SIZE = (64, 48)
TONE = "0.5*sin(2*PI*440*t)"


def tiny(path, seconds=0.5, **kw):
    """A small test video (64x48, half a second unless told)."""
    kw.setdefault("size", SIZE)
    return make_video(path, seconds=seconds, **kw)


def digest(path):
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(root):
    """{relative path: what it is} for everything under root, links as links (never followed)."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link -> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = digest(p)
    return out


def error_lines(text):
    """The `error: <path>: <reason>` lines of a step's stderr."""
    return [ln for ln in text.splitlines() if ln.startswith("error: ")]


def part_files(root):
    """Temporary files a write left behind under root."""
    return sorted(p for p in Path(root).rglob("*") if p.name.endswith(".part"))


# ----------------------------------------------------------------------------- broken media

def strip_atom(data, name):
    """An mp4 without its top-level `name` atom."""
    out, i = bytearray(), 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        if size == 1:
            size = int.from_bytes(data[i + 8:i + 16], "big")
        elif size == 0:
            size = len(data) - i
        if data[i + 4:i + 8] != name:
            out += data[i:i + size]
        i += size
    return bytes(out)


def make_zero(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def make_text(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a shopping list, not a video\n" * 40)


def make_truncated_no_moov(path):
    """First half of a normal mp4: the moov atom, written last, is gone."""
    full = tiny(path.with_name("full_" + path.name), seconds=1).read_bytes()
    path.with_name("full_" + path.name).unlink()
    path.write_bytes(full[: len(full) // 2])


def make_truncated_faststart(path):
    """First half of a +faststart mp4: the index is there, half the data is not."""
    src = path.with_name("full_" + path.name)
    full = tiny(src, seconds=1, extra=["-movflags", "+faststart"]).read_bytes()
    src.unlink()
    path.write_bytes(full[: len(full) // 2])


def make_no_moov(path):
    src = path.with_name("full_" + path.name)
    full = tiny(src, seconds=1).read_bytes()
    src.unlink()
    stripped = strip_atom(full, b"moov")
    assert len(stripped) < len(full)
    path.write_bytes(stripped)


def make_sound_only(path):
    """An AAC-only mp4 (what an .m4a renamed .mp4 is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run_ffmpeg(["-y", "-f", "lavfi", "-i", f"aevalsrc={TONE}:s=44100:d=1", "-c:a", "aac",
                      "-f", "mp4", ffmpeg.input_arg(path)])
    assert not ffmpeg.probe(path).has_video
    return path


BROKEN = {
    "zero_bytes": make_zero,
    "text_renamed": make_text,
    "truncated_moov_missing": make_truncated_no_moov,
    "moov_atom_stripped": make_no_moov,
    "sound_only": make_sound_only,
}


def damage_until(path, found, *, width, steps):
    """Flip `width` bytes of the picture data of the mp4 `path` (XOR 0x55) at k/40 of its media data, for
    each k of `steps` in turn, until found() holds; pytest.fail when none gives the damage wanted."""
    good = path.read_bytes()
    start = good.find(b"mdat") + 8
    for k in steps:
        pos = start + (len(good) - start) * k // 40
        path.write_bytes(good[:pos] + bytes(b ^ 0x55 for b in good[pos:pos + width]) + good[pos + width:])
        if found():
            return
    pytest.fail(f"no damage of {width} bytes in {path.name} gives the case wanted")


def prepare(data, *, test_size, val_size, seed, frames, size):
    """A training run's data as train.py prepares it: surveyed, split by groups, with the training statistics."""
    survey = survey_data(data)
    parts = train_val_test(survey.label_names, survey.groups, test_size=test_size, val_size=val_size, seed=seed)
    return prepare_split(survey, parts, frames=frames, size=size)


def kept(stdout, path):
    """The reason a delete step printed for keeping `path`, or None when it did not keep it."""
    prefix = f"kept {path}: "
    return next((ln[len(prefix):] for ln in stdout.splitlines() if ln.startswith(prefix)), None)


def ffmpeg_make(path, *args):
    """A media file written by ffmpeg with these arguments (inputs, options) to `path`."""
    from fmrgb.prepare.ffmpeg import input_arg, run_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(["-y", *args, input_arg(path)])
    return path
