"""One sound, one value at any frame rate: the analysis rate is fixed in Hz for the whole run, each frame
owns the samples of its own time span, the records say which scale they are on, and training refuses
files made on different scales."""
import numpy as np
import pytest
import torch
from conftest import load_pt, make_video, pt_dict, write_dataset

import predict
import train
from fmrgb.prepare import convert, sound
from fmrgb.training.checkpoint import RecordSettings
from fmrgb.prepare.record import Recipe, SoundScale, recipe_problem
from fmrgb.training.survey import check_same_conversion

FP = 100
RATES = (24, 25, 30, 60)


def tone_at(freq, seconds=2.0, sr=3000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fused(fps, method, height=1):
    n = int(2 * fps) - 2
    return sound.fuse(np.zeros((n, height, 1, 5), np.uint8), tone_at(440), fps=fps, audiomethod=method,
                      frequency_param=FP)


def test_the_analysis_rate_is_fixed_in_hz_and_255_is_its_nyquist():
    assert sound.analysis_rate(FP) == 3000 and sound.analysis_rate(50) == 1500  # 30 x --frequency_param
    assert Recipe(frequency_param=FP).scale == SoundScale(3000, "linear")


def test_a_440_hz_tone_gives_one_frequency_value_at_24_25_30_and_60_fps():
    values = {fps: set(fused(fps, "simple")[:, 0, 0, 4].tolist()) for fps in RATES}
    assert all(len(v) == 1 for v in values.values()), values  # every frame of the steady tone alike
    assert len({v.pop() for v in values.values()}) == 1
    assert fused(30, "simple")[0, 0, 0, 4] == round(440 / 1500 * 255)  # 75: the linear scale, 255 = 1500 Hz


def test_a_440_hz_tone_lights_one_mel_band_at_24_25_30_and_60_fps():
    # 64 rows, one per mel band (frequency_param 100: 64 bands), the highest at the top
    bands = {fps: int(np.argmax(fused(fps, "mel", height=64)[int(fps), :, 0, 4])) for fps in RATES}
    assert len(set(bands.values())) == 1, bands


@pytest.mark.parametrize("fps", [24, 60])
def test_each_frame_owns_the_samples_of_its_own_time_span(fps):
    sr = sound.analysis_rate(FP)
    bounds = sound.frame_bounds(10, fps, sr)
    assert np.all(np.diff(bounds) == sr // fps)  # 125 samples at 24 fps, 50 at 60: no gap, no overlap
    audio = np.zeros(sr, np.float32)
    audio[bounds[7] + 2] = 1.0  # a click early in frame 7's span (beyond frequency_param samples at 24 fps)
    audio[bounds[3] + sr // fps - 3] = 1.0  # and one late in frame 3's
    amp = sound.fuse(np.zeros((10, 1, 1, 5), np.uint8), audio, fps=fps, audiomethod="simple",
                     frequency_param=FP)[:, 0, 0, 3]
    assert np.flatnonzero(amp).tolist() == [3, 7]


def test_a_record_stores_its_scale_and_one_made_before_the_scale_is_made_again(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=0.5, size=(32, 24), fps=25)
    record = convert.convert_video(video)
    assert record["sound_scale"] == {"sample_rate": 3000, "axis": "linear"} and record["sample_rate"] == 3000
    assert SoundScale.of(record) == SoundScale(3000)
    old = {k: v for k, v in record.items() if k != "sound_scale"} | {"sample_rate": 2500}  # 25 fps x 100
    assert SoundScale.of(old) == SoundScale(2500, "linear", fixed=False)
    assert recipe_problem(record, Recipe()) is None
    assert recipe_problem(old, Recipe()) == "made on another sound scale"


def test_files_on_other_scales_do_not_stack():
    new = pt_dict(torch.zeros(1, 1, 1, 5, dtype=torch.uint8), sound_scale={"sample_rate": 3000, "axis": "linear"})
    old = pt_dict(torch.zeros(1, 1, 1, 5, dtype=torch.uint8), sample_rate=2500)
    check_same_conversion(["a.pt", "b.pt"], [new, dict(new)])
    with pytest.raises(ValueError, match="sound scale") as e:
        check_same_conversion(["a.pt", "b.pt"], [new, old])
    assert "0-1500 Hz" in str(e.value) and "follows the frame rate" in str(e.value)


def test_training_refuses_files_made_on_different_scales_with_one_line(tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, per_class=6, T=4, H=8, W=8)
    frames = load_pt(data / "loud" / "loud_00.pt")["frames"]
    torch.save(pt_dict(frames, sound_scale={"sample_rate": 3000, "axis": "linear"}), data / "loud" / "zz_new.pt")
    args = ["--data", data, "--out", tmp_path / "run", "--epochs", "1", "--frames", "4", "--size", "8",
            "--batch_size", "4", "--num_workers", "0"]
    with pytest.raises(SystemExit) as e:
        train.main(train.get_args_parser().parse_args(list(map(str, args))))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "sound scale" in err and "zz_new.pt" in err, err


def test_predict_refuses_a_record_on_another_rate_than_the_training_files():
    trained = RecordSettings(("red", "green", "blue", "amplitude", "frequency"), "simple", 100, 3000)
    predict.check_recipe(pt_dict(torch.zeros(1, 1, 1, 5, dtype=torch.uint8), sample_rate=3000), 5, trained)
    with pytest.raises(ValueError, match="made with sample_rate 2500, the model was trained on 3000"):
        predict.check_recipe(pt_dict(torch.zeros(1, 1, 1, 5, dtype=torch.uint8), sample_rate=2500), 5, trained)
