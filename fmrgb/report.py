"""What a training run reports: test metrics, history.csv, and its pictures.

    m = write_test_results("run", paths=paths, y_true=y, probs=probs, classes=classes)  # + confusion.png, roc.png
    write_history("run/history.csv", history); plot_curves(history, "run/curves.png")

Pictures go through pyplot() (matplotlib on the file-only Agg backend) and save_figure (atomic).
"""
import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from fmrgb.files import atomic_output, write_csv

# data_s: the seconds the training loop waited for its next batch in that epoch (part of `seconds`)
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "steps", "seconds", "data_s"]


# a class name that negates the other's: NonFight, NonViolence, non_violent, No-Fight, NotViolent, Normal
NEGATIVE = re.compile(r"(?i:non)|(?i:not?)(?=[-_ A-Z])|(?i:normal|negative|neutral)$")


def positive_index(classes, wanted=None):
    """The index of the class precision, recall, F1, average precision and ROC are of: `wanted`
    (--positive_class); by default, of two classes, the one whose name is not a negation (the other's name
    starts with Non/No/Not, or is Normal, Negative or Neutral: RWF-2000's Fight, RLVS's Violence), else the
    second in sorted order. ValueError if `wanted` is not one of two classes."""
    if wanted is not None:
        if len(classes) != 2 or wanted not in classes:
            raise ValueError(f"--positive_class {wanted}: needs one of two classes; the data has "
                             f"{', '.join(classes)}")
        return list(classes).index(wanted)
    negated = [bool(NEGATIVE.match(c)) for c in classes]
    return negated.index(False) if len(classes) == 2 and sum(negated) == 1 else 1


def _per_class(y_true, y_pred, classes):
    """{class: {"precision", "recall", "f1", "support"}}."""
    from sklearn import metrics as skm

    p, r, f, n = skm.precision_recall_fscore_support(y_true, y_pred, labels=list(range(len(classes))),
                                                     zero_division=0)
    return {c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(n[k])}
            for k, c in enumerate(classes)}


def _ranking(y_true, probs, classes, positive):
    """(average precision: of the positive class with two classes, else the macro one-vs-rest mean over the
    classes present; top-5 accuracy with more than 5 classes, else None)."""
    from sklearn import metrics as skm

    if len(classes) == 2:
        ap = float(skm.average_precision_score(y_true == positive, probs[:, positive])) if (
            y_true == positive).any() else None
    else:
        present = sorted(set(y_true.tolist()))
        ap = float(np.mean([skm.average_precision_score(y_true == k, probs[:, k]) for k in present]))
    top5 = float(skm.top_k_accuracy_score(y_true, probs, k=5, labels=list(range(len(classes))))) if (
        len(classes) > 5) else None
    return ap, top5


def compute_metrics(y_true, probs, classes, positive=1):
    """scikit-learn metrics of class probabilities (N, K) against true labels.
    Two classes: precision/recall/f1 of the positive class (classes[positive]: see positive_index), its
    average precision and ROC AUC; more: macro averages, macro one-vs-rest average precision and ROC AUC and,
    beyond 5 classes, top-5 accuracy. Always per-class precision/recall/f1/support. roc_auc is None if the
    test set has one class."""
    import warnings

    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    average = "binary" if len(classes) == 2 else "macro"
    prf = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0,
                                              **({"pos_label": positive} if average == "binary" else {}))
    roc_auc = None
    if len(set(y_true.tolist())) >= 2:
        try:
            if len(classes) == 2:
                roc_auc = float(skm.roc_auc_score(y_true == positive, probs[:, positive]))
            else:
                roc_auc = float(skm.roc_auc_score(y_true, probs / probs.sum(1, keepdims=True), multi_class="ovr",
                                                  average="macro", labels=labels))
        except ValueError:
            roc_auc = None
    if roc_auc is not None and not np.isfinite(roc_auc):  # a class absent from the test set: no AUC
        roc_auc = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy warns when a predicted class is absent
        balanced = float(skm.balanced_accuracy_score(y_true, y_pred))
    average_precision, top5 = _ranking(y_true, probs, classes, positive)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "top5_accuracy": top5,
        "average_precision": average_precision,
        "per_class": _per_class(y_true, y_pred, classes),
        "balanced_accuracy": balanced,
        "precision": float(prf[0]),
        "recall": float(prf[1]),
        "f1": float(prf[2]),
        "roc_auc": roc_auc,
        "average": average,
        "positive_class": classes[positive] if average == "binary" else None,
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


def summary_lines(m):
    """What a run prints of its test metrics `m` (compute_metrics'): the figures (of the positive class with
    two classes, named), and the confusion matrix."""
    def shown(key):
        return "n/a" if m[key] is None else format(m[key], ".4f")

    figures = "  ".join(f"{k.replace('_', ' ')} {shown(k)}" for k in (
        "accuracy", "balanced_accuracy", "precision", "recall", "f1", "average_precision", "roc_auc",
        "top5_accuracy") if k != "top5_accuracy" or m[k] is not None)
    of = f" (positive class {m['positive_class']})" if m["positive_class"] else " (macro averages)"
    return [f"test: {figures}{of}",
            f"confusion matrix (rows true, columns predicted; {m['classes']}): {m['confusion_matrix']}"]


def write_history(path, history):
    write_csv(path, HISTORY_COLUMNS, [[h.get(k) for k in HISTORY_COLUMNS] for h in history])


# ----------------------------------------------------------------------------- pictures

def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi=100, tight=True):
    """The figure as a PNG at `path`, atomically; the figure is closed."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)


def plot_curves(history, path):
    plt = pyplot()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.plot(ep, [h["train_acc"] for h in history], "o-", label="train")
    b.plot(ep, [h["val_acc"] for h in history], "o-", label="validation")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_confusion(cm, classes, path):
    plt = pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    save_figure(fig, path)


def plot_roc(y_true, scores, positive, path):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fpr, tpr, _ = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, scores):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (positive: {positive})")
    ax.legend(loc="lower right")
    save_figure(fig, path)


# ----------------------------------------------------------------------------- the test set

def evaluation_outputs(out_dir, *, y_true, probs, classes, positive=1, prefix=""):
    """The metrics of class probabilities (N, K) against true labels, and their pictures in out_dir:
    <prefix>confusion.png, <prefix>roc.png (two classes, both present; of classes[positive]) -> the metrics."""
    out_dir = Path(out_dir)
    m = compute_metrics(y_true, probs, classes, positive)
    plot_confusion(m["confusion_matrix"], classes, out_dir / f"{prefix}confusion.png")
    if len(classes) == 2 and m["roc_auc"] is not None:
        plot_roc(np.asarray(y_true) == positive, probs[:, positive], classes[positive], out_dir / f"{prefix}roc.png")
    return m


@dataclasses.dataclass(frozen=True)
class TestPredictions:
    """test_predictions.csv read back: the files, their true class indices (N,) and probabilities (N, K)."""
    paths: list
    y_true: np.ndarray
    probs: np.ndarray
    classes: list


def read_test_predictions(run_dir):
    """The TestPredictions of a run folder's test_predictions.csv (write_test_results')."""
    with open(Path(run_dir) / "test_predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        classes = [c[2:] for c in (rows[0] if rows else {}) if c.startswith("p_")]
    return TestPredictions([r["path"] for r in rows], np.array([classes.index(r["true"]) for r in rows]),
                           np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows]), classes)


def write_test_results(out_dir, *, paths, y_true, probs, classes, positive=1):
    """test_predictions.csv and evaluation_outputs' pictures -> the metrics."""
    pred = probs.argmax(axis=1)
    write_csv(Path(out_dir) / "test_predictions.csv", ["path", "true", "predicted", *[f"p_{c}" for c in classes]],
              [[str(p), classes[t], classes[k], *[f"{v:.6f}" for v in row]]
               for p, t, k, row in zip(paths, y_true, pred, probs)])
    return evaluation_outputs(out_dir, y_true=y_true, probs=probs, classes=classes, positive=positive)
