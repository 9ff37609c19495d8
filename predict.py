"""Classify FMRGB tensors or videos with a model trained by train.py.

    $ python predict.py --model runs/conv3d-20240101-120000/best.pt --data clip.mp4
    $ python predict.py --model RUN/best.pt --data folder/ --out predictions.csv
    $ python predict.py --model RUN/best.pt --data long.mp4 --window 2 --stride 1 --out timeline.csv
    $ ffmpeg -i rtsp://camera -f matroska - | python predict.py --model RUN/best.pt --data - --window 2 --stride 1

--data is a .pt file, a video, or a folder of either (searched recursively). A video is converted
in memory with the checkpoint's settings (fmrgb.prepare.convert.convert_video: audio method, frequency
parameter, channel count, and the training files' frame count), so a video and its .pt get the
same prediction. A .pt file made with other settings than the training files (other channels,
audio method, frequency parameter or sound sample rate) is refused. Prints one line per file; a file that fails
prints `error: <path>: <reason>`, the others go on, and the exit status is 1 if any failed.

With --window W (seconds) a video of any length is read once as a stream and classified window by window
(a new window every --stride seconds), each window made as a record of that span would be; --out is then the
timeline CSV (start, end, one probability column per class) with its picture beside it (.png), or for a folder
one timeline per video in --out's folder. Windows above --threshold for a class merge into events, printed
and written to <out>_events.csv. --data - reads a stream from standard input and prints each window's line
as soon as it is classified, appending it to the CSV. --annotations (CSV video,start,end,label in seconds, or
UCF-Crime's temporal annotation file) scores every frame from its windows and writes the frame-level ROC AUC
and AP to <out>_metrics.json.

Labelled data (a folder of class folders named as the checkpoint's classes, or a CSV path,label) is
evaluated: the CSV gains the true class, and <out>_metrics.json, <out>_confusion.png and (two classes)
<out>_roc.png are written beside it (<out>: --out's name without .csv; a training run's own metrics.json in
the same folder is never written over) by training's test code (fmrgb/training/evaluate.py, fmrgb/report.py).

    $ python predict.py --model RUN/best.pt --data rwf2000/val/ --out eval/predictions.csv
"""
import argparse
import sys
from pathlib import Path

import torch

from fmrgb.training import checkpoint
from fmrgb.cli import error_summary, fail_line, interruptible, usage_error, warn
from fmrgb.training.clip import channel_indices, record_mel_window, transform
from fmrgb.training.distributed import resolve_device
from fmrgb.files import VIDEO_EXTS, beside, find_files, write_csv
from fmrgb.prepare.record import UnreadableRecord, generic_channels, load_record, record_path
from fmrgb.streaming.annotations import read_annotations
from fmrgb.streaming.longvideo import Sliding, timeline_inputs, timelines
from fmrgb.streaming.stream import STDIN
from fmrgb.training.evaluate import check_classes, csv_inputs, true_classes, write_evaluation
from fmrgb.report import summary_lines

INPUT_EXTS = {".pt"} | VIDEO_EXTS


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint written by train.py (best.pt)")
    p.add_argument("--data", required=True, help="a .pt file, a video, or a folder of either")
    p.add_argument("--out", default="predictions.csv", help="CSV of the predictions")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    p.add_argument("--window", type=float, default=None,
                   help="seconds: classify long videos window by window into a timeline (--out)")
    p.add_argument("--stride", type=float, default=None, help="seconds between windows (default: --window)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="with --window: windows above it for a class merge into events")
    p.add_argument("--annotations", default=None,
                   help="with --window: CSV video,start,end,label (or UCF-Crime's temporal annotation file): "
                        "frame-level ROC AUC and AP into <out>_metrics.json beside --out")
    return p


def find_inputs(data):
    """The files to classify: `data` itself, or every .pt / video below the folder, each clip once: a
    video whose record lies beside it is classified through the record (the same clip, already made)."""
    data = Path(data)
    if not data.is_dir():
        return [data]
    found = find_files(data, INPUT_EXTS, on_skip=warn)
    present = set(found)
    return [p for p in found if p.suffix.lower() == ".pt" or record_path(p) not in present]


def check_recipe(meta, n_channels, record):
    """ValueError (one line) if a .pt file was made with other settings than the model's training
    files (`record`, a checkpoint.RecordSettings): the channel count, the channel names (when both sides
    have real names), and the audio method, frequency parameter and analysis rate (when both sides record
    them: at another rate a frequency value means other Hz)."""
    want = list(record.channels)
    if n_channels != len(want):
        raise ValueError(f"has {n_channels} channels, the model takes {len(want)}")
    have = list(meta.get("channels") or [])
    if have and not generic_channels(have) and not generic_channels(want) and have != want:
        names = [", ".join(map(str, c)) for c in (have, want)]
        raise ValueError(f"has channels {names[0]}, the model was trained on {names[1]}")
    for key in ("audiomethod", "frequency_param", "sample_rate"):
        mine, theirs = meta.get(key), getattr(record, key)
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(f"made with {key} {mine}, the model was trained on {theirs}")


def load_clip(path, record):
    """(uint8 clip [T, H, W, C], the frames one mel image of it spans: clip.record_mel_window) of a .pt file or
    a video (converted in memory as the training files were: `record`, a checkpoint.RecordSettings)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError("no such file")
    if path.suffix.lower() == ".pt":
        clip, meta = load_record(path)
        check_recipe(meta, clip.shape[-1], record)
        return clip, record_mel_window(meta, clip.shape[0])
    if path.suffix.lower() in VIDEO_EXTS:
        from fmrgb.prepare.convert import convert_video

        kwargs = {"fmrgb": len(record.channels), "frames": record.pt_frames}
        if record.audiomethod is not None:
            kwargs["audiomethod"] = record.audiomethod
        if record.frequency_param is not None:
            kwargs["frequency_param"] = record.frequency_param
        made = convert_video(path, **kwargs)
        return made["frames"], record_mel_window(made, made["frames"].shape[0])
    raise ValueError(f"not a .pt file or a video ({path.suffix or 'no suffix'})")


@torch.no_grad()
def predict_clip(model, recipe, clip, device="cpu", mel_window=None):
    """Class probabilities (K,) float64 of one uint8 clip, with the training recipe (a checkpoint.Recipe:
    fmrgb.training.clip.transform, on the channels the model was trained on: its use_channels, or all;
    `mel_window`: what load_clip gives with the clip)."""
    use = recipe.use_channels
    x = transform(clip, frames=recipe.frames, size=recipe.size, mean=list(recipe.mean), std=list(recipe.std),
                  layout=recipe.layout, channels=None if use is None else channel_indices(recipe.record.channels, use),
                  names=recipe.record.channels, mel_window=mel_window)
    logits = model(x.unsqueeze(0).to(device))
    return torch.softmax(logits.double(), dim=1)[0].cpu()


def predict_files(model, paths, *, device="cpu", log=print):
    """(the checkpoint.Recipe, [(path, probabilities or None, error or None)] for each path) of the
    checkpoint `model` (a checkpoint.Checkpoint or its file's path): classes from the checkpoint."""
    ckpt = model if isinstance(model, checkpoint.Checkpoint) else checkpoint.load(model)
    model = checkpoint.model_from(ckpt).to(device).eval()
    recipe = ckpt.recipe
    classes = recipe.classes
    results = []
    for p in paths:
        try:
            clip, window = load_clip(p, recipe.record)
            probs = predict_clip(model, recipe, clip, device, mel_window=window)
        except Exception as e:  # one bad file must not stop the others
            why = f"unreadable ({e.reason})" if isinstance(e, UnreadableRecord) else e  # its message names the file
            log(fail_line(p, why), file=sys.stderr)
            results.append((p, None, e))
            continue
        k = int(probs.argmax())
        log(f"{p}: {classes[k]} ({probs[k]:.4f})")
        results.append((p, probs, None))
    return recipe, results


def write_predictions(path, classes, results, truth=None):
    """One row per predicted file (the failed ones are left out); `truth`: a true class per file, a column."""
    rows = []
    for i, (p, probs, err) in enumerate(results):
        if probs is not None:
            k = int(probs.argmax())
            rows.append([str(p), *([truth[i]] if truth else []), classes[k], f"{probs[k]:.6f}",
                         *[f"{v:.6f}" for v in probs.tolist()]])
    write_csv(path, ["path", *(["true"] if truth else []), "predicted", "probability", *[f"p_{c}" for c in classes]],
              rows)


def report_evaluation(out, recipe, results, truth):
    """Labelled data: training's test metrics and pictures beside `out`, their line printed."""
    try:
        m = write_evaluation(out, recipe, results, truth)
    except ValueError as e:
        usage_error(f"--data: {e}")
    for line in summary_lines(m):
        print(line.replace("test:", f"labelled data ({m['n_files']} files):", 1))
    print(f"wrote {beside(out, 'metrics.json')}, {beside(out, 'confusion.png').name}")


def check_window_args(args):
    """--stride and --threshold ask for --window; all three in range; --data - only with --window."""
    if args.window is None:
        if args.stride is not None or args.annotations is not None:
            usage_error(f"--{'stride' if args.stride is not None else 'annotations'} needs --window")
        if args.data == STDIN:
            usage_error("--data - (a stream on standard input) needs --window")
        return
    if args.window <= 0 or (args.stride is not None and args.stride <= 0):
        usage_error("--window and --stride must be positive seconds")
    if not 0 <= args.threshold <= 1:
        usage_error(f"--threshold {args.threshold}: a probability, 0 to 1")


def timelines_main(args, device):
    """--window: one timeline per video; the exit status (1 if a video failed)."""
    videos = timeline_inputs(args.data)
    if not videos:
        usage_error(f"--data {args.data}: no videos found")
    try:
        ckpt = checkpoint.load(args.model)
        model = checkpoint.model_from(ckpt).to(device).eval()
    except Exception as e:  # an unreadable checkpoint
        usage_error(f"--model {args.model}: {error_summary(e)}")
    annotations = None
    if args.annotations is not None:
        try:
            annotations = read_annotations(args.annotations)
        except (OSError, ValueError) as e:
            usage_error(f"--annotations {args.annotations}: {error_summary(e)}")
    sliding = Sliding(args.window, args.stride or args.window, args.threshold, device)
    root = Path(args.data) if args.data != STDIN and Path(args.data).is_dir() else None
    done = timelines(model, ckpt.recipe, videos, sliding=sliding, out=args.out, log=print, annotations=annotations,
                     root=root)
    failed = [v for v, err in done if err is not None]
    print(f"{len(done) - len(failed)} timelines written, {len(failed)} failed")
    return 1 if failed else 0


@interruptible
def main(args):
    """Classify per `args`; returns the exit status: 0, or 1 if a file failed. A missing --model or
    --data, an unreadable checkpoint or --device cuda without a GPU exit 2 (SystemExit) with one
    line; Ctrl-C returns 130."""
    if not Path(args.model).is_file():
        usage_error(f"--model {args.model}: no such file")
    check_window_args(args)
    if args.data != STDIN and not Path(args.data).exists():
        usage_error(f"--data {args.data}: no such file or folder")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        usage_error(str(e))
    if args.window is not None:
        return timelines_main(args, device)
    try:  # a CSV path,label is labelled data
        paths, truth = (csv_inputs(args.data) if Path(args.data).suffix.lower() == ".csv"
                        else (find_inputs(args.data), None))
    except ValueError as e:
        usage_error(str(e))
    if not paths:
        usage_error(f"--data {args.data}: no .pt files or videos found")
    try:
        ckpt = checkpoint.load(args.model)
    except Exception as e:  # an unreadable checkpoint
        usage_error(f"--model {args.model}: {error_summary(e)}")
    truth = truth or true_classes(args.data, paths, ckpt.recipe.classes)  # a folder of the model's class folders
    if truth:  # before any file is predicted: a wrong label must not cost a whole pass
        try:
            check_classes(truth, ckpt.recipe.classes)
        except ValueError as e:
            usage_error(f"--data {args.data}: {e}")
    try:
        recipe, results = predict_files(ckpt, paths, device=device)
    except Exception as e:  # weights the model cannot take
        usage_error(f"--model {args.model}: {error_summary(e)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # <out>_metrics.json and the pictures go beside it
    write_predictions(args.out, recipe.classes, results, truth)
    if truth:
        report_evaluation(args.out, recipe, results, truth)
    failed = sum(err is not None for _, _, err in results)
    print(f"wrote {args.out}: {len(results) - failed} predicted, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
