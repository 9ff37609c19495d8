"""predict.py --window: long videos read as a stream, window by window, into timelines and events."""
import functools
import subprocess
import sys

import numpy as np
import pytest
import torch

import predict
from conftest import ROOT, make_video, read_csv, write_dataset
from dataset import compute_stats
from fmrgb.training import checkpoint
from fmrgb.training.checkpoint import Recipe, RecordSettings, RunArgs
from fmrgb.training.clip import transform
from fmrgb.prepare.ffmpeg import input_arg, run_ffmpeg
from fmrgb.streaming.sliding import SOUND_LAG_S, classify_stream
from fmrgb.streaming.stream import open_stream
from fmrgb.training.survey import inspect_files
from fmrgb.streaming.windowclip import sample_rate, span_samples, window_input
from fmrgb.streaming.windows import WindowBuffer, WindowSpec, find_events
from model import build_model

CHANNELS = ("red", "green", "blue", "amplitude", "frequency")
# a tone from 5 s to 7 s in 12 s of silence (commas escaped: the expression sits in an ffmpeg filter graph)
SPLICED_TONE = "0.5*sin(2*PI*440*t)*between(t\\,5\\,7)"


def tone_recipe(*, pt_frames=30, frames=8, size=16, channels=CHANNELS, audiomethod="simple"):
    """A recipe that leaves the channels as they are (mean 0, std 1)."""
    record = RecordSettings(tuple(channels), audiomethod, 100, 3000, pt_frames)
    c = len(channels)
    kwargs = {"in_channels": c, "num_classes": 2, "frames": frames, "size": size}
    return Recipe.of(learnmethod="conv3d", model_kwargs=kwargs, classes=["calm", "loud"], record=record,
                     mean=[0.0] * c, std=[1.0] * c, frames=frames, size=size, lr=1e-3, run=RunArgs({}))


class LoudnessModel(torch.nn.Module):
    """A tiny deterministic classifier: "loud" when the amplitude channel (cthw, channel 3) is bright on
    more than half the frames it sees."""

    def forward(self, x):
        m = x[:, 3].mean(dim=(1, 2, 3))  # the amplitude is 0..1 with mean 0, std 1
        return torch.stack([torch.zeros_like(m), 20 * (m - 0.5)], 1)


def stream_of(video, recipe):
    return open_stream(video, gray=len(recipe.record.channels) == 3,
                       sample_rate_for=functools.partial(sample_rate, record=recipe.record))


@pytest.fixture(scope="module")
def spliced(tmp_path_factory):
    """12 s of a silent 64x48 video with a tone from 5 s to 7 s: the "loud" class spliced into "calm"."""
    return make_video(tmp_path_factory.mktemp("long") / "spliced.mp4", seconds=12, size=(64, 48),
                      audio=SPLICED_TONE)


def test_a_clip_of_one_class_spliced_into_the_other_is_found_within_a_window(spliced):
    recipe = tone_recipe()
    rows = list(classify_stream(LoudnessModel(), recipe, stream_of(spliced, recipe), window=2.0, stride=0.5))
    starts = np.array([r.start for r in rows])
    ends = np.array([r.end for r in rows])
    probs = np.stack([r.probs for r in rows])
    assert starts[0] == 0 and ends[-1] == pytest.approx(12.0, abs=0.05)
    np.testing.assert_allclose(starts[1:] - starts[:-1], 0.5)
    best = int(probs[:, 1].argmax())
    assert (starts[best], ends[best]) == (5.0, 7.0)
    events = [e for e in find_events(starts, ends, probs, ("calm", "loud"), 0.5) if e.label == "loud"]
    assert len(events) == 1
    assert 4.0 <= events[0].start <= 5.0 and 7.0 <= events[0].end <= 8.0   # within a window of the truth
    assert (probs[(ends <= 4.5) | (starts >= 7.5), 1] < 0.01).all()      # and nothing far from it


@pytest.mark.parametrize("channels,audiomethod,pt_frames,steps,seconds", [
    (CHANNELS, "simple", 20, 6, 1.5),                          # stretched from 45 frames to 20, 6 time steps
    (("grey", "amplitude", "mel"), "mel", 45, 6, 1.5),         # the window's own frames
    (("grey", "amplitude", "mel"), "mel", 60, 2, 4),           # a time step of 2 s: its mel image spans them
])
def test_a_window_is_the_record_of_its_span(tmp_path, channels, audiomethod, pt_frames, steps, seconds):
    # a window over a whole short video is the video's record: what predict.py classifies for the file
    video = make_video(tmp_path / "short.mp4", seconds=seconds, size=(64, 48), audio="0.5*sin(2*PI*300*t*t)")
    recipe = tone_recipe(pt_frames=pt_frames, frames=steps, channels=channels, audiomethod=audiomethod)
    stream = stream_of(video, recipe)
    pieces = list(stream.pieces())
    frames = np.concatenate([f for f, _ in pieces if f is not None])
    audio = np.concatenate([a for _, a in pieces if a is not None])
    facts = stream.facts
    lo, hi = span_samples(0, len(frames), fps=facts.fps, rate=facts.sample_rate, start=facts.start)
    window = np.zeros(hi - lo, np.float32)
    window[:len(audio[lo:hi])] = audio[lo:hi]
    got = window_input(frames, window, fps=facts.fps, recipe=recipe)
    clip, mel_window = predict.load_clip(video, recipe.record)
    c = len(channels)  # predict.py's (and training's) recipe: each time step's sound describes its segment
    want = transform(clip, frames=steps, size=16, mean=[0.0] * c, std=[1.0] * c, layout="cthw", names=channels,
                     mel_window=mel_window)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_long_video_is_held_a_few_windows_at_a_time(tmp_path):
    video = make_video(tmp_path / "long.mp4", seconds=60, size=(64, 48), fps=30)
    recipe = tone_recipe()
    spec = WindowSpec.of(window=2.0, stride=1.0, fps=30.0)
    buffer = WindowBuffer(spec)
    rows = list(classify_stream(LoudnessModel(), recipe, stream_of(video, recipe), window=2.0, stride=1.0,
                                buffer=buffer))
    assert buffer.received == 1800 and len(rows) == 59
    frames_per_read = (1 << 20) // (64 * 48 * 3) + 1  # one pipe read's frames
    assert buffer.most_held <= spec.length + 2 * frames_per_read  # never the whole 1800


def test_windows_go_as_their_frames_come_even_past_a_short_sound_track(tmp_path):
    # 30 s of picture, 1 s of sound: the windows past the sound's end must not wait for the video's end
    video = tmp_path / "short_sound.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=30", "-f", "lavfi",
                "-i", "aevalsrc=0.5*sin(2*PI*440*t):s=44100:d=1", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", "-c:a", "aac", input_arg(video)])
    recipe = tone_recipe()
    spec = WindowSpec.of(window=2.0, stride=1.0, fps=30.0)
    buffer = WindowBuffer(spec)
    late = []
    for row in classify_stream(LoudnessModel(), recipe, stream_of(video, recipe), window=2.0, stride=1.0,
                               buffer=buffer):
        late.append(buffer.received - round(row.end * 30))   # frames read beyond the window when it came out
    frames_per_read = (1 << 20) // (64 * 48 * 3) + 1
    assert len(late) == 29 and max(late) <= 30 * SOUND_LAG_S + 2 * frames_per_read + spec.step   # not 840


def make_trained_like_checkpoint(tmp_path):
    paths = write_dataset(tmp_path / "data", per_class=2, T=8, H=20, W=20)
    info = inspect_files(paths)
    mean, std = compute_stats(paths, frames=6, size=16)
    kwargs = {"in_channels": 5, "num_classes": 2, "frames": 6, "size": 16}
    torch.manual_seed(0)
    model = build_model("conv3d", **kwargs).eval()
    recipe = Recipe.of(learnmethod="conv3d", model_kwargs=kwargs, classes=["calm", "loud"],
                       record=RecordSettings.of(info), mean=mean, std=std, frames=6, size=16, lr=1e-3,
                       run=RunArgs({}))
    checkpoint.save(tmp_path / "best.pt", checkpoint.Checkpoint(recipe, model.state_dict()))
    return tmp_path / "best.pt"


def run_predict(*args):
    try:
        return predict.main(predict.get_args_parser().parse_args([str(a) for a in args]))
    except SystemExit as e:
        return e.code


def test_predict_window_writes_the_timeline_its_picture_and_events(tmp_path, spliced, capsys):
    model = make_trained_like_checkpoint(tmp_path)
    out = tmp_path / "out" / "timeline.csv"
    assert run_predict("--model", model, "--data", spliced, "--window", 2, "--stride", 1, "--threshold", 0.3,
                       "--out", out) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["start", "end", "calm", "loud"]
    assert [float(r["start"]) for r in rows] == list(range(11))
    assert all(abs(float(r["calm"]) + float(r["loud"]) - 1) < 1e-5 for r in rows)
    assert (out.with_suffix(".png")).read_bytes()[:4] == b"\x89PNG"
    events = read_csv(tmp_path / "out" / "timeline_events.csv")
    assert events and list(events[0]) == ["video", "class", "start", "end", "peak"]
    printed = capsys.readouterr().out
    assert "event: spliced.mp4:" in printed


def test_predict_window_on_a_folder_writes_one_timeline_per_video(tmp_path):
    model = make_trained_like_checkpoint(tmp_path)
    for name in ("a.mp4", "b.mkv", "sub/a.mp4"):
        make_video(tmp_path / "videos" / name, seconds=2, size=(64, 48))
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "tl" / "all.csv"
    assert run_predict("--model", model, "--data", tmp_path / "videos", "--window", 1, "--out", out) == 1
    for name in ("a.mp4", "b.mkv", "sub_a.mp4"):   # named after each video's path below --data
        assert [r["start"] for r in read_csv(tmp_path / "tl" / f"{name}_timeline.csv")] == ["0.000", "1.000"]
        assert (tmp_path / "tl" / f"{name}_timeline.png").is_file()
    assert not (tmp_path / "tl" / "broken.mp4_timeline.csv").exists()


@pytest.mark.parametrize("args,why", [(["--stride", 1], "--stride needs --window"),
                                      (["--window", 0], "positive"),
                                      (["--window", 1, "--threshold", 2], "a probability")])
def test_window_flags_are_checked(tmp_path, spliced, capsys, args, why):
    model = make_trained_like_checkpoint(tmp_path)
    assert run_predict("--model", model, "--data", spliced, *args) == 2
    assert why in capsys.readouterr().err


def test_a_stream_on_stdin_gives_the_timeline_of_the_file(tmp_path, spliced):
    model = make_trained_like_checkpoint(tmp_path)
    mkv = tmp_path / "stream.mkv"
    subprocess.run([sys.executable, "-c", "import sys; from fmrgb.prepare.ffmpeg import run_ffmpeg; "
                    "run_ffmpeg(['-i', sys.argv[1], '-c', 'copy', sys.argv[2]])", str(spliced), str(mkv)],
                   check=True, cwd=ROOT)
    assert run_predict("--model", model, "--data", mkv, "--window", 2, "--stride", 1,
                       "--out", tmp_path / "file.csv") == 0
    with open(mkv, "rb") as f:
        proc = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--model", str(model), "--data", "-",
                               "--window", "2", "--stride", "1", "--out", str(tmp_path / "live.csv")],
                              stdin=f, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "live.csv").read_text() == (tmp_path / "file.csv").read_text()
    lines = [ln for ln in proc.stdout.splitlines() if ln.endswith(")") and " s: " in ln]
    assert len(lines) == len(read_csv(tmp_path / "file.csv"))   # one printed line per window


def test_a_live_stream_prints_windows_before_it_ends(tmp_path, spliced):
    model = make_trained_like_checkpoint(tmp_path)
    mkv = tmp_path / "stream.mkv"
    run_ffmpeg(["-i", input_arg(spliced), "-c", "copy", input_arg(mkv)])
    proc = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), "--model", str(model), "--data", "-",
                             "--window", "2", "--stride", "1", "--out", str(tmp_path / "live.csv")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdin.buffer.write(mkv.read_bytes())   # the whole stream so far, but the pipe stays open
        proc.stdin.flush()
        first = proc.stdout.readline()               # a window's line while the stream has not ended
        assert first.startswith("0.00-2.00 s: ")
        assert len(read_csv(tmp_path / "live.csv")) >= 1   # already appended to the CSV
    finally:
        proc.stdin.close()
        proc.wait(timeout=300)
    assert proc.returncode == 0
