"""Predefined splits: a train/ val/ (test/) folder layout, a CSV split column, train.py --split FILE; split.json
records the source; a predefined split with --folds is refused."""
import csv
import json
from pathlib import Path

import pytest

import train
from conftest import write_dataset
from fmrgb.training.splits import SplitError, predefined
from fmrgb.training.survey import list_data

FAST = ["--frames", "4", "--size", "8", "--num_workers", "0", "--device", "cpu", "--islearnrate_search", "false",
        "--epochs", "1"]


def run_train(*args):
    """train.main's exit status (returned, or SystemExit's for a usage error)."""
    try:
        return train.main(train.get_args_parser().parse_args([*FAST, *map(str, args)]))
    except SystemExit as e:
        return e.code


def rwf_layout(root, parts=("train", "val"), per_class=(8, 3)):
    """An RWF-2000-like folder: <part>/Fight and <part>/NonFight holding small records."""
    for part, n in zip(parts, per_class):
        write_dataset(root / part, per_class=n, T=4, H=8, W=8, classes=("Fight", "NonFight"), seed=len(part))
    return root


def names_under(root, part):
    return sorted(p.relative_to(root).as_posix() for p in (root / part).rglob("*.pt"))


def test_a_train_val_folder_layout_is_read_as_its_split(tmp_path):
    root = rwf_layout(tmp_path / "rwf")
    listing = list_data(root)
    assert listing.layout == "folder layout train/ val/"
    assert set(listing.labels) == {"Fight", "NonFight"}
    assert listing.parts == [n.split("/")[0] for n in listing.names]
    labels = listing.labels
    parts, note = predefined(labels, None, listing.parts, val_size=0.25, seed=0)
    assert sorted(listing.names[i] for i in parts["test"]) == names_under(root, "val")
    carved = [listing.names[i] for i in parts["val"]]
    assert len(carved) == 6 and all(n.startswith("train/") for n in carved)  # 0.25 of 22 files, from train/
    assert {labels[i] for i in parts["val"]} == {"Fight", "NonFight"}  # stratified
    assert "val is the test part" in note and "carved from train" in note


def test_the_carved_validation_keeps_groups_whole():
    labels = ["a"] * 8 + ["b"] * 8 + ["a", "b"]
    given = ["train"] * 16 + ["val", "val"]
    groups = [i // 2 for i in range(16)] + [100, 101]  # pairs of copies
    parts, _ = predefined(labels, groups, given, val_size=0.25, seed=3)
    val = set(parts["val"])
    assert val and all((i in val) == (i ^ 1 in val) for i in range(16))


def test_train_val_test_folders_are_used_as_they_are(tmp_path):
    root = rwf_layout(tmp_path / "d", parts=("train", "val", "test"), per_class=(6, 2, 2))
    listing = list_data(root)
    parts, note = predefined(listing.labels, None, listing.parts, val_size=0.2, seed=0)
    for part in ("train", "val", "test"):
        assert sorted(listing.names[i] for i in parts[part]) == names_under(root, part)
    assert note == ""


def test_a_file_outside_the_class_folders_of_a_layout_is_refused(tmp_path):
    root = rwf_layout(tmp_path / "d")
    (root / "train" / "Fight" / "Fight_00.pt").rename(root / "train" / "stray.pt")
    with pytest.raises(ValueError, match="stray.pt is not in a class folder"):
        list_data(root)


def test_a_csv_split_column(tmp_path):
    paths = write_dataset(tmp_path / "d", per_class=6, T=4, H=8, W=8)
    with open(tmp_path / "l.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for i, p in enumerate(paths):
            w.writerow([p.relative_to(tmp_path).as_posix(), p.parent.name, ["train", "train", "val", "test"][i % 4]])
    listing = list_data(tmp_path / "l.csv")
    assert listing.layout == "CSV split column" and listing.parts.count("test") == 3
    parts, note = predefined(listing.labels, None, listing.parts, val_size=0.2, seed=0)
    assert [listing.parts[i] for i in parts["val"]] == ["val"] * 3 and note == ""
    (tmp_path / "bad.csv").write_text(f"path,label,split\n{paths[0]},calm,holdout\n")
    with pytest.raises(ValueError, match="line 2: split 'holdout' is not train, val or test"):
        list_data(tmp_path / "bad.csv")


def test_a_split_that_loses_a_class_is_refused():
    with pytest.raises(SplitError, match="no file of class 'b' in test"):
        predefined(["a", "b", "a", "b", "a"], None, ["train", "train", "val", "val", "test"], val_size=0.2, seed=0)


def test_train_on_the_rwf_layout_tests_on_val_and_records_the_source(tmp_path, capsys):
    root = rwf_layout(tmp_path / "rwf")
    assert run_train("--data", root, "--out", tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert "split: folder layout train/ val/ (val is the test part; validation:" in out
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(saved["test"]) == names_under(root, "val")
    assert saved["source"].startswith("folder layout train/ val/")
    assert all(n.startswith("train/") for n in saved["train"] + saved["val"])
    # the same files through --split: used as they are, the source recorded
    assert run_train("--data", root, "--out", tmp_path / "again", "--split", tmp_path / "run" / "split.json") == 0
    again = json.loads((tmp_path / "again" / "split.json").read_text())
    assert {k: again[k] for k in ("train", "val", "test")} == {k: saved[k] for k in ("train", "val", "test")}
    assert again["source"] == f"--split {tmp_path / 'run' / 'split.json'} ({saved['source']})"


def test_split_file_with_missing_files_stops_the_run(tmp_path, capsys):
    root = write_dataset(tmp_path / "d", per_class=6, T=4, H=8, W=8)[0].parents[1]
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.pt"))
    split = {"train": names[:4] + names[6:10], "val": names[4:5] + names[10:11], "test": ["calm/gone.pt", names[11]]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    assert run_train("--data", root, "--out", tmp_path / "run", "--split", tmp_path / "split.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --split: 1 file(s) of the split are gone from --data: calm/gone.pt"]


def test_a_predefined_split_with_folds_is_refused_in_one_line(tmp_path, capsys):
    root = rwf_layout(tmp_path / "rwf")
    assert run_train("--data", root, "--out", tmp_path / "run", "--folds", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--folds: the data has its own split (folder layout train/ val/)" in err[0]
    (tmp_path / "s.json").write_text("{}")
    assert run_train("--data", root, "--out", tmp_path / "run", "--folds", "2", "--split", tmp_path / "s.json") == 2
    assert "--split gives one predefined split: leave out --folds" in capsys.readouterr().err
    assert not Path(tmp_path / "run").exists()
