"""Bad and odd media: each broken file fails alone with one `error: <path>: <reason>` line in every
step and the others are done; odd but valid media (one frame, variable frame rate, late sound, a
long clip among short ones) convert with every frame and the sound on the right frames."""
import numpy as np
import pytest
import torch

from conftest import (BROKEN, REPORT, SIZE, TONE, digest, error_lines, load_pt, make_sound_only,
                      make_truncated_faststart, make_video, make_zero, part_files, run_script, tiny)
from fmrgb.prepare import convert, decode, ffmpeg, framesinks, memory, resized
from fmrgb.prepare.scan import scan_tree


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_fails_alone_with_one_error_line_in_every_step(tmp_path, kind, capsys):
    good = tiny(tmp_path / "good.mp4")
    bad = tmp_path / "bad.mp4"
    BROKEN[kind](bad)
    before = digest(bad)

    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    err = capsys.readouterr().err
    assert failed == [bad] and counts["converted"] == 1 and counts["failed"] == 1
    assert error_lines(err) == [ln for ln in err.splitlines() if str(bad) in ln]
    assert len(error_lines(err)) == 1 and error_lines(err)[0].startswith(f"error: {bad}: ")
    assert load_pt(tmp_path / "good.mp4.pt")["frames"].shape[0] == 15
    assert not (tmp_path / "bad.mp4.pt").exists()

    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    err = capsys.readouterr().err
    assert failed == [bad] and counts["resized"] == 1
    assert len(error_lines(err)) == 1 and error_lines(err)[0].startswith(f"error: {bad}: ")
    assert not (tmp_path / "resized_bad.mp4").exists()

    scan, failed = scan_tree(tmp_path, report=REPORT)
    assert failed == [bad] and scan["max_frames"] == 15
    capsys.readouterr()

    assert digest(bad) == before and good.exists()
    assert not part_files(tmp_path)


def test_broken_files_make_the_scripts_exit_1_after_doing_the_rest(tmp_path):
    tiny(tmp_path / "good.mp4")
    for kind, make in BROKEN.items():
        make(tmp_path / f"{kind}.mp4")
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(ln.split(": ")[1] for ln in error_lines(r.stderr)) == sorted(
        str(tmp_path / f"{k}.mp4") for k in BROKEN)
    assert "converted 1," in r.stdout and f"failed {len(BROKEN)}" in r.stdout
    r = run_script("resize_video.py", "--target", tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(error_lines(r.stderr)) == len(BROKEN) and "resized 1," in r.stdout
    assert (tmp_path / "resized_good.mp4").exists()


def test_sound_only_file_is_reported_as_having_no_video(tmp_path, capsys):
    make_sound_only(tmp_path / "song.mp4")
    _, failed = convert.convert_tree(tmp_path, report=REPORT)
    line = error_lines(capsys.readouterr().err)[0]
    assert failed and "video" in line.split(": ", 2)[2].lower()


def test_truncated_faststart_file_keeps_only_what_really_decodes(tmp_path, capsys):
    tiny(tmp_path / "good.mp4", seconds=1)
    bad = make_truncated_faststart(tmp_path / "half.mp4") or tmp_path / "half.mp4"
    _, failed = convert.convert_tree(tmp_path, report=REPORT)
    err = capsys.readouterr().err
    pt = tmp_path / "half.mp4.pt"
    if failed:  # refusing is fine, as long as it is said and nothing is written
        assert failed == [bad] and len(error_lines(err)) == 1 and not pt.exists()
    else:  # converting is fine, as long as the record does not pretend to more frames than decode
        rec = load_pt(pt)
        assert 0 < rec["source_frames"] == decode.decoded_frame_count(bad) < 30
        assert rec["frames"].shape[0] == 30  # stretched to the complete clip, like any shorter video
    assert not part_files(tmp_path)


def test_error_lines_stay_one_line_even_for_a_name_with_a_newline(tmp_path, capsys):
    make_zero(tmp_path / "bad\nname.mp4")
    tiny(tmp_path / "ok.mp4")
    _, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    err = capsys.readouterr().err
    assert len(failed) == 1 and len(error_lines(err)) == 1


def test_every_stderr_line_of_a_failed_file_with_a_newline_in_its_name_is_an_error_line(tmp_path, capsys):
    make_zero(tmp_path / "bad\nname.mp4")
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines), lines


# ----------------------------------------------------------------------------- odd but valid media

def make_vfr(path):
    """30 frames over 1.5 s: the first 15 every 2/30 s, the rest every 1/30 s; a tone from t = 1 s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                      "-f", "lavfi", "-i", f"aevalsrc=if(gte(t\\,1)\\,{TONE}\\,0):s=44100:d=1.5",
                      "-vf", "setpts='if(lt(N,15),2*N,N+15)/TB/30'", "-fps_mode", "vfr",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      ffmpeg.input_arg(path)])
    return path


ODD = {  # name: (maker, expected frames, expected fps)
    "one_frame": (lambda p: tiny(p, seconds=1 / 30), 1, 30.0),
    "23.976fps": (lambda p: tiny(p, seconds=1, fps="24000/1001"), 24, 24000 / 1001),
    "59.94fps": (lambda p: tiny(p, seconds=1, fps="60000/1001"), 60, 60000 / 1001),
    "5.1_sound": (lambda p: tiny(p, seconds=1, channels=6), 30, 30.0),
    "8kHz_sound": (lambda p: tiny(p, seconds=1, sample_rate=8000), 30, 30.0),
    "96kHz_sound": (lambda p: tiny(p, seconds=1, sample_rate=96000), 30, 30.0),
}


@pytest.mark.parametrize("kind", sorted(ODD))
def test_odd_but_valid_video_converts_with_its_tone_on_the_right_value(tmp_path, kind):
    make, n, fps = ODD[kind]
    video = make(tmp_path / "v.mp4")
    rec = convert.convert_video(video)
    frames = rec["frames"]
    assert frames.shape == (n, SIZE[1], SIZE[0], 5) and frames.dtype == torch.uint8
    assert rec["fps"] == pytest.approx(fps, abs=0.01)
    assert rec["sample_rate"] == 3000 and rec["has_audio"] and not rec["silent"]  # 30 x 100 Hz, whatever the fps
    amp, freq = frames[..., 3].numpy(), frames[..., 4].numpy()
    assert (amp == amp[:, :1, :1]).all() and (freq == freq[:, :1, :1]).all()  # one value per frame
    assert amp.max() == 255
    want = 440 / (rec["sample_rate"] / 2) * 255
    middle = freq[:, 0, 0][3:-3] if n > 6 else freq[:, 0, 0]
    assert np.abs(middle.astype(float) - want).max() <= 1.5, (middle, want)
    if n > 6:
        # a steady tone is steady all through, whatever the layout or rate (the encoder's pop at
        # the very end may be the loudest frame, so the level itself is relative to that)
        steady = amp[:, 0, 0][3:-3].astype(float)
        assert steady.min() > 60 and np.percentile(steady, 90) - np.percentile(steady, 10) <= 10, steady


def test_one_frame_video_is_stretched_to_the_others_length_as_copies_of_its_frame(tmp_path):
    ODD["one_frame"][0](tmp_path / "one.mp4")
    tiny(tmp_path / "long.mp4", seconds=1)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts["converted"] == 2
    rec = load_pt(tmp_path / "one.mp4.pt")
    assert rec["source_frames"] == 1 and rec["frames"].shape[0] == 30
    assert (rec["frames"] == rec["frames"][:1]).all()


def test_variable_frame_rate_keeps_every_frame_and_the_sound_spans_the_clip(tmp_path):
    video = make_vfr(tmp_path / "vfr.mp4")
    rec = convert.convert_video(video)
    amp = rec["frames"][:, 0, 0, 3].numpy()
    assert rec["frames"].shape[0] == 30 == decode.decoded_frame_count(video)
    assert rec["frames"].shape[0] / rec["fps"] == pytest.approx(1.5, rel=0.1)  # the whole clip's sound
    assert (amp[:10] == 0).all() and (amp[22:] > 200).all()


def test_sound_starting_late_stays_on_its_frames(tmp_path):
    video = tmp_path / "late.mp4"
    ffmpeg.run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                      "-itsoffset", "0.5", "-f", "lavfi", "-i", f"aevalsrc={TONE}:s=44100:d=0.5",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      ffmpeg.input_arg(video)])
    amp = convert.convert_video(video)["frames"][:, 0, 0, 3].numpy()
    assert len(amp) == 30
    assert (amp[:13] == 0).all() and (amp[17:29] > 200).all(), amp


def test_a_clip_20_times_longer_sets_everyones_length_and_shorter_ones_keep_their_ends(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        tiny(tmp_path / name, seconds=0.5)
    tiny(tmp_path / "long.mp4", seconds=10)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts["converted"] == 3
    direct = convert.convert_video(tmp_path / "a.mp4")["frames"]
    for name in ("a.mp4", "b.mp4", "long.mp4"):
        assert load_pt(tmp_path / f"{name}.pt")["frames"].shape == (300, SIZE[1], SIZE[0], 5)
    a = load_pt(tmp_path / "a.mp4.pt")
    assert a["source_frames"] == 15
    assert torch.equal(a["frames"][0], direct[0]) and torch.equal(a["frames"][-1], direct[-1])


def test_frames_beyond_the_first_buffer_are_all_kept_and_the_spare_room_is_not(tmp_path, monkeypatch):
    # a header that under-counts (or a clip larger than the first buffer may be) makes the frame
    # array grow while decoding; here the first buffer holds one frame, so it grows 1 -> 64 for 45
    video = make_video(tmp_path / "a.mp4", seconds=1.5)
    expected, _ = decode.decode_video(video, extra_channels=2)
    frame_bytes = expected[0].nbytes
    monkeypatch.setattr(framesinks, "initial_frames_limit_bytes", lambda: frame_bytes)
    grown, _ = decode.decode_video(video, extra_channels=2)
    assert grown.shape == expected.shape == (45, 120, 160, 5)
    assert np.array_equal(grown[..., :3], expected[..., :3])
    assert grown.flags.owndata, "45 frames must not keep a 64-frame buffer alive"
    with_scratch, _ = decode.decode_video(video, extra_channels=2, scratch=memory.ScratchBuffer())
    assert np.array_equal(with_scratch[..., :3], expected[..., :3])
