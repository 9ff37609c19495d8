"""fmrgb.streaming.realtime: the real-time factor of predict.py --window and its parts, as bench.py reports them."""
import pytest

from conftest import make_video
from fmrgb.streaming.realtime import conv3d_at_defaults, measure_realtime


def test_the_real_time_factor_and_its_parts(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=4, size=(80, 60), fps=30)
    model, recipe = conv3d_at_defaults(window_frames=60)
    rt = measure_realtime(video, recipe, model, window=2.0, stride=1.0)
    assert rt.video_s == pytest.approx(4.0) and rt.windows == 3
    assert rt.factor == pytest.approx(4.0 / rt.wall_s["all"])
    assert rt.cpu_factor == pytest.approx(4.0 / rt.cpu_s["all"])
    parts = rt.parts_cpu_s
    assert set(parts) == {"decode", "windows", "model"}
    assert sum(parts.values()) == pytest.approx(rt.cpu_s["all"])
    assert parts["decode"] > 0 and parts["model"] > 0   # the Conv3D costs CPU, ffmpeg's decoding is counted
    names = [r[0] for r in rt.rows()]
    assert names[0].startswith("predict --window 2 --stride 1") and len(names) == 5
    assert rt.summary()["factor"] == rt.factor
