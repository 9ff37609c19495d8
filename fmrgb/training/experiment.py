"""Cross-validated experiments: K folds of one recipe, and the ablation that asks whether the sound helps.

    status = run_experiment(train_fold, folds, channel_sets(names), out_dir, ctx)
    # train_fold(parts, channel names or None, run folder) -> (status, test metrics)

Every fold writes its usual outputs into fold_<i>/; a set of folds writes folds.csv (one row per fold)
and metrics.json (per-fold metrics, their mean and std). The ablation trains the same folds with the
same seed on three channel sets (all, the picture only, the sound only) in <set>/fold_<i>/ and writes
ablation.csv, ablation.png and, into metrics.json, the paired differences "all - picture" and
"all - sound" with their 95 % corrected resampled t-intervals over the folds (fmrgb/training/intervals.py; paired:
each fold's test files are the same for every set, so fold-to-fold difficulty cancels out). On one split
the differences are bootstrapped over the test clips instead.
"""
import math

import numpy as np

from fmrgb.files import write_csv, write_json
from fmrgb.training.intervals import corrected_t, paired_bootstrap
from fmrgb.report import pyplot, read_test_predictions, save_figure
from fmrgb.prepare.sound import PICTURE_NAMES, SOUND_NAMES

ABLATION_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
SCALARS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "best_val_loss", "best_epoch",
           "epochs_run", "lr", "n_train", "n_val", "n_test")


def channel_sets(available):
    """[(label, channel names)] of the ablation: all channels, the picture's, the sound's.
    ValueError when the files' channels have no names (c0, c1, ...) to tell them apart."""
    picture = [c for c in available if c in PICTURE_NAMES]
    sound = [c for c in available if c in SOUND_NAMES]
    if not picture or not sound:
        raise ValueError(f"--ablation needs picture and sound channels by name; the files have {','.join(available)}")
    return [("all", list(available)), ("picture", picture), ("sound", sound)]


def _values(per_fold, key):
    return [m[key] for m in per_fold if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])]


def summarise(per_fold):
    """{"folds": per_fold, "mean": {metric: ...}, "std": {metric: ...}}; std over the folds with
    ddof=1; a metric missing in some folds (roc_auc None) is averaged over the others, or None."""
    mean, std = {}, {}
    for key in SCALARS:
        v = _values(per_fold, key)
        mean[key] = float(np.mean(v)) if v else None
        std[key] = float(np.std(v, ddof=1)) if len(v) >= 2 else None
    return {"folds": list(per_fold), "mean": mean, "std": std}


def write_folds(out_dir, per_fold, extra=None):
    """folds.csv and metrics.json (summarise, plus `extra`) in out_dir; returns the summary."""
    write_csv(out_dir / "folds.csv", ["fold", *SCALARS], [[k, *[m.get(key) for key in SCALARS]]
                                                          for k, m in enumerate(per_fold)])
    summary = {**summarise(per_fold), **(extra or {})}
    write_json(out_dir / "metrics.json", summary)
    return summary


def fold_differences(per_fold_a, per_fold_b):
    """{metric: corrected_t} of set a minus set b over the folds (fmrgb.training.intervals: the corrected resampled
    t-interval, its n_test / n_train the folds' mean)."""
    ratio = float(np.mean([m["n_test"] / m["n_train"] for m in per_fold_a]))
    return {m: corrected_t([f.get(m) for f in per_fold_a], [f.get(m) for f in per_fold_b], test_train_ratio=ratio)
            for m in ABLATION_METRICS}


def clip_differences(dir_a, dir_b, metrics, *, seed):
    """{metric: paired_bootstrap} of the run in dir_a minus the run in dir_b on their test clips (one split;
    `metrics`: dir_a's test metrics, for the positive class)."""
    a, b = read_test_predictions(dir_a), read_test_predictions(dir_b)
    assert a.paths == b.paths, "the channel sets were tested on different clips"
    positive = a.classes.index(metrics["positive_class"]) if metrics.get("positive_class") else 1
    return {m: paired_bootstrap(a.y_true, a.probs, b.probs, m, positive=positive, seed=seed)
            for m in ABLATION_METRICS}


def _cell(mean, std):
    return "n/a" if mean is None else f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def _diff_cell(d):
    if d["mean"] is None:
        return "n/a"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d["low"] is not None else \
        f"{d['mean']:+.3f} [no interval]"


def ablation_table(sets, summaries, differences):
    """The printed table: mean ± std per channel set, then the paired differences with their 95 % intervals."""
    rows = [[f"{label} ({'+'.join(names)})", *[_cell(summaries[label]["mean"][m], summaries[label]["std"][m])
                                               for m in ABLATION_METRICS]] for label, names in sets]
    rows += [[name, *[_diff_cell(d[m]) for m in ABLATION_METRICS]] for name, d in differences.items()]
    header = ["channels", *ABLATION_METRICS]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    n = len(summaries[sets[0][0]]["folds"])
    how = (f"a set: mean ± std over the {n} test folds; a difference: its mean over the folds [95 % corrected "
           f"resampled t-interval]" if n > 1 else "one split: a set's test score; a difference: on the test clips "
           "[95 % paired bootstrap interval over the clips]")
    notes = sorted({f"{name} {m}: {d[m]['note']}" for name, d in differences.items() for m in ABLATION_METRICS
                    if d[m]["note"]})
    return "\n".join(["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
                     + [f"({how})"] + [f"no interval: {note}" for note in notes])


def plot_ablation(sets, results, path):
    """Each set's mean ± std per metric, the folds as points."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ABLATION_METRICS), figsize=(3.2 * len(ABLATION_METRICS), 3.6), sharey=True)
    for ax, metric in zip(axes, ABLATION_METRICS):
        for x, (label, _) in enumerate(sets):
            v = _values(results[label], metric)
            if not v:
                continue
            ax.errorbar([x], [np.mean(v)], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0], fmt="o", color="black",
                        capsize=6, markersize=8, zorder=3)
            ax.scatter(x + 0.2 + np.linspace(-0.06, 0.06, len(v)), v, alpha=0.7, zorder=2)  # beside the mean
        ax.set(xticks=range(len(sets)), xticklabels=[label for label, _ in sets], title=metric, ylim=(-0.02, 1.02),
               xlim=(-0.5, len(sets) - 0.3))
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("test score (folds as points; mean ± std)")
    save_figure(fig, path)


def run_experiment(train_fold, folds, sets, out_dir, ctx, seed=0):
    """Train every fold of `folds` ({"train", "val", "test"} each; K folds times R repeats, or one split) for
    each channel set of `sets` ([(label, names)]; [(None, names)] for a plain cross-validation) with
    `train_fold(parts, names, run_dir) -> (status, metrics)` and write the summaries (process 0). One split
    (an ablation on a random or predefined split): each set in <set>/, the differences bootstrapped over the
    test clips (seeded by `seed`). Returns the exit status: the first fold's non-zero status ends it."""
    results = {}
    ablation, single = sets[0][0] is not None, len(folds) == 1
    for label, names in sets:
        base = out_dir / label if ablation else out_dir
        for k, parts in enumerate(folds):
            what = f"channels {label} ({'+'.join(names)}), " if ablation else ""
            ctx.log(f"--- {what}fold {k + 1} of {len(folds)}: {len(parts['train'])} train / {len(parts['val'])} val "
                    f"/ {len(parts['test'])} test files")
            status, metrics = train_fold(parts, names, base if single else base / f"fold_{k}")
            if status:
                return status
            results.setdefault(label, []).append(metrics)
        if ctx.master and not single:
            summary = write_folds(base, results[label], {"channels": names})
            mean, std = summary["mean"], summary["std"]
            ctx.log(f"{len(folds)} folds{' of ' + label if ablation else ''}: " + "  ".join(
                f"{m} {_cell(mean[m], std[m])}" for m in ABLATION_METRICS))
    if ablation and ctx.master:
        summaries = {label: summarise(results[label]) for label, _ in sets}
        rows, differences = [], {}
        for label, names in sets:
            for k, m in enumerate(results[label]):
                rows.append(["+".join(names), k, *[m.get(metric) for metric in ABLATION_METRICS]])
        for other in ("picture", "sound"):
            differences[f"all - {other}"] = (
                clip_differences(out_dir / "all", out_dir / other, results["all"][0], seed=seed) if single
                else fold_differences(results["all"], results[other]))
        write_csv(out_dir / "ablation.csv", ["channels", "fold", *ABLATION_METRICS], rows)
        write_json(out_dir / "metrics.json", {"sets": {label: {"channels": names, **summaries[label]}
                                                       for label, names in sets}, "differences": differences})
        plot_ablation(sets, results, out_dir / "ablation.png")
        ctx.log(ablation_table(sets, summaries, differences))
        ctx.log(f"wrote {out_dir}/ablation.csv, ablation.png")
    return 0
