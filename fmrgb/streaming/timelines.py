"""The timeline files of predict.py --window: the timeline CSV (one row per window: start, end in seconds, one
probability column per class, named after the class), its picture, and the events CSV. Written and read here only.

    with TimelineWriter("timeline.csv", classes, live=False) as out:
        out.add(0.0, 2.0, probs)                       # one window
    timeline = read_timeline("timeline.csv")           # Timeline: starts, ends, probs (N, K), classes
    plot_timeline(timeline, "timeline.png", threshold=0.5)
    write_events("events.csv", [(video, event), ...])

A timeline is written to a temporary file renamed at the end, as every output; a live one (standard input)
goes straight to its file, each row flushed as it comes, so a detector's log can be followed while it runs.
"""
import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from fmrgb.files import write_csv
from fmrgb.report import pyplot, save_figure

TIME_COLUMNS = ("start", "end")
EVENT_COLUMNS = ("video", "class", "start", "end", "peak")


@dataclasses.dataclass(frozen=True)
class Timeline:
    classes: tuple
    starts: np.ndarray   # (N,) seconds
    ends: np.ndarray     # (N,) seconds
    probs: np.ndarray    # (N, K) float64


def _row(start, end, probs):
    return [f"{start:.3f}", f"{end:.3f}", *[f"{p:.6f}" for p in np.asarray(probs).tolist()]]


class TimelineWriter:
    """Rows appended one window at a time; `live`: straight into the file, flushed row by row."""

    def __init__(self, path, classes, *, live=False):
        self.path, self.live = Path(path), live
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path if live else self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.file = open(self.tmp, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow([*TIME_COLUMNS, *classes])
        self.file.flush()

    def add(self, start, end, probs):
        self.writer.writerow(_row(start, end, probs))
        if self.live:
            self.file.flush()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.file.close()
        if self.live:
            return
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def read_timeline(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if tuple(header[:2]) != TIME_COLUMNS:
        raise ValueError(f"{path}: not a timeline (its columns are {', '.join(header)})")
    values = np.array([[float(v) for v in r] for r in body], np.float64).reshape(len(body), len(header))
    return Timeline(tuple(header[2:]), values[:, 0], values[:, 1], values[:, 2:])


def plot_timeline(timeline, path, *, threshold=None, title=None):
    """Each class's probability over time (at each window's centre), with the threshold as a dashed line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    centres = (timeline.starts + timeline.ends) / 2
    for k, name in enumerate(timeline.classes):
        ax.plot(centres, timeline.probs[:, k], ".-", label=name)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:g}")
    ax.set(xlabel="time (s)", ylabel="probability", ylim=(-0.02, 1.02), title=title or "")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    save_figure(fig, path)


def write_events(path, events):
    """events: [(video, windows.Event)] -> the events CSV (video, class, start, end, peak)."""
    write_csv(path, list(EVENT_COLUMNS),
              [[str(v), e.label, f"{e.start:.3f}", f"{e.end:.3f}", f"{e.peak:.6f}"] for v, e in events])
