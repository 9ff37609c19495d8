"""Measure the toolkit against the physical floor on this machine, in one run.

    $ python bench.py                      # CPU: 16 clips of 5 s, 320x240, 30 fps
    $ python bench.py --device cuda        # dataset and training parts on a GPU, with and without AMP
    $ python bench.py --clips 2 --seconds 1 --skip convert resize memory dataset \
          --models r3d_18 mc3_18 r2plus1d_18     # the backbones' training part alone (CPU: ~4 min)
    $ python bench.py --clips 1 --skip convert resize memory dataset train realtime   # 720p small records alone

Prints one table and writes bench.json. Every ratio compares two things measured here, now:
conversion against decoding alone, resize_video against the bare ffmpeg command, the dataset
against a bare torch.load, a --size 112 --frames 32 record of a 720p clip against the clip (its conversion
against decoding it, its bytes against the video's; fmrgb.training.smallrecords). Figures are medians over
the clips or repeats.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fmrgb import measure
from fmrgb.prepare import decode, ffmpeg
from fmrgb.streaming.realtime import bench_realtime
from fmrgb.measure import cpu_seconds, timed
from fmrgb.runloop import Console
from fmrgb.training.smallrecords import bench_small_records, loader_rate
from model import MODELS
from fmrgb.prepare.synthetic import write_test_video


WARM_MB = 2048  # memory made warm before each timed part (--warm_mb); more than any part writes


def quiesce(folder):
    """measure.quiesce with this run's --warm_mb: flushed, memory made warm, before each timed part."""
    measure.quiesce(folder, WARM_MB)


def make_workload(folder, *, n, seconds, size, fps):
    """n clips with a moving test pattern and a stereo 44.1 kHz AAC tone whose pitch varies per clip."""
    clips = []
    for i in range(n):
        cls = "a" if i % 2 else "b"
        clips.append(write_test_video(folder / cls / f"clip{i:03d}.mp4", seconds=seconds, size=size, fps=fps,
                                            audio=f"0.4*sin(2*PI*{220 + 40 * i}*t)*(1+0.5*sin(2*PI*t))",
                                            channels=2, sample_rate=44100))
    return clips


def decode_floor(folder, clips, repeats=3):
    """Seconds per clip to decode every frame with OpenCV plus the sound with ffmpeg, nothing else,
    best of `repeats` passes over the clips as for the conversions: nothing converts faster."""
    def one(clip):
        decode.decode_video(clip, threads=0)  # RGB, OpenCV's own (fastest) threading: one pass over the frames
        decode.decode_audio(clip, 3000)

    one(clips[0])  # warm caches and imports
    best = float("inf")
    for _ in range(repeats):
        quiesce(folder)
        best = min(best, timed(lambda: [one(c) for c in clips]))
    return best / len(clips)


def write_floor(folder, clips, channels=5):
    """Seconds per clip to write a tensor of the output's size to a new .pt file, nothing else: the
    other half of what no conversion can avoid (memory made once, outside the timing)."""
    import torch

    from fmrgb.prepare.record import save_record

    frames, _ = decode.decode_video(clips[0], extra_channels=channels - 3)
    record = {"frames": torch.from_numpy(frames)}
    out = Path(folder) / "write_floor"
    out.mkdir(exist_ok=True)
    quiesce(folder)
    seconds = [timed(save_record, record, out / f"{i}.pt") for i in range(len(clips))]
    shutil.rmtree(out)
    return statistics.median(seconds)


def conversion(folder, clips, *, audiomethod, fmrgb, jobs=1, repeats=3):
    """Seconds per clip of create_fmrgbdata over the folder, best of `repeats` (in this process,
    imports already paid; the previous outputs are removed first, untimed, so every run writes new files)."""
    from fmrgb.prepare.convert import convert_tree

    best = float("inf")
    for _ in range(repeats):
        for p in Path(folder).rglob("*.pt"):
            p.unlink()
        quiesce(folder)
        best = min(best, timed(convert_tree, folder, report=Console(), audiomethod=audiomethod, fmrgb=fmrgb,
                                jobs=jobs))
    return best / len(clips)


def jobs_speedup(folder, clips, *, repeats=3):
    """Seconds per clip of create_fmrgbdata (simple, 5 channels) with --jobs 1 and --jobs 2, each
    the best of `repeats` runs taken in turns, and the cores each keeps busy on average: --jobs 1
    already decodes the sound on a second core, which bounds what a second worker can add."""
    from fmrgb.prepare.convert import convert_tree

    seconds, busy = {1: float("inf"), 2: float("inf")}, {}
    for _ in range(repeats):
        for jobs in (1, 2):
            for p in Path(folder).rglob("*.pt"):
                p.unlink()
            quiesce(folder)
            cpu = cpu_seconds()
            wall = timed(convert_tree, folder, report=Console(), audiomethod="simple", fmrgb=5, jobs=jobs)
            if wall / len(clips) < seconds[jobs]:
                seconds[jobs], busy[jobs] = wall / len(clips), (cpu_seconds() - cpu) / wall
    return seconds, busy


def resize_vs_ffmpeg(folder, clips, mag=2):
    from fmrgb.prepare.resized import resize_args, resize_videos

    bare = tempfile.mkdtemp(dir=folder)
    t_bare = 0.0
    for c in clips:
        t_bare += timed(ffmpeg.run_ffmpeg, resize_args(c, Path(bare) / c.name, mag=mag, copy_audio=True))
    shutil.rmtree(bare)
    t_ours = timed(resize_videos, folder, mag=mag, report=Console())
    for p in Path(folder).rglob("resized_*.mp4"):
        p.unlink()
    return t_ours / len(clips), t_bare / len(clips)


PEAK_RSS_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import fmrgb.prepare.convert, fmrgb.prepare.record, torch, cv2

def rss_kb(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])

before = rss_kb("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) now that the imports are done
r = fmrgb.prepare.convert.convert_video(sys.argv[2], audiomethod=sys.argv[3])
fmrgb.prepare.record.save_record(r, sys.argv[4])
print(r["frames"].numel(), rss_kb("VmHWM:"), before)
"""


def peak_memory(clip, out_pt, audiomethod="mel"):
    """Peak RSS (MB) while converting and saving the clip in a fresh process (after its imports),
    the output tensor's size (MB), and the RSS the imports alone hold (MB)."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_CHILD, str(Path(__file__).parent), str(clip), audiomethod,
                          str(out_pt)], capture_output=True, text=True, check=True, timeout=600).stdout.split()
    return int(out[1]) / 1024, int(out[0]) / 2**20, int(out[2]) / 1024


def dataset_rates(pts, *, frames=32, size=64, num_workers=2):
    import torch

    from dataset import FMRGBDataset

    def bare():  # what a plain loader does: read each file whole
        for p in pts:
            torch.load(p, weights_only=True)

    bare()
    t_bare = timed(bare)
    ds = FMRGBDataset(pts, [0] * len(pts), frames=frames, size=size, layout="cthw")
    [ds[i] for i in range(len(ds))]
    t_ds = timed(lambda: [ds[i] for i in range(len(ds))])
    return len(pts) / t_ds, len(pts) / t_bare, loader_rate(pts, frames=frames, size=size, num_workers=num_workers)[0]


# frames and picture size each model is measured at: the backbones at their published input
BENCH_SHAPES = {"r3d_18": (16, 112), "mc3_18": (16, 112), "r2plus1d_18": (16, 112)}


def training_steps(*, device, amp, models, batch=8, channels=5, repeats=None):
    """Median ms per training step (forward, backward, AdamW) and inference clips/s, per model, each at
    its BENCH_SHAPES input (32 frames of 64x64 when not listed), over `repeats` timed calls after warm-up
    ones (None: 5 after 2; a backbone on the CPU, ~30 s a step on 2 cores: 1 after 1)."""
    import torch

    from model import build_model

    results = {}
    for name in models:
        frames, size = BENCH_SHAPES.get(name, (32, 64))
        torch.manual_seed(0)
        model = build_model(name, in_channels=channels, num_classes=2, frames=frames, size=size).to(device)
        layout = getattr(model, "layout", "cthw")
        shape = (batch, channels, frames, size, size) if layout == "cthw" else (batch, frames, channels, size, size)
        x = torch.randn(shape, device=device)
        y = torch.randint(0, 2, (batch,), device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ctx = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp
               else torch.autocast(device_type=device.type, enabled=False))

        def step():
            with ctx:
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        def infer():
            with torch.no_grad(), ctx:
                model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

        model.train()
        slow = name in BENCH_SHAPES and device.type == "cpu"
        reps = repeats or (1 if slow else 5)
        for _ in range(1 if slow else 2):
            step()
        train_ms = statistics.median(timed(step) for _ in range(reps)) * 1000
        model.eval()
        infer()
        infer_s = statistics.median(timed(infer) for _ in range(reps))
        results[name] = {"train_step_ms": round(train_ms, 1), "inference_clips_per_s": round(batch / infer_s, 1),
                         "frames": frames, "size": size}
    return results


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="320x240", help="WxH of the generated clips")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for the dataset and training parts")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["convert", "resize", "memory", "dataset", "train", "realtime", "small"],
                        help="parts to leave out")
    parser.add_argument("--small_clips", type=int, default=4,
                        help="clips (of --seconds, at --fps) of the small part: --size 112 --frames 32 records")
    parser.add_argument("--small_source", default="1280x720", help="WxH of the small part's clips")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS),
                        help="models for the training part (backbones: 16 frames of 112x112, the others 32 of 64x64)")
    parser.add_argument("--train_repeats", type=int, default=None,
                        help="timed training steps and inferences per model, the median reported (default: 5; "
                             "1 for a backbone on the CPU)")
    parser.add_argument("--warm_mb", type=int, default=WARM_MB,
                        help="MB written and deleted before each timed part, so memory a VM handed back to its host "
                             "stays out of the figures (0: off)")
    parser.add_argument("--out", default="bench.json")
    return parser


def row(name, value, unit, versus="", ratio=None, target=""):
    ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
    print(f"{name:<44} {value:>10.3f} {unit:<9} {versus:<24} {ratio_text:>7} {target}")


def small_part(folder, args):
    """--size 112 --frames 32 records of --small_clips clips at --small_source (fmrgb.training.smallrecords): its
    rows printed; returns its figures for bench.json."""
    source = tuple(int(v) for v in args.small_source.split("x"))
    sr = bench_small_records(folder, clips=args.small_clips, seconds=args.seconds, source=source, fps=args.fps,
                             warm_mb=WARM_MB)
    for line in sr.rows():
        row(*line)
    return sr.summary()


def main(args):
    import torch

    global WARM_MB
    WARM_MB = args.warm_mb
    width, height = (int(v) for v in args.size.split("x"))
    report = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__,
                          "device": args.device}, "workload": vars(args).copy()}
    work = Path(tempfile.mkdtemp(prefix="fmrgb-bench-"))
    try:
        clips = make_workload(work, n=args.clips, seconds=args.seconds, size=(width, height), fps=args.fps)
        print(f"{'measure':<44} {'value':>10} {'unit':<9} {'versus':<24} {'ratio':>7} target")
        floor = decode_floor(work, clips)
        report["decode_floor_s"] = floor
        row("decode floor (OpenCV frames + ffmpeg sound)", floor, "s/clip")
        if "convert" not in args.skip:
            # a first conversion, untimed: the first writes of a fresh process pay for the page cache
            conversion(work, clips, audiomethod="simple", fmrgb=5, repeats=1)
            writes = {ch: write_floor(work, clips, ch) for ch in (5, 3)}
            for ch, s in writes.items():
                report[f"write_floor_{ch}_s"] = s
                row(f"write floor ({ch}-channel output to a new .pt)", s, "s/clip")
            for method, ch, target in [("simple", 5, 1.3), ("simple", 3, 1.3), ("mel", 5, 1.6), ("mel", 3, 1.6)]:
                s = conversion(work, clips, audiomethod=method, fmrgb=ch)
                report[f"convert_{method}_{ch}_s"] = s
                row(f"create_fmrgbdata {method}, {ch} channels", s, "s/clip", "decode floor", s / floor, f"<= {target}x")
                row("", s, "s/clip", "decode + write floor", s / (floor + writes[ch]))
            seconds, busy = jobs_speedup(work, clips)
            report["jobs_s"], report["jobs_cores_busy"] = seconds, busy
            report["jobs2_speedup"] = seconds[1] / seconds[2]
            row("create_fmrgbdata --jobs 2 speed-up", seconds[1] / seconds[2], "x", "--jobs 1", None, ">= 1.6x")
            for jobs in (1, 2):
                row(f"  cores kept busy by --jobs {jobs}", busy[jobs], "cores")
            row(f"  ceiling with {os.cpu_count()} cores", os.cpu_count() / busy[1], "x", "cores / busy at --jobs 1")
        if "resize" not in args.skip:
            ours, bare = resize_vs_ffmpeg(work, clips)
            report["resize_s"], report["resize_bare_ffmpeg_s"] = ours, bare
            row("resize_video --mag 2", ours, "s/clip", "bare ffmpeg", ours / bare, "<= 1.1x")
        if "memory" not in args.skip:
            rss, tensor, baseline = peak_memory(clips[-1], work / "peak.pt")
            report["peak_rss_mb"], report["output_tensor_mb"], report["import_rss_mb"] = rss, tensor, baseline
            row("conversion peak RSS (mel, 5 channels)", rss, "MB", "3x output + 300 MB", rss / (3 * tensor + 300), "<= 1.00x")
            row("  RSS before converting (imports)", baseline, "MB")
        pts = sorted(work.rglob("*.pt"))
        if "dataset" not in args.skip and pts:
            ds, bare, loader = dataset_rates(pts)
            report["dataset_items_per_s"], report["bare_load_items_per_s"] = ds, bare
            report["dataloader_2_workers_items_per_s"] = loader
            row("dataset items/s (5x32x64x64)", ds, "items/s", "bare torch.load", ds / bare, ">= 0.5x")
            row("DataLoader, 2 workers", loader, "items/s")
        supply, cached = {}, {}  # (frames, size) -> the loader's items/s there, without and with the cache
        if "dataloader_2_workers_items_per_s" in report:
            supply[(32, 64)] = report["dataloader_2_workers_items_per_s"]
        if "train" not in args.skip:
            device = torch.device(args.device)
            # on a GPU also batch 32: does the dataset keep up with what the model consumes?
            for batch, amp in ([(8, False), (8, True), (32, True)] if device.type == "cuda" else [(8, False)]):
                steps = training_steps(device=device, amp=amp, batch=batch, models=args.models,
                                       repeats=args.train_repeats)
                tag = f"batch {batch}{' (bf16)' if amp else ''}"
                report[f"training_b{batch}{'_amp' if amp else ''}"] = steps
                for name, r in steps.items():
                    row(f"train step {name} {r['frames']}x{r['size']}², {tag}", r["train_step_ms"], "ms")
                    consumed = batch / r["train_step_ms"] * 1000
                    # the loader at this model's input: does it keep up with what the model consumes?
                    shape = (r["frames"], r["size"])
                    if pts and "dataset" not in args.skip and shape not in cached:
                        quiesce(work)
                        cached[shape], build = loader_rate(pts, frames=shape[0], size=shape[1], cache_root=work / "c")
                        report[f"cache_build_{shape[0]}x{shape[1]}_s"] = build
                        row(f"cache build {shape[0]}x{shape[1]}² (one process)", build, "s/clip")
                        if shape not in supply:
                            supply[shape] = loader_rate(pts, frames=shape[0], size=shape[1])[0]
                    r["training_items_per_s"] = round(consumed, 1)
                    r["loader_2_workers_items_per_s"] = cached.get(shape)
                    r["loader_2_workers_no_cache_items_per_s"] = supply.get(shape)
                    row("  training items/s", consumed, "items/s")
                    if shape in cached:
                        row(f"  loader items/s (2 workers, cache, {shape[0]}x{shape[1]}²)", cached[shape], "items/s",
                            "training items/s", cached[shape] / consumed, ">= 1x")
                        row("  loader items/s (2 workers, no cache)", supply[shape], "items/s",
                            "training items/s", supply[shape] / consumed)
                    row(f"inference {name}, {tag}", r["inference_clips_per_s"], "clips/s")
        if "realtime" not in args.skip:
            rt = bench_realtime(work / "minute.mp4", size=(width, height), fps=args.fps)
            report["realtime"] = rt.summary()
            for line in rt.rows():
                row(*line)
        if "small" not in args.skip:
            report["small_records"] = small_part(work / "small", args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
