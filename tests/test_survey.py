"""fmrgb/training/survey.py: listing --data (a folder or a CSV), reading and checking the files, clear errors."""
import csv

import pytest
import torch

import train
from conftest import pt_dict, write_dataset
from fmrgb.prepare.record import load_record
from fmrgb.training.survey import inspect_files, list_data, survey_data


# ----------------------------------------------------------------------------- listing

def test_folder_labels_are_parent_folders_recursively_and_csv_paths_are_relative_to_csv(tmp_path):
    write_dataset(tmp_path / "d" / "nested", per_class=2, classes=("b_class", "a_class"))
    listing = list_data(tmp_path / "d")
    paths, labels = listing.paths, listing.labels
    assert len(paths) == 4 and sorted(set(labels)) == ["a_class", "b_class"]
    assert all(p.parent.name == lab for p, lab in zip(paths, labels))

    csv_path = tmp_path / "lists" / "labels.csv"
    csv_path.parent.mkdir()
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerow(["../d/nested/a_class/a_class_00.pt", "yes"])          # relative to the CSV's folder
        w.writerow([str(tmp_path / "d/nested/b_class/b_class_01.pt"), "no"])  # absolute
    listing = list_data(csv_path)
    paths, labels = listing.paths, listing.labels
    assert labels == ["yes", "no"]
    assert all(p.is_file() for p in paths)


def test_csv_without_the_columns_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("file,class\na.pt,x\n")
    with pytest.raises(ValueError, match="path,label"):
        list_data(p)


# ----------------------------------------------------------------------------- reading and checking

def test_bare_uint8_tensor_is_accepted_with_generic_channel_names(tmp_path):
    p = tmp_path / "bare.pt"
    torch.save(torch.zeros(5, 8, 8, 3, dtype=torch.uint8), p)
    clip, meta = load_record(p)
    assert clip.shape == (5, 8, 8, 3) and meta["channels"] == ["c0", "c1", "c2"]
    info = inspect_files([p])
    assert info["channels"] == ["c0", "c1", "c2"] and info["pt_frames"] == 5 and info["audiomethod"] is None


def test_mixed_channel_counts_name_one_file_of_each(tmp_path):
    p5 = tmp_path / "five.pt"
    p3 = tmp_path / "three.pt"
    torch.save(pt_dict(torch.zeros(4, 8, 8, 5, dtype=torch.uint8)), p5)
    torch.save(pt_dict(torch.zeros(4, 8, 8, 3, dtype=torch.uint8)), p3)
    with pytest.raises(ValueError, match="mixed channel counts") as e:
        inspect_files([p5, p3])
    assert "five.pt" in str(e.value) and "three.pt" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content,says", [(b"not a torch file", "weights_only"),
                                           ("cut", "truncated or not a torch file"),
                                           (None, "expected uint8 frames")])
def test_an_unreadable_file_is_named(tmp_path, content, says):
    p = tmp_path / "broken.pt"
    if content is None:
        torch.save({"frames": torch.zeros(3, 4, 4, 3)}, p)  # float frames: not FMRGB
    elif content == "cut":  # a copy that stopped half-way
        torch.save(pt_dict(torch.zeros(4, 8, 8, 5, dtype=torch.uint8)), p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    else:
        p.write_bytes(content)
    with pytest.raises(RuntimeError, match="broken.pt: unreadable") as e:
        inspect_files([p])
    assert "\n" not in str(e.value) and says in str(e.value)


# ----------------------------------------------------------------------------- nothing left out silently

def test_a_symlinked_class_folder_is_passed_on_not_silently_left_out(tmp_path):
    write_dataset(tmp_path / "data", per_class=3)
    write_dataset(tmp_path / "elsewhere", per_class=3, classes=("extra",))
    (tmp_path / "data" / "extra").symlink_to(tmp_path / "elsewhere" / "extra")
    skipped = []
    survey = survey_data(tmp_path / "data", on_skip=lambda folder, why: skipped.append((folder, why)))
    assert survey.classes == ["calm", "loud"]  # a link is never followed: it may lead out of the data
    assert skipped == [(tmp_path / "data" / "extra", "folder is a symlink, not followed: its files are left out")]


def test_train_names_a_symlinked_class_folder_of_its_data(tmp_path, capsys):
    write_dataset(tmp_path / "data", per_class=3)
    write_dataset(tmp_path / "elsewhere", per_class=3, classes=("extra",))
    (tmp_path / "data" / "extra").symlink_to(tmp_path / "elsewhere" / "extra")
    args = train.get_args_parser().parse_args(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                               "--device", "cpu", "--positive_class", "extra"])
    with pytest.raises(SystemExit) as e:  # stops after the survey: "extra" is not a class of the data
        train.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'data' / 'extra'}: folder is a symlink, not followed" in err
