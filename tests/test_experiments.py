"""Trustworthy experiments: leak-free grouped splits saved in split.json, exact resume, refusals of
mixed conversions and of splits that lose a class, the traps of small settings, --channels,
--positive_class, --folds and the sound ablation."""
import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import predict
import train
from conftest import load_pt, pt_dict, read_csv, write_dataset

FAST = ["--frames", "4", "--size", "8", "--num_workers", "0", "--device", "cpu", "--islearnrate_search", "false"]


def run_train(*args):
    """train.main's exit status (returned, or SystemExit's for a usage error)."""
    try:
        return train.main(train.get_args_parser().parse_args([*FAST, *map(str, args)]))
    except SystemExit as e:
        return e.code


def part_of(split_json):
    """{file name as listed: "train" | "val" | "test"} of a split.json."""
    saved = json.loads(Path(split_json).read_text())
    return {name: part for part in ("train", "val", "test") for name in saved[part]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    write_dataset(root, per_class=8, T=4, H=8, W=8)
    return root


# ----------------------------------------------------------------------------- leak-free splits

def test_copies_of_a_clip_never_straddle_the_split(tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, per_class=12, T=4, H=8, W=8)
    g = torch.Generator().manual_seed(5)
    pairs = []
    for cls in ("calm", "loud"):
        folder = data / cls
        for i in range(3):  # the same clip twice: identical frames under another name
            shutil.copyfile(folder / f"{cls}_{i:02d}.pt", folder / f"{cls}_{i:02d}_copy.pt")
            pairs.append((f"{cls}/{cls}_{i:02d}.pt", f"{cls}/{cls}_{i:02d}_copy.pt"))
        for i in range(3, 5):  # one file twice: a hard link
            os.link(folder / f"{cls}_{i:02d}.pt", folder / f"{cls}_{i:02d}_link.pt")
            pairs.append((f"{cls}/{cls}_{i:02d}.pt", f"{cls}/{cls}_{i:02d}_link.pt"))
        for i in range(3):  # an original and its resized copy: other frames, sources X.mp4 and resized_X.mp4
            big = torch.randint(0, 256, (4, 8, 8, 5), generator=g, dtype=torch.uint8)
            torch.save(pt_dict(big, source=f"clip{i}.mp4"), folder / f"clip{i}.mp4.pt")
            torch.save(pt_dict(big // 2, source=f"resized_clip{i}.mp4"), folder / f"resized_clip{i}.mp4.pt")
            pairs.append((f"{cls}/clip{i}.mp4.pt", f"{cls}/resized_clip{i}.mp4.pt"))
    assert run_train("--data", data, "--out", tmp_path / "run", "--epochs", "1", "--test_size", "0.25",
                     "--batch_size", "8") == 0
    where = part_of(tmp_path / "run" / "split.json")
    assert len(where) == 2 * (12 + 3 + 2 + 6)
    assert all(where[a] == where[b] for a, b in pairs), [(a, b, where[a], where[b]) for a, b in pairs]
    assert "46 files in 30 groups" in capsys.readouterr().out


def test_the_csv_group_column_keeps_groups_together_and_a_repeated_row_is_refused(tmp_path, capsys):
    paths = write_dataset(tmp_path / "data", per_class=12, T=4, H=8, W=8)
    listing = tmp_path / "labels.csv"
    rows = [(p.relative_to(tmp_path).as_posix(), p.parent.name, f"{p.parent.name}-src{k // 3}")
            for k, p in enumerate(paths)]  # clips cut from one source video: three per source
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "group"), *rows])
    assert run_train("--data", listing, "--out", tmp_path / "run", "--epochs", "1", "--test_size", "0.25") == 0
    where = part_of(tmp_path / "run" / "split.json")
    assert set(where) == {r[0] for r in rows}  # the paths as written in the CSV
    by_group = {}
    for name, _, group in rows:
        by_group.setdefault(group, set()).add(where[name])
    assert all(len(parts) == 1 for parts in by_group.values()), by_group

    with open(listing, "a", newline="") as f:
        csv.writer(f).writerow(rows[4])  # line 26 lists line 6's file again
    capsys.readouterr()
    assert run_train("--data", listing, "--out", tmp_path / "run2", "--epochs", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "line 26" in err and "line 6" in err and rows[4][0] in err and len(err.splitlines()) == 1


def test_stratified_group_kfold_tests_every_file_once_and_keeps_groups(tmp_path):
    from fmrgb.training.splits import kfold

    labels = ["a"] * 30 + ["b"] * 15
    groups = [i // 3 for i in range(45)]  # groups of three, never of two classes
    folds = kfold(labels, groups, folds=3, val_size=0.2, seed=1)
    tested = sorted(i for f in folds for i in f["test"])
    assert tested == list(range(45))
    for f in folds:
        assert sorted(f["train"] + f["val"] + f["test"]) == list(range(45))
        for part in ("train", "val", "test"):
            assert {labels[i] for i in f[part]} == {"a", "b"}
        for g in set(groups):
            assert len({p for p in ("train", "val", "test") for i in f[p] if groups[i] == g}) == 1


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("workers", ["0", "2"])  # with workers: their augmentation draws are restored too
def test_a_resumed_run_repeats_the_uninterrupted_one_and_names_the_flags_it_takes(tiny, tmp_path, capsys,
                                                                                   monkeypatch, workers):
    from fmrgb.training import engine

    common = ["--data", tiny, "--test_size", "0.25", "--patience", "10", "--learnmethod", "conv3d",
              "--usescheduler", "true", "--seed", "3", "--epochs", "4", "--batch_size", "4", "--lr", "3e-3",
              "--num_workers", workers]
    assert run_train(*common, "--out", tmp_path / "whole") == 0
    save = engine.save

    def save_then_ctrl_c(path, ckpt):  # Ctrl-C right after epoch 2 is saved
        save(path, ckpt)
        if Path(path).name == "last.pt" and ckpt.progress.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "save", save_then_ctrl_c)
    assert run_train(*common, "--out", tmp_path / "cut") == 130
    monkeypatch.undo()
    capsys.readouterr()
    # another --batch_size and --lr on the command line: the checkpoint's are the run's
    assert run_train("--data", tiny, "--resume", tmp_path / "cut" / "last.pt", "--epochs", "4", "--batch_size", "2",
                     "--lr", "0.1", "--num_workers", workers) == 0
    out = capsys.readouterr().out
    notes = [ln for ln in out.splitlines() if ln.startswith("note: --resume takes")]
    assert len(notes) == 1
    for flag in ("--batch_size 4", "--lr 0.003", "--seed 3", "--patience 10", "--usescheduler true",
                 "--weight_decay 0.01", "--learnmethod conv3d", "--frames 4", "--size 8", "--test_size 0.25"):
        assert notes[0].count(flag + ",") + notes[0].count(flag + " ") == 1, (flag, notes[0])
    whole, cut = (read_csv(tmp_path / d / "history.csv") for d in ("whole", "cut"))
    assert [h["epoch"] for h in cut] == ["1", "2", "3", "4"]
    for a, b in zip(whole, cut):
        for key in ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "steps"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-6, rel=0), (key, a, b)
    assert load_pt(tmp_path / "cut" / "last.pt")["train_args"]["batch_size"] == 4


def test_resume_keeps_its_split_ignores_new_files_and_refuses_when_files_are_gone(tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset(data, per_class=8, T=4, H=8, W=8)
    run = tmp_path / "run"
    assert run_train("--data", data, "--out", run, "--epochs", "1", "--test_size", "0.25") == 0
    before = (run / "split.json").read_text()
    write_dataset(data / "more", per_class=4, T=4, H=8, W=8, seed=9)  # new files of the same classes
    capsys.readouterr()
    assert run_train("--data", data, "--resume", run / "last.pt", "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert (run / "split.json").read_text() == before
    assert "note: 8 file(s) under --data are not in the resumed run's split.json" in out
    assert load_pt(run / "last.pt")["epoch"] == 2

    gone = json.loads(before)["test"][0]
    (data / gone).unlink()
    assert run_train("--data", data, "--resume", run / "last.pt", "--epochs", "3") == 2
    err = capsys.readouterr().err
    assert gone in err and "gone" in err


def test_a_corrupt_best_pt_beside_the_resumed_checkpoint_exits_2(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train("--data", tiny, "--out", run, "--epochs", "1", "--test_size", "0.25") == 0
    (run / "best.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert run_train("--data", tiny, "--resume", run / "last.pt", "--epochs", "2") == 2
    err = capsys.readouterr().err.strip()
    assert "best.pt" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("odd, says", [
    (dict(audiomethod="mel"), "audiomethod mel"),
    (dict(frequency_param=50), "frequency_param 50"),
    (dict(channels=["grey", "red", "green", "amplitude", "frequency"]), "channels grey,red"),
    (None, "unnamed channels"),
])
def test_files_converted_differently_are_refused_naming_one_of_each(tmp_path, capsys, odd, says):
    data = tmp_path / "data"
    write_dataset(data, per_class=6, T=4, H=8, W=8)
    frames = load_pt(data / "loud" / "loud_00.pt")["frames"]
    torch.save(frames.clone() if odd is None else pt_dict(frames, **odd), data / "loud" / "zz_odd.pt")
    assert run_train("--data", data, "--out", tmp_path / "run", "--epochs", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "mixed conversions" in err and "zz_odd.pt" in err and "calm_00.pt" in err and says in err, err


def test_a_split_that_loses_a_class_is_refused_with_the_smallest_workable_test_size(tmp_path, capsys):
    paths = write_dataset(tmp_path / "data", per_class=30, T=4, H=8, W=8, classes=("common", "rare"))
    rare = [p for p in paths if p.parent.name == "rare"][:9]
    rows = [(p.relative_to(tmp_path).as_posix(), p.parent.name, "") for p in paths if p.parent.name == "common"]
    rows += [(p.relative_to(tmp_path).as_posix(), "rare", f"take{k // 3}") for k, p in enumerate(rare)]
    listing = tmp_path / "labels.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "group"), *rows])  # rare: 3 groups of 3 clips
    assert run_train("--data", listing, "--out", tmp_path / "run", "--epochs", "1", "--test_size", "0.1") == 2
    err = capsys.readouterr().err.strip()
    assert "class 'rare'" in err and "common=30, rare=9" in err and len(err.splitlines()) == 1, err
    workable = err.rsplit("the smallest workable --test_size is ", 1)[1]
    assert 0.1 < float(workable) < 0.5
    assert run_train("--data", listing, "--out", tmp_path / "run", "--epochs", "1", "--test_size", workable) == 0
    where = part_of(tmp_path / "run" / "split.json")
    assert {where[r[0]] for r in rows if r[1] == "rare"} == {"train", "val", "test"}


def test_metrics_json_is_strict_json_without_nan(tmp_path):
    from fmrgb.files import write_json

    write_json(tmp_path / "m.json", {"roc_auc": float("nan"), "folds": [{"x": float("inf")}, {"x": 0.5}]})
    strict = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert strict == {"roc_auc": None, "folds": [{"x": None}, {"x": 0.5}]}


# ----------------------------------------------------------------------------- crashes and traps

def test_conv3d_trains_when_the_last_batch_would_hold_one_clip(tmp_path):
    from fmrgb.training.distributed import DistContext
    from fmrgb.training.sampling import make_loader
    from torch.utils.data import TensorDataset

    write_dataset(tmp_path / "data", per_class=10, T=4, H=8, W=8)  # 20 files: 12 train / 4 val / 4 test
    # batch 11: the last training batch would hold one clip, and BatchNorm over one value fails
    assert run_train("--data", tmp_path / "data", "--out", tmp_path / "run", "--epochs", "1", "--batch_size", "11",
                     "--learnmethod", "conv3d") == 0
    assert read_csv(tmp_path / "run" / "history.csv")[0]["steps"] == "1"
    ds = TensorDataset(torch.arange(26))  # under DDP: 13 items per process, the 4th step of 4 holds one
    steps = [[b[0].tolist() for b in make_loader(ds, batch_size=4, shuffle=True, seed=0, num_workers=0,
                                                 ctx=DistContext(ddp=True, rank=r, world_size=2))] for r in (0, 1)]
    assert [len(s) for s in steps] == [3, 3] and all(len(b) == 4 for s in steps for b in s)


def test_vivit_with_a_size_off_its_patch_grid_is_refused_before_the_statistics_pass(tiny, tmp_path, monkeypatch,
                                                                                     capsys):
    import dataset

    def no_stats(*a, **k):
        raise AssertionError("the statistics pass ran")

    monkeypatch.setattr(dataset, "compute_stats", no_stats)
    args = train.get_args_parser().parse_args(["--data", str(tiny), "--out", str(tmp_path / "run"),
                                               "--learnmethod", "vivit", *FAST[:2], "--size", "12", *FAST[4:]])
    with pytest.raises(SystemExit) as e:
        train.main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--size 12" in err and "patch size 8" in err and "--size 8 or 16" in err


def test_vivit_time_positions_resize_without_blending_the_cls_position():
    from model import resize_positions

    pos = torch.randn(1, 5, 16)  # CLS + 4 time slots
    out = resize_positions(pos, 7)
    assert out.shape == (1, 8, 16)
    torch.testing.assert_close(out[:, 0], pos[:, 0])          # CLS kept apart
    torch.testing.assert_close(out[:, 1], pos[:, 1])          # the first time step is the first slot's
    torch.testing.assert_close(out[:, -1], pos[:, -1])
    torch.testing.assert_close(out[:, 3], pos[:, 2])          # time step j of 7 sits at slot j / 2 of 4
    torch.testing.assert_close(out[:, 4], (pos[:, 2] + pos[:, 3]) / 2)
    assert resize_positions(pos, 4) is pos


def test_a_huge_learning_rate_stops_with_one_line_and_status_1(tiny, tmp_path, capsys):
    assert run_train("--data", tiny, "--out", tmp_path / "run", "--epochs", "2", "--test_size", "0.25",
                     "--lr", "1e38") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training stopped: ") and "lower --lr" in err[0], err
    assert run_train("--data", tiny, "--out", tmp_path / "run", "--epochs", "1", "--lr", "-1") == 2


def test_predict_names_an_unreadable_file_once(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train("--data", tiny, "--out", run, "--epochs", "1", "--test_size", "0.25") == 0
    bad = tmp_path / "bad" / "x.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"junk")
    capsys.readouterr()
    status = predict.main(predict.get_args_parser().parse_args(
        ["--model", str(run / "best.pt"), "--data", str(bad.parent), "--out", str(tmp_path / "p.csv"),
         "--device", "cpu"]))
    err = capsys.readouterr().err.strip()
    assert status == 1 and err.startswith(f"error: {bad}: unreadable") and err.count(str(bad)) == 1, err


# ----------------------------------------------------------------------------- channels, positive class

def test_channels_and_positive_class_reach_the_checkpoint_metrics_and_predict(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train("--data", tiny, "--out", run, "--epochs", "2", "--test_size", "0.25", "--channels",
                     "amplitude,frequency", "--positive_class", "calm") == 0
    ckpt = load_pt(run / "best.pt")
    assert ckpt["use_channels"] == ["amplitude", "frequency"] and ckpt["model_kwargs"]["in_channels"] == 2
    assert len(ckpt["mean"]) == 2 and ckpt["channels"] == ["red", "green", "blue", "amplitude", "frequency"]
    m = json.loads((run / "metrics.json").read_text())
    assert m["positive_class"] == "calm" and m["channels"] == ["amplitude", "frequency"]
    rows = read_csv(run / "test_predictions.csv")
    hits = sum(r["true"] == r["predicted"] == "calm" for r in rows)
    assert m["recall"] == pytest.approx(hits / sum(r["true"] == "calm" for r in rows))
    assert predict.main(predict.get_args_parser().parse_args(
        ["--model", str(run / "best.pt"), "--data", str(tiny), "--out", str(tmp_path / "p.csv"), "--device", "cpu"])) == 0
    got = {Path(r["path"]).name: r for r in read_csv(tmp_path / "p.csv")}
    for r in rows:  # predict applies the same two channels
        assert float(got[Path(r["path"]).name]["p_calm"]) == pytest.approx(float(r["p_calm"]), abs=1e-5)
    capsys.readouterr()
    assert run_train("--data", tiny, "--out", tmp_path / "r2", "--epochs", "1", "--channels", "red,mel") == 2
    assert "'mel'" in (err := capsys.readouterr().err) and "red,green,blue,amplitude,frequency" in err
    assert run_train("--data", tiny, "--out", tmp_path / "r3", "--epochs", "1", "--positive_class", "noisy") == 2
    assert "calm, loud" in capsys.readouterr().err


# ----------------------------------------------------------------------------- folds and the ablation

def test_folds_write_each_fold_and_the_mean_and_std(tiny, tmp_path):
    run = tmp_path / "run"
    assert run_train("--data", tiny, "--out", run, "--epochs", "1", "--folds", "3", "--val_size", "0.2") == 0
    tested = []
    for k in range(3):
        assert (run / f"fold_{k}" / "best.pt").is_file() and (run / f"fold_{k}" / "metrics.json").is_file()
        tested += json.loads((run / f"fold_{k}" / "split.json").read_text())["test"]
    assert sorted(tested) == sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*.pt"))
    rows = read_csv(run / "folds.csv")
    assert [r["fold"] for r in rows] == ["0", "1", "2"] and {"accuracy", "f1", "roc_auc", "best_epoch"} <= set(rows[0])
    m = json.loads((run / "metrics.json").read_text())
    accs = [float(r["accuracy"]) for r in rows]
    assert len(m["folds"]) == 3 and m["mean"]["accuracy"] == pytest.approx(sum(accs) / 3)
    assert m["std"]["accuracy"] == pytest.approx(torch.tensor(accs, dtype=torch.float64).std().item())


def test_the_ablation_trains_the_same_folds_on_three_channel_sets(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train("--data", tiny, "--out", run, "--epochs", "1", "--folds", "2", "--ablation") == 0
    out = capsys.readouterr().out
    rows = read_csv(run / "ablation.csv")
    assert list(rows[0]) == ["channels", "fold", "accuracy", "balanced_accuracy", "f1", "roc_auc"]
    assert [(r["channels"], r["fold"]) for r in rows] == [
        (c, k) for c in ("red+green+blue+amplitude+frequency", "red+green+blue", "amplitude+frequency")
        for k in ("0", "1")]
    assert (run / "ablation.png").stat().st_size > 0
    for k in range(2):  # the same test files for every set
        splits = {(run / s / f"fold_{k}" / "split.json").read_text() for s in ("all", "picture", "sound")}
        assert len(splits) == 1
    assert load_pt(run / "sound" / "fold_0" / "best.pt")["use_channels"] == ["amplitude", "frequency"]
    m = json.loads((run / "metrics.json").read_text())
    d = m["differences"]["all - picture"]["accuracy"]
    accs = {c: [float(r["accuracy"]) for r in rows if r["channels"] == c] for c in ("red+green+blue+amplitude+frequency",
                                                                                   "red+green+blue")}
    diffs = [a - b for a, b in zip(*accs.values())]
    assert d["mean"] == pytest.approx(sum(diffs) / 2)
    assert "all - picture" in out and "all - sound" in out and "±" in out
