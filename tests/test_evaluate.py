"""predict.py on labelled data: the true class in its CSV, and training's metrics, confusion matrix and ROC
curve beside --out as <out>_metrics.json, <out>_confusion.png and <out>_roc.png."""
import csv
import json

import pytest

import predict
import train
from conftest import read_csv, write_dataset


def run_predict(*args):
    """predict.main's exit status (returned, or SystemExit's for a usage error)."""
    try:
        return predict.main(predict.get_args_parser().parse_args([str(a) for a in args]))
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short train.py run on two classes (calm, loud): its folder and its data folder."""
    root = tmp_path_factory.mktemp("eval")
    write_dataset(root / "data", per_class=8, T=4, H=8, W=8)
    args = train.get_args_parser().parse_args([
        "--data", str(root / "data"), "--out", str(root / "run"), "--frames", "4", "--size", "8", "--num_workers",
        "0", "--device", "cpu", "--epochs", "2", "--test_size", "0.25", "--lr", "3e-3"])
    assert train.main(args) == 0
    return root / "run", root / "data"


def test_a_csv_of_the_test_files_gives_trainings_test_metrics(run, tmp_path, capsys):
    run_dir, _ = run
    tested = read_csv(run_dir / "test_predictions.csv")
    with open(tmp_path / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([r["path"], r["true"]] for r in tested)
    out = tmp_path / "eval" / "predictions.csv"  # its folder made
    assert run_predict("--model", run_dir / "best.pt", "--data", tmp_path / "test.csv", "--out", out) == 0
    rows = read_csv(out)
    assert [(r["path"], r["true"]) for r in rows] == [(r["path"], r["true"]) for r in tested]
    mine, trained = (json.loads(p.read_text()) for p in (out.parent / "predictions_metrics.json",
                                                          run_dir / "metrics.json"))
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1"):
        assert mine[key] == pytest.approx(trained[key], abs=1e-6), key
    for key in ("confusion_matrix", "classes", "positive_class"):
        assert mine[key] == trained[key], key
    assert mine["roc_auc"] == pytest.approx(trained["roc_auc"], abs=1e-4)
    assert (out.parent / "predictions_confusion.png").is_file() and (out.parent / "predictions_roc.png").is_file()
    assert mine["n_files"] == len(tested) and "labelled data (" in capsys.readouterr().out


def test_a_folder_of_class_folders_is_labelled_and_another_is_not(run, tmp_path):
    run_dir, data = run
    out = run_dir / "p.csv"  # into the training run's folder: its own metrics and pictures stay as they are
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "confusion.png", "roc.png")}
    assert run_predict("--model", run_dir / "best.pt", "--data", data, "--out", out) == 0
    assert before == {name: (run_dir / name).read_bytes() for name in before}
    rows = read_csv(out)
    assert len(rows) == 16 and all(r["true"] == r["path"].split("/")[-2] for r in rows)
    m = json.loads((run_dir / "p_metrics.json").read_text())
    assert sum(map(sum, m["confusion_matrix"])) == 16
    assert m["accuracy"] == pytest.approx(sum(r["true"] == r["predicted"] for r in rows) / 16)
    write_dataset(tmp_path / "other", per_class=1, T=4, H=8, W=8, classes=("x", "y"))
    out = tmp_path / "b" / "p.csv"
    out.parent.mkdir()
    assert run_predict("--model", run_dir / "best.pt", "--data", tmp_path / "other", "--out", out) == 0
    assert "true" not in read_csv(out)[0] and not list(out.parent.glob("*metrics.json"))


def test_a_csv_label_the_model_does_not_know_is_one_line(run, tmp_path, capsys):
    run_dir, data = run
    first = next(data.rglob("*.pt"))
    (tmp_path / "l.csv").write_text(f"path,label\n{first},angry\n")
    assert run_predict("--model", run_dir / "best.pt", "--data", tmp_path / "l.csv", "--out", tmp_path / "p.csv") == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "labels angry are not among the model's classes calm, loud" in err[0]
    assert str(first) not in captured.out  # said before any file is predicted: no pass lost to a typo
