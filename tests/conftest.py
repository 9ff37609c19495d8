"""Helpers every test module shares: real videos made with the toolkit's own ffmpeg, the step
scripts run as a user runs them, small labelled record sets, and readers for what the steps write.
Test modules import these from here and never from one another."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset import prepare_split  # noqa: E402
from fmrgb.splits import train_val_test  # noqa: E402
from fmrgb.survey import survey_data  # noqa: E402
from fmrgb.synthetic import write_test_video as make_video  # noqa: E402

# one fixed Hypothesis profile: the same examples on every machine, no deadline on a loaded 2-core CI
settings.register_profile("fmrgb", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fmrgb")

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


def prepare(data, *, test_size, val_size, seed, frames, size):
    """A training run's data as train.py prepares it: surveyed, split by groups, with the training statistics."""
    survey = survey_data(data)
    parts = train_val_test(survey.label_names, survey.groups, test_size=test_size, val_size=val_size, seed=seed)
    return prepare_split(survey, parts, frames=frames, size=size)
