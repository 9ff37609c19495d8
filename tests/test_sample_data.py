"""make_sample_data.py: real mp4 files, the promised layout, reproducible, and classes a person can tell apart."""
import csv

import numpy as np
import pytest

import make_sample_data as msd
from fmrgb.prepare.decode import decode_audio
from fmrgb.prepare.ffmpeg import input_arg, parse_stream_info, run_ffmpeg

N, SECONDS = 3, 2.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    msd.main(msd.get_args_parser().parse_args(["--out", str(out), "--n", str(N), "--seconds", str(SECONDS)]))
    return out


def ffmpeg_info(path):
    return parse_stream_info(run_ffmpeg(["-i", input_arg(path)], check=False).stderr)


def grey_frames(path, size=(160, 120)):
    proc = run_ffmpeg(["-i", input_arg(path), "-vf", f"scale={size[0]}:{size[1]}", "-f", "rawvideo",
                       "-pix_fmt", "gray", "pipe:1"])
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, size[1], size[0]).astype(np.int16)


def motion(path):
    """Mean share of pixels that change by more than 40 grey levels between frames
    (a threshold that picture noise alone does not reach, a moving edge does)."""
    frames = grey_frames(path)
    return float(np.mean(np.abs(np.diff(frames, axis=0)) > 40))


def clips(out, label):
    return sorted((out / label).glob("*.mp4"))


def test_layout_counts_and_summary(dataset, capsys):
    for label in msd.CLASSES:
        assert [p.name for p in clips(dataset, label)] == [f"{label}_{i:03d}.mp4" for i in range(N)]
    assert not list(dataset.rglob("*.part"))
    # re-running keeps the files and says so
    mtimes = {p: p.stat().st_mtime_ns for p in dataset.rglob("*.mp4")}
    msd.main(msd.get_args_parser().parse_args(["--out", str(dataset), "--n", str(N), "--seconds", str(SECONDS)]))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote 0 clips to {dataset} (event {N}, calm {N}; ")
    assert "without sound" in line and f"{2 * N} already there" in line
    assert {p: p.stat().st_mtime_ns for p in dataset.rglob("*.mp4")} == mtimes


def test_files_are_h264_aac_mp4_of_the_requested_shape(dataset):
    silent = 0
    for path in clips(dataset, "event") + clips(dataset, "calm"):
        info = ffmpeg_info(path)
        assert info.video_codec == "h264"
        assert (info.width, info.height) == (320, 240)
        assert info.fps == pytest.approx(30)
        assert info.duration == pytest.approx(SECONDS, abs=0.1)
        assert len(grey_frames(path, (32, 24))) == round(SECONDS * 30)
        if info.has_audio:
            assert info.audio_codec == "aac"
        else:
            silent += 1
    assert 1 <= silent < 2 * N  # some clips have no sound track, most do


def test_csv_matches_the_files(dataset):
    with open(dataset / "clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * N
    for row in rows:
        path = dataset / row["class"] / row["file"]
        info = ffmpeg_info(path)
        assert info.has_audio == (row["has_audio"] == "True")
        if info.has_audio:
            proc = run_ffmpeg(["-i", input_arg(path)], check=False).stderr.decode()
            assert f"{row['sample_rate']} Hz" in proc
            assert ("mono" if row["channels"] == "1" else "stereo") in proc
        assert row["pitch"] != "" if row["class"] == "calm" and info.has_audio else row["pitch"] == ""


def test_default_clip_is_3s_320x240_30fps(tmp_path):
    params = msd.clip_params(msd.clip_rng(0, "event", 1), "event", 1)
    assert params["has_audio"]
    path = tmp_path / "a.mp4"
    assert msd.make_clip(params, path) == "written"
    info = ffmpeg_info(path)
    assert (info.video_codec, info.audio_codec, info.width, info.height) == ("h264", "aac", 320, 240)
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert len(grey_frames(path, (32, 24))) == 90


def test_same_seed_same_clips_different_seed_different():
    a = msd.dataset_params(0, 4, seconds=1.0)
    assert a == msd.dataset_params(0, 4, seconds=1.0)
    b = msd.dataset_params(1, 4, seconds=1.0)
    assert a != b
    assert all(pa != pb for pa, pb in zip(a, b))
    # a clip depends on its seed, class and number, not on how many clips were asked for
    assert msd.dataset_params(0, 2, seconds=1.0)[:2] == a[:2]
    # the variation the classifier must ignore really varies
    many = msd.dataset_params(0, 20)
    for key in ("bg_color", "box_color", "box_w", "channels", "sample_rate", "audio_noise", "picture_noise"):
        assert len({p[key] for p in many if p[key] is not None}) > 1, key
    assert sum(not p["has_audio"] for p in many) == 4


def test_reencoding_is_reproducible(tmp_path):
    params = msd.clip_params(msd.clip_rng(5, "calm", 3), "calm", 3, seconds=1.0)
    first = tmp_path / "one.mp4"
    second = tmp_path / "two.mp4"
    msd.make_clip(params, first)
    msd.make_clip(params, second)
    assert first.read_bytes() == second.read_bytes()
    # existing files are kept unless asked to overwrite
    first.write_bytes(b"not a video")
    assert msd.make_clip(params, first) == "skipped"
    assert msd.make_clip(params, first, overwrite=True) == "written"
    assert first.read_bytes() == second.read_bytes()


def test_event_moves_more_than_calm(dataset):
    event = [motion(p) for p in clips(dataset, "event")]
    calm = [motion(p) for p in clips(dataset, "calm")]
    assert min(event) > 3 * max(calm), (event, calm)


def test_event_is_louder_and_more_broadband_than_calm(dataset):
    def sound(path):
        audio = decode_audio(path, 32000)
        if audio is None:
            return None
        windows = audio[: len(audio) // 640 * 640].reshape(-1, 640)  # 20 ms
        peak_rms = float(np.sqrt(np.mean(windows ** 2, axis=1)).max())
        power = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / 32000)
        high_share = float(power[freqs > 3000].sum() / power.sum())  # tones sit below 1 kHz
        return peak_rms, high_share

    event = [s for s in map(sound, clips(dataset, "event")) if s]
    calm = [s for s in map(sound, clips(dataset, "calm")) if s]
    assert event and calm
    assert min(e[0] for e in event) > 2 * max(c[0] for c in calm)
    assert min(e[1] for e in event) > 0.5 > 0.1 > max(c[1] for c in calm)


def test_a_failed_clip_is_named_and_the_run_fails(tmp_path, monkeypatch, capsys):
    real = msd.run_ffmpeg

    def flaky(args, **kw):
        if "calm_000" in str(args[-1]):
            raise RuntimeError("ffmpeg: simulated failure")
        return real(args, **kw)

    monkeypatch.setattr(msd, "run_ffmpeg", flaky)
    assert msd.main(msd.get_args_parser().parse_args(["--out", str(tmp_path), "--n", "1", "--seconds", "0.5"])) == 1
    out, err = capsys.readouterr()
    assert "calm_000.mp4" in err and "simulated failure" in err
    assert out.strip() == f"wrote 1 clips to {tmp_path} (event 1, calm 0; 1 without sound; 1 failed)"
    assert not (tmp_path / "calm" / "calm_000.mp4").exists() and not list(tmp_path.rglob("*.part"))
    with open(tmp_path / "clips.csv", newline="") as f:
        assert [r["file"] for r in csv.DictReader(f)] == ["event_000.mp4"]


def test_bad_size_is_refused():
    with pytest.raises(SystemExit):
        msd.get_args_parser().parse_args(["--out", "x", "--size", "321x240"])
    assert msd.get_args_parser().parse_args(["--out", "x", "--size", "160x120"]).size == (160, 120)
