"""Small records of HD clips, measured (bench.py's `small` part): `create_fmrgbdata.py --size 112 --frames 32`
on 720p clips against its floor, the bytes a record takes against its video's and a full-size record's, and
the training loader reading such records (loader_rate, which bench.py's training part uses too).

    sr = bench_small_records(folder, clips=4, seconds=5.0, source=(1280, 720))
    sr.convert_s / sr.floor_s, sr.record_bytes / sr.video_bytes, sr.loader_clips_per_s
    for line in sr.rows(): print(line)       # bench.py's table rows

The floor is what no conversion of the clip can avoid: OpenCV decoding every frame with the decoder and
threads the conversion uses (each frame decoded, none converted or kept), and ffmpeg reading the sound at
the run's analysis rate beside it, on the other core, as the conversion reads it. Times are per clip, the
best of `repeats` passes over the clips, each after measure.quiesce, as bench.py's other parts.
"""
import dataclasses
from concurrent.futures import ThreadPoolExecutor

from fmrgb.measure import quiesce, timed
from fmrgb.prepare import decoders, framesinks
from fmrgb.prepare.decode import decode_audio
from fmrgb.prepare.diskspace import HINT_FRAMES, HINT_SIZE, estimate_records
from fmrgb.prepare.record import record_path
from fmrgb.prepare.sound import analysis_rate
from fmrgb.prepare.synthetic import write_test_video
from fmrgb.runloop import Console

CHANNELS = 5  # red, green, blue, amplitude, frequency: create_fmrgbdata.py's defaults
LOADER_ITEMS = 32  # items a loader pass reads at least (few records are listed again): whole batches to time


@dataclasses.dataclass(frozen=True)
class SmallRecords:
    """Per clip: the floor and the conversion (seconds), the video's, the record's (its file) and a full-size
    record's (diskspace's estimate) bytes; the training loader's clips/s with and without the cache."""
    clips: int
    source: tuple  # (width, height) of the videos
    frames: int
    size: int
    floor_s: float
    convert_s: float
    video_bytes: float
    record_bytes: float
    full_record_bytes: float
    loader_clips_per_s: dict  # {"cache": ..., "no cache": ...}
    cache_build_s: float  # seconds per clip to make its cache entry, one process
    workers: int  # the loader's worker processes

    def summary(self):
        """The figures bench.json keeps."""
        return {**dataclasses.asdict(self), "convert_vs_floor": self.convert_s / self.floor_s,
                "record_vs_video": self.record_bytes / self.video_bytes,
                "full_vs_record": self.full_record_bytes / self.record_bytes}

    def rows(self):
        """bench.py's table rows: (name, value, unit, versus, ratio, target)."""
        (w, h), mb = self.source, 1e-6
        load = self.loader_clips_per_s
        return [(f"floor {w}x{h}: decode frames + read sound", self.floor_s, "s/clip", "", None, ""),
                (f"create_fmrgbdata --size {self.size} --frames {self.frames}", self.convert_s, "s/clip",
                 "floor", self.convert_s / self.floor_s, ""),
                ("  record bytes per clip", self.record_bytes * mb, "MB", "video bytes",
                 self.record_bytes / self.video_bytes, ""),
                ("  full-size record per clip (estimate)", self.full_record_bytes * mb, "MB", "record bytes",
                 self.full_record_bytes / self.record_bytes, ""),
                (f"  loader clips/s ({self.workers} workers, cache)", load["cache"], "clips/s", "", None, ""),
                (f"  loader clips/s ({self.workers} workers, no cache)", load["no cache"], "clips/s", "", None, "")]


def make_clips(folder, *, n, seconds, source, fps):
    """n test-pattern clips of source=(width, height) with a stereo 44.1 kHz AAC tone, pitch varied per clip."""
    return [write_test_video(folder / f"hd{i:03d}.mp4", seconds=seconds, size=source, fps=fps, channels=2,
                             audio=f"0.4*sin(2*PI*{220 + 40 * i}*t)*(1+0.5*sin(2*PI*t))", sample_rate=44100)
            for i in range(n)]


def floor_pass(clip, sample_rate):
    """Decode every frame of `clip` as a conversion does (decoders.opencv_pass, its threads), keeping none,
    while ffmpeg reads the sound at `sample_rate` beside it."""
    with ThreadPoolExecutor(1) as pool:
        sound = pool.submit(decode_audio, clip, sample_rate)
        decoders.opencv_pass(clip, None, lambda claimed, area: framesinks.Count(), 3)
        sound.result()


def best_seconds(fn, *, repeats, folder, warm_mb, before=None):
    """The least wall seconds of `repeats` calls of fn(), each after before() (untimed) and quiesce."""
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        quiesce(folder, warm_mb)
        best = min(best, timed(fn))
    return best


def loader_rate(pts, *, frames, size, num_workers=2, batch=8, cache_root=None, items=0):
    """(items/s a DataLoader of training items (frames x size², `num_workers` workers) delivers over two passes,
    seconds per clip to build the cache first in this process or None): with `cache_root`, the items as train.py
    reads them (augmented uint8 clips from a new cache), else made from the records every time (normalised).
    `items`: at least this many items a pass, the records listed again as needed."""
    import torch

    from dataset import FMRGBDataset
    from fmrgb.training.augment import Augment
    from fmrgb.training.cache import ClipCache
    from fmrgb.training.clip import ClipRecipe, channel_roles
    from fmrgb.prepare.record import load_record

    kw, build = {}, None
    if cache_root is not None:
        cache = ClipCache(cache_root, ClipRecipe(frames, size), settle_s=0)  # nothing writes the records now
        kw = dict(cache=cache, uint8=True, augment=Augment(roles=channel_roles(load_record(pts[0])[1]["channels"])))
        build = timed(lambda: [cache.small(p) for p in pts]) / len(pts)
    listed = list(pts) * max(1, -(-items // len(pts)))
    ds = FMRGBDataset(listed, [0] * len(listed), frames=frames, size=size, layout="cthw", **kw)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=num_workers)
    next(iter(loader))
    t_loader = timed(lambda: [b for _ in range(2) for b in loader])
    return 2 * len(listed) / t_loader, build


def bench_small_records(folder, *, clips, seconds, source=(1280, 720), fps=30, frames=HINT_FRAMES, size=HINT_SIZE,
                        repeats=2, warm_mb=0, num_workers=2):
    """SmallRecords of `clips` clips of `seconds` at source=(width, height), made in `folder`, converted with
    create_fmrgbdata.py's defaults and --size `size` --frames `frames` (the records are left there)."""
    videos = make_clips(folder, n=clips, seconds=seconds, source=source, fps=fps)
    rate = analysis_rate(100)  # create_fmrgbdata.py's --frequency_param
    floor_pass(videos[0], rate)  # warm caches and imports
    floor = best_seconds(lambda: [floor_pass(v, rate) for v in videos], repeats=repeats, folder=folder,
                         warm_mb=warm_mb)
    from fmrgb.prepare.convert import convert_tree

    def remove_records():
        for v in videos:
            record_path(v).unlink(missing_ok=True)

    convert = best_seconds(lambda: convert_tree(folder, report=Console(), frames=frames, size=size),
                           repeats=repeats, folder=folder, warm_mb=warm_mb, before=remove_records)
    pts = [record_path(v) for v in videos]
    quiesce(folder, warm_mb)
    cached, build = loader_rate(pts, frames=frames, size=size, num_workers=num_workers, cache_root=folder / "cache",
                                items=LOADER_ITEMS)
    plain = loader_rate(pts, frames=frames, size=size, num_workers=num_workers, items=LOADER_ITEMS)[0]
    full = estimate_records(videos, frames=None, size=None, channels=CHANNELS)
    return SmallRecords(clips=clips, source=tuple(source), frames=frames, size=size, floor_s=floor / clips,
                        convert_s=convert / clips, video_bytes=sum(v.stat().st_size for v in videos) / clips,
                        record_bytes=sum(p.stat().st_size for p in pts) / clips, full_record_bytes=full / clips,
                        loader_clips_per_s={"cache": cached, "no cache": plain}, cache_build_s=build,
                        workers=num_workers)
