"""Generate a small two-class dataset of real mp4 clips (H.264 + AAC) to try the toolkit on.

    $ python make_sample_data.py --out data/sample --n 20

writes data/sample/event/event_000.mp4 ... and data/sample/calm/calm_000.mp4 ..., plus
data/sample/clips.csv with every clip's parameters.

  event: a bright box bouncing quickly around the frame; each time it hits a side wall
         there is a loud, decaying burst of broadband (white) noise, like a crash.
  calm:  a box drifting slowly across the frame with a soft, steady sine tone.

Both classes vary in the nuisance factors a classifier must learn to ignore: background and
object colours, object size, static clutter boxes, picture noise, background hiss, loudness,
stereo or mono, 44.1 or 48 kHz; every tenth clip of each class (clips 0, 10, 20, ...) has
no sound track at all, so the picture alone has to carry those.

Every clip is one ffmpeg call on lavfi sources (no frames pass through Python). Parameters
come from numpy.random.default_rng([seed, class, index]), so a clip's content depends only on
the seed, its class and its number (not on --n), and single-threaded x264 with bitexact
muxing makes re-runs byte-identical. Existing clips are kept unless --overwrite; each clip
carries a digest of its parameters (its mp4 comment), and a run whose clips already on disk were
made with other settings (--seed, --seconds, --size, --fps) refuses, so that clips.csv always
describes the files that are there.
"""
import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from fmrgb.cli import usage_error
from fmrgb.runloop import Console, run_jobs
from fmrgb.prepare.ffmpeg import input_arg, probe, run_ffmpeg
from fmrgb.files import atomic_output, write_csv

CLASSES = ("event", "calm")
SILENT_EVERY = 10  # clip i has no sound track when i % SILENT_EVERY == 0 (10 % of a large set)
SAMPLE_RATES = (44100, 48000)
CSV_FIELDS = ("class", "file", "index", "width", "height", "fps", "seconds",
              "has_audio", "channels", "sample_rate", "loudness", "pitch", "burst_rate", "burst_decay",
              "audio_noise", "speed", "box_w", "box_h", "box_color", "bg_color", "picture_noise",
              "clutter", "video_seed", "audio_seed")


# ----------------------------------------------------------------------------- parameters

def clip_rng(seed, label, index):
    """The generator for one clip: independent of --n, so growing a dataset keeps its first clips."""
    return np.random.default_rng([seed, CLASSES.index(label), index])


def _hex(rgb):
    return "0x" + "".join(f"{int(c):02x}" for c in rgb)


def _luma(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _colours(rng, bright):
    """A background and an object colour that a viewer can tell apart (luma at least 60 apart)."""
    while True:
        bg = rng.integers(0, 150, 3)
        obj = rng.integers(120, 256, 3) if bright else rng.integers(40, 230, 3)
        if bright:
            obj[rng.integers(0, 3)] = 255  # "bright": at least one channel at full
        if abs(_luma(obj) - _luma(bg)) >= 60:
            return _hex(bg), _hex(obj)


def clip_params(rng, label, index, *, seconds=3.0, size=(320, 240), fps=30):
    """Every choice that defines one clip, as plain values (what clips.csv lists)."""
    if label not in CLASSES:
        raise ValueError(f"label must be one of {CLASSES}, not {label!r}")
    width, height = size
    r = lambda lo, hi, nd=4: round(float(rng.uniform(lo, hi)), nd)  # noqa: E731
    p = {"class": label, "file": f"{label}_{index:03d}.mp4", "index": index,
         "width": width, "height": height, "fps": fps, "seconds": seconds}
    p["bg_color"], p["box_color"] = _colours(rng, bright=label == "event")
    side = height * (r(0.10, 0.22) if label == "event" else r(0.15, 0.35))
    p["box_w"] = max(2, int(side * r(0.7, 1.4)))
    p["box_h"] = max(2, int(side * r(0.7, 1.4)))
    span_x, span_y = max(width - p["box_w"], 1), max(height - p["box_h"], 1)
    if label == "event":
        # speed in frame widths per second: the box crosses the frame 1.2-3 times a second
        p["speed"] = round(r(1.2, 3.0) * width, 1)
        p["x_rate"] = round(p["speed"] / span_x, 4)  # wall hits per second on the x axis
        p["y_rate"] = round(p["speed"] * r(0.3, 1.0) / span_y, 4)
        p["x_phase"], p["y_phase"] = r(0, 2), r(0, 2)
    else:
        # slow drift, 3-12 % of the width per second, in any direction
        p["speed"] = round(r(0.03, 0.12) * width, 1)
        angle = r(0, 2 * math.pi)
        p["vx"], p["vy"] = round(p["speed"] * math.cos(angle), 3), round(p["speed"] * math.sin(angle), 3)
        p["x0"], p["y0"] = int(rng.integers(0, span_x + 1)), int(rng.integers(0, span_y + 1))
    # static clutter in both classes, so "there is a second box" says nothing about the class
    clutter = []
    for _ in range(int(rng.integers(0, 3))):
        cw, ch = int(height * r(0.05, 0.3)), int(height * r(0.05, 0.3))
        cx, cy = int(rng.integers(0, max(width - cw, 1))), int(rng.integers(0, max(height - ch, 1)))
        clutter.append((cx, cy, max(cw, 2), max(ch, 2), _hex(rng.integers(0, 256, 3))))
    p["clutter"] = ";".join(f"{x}:{y}:{w}:{h}:{c}" for x, y, w, h, c in clutter)
    p["picture_noise"] = int(rng.integers(0, 11))  # ffmpeg noise strength; 0 is a clean picture
    p["video_seed"] = int(rng.integers(0, 2**31 - 1))

    p["has_audio"] = index % SILENT_EVERY != 0
    p["audio_seed"] = int(rng.integers(0, 2**31 - 1))
    p["channels"] = int(rng.choice([1, 2]))
    p["sample_rate"] = int(rng.choice(SAMPLE_RATES))
    p["audio_noise"] = r(0.002, 0.03)  # background hiss amplitude, both classes
    if label == "event":
        p["loudness"] = r(0.4, 0.9)  # peak amplitude of each burst
        # decay >= 60 ms so a burst spans a few video frames and survives frame subsampling
        p["burst_decay"] = r(0.06, 0.15)
        p["burst_rate"] = p["x_rate"]  # one burst per side-wall hit
        p["pitch"] = None
    else:
        p["loudness"] = r(0.02, 0.08)  # tone amplitude
        p["pitch"] = round(float(np.exp(rng.uniform(np.log(180), np.log(880)))), 1)
        p["burst_decay"] = p["burst_rate"] = None
    if not p["has_audio"]:
        for k in ("channels", "sample_rate", "audio_noise", "loudness", "pitch", "burst_rate", "burst_decay",
                  "audio_seed"):
            p[k] = None
    return p


def dataset_params(seed, n, *, seconds=3.0, size=(320, 240), fps=30):
    """Parameters of every clip: n per class, event first."""
    return [clip_params(clip_rng(seed, label, i), label, i, seconds=seconds, size=size, fps=fps)
            for label in CLASSES for i in range(n)]


# ----------------------------------------------------------------------------- ffmpeg

def _video_graph(p):
    w, h, s, fps = p["width"], p["height"], p["seconds"], p["fps"]
    parts = [f"color=c={p['bg_color']}:s={w}x{h}:r={fps}:d={s}", "format=yuv420p"]
    for item in filter(None, p["clutter"].split(";")):
        x, y, cw, ch, c = item.split(":")
        parts.append(f"drawbox=x={x}:y={y}:w={cw}:h={ch}:color={c}:t=fill")
    span_x, span_y = max(w - p["box_w"], 1), max(h - p["box_h"], 1)
    if p["class"] == "event":
        # triangle waves: the box reaches a wall whenever t*rate+phase is a whole number
        x = f"{span_x}*abs(mod(t*{p['x_rate']}+{p['x_phase']},2)-1)"
        y = f"{span_y}*abs(mod(t*{p['y_rate']}+{p['y_phase']},2)-1)"
    else:
        x = f"clip({p['x0']}+({p['vx']})*t,0,{span_x})"
        y = f"clip({p['y0']}+({p['vy']})*t,0,{span_y})"
    box = f"color=c={p['box_color']}:s={p['box_w']}x{p['box_h']}:r={fps}:d={s},format=yuv420p[box]"
    # the moving object is an overlay: drawbox works out its position once, overlay every frame
    scene = ",".join(parts) + f"[bg];[bg][box]overlay=x='{x}':y='{y}':eval=frame:shortest=1"
    if p["picture_noise"]:
        scene += f",noise=alls={p['picture_noise']}:allf=t:all_seed={p['video_seed']}"
    return f"{box};{scene}[v]"


def _audio_graph(p):
    sr, s, seed = p["sample_rate"], p["seconds"], p["audio_seed"]
    hiss = f"anoisesrc=color=pink:amplitude={p['audio_noise']}:seed={seed + 1}:sample_rate={sr}:duration={s}[hiss]"
    if p["class"] == "event":
        rate = p["burst_rate"]
        # time since the last wall hit is mod(t*rate+phase,1)/rate; loudness decays from each hit.
        # Small frames (256 samples, ~5 ms) keep the per-frame envelope close to a smooth decay.
        env = f"{p['loudness']}*exp(-mod(t*{rate}+{p['x_phase']},1)/{rate}/{p['burst_decay']})"
        fg = (f"anoisesrc=color=white:amplitude=1:seed={seed}:sample_rate={sr}:duration={s}:nb_samples=256,"
              f"volume=volume='{env}':eval=frame[fg]")
    else:
        # ffmpeg's sine peaks at 1/8, so x8 makes `loudness` the tone's peak amplitude
        fg = f"sine=frequency={p['pitch']}:sample_rate={sr}:duration={s},volume={p['loudness'] * 8:.4f}[fg]"
    layout = "mono|c0=c0" if p["channels"] == 1 else "stereo|c0=c0|c1=c0"
    return f"{fg};{hiss};[fg][hiss]amix=inputs=2:normalize=0:duration=first,pan={layout}[a]"


def params_stamp(params):
    """The comment a clip carries: a digest of every parameter it is made from."""
    return "fmrgb-sample " + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def clip_problem(params, path):
    """None when the clip at `path` was made from exactly `params` (its stamp), else why not."""
    try:
        comment = probe(path).comment
    except RuntimeError as e:
        return f"unreadable ({e})"
    if comment != params_stamp(params):
        return "made with other settings (--seed, --seconds, --size or --fps), or by another version of this script"
    return None


def clip_ffmpeg_args(params, out_path):
    """ffmpeg arguments (after the executable) that write the clip `params` describes to `out_path`."""
    graph = _video_graph(params)
    maps = ["-map", "[v]"]
    if params["has_audio"]:
        graph += ";" + _audio_graph(params)
        maps += ["-map", "[a]"]
    args = ["-y", "-filter_complex_threads", "1", "-filter_complex", graph, *maps, "-t", str(params["seconds"]),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-threads", "1"]
    if params["has_audio"]:
        args += ["-c:a", "aac", "-b:a", "128k"]
    # bitexact + no metadata: no version strings or dates, so the same seed gives the same bytes
    args += ["-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1",
             "-metadata", f"comment={params_stamp(params)}", "-f", "mp4", input_arg(out_path)]
    return args


def make_clip(params, path, *, overwrite=False):
    """Write one clip to `path` (atomically); returns "written" or "skipped" (already there)."""
    path = Path(path)
    if path.exists() and not overwrite:
        return "skipped"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        run_ffmpeg(clip_ffmpeg_args(params, tmp), timeout=300)
    return "written"


def write_clips_csv(rows, path):
    write_csv(path, CSV_FIELDS, [["" if row.get(k) is None else row[k] for k in CSV_FIELDS] for row in rows])


def clip_path(out, params):
    return Path(out) / params["class"] / params["file"]


# ----------------------------------------------------------------------------- command line

def parse_size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 320x240, not {text!r}") from None
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 32 (H.264 4:2:0)")
    return w, h


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="dataset folder; gets event/, calm/ and clips.csv")
    parser.add_argument("--n", type=int, default=20, help="clips per class")
    parser.add_argument("--seed", type=int, default=0, help="random seed (non-negative)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--size", type=parse_size, default="320x240", metavar="WxH", help="frame size")
    parser.add_argument("--fps", type=int, default=30, help="frame rate")
    parser.add_argument("--jobs", type=int, default=2, help="ffmpeg processes at once")
    parser.add_argument("--overwrite", action="store_true", help="regenerate clips that already exist")
    return parser


def main(args):
    if args.n < 1 or args.seed < 0 or args.seconds <= 0 or args.fps < 1 or args.jobs < 1:
        usage_error("--n, --fps and --jobs must be at least 1, --seconds positive, --seed >= 0")
    out = Path(args.out)
    params = dataset_params(args.seed, args.n, seconds=args.seconds, size=args.size, fps=args.fps)
    for label in CLASSES:
        (out / label).mkdir(parents=True, exist_ok=True)
    by_path = {clip_path(out, p): p for p in params}
    if not args.overwrite:
        # a kept clip must be the one these settings make, or clips.csv would describe another file
        existing = [path for path in by_path if path.exists()]
        _, problems, _ = run_jobs(lambda path: ("checked", clip_problem(by_path[path], path)), existing,
                                  report=Console(), jobs=args.jobs, desc="check")
        wrong = sorted(path for path, why in problems.items() if why)
        if wrong:
            usage_error(f"{len(wrong)} clips already in {out} are not what these settings make "
                        f"({wrong[0]}: {problems[wrong[0]]}); nothing written: use the settings they were made "
                        "with, --overwrite to make them again, or another --out")
    # items are paths, so a failure line names the file that could not be made
    counts, _, failed = run_jobs(lambda path: make_clip(by_path[path], path, overwrite=args.overwrite),
                                 list(by_path), report=Console(), jobs=args.jobs, desc="clips")
    done = [p for path, p in by_path.items() if path not in set(failed)]
    write_clips_csv(done, out / "clips.csv")
    per_class = ", ".join(f"{c} {sum(p['class'] == c for p in done)}" for c in CLASSES)
    line = (f"wrote {counts.get('written', 0)} clips to {out} ({per_class}; "
            f"{sum(not p['has_audio'] for p in done)} without sound")
    if counts.get("skipped"):
        line += f"; {counts['skipped']} already there"
    if failed:
        line += f"; {len(failed)} failed"
    print(line + ")")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
