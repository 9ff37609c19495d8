"""Honest intervals: the corrected resampled t-test over folds, --repeats, an interval that cannot be
estimated said so, and the ablation on one split bootstrapped over its test clips."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import train
from conftest import read_csv, write_dataset
from fmrgb.training.experiment import ablation_table
from fmrgb.training.intervals import corrected_t, metric_of_resamples, paired_bootstrap
from fmrgb.training.splits import plan_splits

T_975_2 = 4.302652729911275  # t(0.975) with 2 degrees of freedom


def test_the_corrected_resampled_t_interval_is_wider_than_the_plain_one():
    d = corrected_t([0.9, 1.0, 0.8], [0.8, 0.8, 0.5], test_train_ratio=0.25)  # differences 0.1, 0.2, 0.3
    assert d["mean"] == pytest.approx(0.2) and d["note"] == ""
    half = T_975_2 * ((1 / 3 + 0.25) * 0.01) ** 0.5  # variance 0.01, scaled by 1/J + n_test/n_train
    assert (d["low"], d["high"]) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    plain = T_975_2 * 0.1 / 3 ** 0.5
    assert half / plain == pytest.approx(1.75 ** 0.5)
    assert corrected_t([0.9, None], [0.8, 0.7], test_train_ratio=0.25)["low"] is None


def test_an_interval_that_cannot_be_estimated_is_printed_as_such():
    d = corrected_t([1.0, 1.0, 1.0], [0.5, 0.5, 0.5], test_train_ratio=0.25)  # every fold agrees
    assert d["mean"] == 0.5 and d["low"] is None and d["high"] is None
    assert "variance cannot be estimated" in d["note"]
    metrics = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
    summary = {"folds": [{}, {}, {}], "mean": {m: 0.9 for m in metrics}, "std": {m: 0.1 for m in metrics}}
    table = ablation_table([("all", ["a"]), ("picture", ["p"])], {"all": summary, "picture": summary},
                           {"all - picture": {m: d for m in metrics}})
    assert "+0.500 [no interval]" in table and "[+0.500, +0.500]" not in table
    assert "no interval: all - picture accuracy: all 3 differences equal" in table
    assert "corrected resampled t-interval" in table


def test_the_paired_bootstrap_over_test_clips():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    good = np.stack([1 - y, y], 1) * 0.8 + 0.1
    noise = rng.random((40, 1))
    bad = np.concatenate([noise, 1 - noise], 1)
    d = paired_bootstrap(y, good, bad, "accuracy", seed=0)
    acc_bad = (bad.argmax(1) == y).mean()
    assert d["mean"] == pytest.approx(1 - acc_bad) and d["low"] < d["mean"] < d["high"] <= 1 - acc_bad + 0.5
    assert d == paired_bootstrap(y, good, bad, "accuracy", seed=0)  # seeded
    for metric in ("balanced_accuracy", "f1", "roc_auc"):
        assert paired_bootstrap(y, good, bad, metric, seed=0)["low"] > 0, metric
    same = paired_bootstrap(y, good, good, "accuracy", seed=0)
    assert same["mean"] == 0 and same["low"] is None and "cannot be estimated" in same["note"]


def test_repeats_repeat_the_folds_with_other_seeds():
    survey = SimpleNamespace(label_names=["a"] * 6 + ["b"] * 6, groups=None, names=[str(i) for i in range(12)],
                             parts=None)
    s = SimpleNamespace(folds=3, repeats=2, val_size=0.2, seed=0, split=None)
    splits, source = plan_splits(survey, s)
    assert len(splits) == 6 and "3-fold x 2" in source
    for r in range(2):
        assert sorted(i for parts in splits[3 * r:3 * r + 3] for i in parts["test"]) == list(range(12))
    assert [p["test"] for p in splits[:3]] != [p["test"] for p in splits[3:]]


FAST = ["--frames", "4", "--size", "8", "--num_workers", "0", "--device", "cpu", "--islearnrate_search", "false",
        "--epochs", "1"]


def test_repeats_need_folds(tmp_path, capsys):
    write_dataset(tmp_path / "d", per_class=4, T=4, H=8, W=8)
    with pytest.raises(SystemExit):
        train.main(train.get_args_parser().parse_args(["--data", str(tmp_path / "d"), "--repeats", "2", *FAST]))
    assert "--repeats 2 repeats --folds K: give --folds" in capsys.readouterr().err


def test_the_ablation_on_one_split_bootstraps_over_the_test_clips(tmp_path, capsys):
    write_dataset(tmp_path / "d", per_class=8, T=4, H=8, W=8)
    args = train.get_args_parser().parse_args(["--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"),
                                               "--ablation", "--test_size", "0.25", *FAST])
    assert train.main(args) == 0
    run = tmp_path / "run"
    splits = {(run / s / "split.json").read_text() for s in ("all", "picture", "sound")}
    assert len(splits) == 1  # the same split for the three sets
    rows = read_csv(run / "ablation.csv")
    assert [r["channels"] for r in rows] == ["red+green+blue+amplitude+frequency", "red+green+blue",
                                             "amplitude+frequency"]
    m = json.loads((run / "metrics.json").read_text())
    d = m["differences"]["all - sound"]["accuracy"]
    accs = [float(r["accuracy"]) for r in rows]
    assert d["mean"] == pytest.approx(accs[0] - accs[2])
    assert (d["low"] is None) == bool(d["note"])
    assert "paired bootstrap interval over the clips" in capsys.readouterr().out


def test_the_resamples_roc_auc_is_sklearns_ties_included_and_nan_for_one_class():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 30)
    probs = np.round(rng.random((30, 1)), 1)  # one decimal: many ties
    probs = np.concatenate([1 - probs, probs], 1)
    idx = rng.integers(0, 30, size=(200, 30))
    idx[0] = np.flatnonzero(y == 1)[0]  # a resample of one class only
    got = metric_of_resamples("roc_auc", y, probs, idx, 1)
    assert np.isnan(got[0])
    want = [roc_auc_score(y[rows] == 1, probs[rows, 1]) for rows in idx[1:]]
    np.testing.assert_allclose(got[1:], want, rtol=0, atol=1e-12)


def test_an_ablation_does_not_resume_one_run(tmp_path, capsys):
    # three channel sets cannot all continue one checkpoint: refused before anything is read
    write_dataset(tmp_path / "d", per_class=2, T=4, H=8, W=8)
    with pytest.raises(SystemExit) as e:
        train.main(train.get_args_parser().parse_args(["--data", str(tmp_path / "d"), "--ablation", "--resume",
                                                        str(tmp_path / "last.pt"), "--device", "cpu"]))
    assert e.value.code == 2 and "--resume continues one run, not --ablation" in capsys.readouterr().err
