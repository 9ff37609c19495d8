"""Classify FMRGB tensors or videos with a model trained by train.py.

    $ python predict.py --model runs/conv3d-20240101-120000/best.pt --data clip.mp4
    $ python predict.py --model RUN/best.pt --data folder/ --out predictions.csv

--data is a .pt file, a video, or a folder of either (searched recursively). A video is converted
in memory with the checkpoint's settings (features.convert_video: audio method, frequency
parameter, channel count, and the training files' frame count), so a video and its .pt get the
same prediction. Prints one line per file; a file that fails prints `error: <path>: <reason>`, the
others go on, and the exit status is 1 if any failed.
"""
import argparse
import sys
from pathlib import Path

import torch

from dataset import load_pt, transform
from media import VIDEO_EXTS, atomic_output, error_summary, fail_line, find_files

INPUT_EXTS = {".pt"} | VIDEO_EXTS


def get_args_parser():
    p = argparse.ArgumentParser(description="Classify FMRGB tensors or videos with a trained model.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint written by train.py (best.pt)")
    p.add_argument("--data", required=True, help="a .pt file, a video, or a folder of either")
    p.add_argument("--out", default="predictions.csv", help="CSV of the predictions")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    return p


def find_inputs(data):
    """The files to classify: `data` itself, or every .pt / video below the folder."""
    data = Path(data)
    if data.is_dir():
        return find_files(data, INPUT_EXTS)
    return [data]


def load_clip(path, ckpt):
    """uint8 clip [T, H, W, C] of a .pt file or a video (converted in memory per the checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError("no such file")
    if path.suffix.lower() == ".pt":
        clip, meta = load_pt(path)
    elif path.suffix.lower() in VIDEO_EXTS:
        from features import convert_video

        n = len(ckpt["channels"])
        kwargs = {"fmrgb": n, "frames": ckpt.get("pt_frames")}
        if ckpt.get("audiomethod") is not None:
            kwargs["audiomethod"] = ckpt["audiomethod"]
        if ckpt.get("frequency_param") is not None:
            kwargs["frequency_param"] = ckpt["frequency_param"]
        clip = convert_video(path, **kwargs)["frames"]
    else:
        raise ValueError(f"not a .pt file or a video ({path.suffix or 'no suffix'})")
    if clip.shape[-1] != len(ckpt["channels"]):
        raise ValueError(f"has {clip.shape[-1]} channels, the model takes {len(ckpt['channels'])}")
    return clip


@torch.no_grad()
def predict_clip(model, ckpt, clip, device="cpu"):
    """Class probabilities (K,) float64 of one uint8 clip, with the training recipe (dataset.transform)."""
    x = transform(clip, frames=ckpt["frames"], size=ckpt["size"], mean=ckpt["mean"], std=ckpt["std"],
                  layout=ckpt["layout"])
    logits = model(x.unsqueeze(0).to(device))
    return torch.softmax(logits.double(), dim=1)[0].cpu()


def predict_files(model_path, paths, *, device="cpu", log=print):
    """[(path, probabilities or None, error or None)] for each path; classes from the checkpoint."""
    from train import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(model_path)
    model = model_from_checkpoint(ckpt).to(device).eval()
    classes = ckpt["classes"]
    results = []
    for p in paths:
        try:
            probs = predict_clip(model, ckpt, load_clip(p, ckpt), device)
        except Exception as e:  # one bad file must not stop the others
            log(fail_line(p, e), file=sys.stderr)
            results.append((p, None, e))
            continue
        k = int(probs.argmax())
        log(f"{p}: {classes[k]} ({probs[k]:.4f})")
        results.append((p, probs, None))
    return ckpt, results


def write_predictions(path, classes, results):
    with atomic_output(path) as tmp:
        import csv

        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path", "predicted", "probability", *[f"p_{c}" for c in classes]])
            for p, probs, err in results:
                if probs is None:
                    continue
                k = int(probs.argmax())
                w.writerow([str(p), classes[k], f"{probs[k]:.6f}", *[f"{v:.6f}" for v in probs.tolist()]])


def main(args):
    if not Path(args.model).is_file():
        print(f"error: --model {args.model}: no such file", file=sys.stderr)
        raise SystemExit(2)
    if not Path(args.data).exists():
        print(f"error: --data {args.data}: no such file or folder", file=sys.stderr)
        raise SystemExit(2)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA GPU is available", file=sys.stderr)
        raise SystemExit(2)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    paths = find_inputs(args.data)
    if not paths:
        print(f"error: --data {args.data}: no .pt files or videos found", file=sys.stderr)
        raise SystemExit(2)
    try:
        ckpt, results = predict_files(args.model, paths, device=device)
    except Exception as e:  # an unreadable checkpoint
        print(f"error: --model {args.model}: {error_summary(e)}", file=sys.stderr)
        raise SystemExit(2)
    write_predictions(args.out, ckpt["classes"], results)
    failed = sum(err is not None for _, _, err in results)
    print(f"wrote {args.out}: {len(results) - failed} predicted, {failed} failed")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
