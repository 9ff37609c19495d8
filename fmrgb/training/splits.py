"""Leak-free splits: the stratified group split into train/val/test or K folds, and split.json (this module
alone reads and writes it).

    parts = train_val_test(labels, groups, test_size=0.2, val_size=0.2, seed=0)   # groups: fmrgb.training.survey
    folds = kfold(labels, groups, folds=5, val_size=0.2, seed=0)   # [{"train", "val", "test"}]
    write_split("run/split.json", names, parts); saved = read_split("run/split.json")

Files of one group (fmrgb.training.survey.group_files: copies of one clip, a CSV group) always land in the same
part: copies of one clip on both sides would let the test score measure memory instead of learning.
"""
import json
from collections import Counter
from pathlib import Path

import numpy as np

from fmrgb.files import write_json

PARTS = ("train", "val", "test")


class SplitError(ValueError):
    """No split of the requested shape keeps every class in every part (or a saved split is unusable)."""


# ----------------------------------------------------------------------------- assigning groups to parts

def part_quotas(count, fractions, totals):
    """Files of one class per part: `count` shared by `fractions` (largest remainder, ties to the part
    with the fewest files so far, `totals`), then one moved to any empty part from the largest."""
    raw = [f * count for f in fractions]
    quota = [int(r) for r in raw]
    for p in sorted(range(len(raw)), key=lambda p: (quota[p] - raw[p], totals[p], p))[:count - sum(quota)]:
        quota[p] += 1
    if count >= len(quota):  # a class with enough files gets one in every part, even a small part
        for p in range(len(quota)):
            if quota[p] == 0:
                quota[max(range(len(quota)), key=lambda q: quota[q])] -= 1
                quota[p] = 1
    return quota


def assign_parts(labels, groups, fractions, *, seed):
    """A part index per file, whole groups at a time, each class shared by `fractions` as closely as
    the groups allow. Groups go largest first (seeded order among equal sizes), each to the part it
    overfills least, then to the part that still wants its classes most."""
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    totals = [0] * len(fractions)
    quotas = {}
    for c, n in sorted(Counter(labels).items()):
        quotas[c] = part_quotas(n, fractions, totals)
        totals = [t + q for t, q in zip(totals, quotas[c])]
    order = sorted(members)
    order = [order[k] for k in np.random.default_rng(seed).permutation(len(order))]
    order.sort(key=lambda g: -len(members[g]))  # stable: the seeded order within one size
    left = {c: list(q) for c, q in quotas.items()}
    part = [0] * len(labels)
    for g in order:
        need = Counter(labels[i] for i in members[g])

        def cost(p):
            over = sum(max(0, k - left[c][p]) for c, k in need.items())
            want = sum(k * left[c][p] / max(quotas[c][p], 1) for c, k in need.items())
            return over, -want, p

        p = min(range(len(fractions)), key=cost)
        for c, k in need.items():
            left[c][p] -= k
        for i in members[g]:
            part[i] = p
    return part


def _counts(labels, parts):
    """{class: [files in each part]} of a {"train": idx, ...} dict."""
    return {c: [sum(labels[i] == c for i in parts[name]) for name in PARTS] for c in sorted(set(labels))}


def _shown(labels):
    counts = Counter(labels)
    return ", ".join(f"{c}={counts[c]}" for c in sorted(counts))


def _missing(labels, parts):
    """(class, [parts without it]) of the first class missing from a part, or None."""
    for c, per in _counts(labels, parts).items():
        if 0 in per:
            return c, [name for name, k in zip(PARTS, per) if k == 0]
    return None


def _three_parts(labels, groups, test_size, val_size, seed):
    part = assign_parts(labels, groups, [1 - test_size - val_size, val_size, test_size], seed=seed)
    return {name: [i for i, p in enumerate(part) if p == k] for k, name in enumerate(PARTS)}


def train_val_test(labels, groups=None, *, test_size, val_size=None, seed):
    """{"train", "val", "test"}: sorted index lists, stratified by label, whole groups (default: every
    file its own). Sizes are fractions of all files; val_size None: the same as test_size. A split
    that leaves a class out of a part raises SplitError with the counts and the smallest --test_size
    that works, if any."""
    groups = list(range(len(labels))) if groups is None else list(groups)
    val = test_size if val_size is None else val_size
    assert 0 < test_size < 1 and 0 < val < 1 and test_size + val < 1, \
        f"test_size {test_size} and val_size {val} must be in (0, 1) and sum to less than 1"
    if len(set(labels)) < 2:
        raise SplitError(f"need at least two classes, found {len(set(labels))} ({_shown(labels)})")
    parts = _three_parts(labels, groups, test_size, val, seed)
    gap = _missing(labels, parts)
    if gap is None:
        return parts
    per = "; ".join(f"{c}={'/'.join(map(str, k))}" for c, k in _counts(labels, parts).items())
    workable = None
    for t in (k / 100 for k in range(1, 100)):
        v = t if val_size is None else val_size
        if t + v < 1 and _missing(labels, _three_parts(labels, groups, t, v, seed)) is None:
            workable = t
            break
    hint = (f"the smallest workable --test_size is {workable:g}" if workable is not None
            else "no --test_size helps: every class needs files in at least 3 groups")
    raise SplitError(f"class '{gap[0]}' too small for a stratified train/val/test split with test_size {test_size:g}, "
                     f"val_size {val:g}: it has no file in {' or '.join(gap[1])} (files per class: {_shown(labels)}; "
                     f"train/val/test: {per}); {hint}")


def kfold(labels, groups=None, *, folds, val_size, seed):
    """Stratified group K-fold: [{"train", "val", "test"}] per fold; fold i tests on part i and
    carves its validation files (val_size of all files, whole groups) from the other parts."""
    groups = list(range(len(labels))) if groups is None else list(groups)
    assert folds >= 2 and 0 < val_size and 1 / folds + val_size < 1, f"folds {folds}, val_size {val_size}"
    if len(set(labels)) < 2:
        raise SplitError(f"need at least two classes, found {len(set(labels))} ({_shown(labels)})")
    fold_of = assign_parts(labels, groups, [1 / folds] * folds, seed=seed)
    out = []
    for k in range(folds):
        rest = [i for i in range(len(labels)) if fold_of[i] != k]
        share = val_size / (1 - 1 / folds)
        sub = assign_parts([labels[i] for i in rest], [groups[i] for i in rest], [1 - share, share], seed=seed + 1 + k)
        parts = {"train": [i for i, p in zip(rest, sub) if p == 0], "val": [i for i, p in zip(rest, sub) if p == 1],
                 "test": [i for i in range(len(labels)) if fold_of[i] == k]}
        gap = _missing(labels, parts)
        if gap is not None:
            per = "; ".join(f"{c}={'/'.join(map(str, n))}" for c, n in _counts(labels, parts).items())
            raise SplitError(f"--folds {folds}: fold {k} has no file of class '{gap[0]}' in {' or '.join(gap[1])} "
                             f"(files per class: {_shown(labels)}; train/val/test: {per}); use fewer --folds or "
                             f"a smaller --val_size")
        out.append(parts)
    return out


def predefined(labels, groups, given, *, val_size, seed):
    """({"train", "val", "test"} index lists, a note) of the data's own split, `given` a part name per file.
    Without test files the val files are the test part (as RWF-2000 reports its val/); without val files
    then, validation (val_size of all files) is carved from train, stratified, whole groups (default: every
    file its own). SplitError if a class misses a part."""
    groups = list(range(len(labels))) if groups is None else list(groups)
    names = set(given)
    note = ""
    if "test" not in names:
        given, note = ["test" if g == "val" else g for g in given], "val is the test part"
    parts = {k: [i for i, g in enumerate(given) if g == k] for k in PARTS}
    if not parts["train"] or not parts["test"]:
        raise SplitError(f"a predefined split needs train files and val or test files (found: "
                         f"{', '.join(sorted(names))})")
    if not parts["val"]:
        train = parts["train"]
        share = val_size * len(labels) / len(train)
        if not 0 < share < 1:
            raise SplitError(f"--val_size {val_size:g}: more files than the {len(train)} training files hold")
        sub = assign_parts([labels[i] for i in train], [groups[i] for i in train], [1 - share, share], seed=seed)
        parts["train"], parts["val"] = [i for i, p in zip(train, sub) if p == 0], [i for i, p in zip(train, sub) if p]
        carved = f"validation: {len(parts['val'])} files ({val_size:g} of all) carved from train"
        note = f"{note}; {carved}" if note else carved
    gap = _missing(labels, parts)
    if gap is not None:
        per = "; ".join(f"{c}={'/'.join(map(str, n))}" for c, n in _counts(labels, parts).items())
        raise SplitError(f"the predefined split has no file of class '{gap[0]}' in {' or '.join(gap[1])} "
                         f"(train/val/test: {per})")
    return parts, note


def plan_splits(survey, s, saved=None):
    """([{"train", "val", "test"}] index lists into the survey's files, where they come from in words) of a
    run with settings `s` (TrainSettings): the `saved` split (--split, --resume) as it is, the data's own
    (survey.parts), K folds (s.folds) or one random split. SplitError for a predefined split with --folds."""
    labels = survey.label_names
    if saved is not None:
        was = saved.get("source")  # a resumed run's split.json stays as it was
        return [locate(survey.names, saved)], (f"--split {s.split}" + (f" ({was})" if was else "") if s.split
                                               else was or "--resume (the run's split)")
    if survey.parts is not None:
        if s.folds:
            raise SplitError(f"--folds: the data has its own split ({survey.layout}); leave out --folds (or list "
                             f"the files in a CSV without a split column)")
        parts, note = predefined(labels, survey.groups, survey.parts, val_size=s.val_size, seed=s.seed)
        return [parts], survey.layout + (f" ({note})" if note else "")
    if s.folds:  # repeat r: the folds of seed + 1000 r
        return ([parts for r in range(s.repeats) for parts in
                 kfold(labels, survey.groups, folds=s.folds, val_size=s.val_size, seed=s.seed + 1000 * r)],
                f"stratified group {s.folds}-fold x {s.repeats} (seed {s.seed}, val_size {s.val_size:g})")
    return ([train_val_test(labels, survey.groups, test_size=s.test_size, val_size=s.val_size, seed=s.seed)],
            f"random stratified group split (seed {s.seed}, test_size {s.test_size:g}, val_size {s.val_size:g})")


# ----------------------------------------------------------------------------- split.json

def write_split(path, names, parts, source=""):
    """split.json: {"source": where the split comes from, "train": [...], "val": [...], "test": [...]} of the
    files' names (as listed)."""
    write_json(path, {"source": source, **{name: [str(names[i]) for i in parts[name]] for name in PARTS}})


def read_split(path):
    """The {"train", "val", "test"} name lists of a split.json, and its "source" ("" if it names none);
    SplitError if it is not one."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SplitError(f"{path}: unreadable ({e})") from None
    if not isinstance(saved, dict) or any(not isinstance(saved.get(k), list) for k in PARTS):
        raise SplitError(f"{path}: not a split file (needs the lists train, val and test)")
    return {"source": str(saved.get("source") or ""), **{k: [str(n) for n in saved[k]] for k in PARTS}}


def keep_saved(names, saved, flag="--resume"):
    """(indices of `names` in the saved split, how many other names there are); SplitError naming the
    saved files that are gone (and the `flag` that named the split)."""
    wanted = [n for k in PARTS for n in saved[k]]
    have = set(names)
    gone = [n for n in wanted if n not in have]
    if gone:
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        raise SplitError(f"{flag}: {len(gone)} file(s) of the split are gone from --data: {shown}")
    keep = set(wanted)
    return [i for i, n in enumerate(names) if n in keep], sum(n not in keep for n in names)


def locate(names, saved):
    """The saved split as index lists into `names` (every saved name must be there: see keep_saved)."""
    where = {n: i for i, n in enumerate(names)}
    return {k: sorted(where[n] for n in saved[k]) for k in PARTS}
