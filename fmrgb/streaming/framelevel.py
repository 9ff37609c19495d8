"""Frame-level evaluation of untrimmed videos (the UCF-Crime and XD-Violence protocol): every frame of every
video gets a score from the windows around it and a label from the annotations; ROC AUC and AP over all frames.

    scores = frame_scores(timeline, n_frames=900, fps=30.0, columns=[1])   # (900,) float64
    metrics = frame_level_metrics([(video, fps, timeline), ...], annotations)

A frame's score is the mean, over the windows that hold it, of the probability of the event classes: the
classes named by an annotation label, or when no label is a class name, every class but the first (the first
class taken as the background: "normal", "calm", "NonViolence" ...). A frame is positive when an annotated
segment covers it (fmrgb.streaming.annotations).
"""
import numpy as np


def event_columns(classes, labels):
    """The class indices whose probabilities make a frame's score (see the module docstring)."""
    named = [k for k, c in enumerate(classes) if c in set(labels)]
    return named or list(range(1, len(classes))) or [0]


def frame_count(timeline, fps):
    """The frames a timeline covers (its last window ends at the last frame)."""
    return int(round(float(timeline.ends.max()) * fps)) if len(timeline.ends) else 0


def frame_scores(timeline, *, n_frames, fps, columns):
    """float64 (n_frames,): each frame's mean over the windows holding it of the summed `columns` probabilities
    (difference arrays: no loop over frames or windows)."""
    window_score = timeline.probs[:, list(columns)].sum(axis=1)
    first = np.clip(np.rint(timeline.starts * fps).astype(np.int64), 0, n_frames)
    stop = np.clip(np.rint(timeline.ends * fps).astype(np.int64), 0, n_frames)
    total, count = np.zeros(n_frames + 1), np.zeros(n_frames + 1)
    np.add.at(total, first, window_score)
    np.add.at(total, stop, -window_score)
    np.add.at(count, first, 1)
    np.add.at(count, stop, -1)
    total, count = np.cumsum(total)[:-1], np.cumsum(count)[:-1]
    return np.divide(total, count, out=np.zeros(n_frames), where=count > 0)


def frame_level_metrics(items, annotations):
    """{"frame_roc_auc", "frame_ap", "frames", "positive_frames", "videos", "unannotated_videos", "score_classes"}
    over all frames of `items` [(video, fps, fmrgb.streaming.timelines.Timeline)]; the AUC and AP are None when the frames
    are all of one kind."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if not items:
        raise ValueError("no timeline to evaluate")
    classes = items[0][2].classes
    columns = event_columns(classes, annotations.labels())
    scores, labels = [], []
    for video, fps, timeline in items:
        n = frame_count(timeline, fps)
        scores.append(frame_scores(timeline, n_frames=n, fps=fps, columns=columns))
        labels.append(annotations.frame_labels(video, n_frames=n, fps=fps))
    y, s = np.concatenate(labels), np.concatenate(scores)
    both = 0 < y.sum() < len(y)
    return {
        "frame_roc_auc": float(roc_auc_score(y, s)) if both else None,
        "frame_ap": float(average_precision_score(y, s)) if both else None,
        "frames": int(len(y)),
        "positive_frames": int(y.sum()),
        "videos": len(items),
        "unannotated_videos": sorted(str(v) for v, _, _ in items if str(v).rsplit("/", 1)[-1] not in annotations.videos),
        "score_classes": [classes[k] for k in columns],
    }
