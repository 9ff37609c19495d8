"""predict.py: .pt files, videos converted in memory, folders, failures."""
from pathlib import Path

import pytest
import torch

import predict
from conftest import CHANNELS5, ROOT, load_pt, pt_dict, read_csv, run_script, write_dataset
from dataset import FMRGBDataset, compute_stats
from fmrgb.training import checkpoint
from fmrgb.training.checkpoint import Recipe, RecordSettings, RunArgs
from fmrgb.training.survey import inspect_files
from model import INPUT_LAYOUT, build_model


def make_checkpoint(path, pt_paths, *, name="conv3d", frames=6, size=16, seed=0):
    """A train.py checkpoint (untrained weights, no training progress) whose recipe comes from `pt_paths`:
    (the model, its checkpoint.Recipe)."""
    info = inspect_files(pt_paths)
    mean, std = compute_stats(pt_paths, frames=frames, size=size)
    kwargs = {"in_channels": len(info["channels"]), "num_classes": 2, "frames": frames, "size": size}
    torch.manual_seed(seed)
    model = build_model(name, **kwargs).eval()
    recipe = Recipe.of(learnmethod=name, model_kwargs=kwargs, classes=["calm", "loud"], record=RecordSettings.of(info),
                       mean=mean, std=std, frames=frames, size=size, lr=1e-3, run=RunArgs({"seed": seed}))
    checkpoint.save(path, checkpoint.Checkpoint(recipe, model.state_dict()))
    return model, recipe


def run_predict(*args):
    """predict.main's exit status (returned, or SystemExit's for a usage error)."""
    try:
        return predict.main(predict.get_args_parser().parse_args([str(a) for a in args]))
    except SystemExit as e:
        return e.code


def rows_by_name(path):
    """A predictions CSV's rows keyed by file name."""
    return {Path(r["path"]).name: r for r in read_csv(path)}


def test_predict_on_pt_files_equals_the_models_output(tmp_path, capsys):
    paths = write_dataset(tmp_path / "data", per_class=2, T=8, H=20, W=20)
    model, recipe = make_checkpoint(tmp_path / "best.pt", paths, name="vivit")
    out = tmp_path / "pred.csv"
    assert run_predict("--model", tmp_path / "best.pt", "--data", tmp_path / "data", "--out", out) == 0
    rows = rows_by_name(out)
    assert len(rows) == 4
    ds = FMRGBDataset(paths, [0] * 4, frames=6, size=16, mean=list(recipe.mean), std=list(recipe.std),
                      layout=INPUT_LAYOUT["vivit"])
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([ds[i][0] for i in range(4)])).double(), 1)
    for p, pr in zip(paths, probs):
        r = rows[p.name]
        assert float(r["p_loud"]) == pytest.approx(pr[1].item(), abs=1e-6)
        assert r["predicted"] == ["calm", "loud"][int(pr.argmax())]
    printed = capsys.readouterr().out
    assert all(p.name in printed for p in paths)


def test_a_failing_file_is_reported_and_the_run_goes_on(tmp_path, capsys):
    paths = write_dataset(tmp_path / "data", per_class=1, T=4, H=16, W=16)
    make_checkpoint(tmp_path / "best.pt", paths)
    (tmp_path / "data/calm/zz_broken.pt").write_bytes(b"junk")
    out = tmp_path / "pred.csv"
    assert run_predict("--model", tmp_path / "best.pt", "--data", tmp_path / "data", "--out", out) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "zz_broken.pt" in err
    assert set(rows_by_name(out)) == {p.name for p in paths}


def test_a_pt_made_with_other_settings_is_refused_by_name_and_the_others_go_on(tmp_path, capsys):
    paths = write_dataset(tmp_path / "data", per_class=1, T=4, H=16, W=16)  # audiomethod simple, frequency 100
    make_checkpoint(tmp_path / "best.pt", paths)
    frames = load_pt(paths[0])["frames"]
    odd = tmp_path / "odd"
    odd.mkdir()
    torch.save(pt_dict(frames, audiomethod="mel"), odd / "mel.pt")
    torch.save(pt_dict(frames, frequency_param=50), odd / "freq50.pt")
    torch.save(pt_dict(frames, channels=CHANNELS5[::-1]), odd / "reordered.pt")
    torch.save(pt_dict(frames[..., :3], channels=CHANNELS5[:3]), odd / "three.pt")
    torch.save(frames.clone(), odd / "bare.pt")  # no names, no settings: accepted on the channel count
    torch.save(pt_dict(frames), odd / "same.pt")
    out = tmp_path / "pred.csv"
    assert run_predict("--model", tmp_path / "best.pt", "--data", odd, "--out", out) == 1
    err = capsys.readouterr().err
    lines = {ln.split(": ")[1].rsplit("/", 1)[-1]: ln for ln in err.strip().splitlines()}
    assert set(lines) == {"mel.pt", "freq50.pt", "reordered.pt", "three.pt"}, err
    assert all(ln.startswith("error: ") for ln in lines.values())
    assert lines["mel.pt"].endswith(": made with audiomethod mel, the model was trained on simple")
    assert lines["freq50.pt"].endswith(": made with frequency_param 50, the model was trained on 100")
    assert "has channels frequency, amplitude, blue, green, red, the model was trained on red, green" in \
        lines["reordered.pt"]
    assert lines["three.pt"].endswith(": has 3 channels, the model takes 5")
    assert set(rows_by_name(out)) == {"bare.pt", "same.pt"}


def test_a_model_trained_on_unnamed_channels_takes_named_files_of_that_count():
    record = RecordSettings(("c0", "c1", "c2", "c3", "c4"), audiomethod=None, frequency_param=None)
    predict.check_recipe({"channels": CHANNELS5, "audiomethod": "mel", "frequency_param": 7}, 5, record)
    with pytest.raises(ValueError, match="has 3 channels, the model takes 5"):
        predict.check_recipe({"channels": ["c0", "c1", "c2"]}, 3, record)


def test_ctrl_c_returns_130_and_says_interrupted(tmp_path, monkeypatch, capsys):
    paths = write_dataset(tmp_path / "data", per_class=1, T=4, H=16, W=16)
    make_checkpoint(tmp_path / "best.pt", paths)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "predict_clip", interrupt)
    out = tmp_path / "pred.csv"
    assert run_predict("--model", tmp_path / "best.pt", "--data", tmp_path / "data", "--out", out) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"
    assert not out.exists()


def test_missing_model_or_data_exit_2(tmp_path):
    r = run_script("predict.py", "--model", tmp_path / "no.pt", "--data", tmp_path, timeout=120)
    assert r.returncode == 2 and "no.pt" in r.stderr


def test_predict_on_a_video_equals_predict_on_its_pt(tmp_path, video_factory):
    folder = tmp_path / "videos"
    video = video_factory("videos/clip.mp4", seconds=1.0, size=(64, 48), fps=20)
    video_factory("videos/other.mp4", seconds=1.5, size=(64, 48), fps=20, audio="0.3*sin(2*PI*880*t)")
    r = run_script("create_fmrgbdata.py", "--target", folder, "--frequency_param", "50", "--frames", "12", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    pts = sorted(folder.glob("*.pt"))
    assert len(pts) == 2
    _, recipe = make_checkpoint(tmp_path / "best.pt", pts, name="convlstm", frames=5)
    assert recipe.record.pt_frames == 12 and recipe.record.frequency_param == 50
    before = sorted(p.name for p in folder.iterdir())
    out_v, out_p = tmp_path / "v.csv", tmp_path / "p.csv"
    assert run_predict("--model", tmp_path / "best.pt", "--data", video, "--out", out_v) == 0
    assert run_predict("--model", tmp_path / "best.pt", "--data", video.with_name("clip.mp4.pt"), "--out",
                       out_p) == 0
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written beside the video
    v, p = rows_by_name(out_v)["clip.mp4"], rows_by_name(out_p)["clip.mp4.pt"]
    assert v["predicted"] == p["predicted"]
    assert float(v["p_calm"]) == pytest.approx(float(p["p_calm"]), abs=1e-6)
    # a folder run classifies each clip once: a video beside its .pt through the .pt, a lone video itself
    assert run_predict("--model", tmp_path / "best.pt", "--data", folder, "--out", tmp_path / "all.csv") == 0
    assert set(rows_by_name(tmp_path / "all.csv")) == {"clip.mp4.pt", "other.mp4.pt"}
    (folder / "other.mp4.pt").unlink()
    assert run_predict("--model", tmp_path / "best.pt", "--data", folder, "--out", tmp_path / "all.csv") == 0
    assert set(rows_by_name(tmp_path / "all.csv")) == {"clip.mp4.pt", "other.mp4"}
