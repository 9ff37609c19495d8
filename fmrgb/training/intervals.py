"""Intervals of a paired difference between two channel sets (the ablation, fmrgb/training/experiment.py).

    d = corrected_t([0.9, 1.0], [0.8, 0.8], test_train_ratio=0.33)   # over folds (and repeats)
    d = paired_bootstrap(y_true, probs_a, probs_b, metric, positive=1, seed=0)   # over the test clips of one split

Both return {"mean", "low", "high", "note"}: low/high None and a note saying why when no interval can be
estimated (fewer than two folds, every fold's difference the same, a metric the resamples cannot compute).

Folds of a K-fold cross-validation train on overlapping files, so their differences are not independent:
the plain paired t-interval understates the variance. Nadeau & Bengio's corrected resampled t-test (2003)
scales the variance of the mean by (1/J + n_test/n_train) instead of 1/J, with J differences (K folds times
R repeats, as Bouckaert & Frank 2004 use it for repeated K-fold) and J - 1 degrees of freedom.
"""
import math

import numpy as np

BOOTSTRAP = 2000  # resamples of the test clips


def _no_interval(mean, note):
    return {"mean": mean, "low": None, "high": None, "note": note}


def corrected_t(a, b, *, test_train_ratio, level=0.95):
    """The mean of a[i] - b[i] over the folds where both are known and its corrected resampled t-interval
    (`test_train_ratio`: n_test / n_train of a fold)."""
    from scipy import stats

    d = np.array([x - y for x, y in zip(a, b) if x is not None and y is not None], dtype=np.float64)
    if len(d) == 0:
        return _no_interval(None, "no fold has both values")
    mean = float(d.mean())
    if len(d) < 2:
        return _no_interval(mean, "one fold: no interval")
    var = d.var(ddof=1)
    if var == 0:  # a zero-width interval would read as certainty
        return _no_interval(mean, f"all {len(d)} differences equal: the variance cannot be estimated")
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * math.sqrt((1 / len(d) + test_train_ratio) * var)
    return {"mean": mean, "low": mean - half, "high": mean + half, "note": ""}


def _accuracy(y, probs, idx):
    return (probs[idx].argmax(-1) == y[idx]).mean(-1)


def _balanced_accuracy(y, probs, idx):
    yy, hit = y[idx], probs[idx].argmax(-1) == y[idx]
    recalls = [np.where(yy == k, hit, 0).sum(-1) / np.maximum((yy == k).sum(-1), 1) for k in range(probs.shape[1])]
    present = np.stack([(yy == k).any(-1) for k in range(probs.shape[1])])
    return (np.stack(recalls) * present).sum(0) / np.maximum(present.sum(0), 1)


def _f1(y, probs, idx, positive):
    yy, pred = y[idx], probs[idx].argmax(-1)
    tp, fp, fn = [((pred == positive) == p) & ((yy == positive) == t) for p, t in ((1, 1), (1, 0), (0, 1))]
    tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def _roc_auc(y, probs, idx, positive):
    # all resamples at once by the rank-sum (Mann-Whitney U) form, ties at their mean rank: sklearn's value
    from scipy.stats import rankdata

    truth, scores = y[idx] == positive, probs[idx, positive]
    n1 = truth.sum(-1)
    n0 = truth.shape[-1] - n1
    ranks = rankdata(scores, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample of one class: nan, as it cannot be computed
        return ((ranks * truth).sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def metric_of_resamples(metric, y, probs, idx, positive):
    """`metric` (accuracy, balanced_accuracy, f1, roc_auc; the last two of the positive class) of each resample
    (rows of `idx`, indices into the test clips) -> (R,) float64, nan where it cannot be computed."""
    if metric == "accuracy":
        return _accuracy(y, probs, idx)
    if metric == "balanced_accuracy":
        return _balanced_accuracy(y, probs, idx)
    if probs.shape[1] != 2:
        return np.full(len(idx), np.nan)  # of the positive class of two
    return _f1(y, probs, idx, positive) if metric == "f1" else _roc_auc(y, probs, idx, positive)


def paired_bootstrap(y_true, probs_a, probs_b, metric, *, positive=1, seed=0, level=0.95):
    """The difference metric(a) - metric(b) on the test clips and its percentile interval over BOOTSTRAP
    resamples of the clips (the same resample for both sets: paired)."""
    y = np.asarray(y_true)
    whole = np.arange(len(y))[None]
    mean = metric_of_resamples(metric, y, probs_a, whole, positive) - metric_of_resamples(metric, y, probs_b, whole,
                                                                                          positive)
    if not np.isfinite(mean[0]):
        return _no_interval(None, f"{metric} cannot be computed on these test clips")
    idx = np.random.default_rng(seed).integers(0, len(y), size=(BOOTSTRAP, len(y)))
    d = metric_of_resamples(metric, y, probs_a, idx, positive) - metric_of_resamples(metric, y, probs_b, idx, positive)
    d = d[np.isfinite(d)]
    if len(d) < BOOTSTRAP // 2 or d.std() == 0:
        return _no_interval(float(mean[0]), "the resamples do not vary: the interval cannot be estimated")
    low, high = np.quantile(d, [0.5 - level / 2, 0.5 + level / 2])
    return {"mean": float(mean[0]), "low": float(low), "high": float(high), "note": ""}
