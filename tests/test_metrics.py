"""The metrics papers report: per-class figures, average precision, top-5, the default positive class, and
--class_weight balanced."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train
from conftest import load_pt, write_dataset
from fmrgb.training.engine import Execution, class_weights, run_epoch
from fmrgb.report import compute_metrics, positive_index, summary_lines


def test_binary_metrics_are_of_the_violent_class_with_per_class_figures_and_ap():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    m = compute_metrics([0, 0, 1, 1], probs, ["Fight", "NonFight"], positive_index(["Fight", "NonFight"]))
    assert m["positive_class"] == "Fight"
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # ranks: +, -, +, -
    assert m["per_class"]["NonFight"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["top5_accuracy"] is None
    assert "(positive class Fight)" in summary_lines(m)[0] and "average precision 0.8333" in summary_lines(m)[0]


def test_top5_accuracy_beyond_five_classes():
    classes = list("abcdef")
    probs = np.tile(np.array([0.3, 0.25, 0.2, 0.15, 0.07, 0.03]), (3, 1))
    m = compute_metrics([0, 4, 5], probs, classes)  # class f is ranked sixth: out of the top 5
    assert m["top5_accuracy"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(1 / 3)
    assert m["per_class"]["a"]["recall"] == 1.0 and m["per_class"]["f"]["support"] == 1
    assert "top5 accuracy 0.6667" in summary_lines(m)[0]


@pytest.mark.parametrize("classes, positive", [
    (["Fight", "NonFight"], "Fight"), (["NonViolence", "Violence"], "Violence"), (["fight", "no_fight"], "fight"),
    (["Normal", "Violent"], "Violent"), (["calm", "loud"], "loud"), (["Noise", "Signal"], "Signal"),
    (["NonA", "NonB"], "NonB")])
def test_the_default_positive_class(classes, positive):
    assert classes[positive_index(classes)] == positive
    assert positive_index(classes, classes[0]) == 0
    with pytest.raises(ValueError, match="--positive_class x: needs one of two classes"):
        positive_index(classes, "x")


def test_balanced_class_weights_and_the_weighted_loss():
    assert class_weights("none", [0, 1], 2) is None
    assert class_weights("balanced", [0, 0, 0, 1], 2) == pytest.approx((4 / 6, 2.0))
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 1])
    w = torch.tensor([0.75, 1.5])
    got = run_epoch(model, [(x, y)], Execution(torch.device("cpu")), weight=w).loss
    assert got == pytest.approx(F.cross_entropy(model(x), y, weight=w).item(), rel=1e-6)
    assert got != pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-3)


def test_class_weight_balanced_is_recorded_and_the_printed_line_names_the_positive_class(tmp_path, capsys):
    write_dataset(tmp_path / "d", per_class=4, T=4, H=8, W=8, classes=("Fight",))
    write_dataset(tmp_path / "d", per_class=12, T=4, H=8, W=8, classes=("NonFight",), seed=1)
    args = train.get_args_parser().parse_args([
        "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"), "--frames", "4", "--size", "8",
        "--num_workers", "0", "--device", "cpu", "--epochs", "1", "--test_size", "0.25", "--class_weight", "balanced"])
    assert train.main(args) == 0
    assert "(positive class Fight)" in capsys.readouterr().out
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    n_fight = sum(n.startswith("Fight/") for n in split["train"])
    n = len(split["train"])
    saved = load_pt(tmp_path / "run" / "best.pt")["train_args"]
    assert saved["class_weight"] == "balanced"
    assert saved["class_weights"] == pytest.approx([n / (2 * n_fight), n / (2 * (n - n_fight))])
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["positive_class"] == "Fight" and set(m["per_class"]) == {"Fight", "NonFight"}
