"""The sound of a kept frame describes its whole time span wherever fewer frames are kept than the clip
has: a --frames conversion (timeline.StretchPlan.spans) and training's, the cache's and predict.py's time
steps (fmrgb.training.clip): the RMS of the span's amplitudes, the frequency of its loudest frame."""
import numpy as np
import pytest
import torch
from conftest import make_video, pt_dict

from dataset import FMRGBDataset
from fmrgb.prepare import convert, sound, timeline
from fmrgb.training.cache import ClipCache
from fmrgb.training.clip import ClipRecipe, small_clip, transform

BURST = "0.5*sin(2*PI*440*t)*between(t\\,0.17\\,0.23)"  # 60 ms of tone at frames 5-6 of 30 fps, else silence


def test_a_span_has_the_rms_of_its_amplitudes_and_the_frequency_of_its_loudest_frame():
    amp, freq = sound.span_sound(np.array([0, 255, 0, 0, 100, 100]), np.array([9, 75, 9, 9, 40, 50]),
                                 lo=np.array([0, 3]), hi=np.array([3, 6]))
    assert amp.tolist() == [round(255 / np.sqrt(3)), 82] and freq.tolist() == [75, 40]  # 82: RMS of 0, 100, 100


@pytest.mark.parametrize("n_in, n_out", [(150, 16), (90, 9), (31, 30), (7, 1), (10, 10), (5, 12)])
def test_the_spans_of_a_shortened_clip_share_out_every_source_frame_once(n_in, n_out):
    plan = timeline.stretch_plan(n_in, n_out)
    lo, hi = plan.spans()
    assert np.all((lo <= plan.nearest) & (plan.nearest < hi))  # each span holds its own frame
    if n_out <= n_in:
        assert lo[0] == 0 and hi[-1] == n_in and np.array_equal(hi[:-1], lo[1:])


def test_a_short_burst_between_the_kept_frames_reaches_a_frames_n_record(tmp_path):
    video = make_video(tmp_path / "burst.mp4", seconds=3, size=(32, 24), audio=BURST)
    full = convert.convert_video(video)["frames"].numpy()
    kept = timeline.stretch_plan(90, 9).nearest  # 0, 11, 22, ...: none of them sounds
    assert full[:, 0, 0, 3].max() == 255 and not full[kept, 0, 0, 3].any()
    rec = convert.convert_video(video, frames=9)["frames"].numpy()
    assert rec[0, 0, 0, 3] > 100 and rec[0, 0, 0, 4] == full[full[:, 0, 0, 3].argmax(), 0, 0, 4]
    assert not rec[2:, ..., 3].any()  # and it stays in its own span
    assert np.array_equal(rec, timeline.stretch_time(full, 9, sound_channels=2, planes=2))


def burst_record(path, T=48):
    """A record whose amplitude (and frequency) sounds only at frame 3, between the frames a 6-step clip samples."""
    frames = torch.zeros((T, 12, 12, 5), dtype=torch.uint8)
    frames[..., :3] = 90
    frames[3, ..., 3], frames[3, ..., 4] = 255, 75
    torch.save(pt_dict(frames), path)
    return path


def test_a_short_burst_between_sampled_frames_reaches_training_and_prediction_alike(tmp_path):
    path = burst_record(tmp_path / "b.pt")
    recipe = ClipRecipe(frames=6, size=8)
    frames = torch.load(path, weights_only=True)["frames"]
    assert 3 not in recipe.indices(48).tolist()  # no sampled candidate is the burst's frame
    small = small_clip(frames, recipe, names=pt_dict(frames)["channels"])
    assert small[:3, 3].min() == round(255 / np.sqrt(8)) and small[:3, 4].min() == 75  # segment 0: frames 0-7
    assert not small[3:, 3:].any()
    mean, std = [0.0] * 5, [1.0] * 5
    ds = FMRGBDataset([path], [0], frames=6, size=8, mean=mean, std=std, layout="cthw")
    cached = FMRGBDataset([path], [0], frames=6, size=8, mean=mean, std=std, layout="cthw",
                          cache=ClipCache(tmp_path / "cache", recipe, settle_s=0))
    predicted = transform(frames, frames=6, size=8, mean=mean, std=std, layout="cthw",
                          names=pt_dict(frames)["channels"])
    assert torch.equal(ds[0][0], predicted) and torch.equal(cached[0][0], predicted)
    assert predicted[3, 0].max() > 0  # the evaluation's centre frame of segment 0 carries the burst
