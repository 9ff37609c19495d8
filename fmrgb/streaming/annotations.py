"""Temporal annotations of untrimmed videos: which spans of which video show what. Read here only.

    notes = read_annotations("annotations.csv")     # a CSV: video,start,end,label (seconds)
    notes = read_annotations("Temporal_Anomaly_Annotation.txt")   # UCF-Crime's file (frame numbers)
    notes.segments_of("Arson011_x264.mp4")          # (Segment, ...) of that video (by file name)
    notes.frame_labels("a.mp4", n_frames=900, fps=30.0)   # bool (900,): inside an annotated span

The CSV: one row per segment, `start`/`end` in seconds from the first frame; a row with empty start and end
lists a video with nothing to find in it. UCF-Crime's text file: `video class s1 e1 s2 e2` separated by
spaces, frame numbers (the end frame included), -1 for a span that is not there (its Normal videos).
"""
import csv
import dataclasses
from pathlib import Path

import numpy as np

CSV_COLUMNS = ("video", "start", "end", "label")


@dataclasses.dataclass(frozen=True)
class Segment:
    video: str          # the file name
    start: float
    end: float
    label: str
    in_frames: bool = False   # start/end are frame numbers (end included), not seconds

    def frame_range(self, fps):
        """[first, stop) frame indices of the span in a video at `fps` (a frame is in when its centre is)."""
        if self.in_frames:
            return int(self.start), int(self.end) + 1
        return int(np.ceil(self.start * fps - 0.5)), int(np.ceil(self.end * fps - 0.5))


@dataclasses.dataclass(frozen=True)
class Annotations:
    videos: frozenset        # every video listed, with or without segments
    segments: tuple          # Segment, ...

    def segments_of(self, video):
        name = Path(video).name
        return tuple(s for s in self.segments if s.video == name)

    def labels(self):
        return sorted({s.label for s in self.segments})

    def frame_labels(self, video, *, n_frames, fps):
        """bool (n_frames,): True where an annotated segment of `video` covers the frame."""
        inside = np.zeros(n_frames, bool)
        for s in self.segments_of(video):  # a few segments a video, each a slice
            a, b = s.frame_range(fps)
            inside[max(0, a):max(0, min(n_frames, b))] = True
        return inside


def read_annotations(path):
    """Annotations of a CSV (video,start,end,label in seconds) or of UCF-Crime's temporal annotation text file;
    ValueError naming the line for anything else."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    first = text.lstrip().split("\n", 1)[0]
    if first.replace(" ", "").lower().startswith(",".join(CSV_COLUMNS)):
        return _read_csv(path)
    return _read_ucf(path, text)


def _read_csv(path):
    videos, segments = set(), []
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            name = Path(row.get("video", "")).name
            if not name:
                raise ValueError(f"{path}:{i}: no video")
            videos.add(name)
            if not row.get("start") and not row.get("end"):
                continue  # a video listed with nothing in it
            try:
                start, end = float(row["start"]), float(row["end"])
            except (KeyError, ValueError):
                raise ValueError(f"{path}:{i}: start and end must be seconds") from None
            if not 0 <= start < end:
                raise ValueError(f"{path}:{i}: a segment must have 0 <= start < end, got {start}, {end}")
            segments.append(Segment(name, start, end, row.get("label") or "event"))
    return Annotations(frozenset(videos), tuple(segments))


def _read_ucf(path, text):
    videos, segments = set(), []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4 or (len(parts) - 2) % 2:
            raise ValueError(f"{path}:{i}: not a CSV video,start,end,label nor UCF-Crime's 'video class s1 e1 ...'")
        try:
            bounds = [int(v) for v in parts[2:]]
        except ValueError:
            raise ValueError(f"{path}:{i}: frame numbers expected, got {' '.join(parts[2:])}") from None
        name = Path(parts[0]).name
        videos.add(name)
        for start, end in zip(bounds[::2], bounds[1::2]):
            if start >= 0 and end >= start:
                segments.append(Segment(name, start, end, parts[1], in_frames=True))
    return Annotations(frozenset(videos), tuple(segments))
