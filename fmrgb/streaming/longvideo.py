"""predict.py --window: videos of any length (or a stream on standard input) into timelines and events.

    sliding = Sliding(window=2.0, stride=1.0, threshold=0.5, device="cpu")
    done = timelines(model, recipe, ["long.mp4"], sliding=sliding, out="timeline.csv", log=print)

Each video: one timeline CSV and its picture (fmrgb.streaming.timelines), its events (fmrgb.streaming.windows.EventTracker) given
to `log` as they close and written, for all videos, to <out>_events.csv. A stream on standard input logs
every window as soon as it is classified. A video that fails is logged (cli.fail_line) and the others go on.
"""
import dataclasses
import functools
import sys
from pathlib import Path

from fmrgb.cli import fail_line, warn
from fmrgb.training.clip import picture_channels
from fmrgb.files import VIDEO_EXTS, beside, find_files, write_json
from fmrgb.streaming.framelevel import frame_level_metrics
from fmrgb.streaming.sliding import classify_stream
from fmrgb.streaming.stream import STDIN, open_stream
from fmrgb.streaming.timelines import TimelineWriter, plot_timeline, read_timeline, write_events
from fmrgb.streaming.windowclip import sample_rate
from fmrgb.streaming.windows import EventTracker, WindowSpec

METRICS_NAME = "metrics.json"


@dataclasses.dataclass(frozen=True)
class Sliding:
    """How a model slides along a video: window and stride in seconds, the events' threshold, the device."""
    window: float
    stride: float
    threshold: float
    device: str = "cpu"


def timeline_inputs(data):
    """The videos to slide along: STDIN itself, a video, or every video below a folder."""
    if str(data) == STDIN:
        return [STDIN]
    data = Path(data)
    return sorted(find_files(data, VIDEO_EXTS, on_skip=warn)) if data.is_dir() else [data]


def timeline_path(out, video, many, root=None):
    """The timeline CSV of `video`: --out itself, or with several videos one named after each in --out's folder
    (its path below `root` with / as _, so that sub1/a.mp4 and sub2/a.mp4, or a.mp4 and a.avi, never share one)."""
    out = Path(out)
    if not many:
        return out
    name = "_".join(Path(video).relative_to(root).parts) if root is not None else Path(video).name
    return out.parent / f"{name}_timeline.csv"


def events_path(out):
    return beside(out, "events.csv")


def _bar(stream, name, live):
    from tqdm import tqdm

    return tqdm(total=None if live else stream.facts.duration, unit="s", desc=name, leave=False,
                disable=True if live else None, file=sys.stderr,
                bar_format="{desc}: {n:.1f}/{total_fmt} s of video |{bar}| {elapsed}<{remaining}")


def slide_one(model, recipe, video, *, sliding, csv_path, log, buffer=None):
    """Write one video's timeline and picture; returns (its events [(video, Event)], logged as they close,
    its frame rate)."""
    live = str(video) == STDIN
    stream = open_stream(video, gray=picture_channels(recipe.record.channels) == 1,
                         sample_rate_for=functools.partial(sample_rate, record=recipe.record))
    tracker = EventTracker(recipe.classes, sliding.threshold)
    name = "stdin" if live else Path(video).name
    events = []

    def take(closed):
        for ev in closed:
            log(f"event: {name}: {ev.label} {ev.start:.2f}-{ev.end:.2f} s (peak {ev.peak:.4f})")
            events.append((name, ev))

    bar = _bar(stream, name, live)
    with bar, TimelineWriter(csv_path, recipe.classes, live=live) as out:
        for r in classify_stream(model, recipe, stream, window=sliding.window, stride=sliding.stride,
                                 device=sliding.device, buffer=buffer):
            out.add(r.start, r.end, r.probs)
            if live:
                k = int(r.probs.argmax())
                log(f"{r.start:.2f}-{r.end:.2f} s: {recipe.classes[k]} ({r.probs[k]:.4f})", flush=True)
            bar.update(max(0.0, r.end - bar.n))
            take(tracker.add(r.start, r.end, r.probs))
    take(tracker.finish())
    plot_timeline(read_timeline(csv_path), Path(csv_path).with_suffix(".png"), threshold=sliding.threshold,
                  title=name)
    return events, stream.facts.fps


def timelines(model, recipe, videos, *, sliding, out, log=print, annotations=None, root=None):
    """Slide along every video; [(video, error or None)]. Events of all videos go to events_path(out); with
    `annotations` (fmrgb.streaming.annotations.Annotations) the frame-level ROC AUC and AP to <out>_metrics.json.
    `root`: the folder the videos were found in (timeline_path)."""
    WindowSpec.of(window=sliding.window, stride=sliding.stride, fps=1.0)  # checks both are positive
    done, events, scored = [], [], []
    for video in videos:
        csv_path = timeline_path(out, video, len(videos) > 1, root)
        try:
            found, fps = slide_one(model, recipe, video, sliding=sliding, csv_path=csv_path, log=log)
            events += found
            scored.append((Path(video).name, fps, read_timeline(csv_path)))
        except Exception as e:  # one bad video must not stop the others
            log(fail_line(video, e), file=sys.stderr)
            done.append((video, e))
            continue
        log(f"{'stdin' if str(video) == STDIN else video}: timeline {csv_path}")
        done.append((video, None))
    write_events(events_path(out), events)
    log(f"{len(events)} events above {sliding.threshold:g}: {events_path(out)}")
    if annotations is not None and scored:
        metrics = frame_level_metrics(scored, annotations)
        write_json(beside(out, METRICS_NAME), metrics)
        log(f"frame-level ROC AUC {_show(metrics['frame_roc_auc'])}, AP {_show(metrics['frame_ap'])} over "
            f"{metrics['frames']} frames: {beside(out, METRICS_NAME)}")
    return done


def _show(value):
    return "n/a (frames all of one kind)" if value is None else f"{value:.4f}"
