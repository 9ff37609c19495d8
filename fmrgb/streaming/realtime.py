"""The real-time factor of predict.py --window (seconds of video classified per second), and where the time goes.

    rt = measure_realtime("long.mp4", recipe, model, window=2.0, stride=1.0)
    rt.factor, rt.cpu_factor, rt.parts_cpu_s     # x real time (wall, CPU), CPU s per part

Three passes over the same video: decoding alone (the stream), decoding and making every window (a model that
costs nothing), and the whole run (the model). The differences say what each part costs. CPU time counts this
process and its ffmpeg, so it stays meaningful on a machine shared with other work, where wall time does not.
"""
import dataclasses
import functools

import torch

from fmrgb.measure import timed_cpu
from fmrgb.streaming.sliding import classify_stream
from fmrgb.streaming.stream import open_stream
from fmrgb.training.clip import picture_channels
from fmrgb.streaming.windowclip import sample_rate


@dataclasses.dataclass(frozen=True)
class RealTime:
    video_s: float
    windows: int
    wall_s: dict     # {"decode", "decode+windows", "all"}: seconds of each pass
    cpu_s: dict      # the same passes in CPU seconds (this process and its children)

    @property
    def factor(self):
        return self.video_s / self.wall_s["all"]

    @property
    def cpu_factor(self):
        """Video seconds per CPU second: the real-time factor of one core given wholly to the run."""
        return self.video_s / self.cpu_s["all"]

    def summary(self):
        """The figures bench.json keeps."""
        return {"factor": self.factor, "cpu_factor": self.cpu_factor, "parts_cpu_s": self.parts_cpu_s,
                **dataclasses.asdict(self)}

    def rows(self):
        """bench.py's table rows: (name, value, unit, versus, ratio, target)."""
        parts = [(f"  CPU s per video s: {part}", s / self.video_s, "s/s", "", None, "")
                 for part, s in self.parts_cpu_s.items()]
        return [("predict --window 2 --stride 1, Conv3D", self.factor, "x", "real time (wall)", None, ">= 10x"),
                ("  video s per CPU s", self.cpu_factor, "x", "real time (one core)", None, ""), *parts]

    @property
    def parts_cpu_s(self):
        """CPU seconds spent decoding, making the windows and in the model (all three differences)."""
        c = self.cpu_s
        return {"decode": c["decode"], "windows": c["decode+windows"] - c["decode"],
                "model": c["all"] - c["decode+windows"]}


class _Free(torch.nn.Module):
    """A model that costs nothing: the run then measures decoding and making the windows."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x):
        return torch.zeros(x.shape[0], self.n_classes)


def measure_realtime(video, recipe, model, *, window=2.0, stride=1.0):
    """RealTime of sliding `model` (with its checkpoint.Recipe) along `video`."""
    def stream():
        return open_stream(video, gray=picture_channels(recipe.record.channels) == 1,
                           sample_rate_for=functools.partial(sample_rate, record=recipe.record))

    def slide(m):
        return list(classify_stream(m, recipe, stream(), window=window, stride=stride))

    probe = stream()
    frames, wall_d, cpu_d = timed_cpu(lambda: sum(len(f) for f, _ in probe.pieces() if f is not None))
    _, wall_w, cpu_w = timed_cpu(lambda: slide(_Free(len(recipe.classes))))
    with torch.inference_mode():
        rows, wall_a, cpu_a = timed_cpu(lambda: slide(model.eval()))
    return RealTime(frames / probe.facts.fps, len(rows), {"decode": wall_d, "decode+windows": wall_w, "all": wall_a},
                    {"decode": cpu_d, "decode+windows": cpu_w, "all": cpu_a})


def conv3d_at_defaults(*, window_frames, channels=("red", "green", "blue", "amplitude", "frequency")):
    """(an untrained Conv3D at train.py's defaults: 32 frames of 64 x 64, its checkpoint.Recipe) for records of
    `window_frames` frames (a window's own frames): what bench.py times."""
    from fmrgb.training.checkpoint import Recipe, RecordSettings, RunArgs
    from model import build_model

    kwargs = {"in_channels": len(channels), "num_classes": 2, "frames": 32, "size": 64}
    record = RecordSettings(tuple(channels), "simple", 100, None, int(window_frames))
    recipe = Recipe.of(learnmethod="conv3d", model_kwargs=kwargs, classes=["calm", "loud"], record=record,
                       mean=[0.5] * len(channels), std=[0.25] * len(channels), frames=32, size=64, lr=1e-3,
                       run=RunArgs({}))
    torch.manual_seed(0)
    return build_model("conv3d", **kwargs).eval(), recipe


def bench_realtime(path, *, size, fps, seconds=60.0):
    """RealTime of bench.py: the Conv3D at its defaults slid along `seconds` of test video (written to `path`)
    in windows of 2 s every second (predict.py --window 2 --stride 1)."""
    from fmrgb.prepare.synthetic import write_test_video

    model, recipe = conv3d_at_defaults(window_frames=2 * fps)
    video = write_test_video(path, seconds=seconds, size=size, fps=fps)
    return measure_realtime(video, recipe, model, window=2.0, stride=1.0)
