"""Draw what an FMRGB file holds: a grid of frames by channel, and its sound over time.

    $ python visualize.py --target data/Violence/resized_a.mp4.pt

Writes `<file>.png` beside the file (or into --out): rows are evenly spaced frames, columns the
picture (colour or grey), amplitude and frequency (or mel image); below, amplitude and dominant
frequency (or the loudest mel band) over time. --video also writes one grey mp4 per channel, into
--out or ./fmrgb_channels (never beside the data, where the next step would take them for clips),
each class in a folder of its own, so same-named files of two classes never overwrite each other.
--target may be a folder: then one file of each folder holding .pt files (one per class; the
first with sound).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from fmrgb import cli, files, runloop

from fmrgb.prepare import ffmpeg
from fmrgb.prepare.record import generic_channels, load_record
from fmrgb.prepare.sound import channel_names
from fmrgb.prepare.timeline import frame_times

CHANNEL_VIDEO_DIR = "fmrgb_channels"  # in the working directory, when --out is not given
DEFAULT_FPS = 25.0  # for a bare tensor, which records no frame rate


def load_fmrgb(path):
    """(frames uint8 numpy [T, H, W, C], channel names, fps, seconds) from a record or a bare tensor;
    seconds: the time in the video each frame shows (a stretched record spans its video's duration)."""
    frames, meta = load_record(path)
    names, fps = list(meta["channels"]), float(meta.get("fps", DEFAULT_FPS))
    n = frames.shape[-1]
    if generic_channels(names) and n in (3, 5):
        names = channel_names(n, "simple")
    return frames.numpy(), names, fps, frame_times(frames.shape[0], fps, meta.get("source_frames"))


def picture_columns(names):
    """Panels of the grid: (title, channel indices) - RGB shown together as one colour picture."""
    if names[:3] == ["red", "green", "blue"]:
        return [("picture", [0, 1, 2])] + [(n, [i]) for i, n in enumerate(names) if i > 2]
    return [(n, [i]) for i, n in enumerate(names)]


def sound_curves(frames, names):
    """Per-frame amplitude (0-1) and frequency (0-1 of Nyquist, simple) or the loudest mel band
    in the newest column of the image (0 = lowest, 1 = highest), from the stored channels."""
    curves = {}
    if "amplitude" in names:
        curves["amplitude"] = frames[:, 0, 0, names.index("amplitude")] / 255
    if "frequency" in names:
        curves["frequency (of Nyquist)"] = frames[:, 0, 0, names.index("frequency")] / 255
    if "mel" in names:
        newest = frames[:, :, -1, names.index("mel")].astype(np.float32)  # (T, H), top row = highest band
        band = 1 - np.argmax(newest, axis=1) / max(newest.shape[1] - 1, 1)
        curves["loudest mel band"] = np.where(newest.max(axis=1) > 0, band, 0)
    return curves


def draw(frames, names, seconds, out_png, *, title="", rows=6):
    from fmrgb.report import pyplot, save_figure

    plt = pyplot()
    panels = picture_columns(names)
    picks = np.linspace(0, len(frames) - 1, min(rows, len(frames))).round().astype(int)
    fig = plt.figure(figsize=(2.2 * len(panels), 1.8 * len(picks) + 2.4), constrained_layout=True)
    grid = fig.add_gridspec(len(picks) + 1, len(panels), height_ratios=[1] * len(picks) + [1.4])
    for r, t in enumerate(picks):
        for c, (name, idx) in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            img = frames[t][..., idx]
            ax.imshow(img if len(idx) == 3 else img[..., 0], cmap=None if len(idx) == 3 else "gray",
                      vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"frame {t}\n{seconds[t]:.2f} s", fontsize=8)
    ax = fig.add_subplot(grid[-1, :])
    for label, values in sound_curves(frames, names).items():
        ax.plot(seconds, values, label=label)
    ax.set_xlabel("time (s)"), ax.set_ylim(-0.02, 1.02), ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, out_png, dpi=80, tight=False)


def write_channel_videos(frames, names, fps, stem):
    """One grey mp4 per channel, each written by one ffmpeg call fed the whole channel at once."""
    written = []
    t, h, w, _ = frames.shape
    for i, name in enumerate(names):
        out = stem.with_name(f"{stem.name}.{name}.mp4")
        with files.atomic_output(out) as tmp:
            plane = np.ascontiguousarray(frames[..., i])
            pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]  # H.264 needs even sizes
            ffmpeg.run_ffmpeg(["-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r", f"{fps:.6f}",
                              "-i", "pipe:0", *pad, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                              "-f", "mp4", ffmpeg.input_arg(tmp)], input=plane.tobytes())
        written.append(out)
    return written


def visualize(path, *, out_dir=None, video=False, video_dir=None):
    """Write the picture (and with video=True the per-channel videos, into video_dir, else out_dir,
    else ./fmrgb_channels); returns the paths written."""
    path = Path(path)
    frames, names, fps, seconds = load_fmrgb(path)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    png = (Path(out_dir) if out_dir else path.parent) / (path.name + ".png")
    draw(frames, names, seconds, png, title=f"{path.parent.name}/{path.name}")
    if not video:
        return [png]
    # never beside the data: the next step would take the channel videos for clips of that class
    video_dir = Path(video_dir or out_dir or CHANNEL_VIDEO_DIR)
    video_dir.mkdir(parents=True, exist_ok=True)
    return [png] + write_channel_videos(frames, names, fps, video_dir / path.name)


def has_sound(path):
    try:
        _, meta = load_record(path)
    except RuntimeError:
        return False
    return meta.get("has_audio", False) and not meta.get("silent", False)


def pick_files(target):
    """A file as given; for a folder, one .pt of each folder that has any (one per class): the first
    with sound, since a silent clip's sound channels are black, else the first."""
    target = Path(target)
    if target.is_file():
        return [target]
    by_folder = {}
    for p in files.find_files(target, {".pt"}, on_skip=runloop.Console().warn):  # a class left out is named
        by_folder.setdefault(p.parent, []).append(p)
    return [next((p for p in group if has_sound(p)), group[0]) for _, group in sorted(by_folder.items())]


def draw_all(args, target):
    chosen = pick_files(target)
    if not chosen:
        cli.usage_error(f"--target {args.target}: no .pt files found")
    failed = 0
    for f in chosen:
        # files of different class folders keep apart: out/<class>/<file>.png, and the channel
        # videos in out/<class>/ or ./fmrgb_channels/<class>/ (for one file: the name of its folder)
        cls = f.parent.relative_to(target) if target.is_dir() else Path(f.absolute().parent.name)
        out_dir = None if not args.out else Path(args.out) / (cls if target.is_dir() else "")
        video_dir = out_dir or Path(CHANNEL_VIDEO_DIR) / cls
        try:
            for written in visualize(f, out_dir=out_dir, video=args.video, video_dir=video_dir):
                print(written)
        except Exception as e:
            print(cli.fail_line(f, e), file=sys.stderr)
            failed += 1
    print(f"drew {len(chosen) - failed}, failed {failed}", file=sys.stderr)
    return 1 if failed else 0


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--target", required=True, help="an FMRGB .pt file, or a folder (one file per class)")
    parser.add_argument("--out", default=None, help="folder for the outputs (default: beside each file)")
    parser.add_argument("--video", action="store_true",
                        help=f"also write one grey mp4 per channel (into --out, else ./{CHANNEL_VIDEO_DIR}/<class folder>)")
    return parser


@cli.interruptible
def main(args):
    target = Path(args.target)
    if not target.exists():
        cli.usage_error(f"--target {args.target}: no such file or folder")
    with cli.hold_data(target):
        return draw_all(args, target)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
