"""Evaluating a checkpoint on labelled data (predict.py): the true class of each input, and training's test
metrics and pictures (fmrgb.report) beside the predictions.

    truth = true_classes("data/", paths, recipe.classes)   # a class name per path, or None: not labelled
    metrics = write_evaluation("out/p.csv", recipe, results, truth)  # out/p_metrics.json, _confusion.png, _roc.png

Labelled data is a folder whose files each lie in a folder named as one of the checkpoint's classes, or a CSV
with the columns path,label (fmrgb.training.survey.list_data).
"""
from pathlib import Path

import numpy as np

from fmrgb.files import beside, write_json
from fmrgb.report import evaluation_outputs, positive_index
from fmrgb.training.survey import list_data


def csv_inputs(data):
    """(paths, true class names) of a CSV path,label (its paths relative to the CSV's folder, or absolute)."""
    listing = list_data(data)
    return listing.paths, listing.labels


def true_classes(data, paths, classes):
    """Each path's class, its folder's name, when every path under the folder `data` lies in a folder named as
    one of `classes` (the checkpoint's); else None (unlabelled data: predictions only)."""
    data = Path(data)
    if not data.is_dir() or not paths or any(p.parent == data or p.parent.name not in classes for p in paths):
        return None
    return [p.parent.name for p in paths]


def check_classes(truth, classes):
    """ValueError naming the labels that are not among the checkpoint's `classes`."""
    unknown = sorted(set(truth) - set(classes))
    if unknown:
        raise ValueError(f"labels {', '.join(unknown)} are not among the model's classes {', '.join(classes)}")


def write_evaluation(out, recipe, results, truth):
    """The test metrics of the predicted files (results: predict.predict_files', [(path, probabilities or None,
    error)]) against `truth` (a class name per result): beside the predictions `out`, files.beside's
    <stem>_metrics.json, <stem>_confusion.png and, two classes, <stem>_roc.png (never a training run's
    metrics.json in the same folder), as training writes them for its test files -> the metrics. The positive
    class is the training run's (its --positive_class, else the default rule of fmrgb.report.positive_index)."""
    classes = list(recipe.classes)
    done = [(probs.numpy(), classes.index(t)) for (_, probs, _), t in zip(results, truth) if probs is not None]
    if not done:
        raise ValueError("no file was predicted: no metrics")
    probs, y_true = np.stack([p for p, _ in done]), np.array([t for _, t in done])
    positive = positive_index(classes, recipe.run.flag("positive_class"))
    metrics = evaluation_outputs(Path(out).parent, y_true=y_true, probs=probs, classes=classes, positive=positive,
                                 prefix=f"{Path(out).stem}_")
    metrics.update({"n_files": len(done), "n_failed": len(results) - len(done)})
    write_json(beside(out, "metrics.json"), metrics)
    return metrics
