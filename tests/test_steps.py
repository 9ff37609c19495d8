"""The preprocessing steps run on real (small) videos as a user runs them."""
import os
from pathlib import Path

import numpy as np
import torch

import visualize
from conftest import REPORT, load_pt, make_video, run_script
import fmrgb.prepare.convert
from fmrgb.prepare import decode, deletion, ffmpeg, record, resized
from fmrgb.prepare.convert import convert_tree, convert_video



# ----------------------------------------------------------------------------- create_fmrgbdata

def test_a_440_hz_tone_lands_on_its_frequency_value(tmp_path):
    make_video(tmp_path / "c" / "tone.mp4", seconds=2, audio="0.5*sin(2*PI*440*t)")
    counts, failed = convert_tree(tmp_path, report=REPORT)
    rec = load_pt(tmp_path / "c" / "tone.mp4.pt")
    assert not failed and counts["converted"] == 1
    assert rec["channels"] == ["red", "green", "blue", "amplitude", "frequency"]
    assert rec["sample_rate"] == 3000 and rec["frames"].dtype == torch.uint8
    freq = rec["frames"][5:-5, 0, 0, 4].float()
    assert (freq - 440 / 1500 * 255).abs().max() <= 1.5  # within one FFT bin
    assert (rec["frames"][:, :, :, 4] == rec["frames"][:, :1, :1, 4]).all()  # fills the frame


def test_a_tone_getting_louder_gives_a_rising_amplitude(tmp_path):
    make_video(tmp_path / "rise.mp4", seconds=2, audio="(t/2)*sin(2*PI*300*t)", channels=2, sample_rate=48000)
    convert_tree(tmp_path, report=REPORT)
    amp = load_pt(tmp_path / "rise.mp4.pt")["frames"][:, 0, 0, 3].numpy().astype(int)
    assert amp.max() == 255 and amp.argmax() >= len(amp) - 3
    assert amp[len(amp) // 4] < amp[len(amp) // 2] < amp[-3]


def test_video_without_sound_converts_with_zero_sound_channels_and_a_warning(tmp_path, capsys):
    make_video(tmp_path / "silent.mp4", audio=None)
    make_video(tmp_path / "digital_silence.mp4", audio="0")
    counts, failed = convert_tree(tmp_path, audiomethod="mel", report=REPORT)
    assert counts["converted"] == 2 and not failed
    for name, has_audio in [("silent.mp4", False), ("digital_silence.mp4", True)]:
        rec = load_pt(tmp_path / f"{name}.pt")
        assert rec["has_audio"] is has_audio
        assert not rec["frames"][..., 3:].any()
        assert rec["frames"][..., :3].any()
    err = capsys.readouterr().err
    assert "silent.mp4: no sound track" in err and "digital_silence.mp4: sound track is digital silence" in err


def test_rgb_channels_are_the_decoded_frames(tmp_path):
    video = make_video(tmp_path / "v.mkv", seconds=1)
    convert_tree(tmp_path, report=REPORT)
    frames = load_pt(tmp_path / "v.mkv.pt")["frames"].numpy()
    raw = ffmpeg.run_ffmpeg(["-i", ffmpeg.input_arg(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(-1, 120, 160, 3)
    assert frames.shape[0] == ref.shape[0]
    assert np.abs(frames[..., :3].astype(int) - ref).mean() < 3  # decoders may round colours differently


def test_grey_layout_with_fmrgb_3(tmp_path):
    make_video(tmp_path / "v.mp4", seconds=1)
    convert_tree(tmp_path, fmrgb=3, audiomethod="mel", report=REPORT)
    rec = load_pt(tmp_path / "v.mp4.pt")
    assert rec["channels"] == ["grey", "amplitude", "mel"] and rec["frames"].shape[-1] == 3
    rgb = convert_video(tmp_path / "v.mp4")["frames"][..., :3].float()
    luma = rgb @ torch.tensor([0.299, 0.587, 0.114])
    assert (rec["frames"][..., 0].float() - luma).abs().mean() < 1.5


def test_mel_image_of_a_higher_tone_is_brighter_higher_up(tmp_path):
    make_video(tmp_path / "low.mp4", seconds=2, audio="0.5*sin(2*PI*200*t)")
    make_video(tmp_path / "high.mp4", seconds=2, audio="0.5*sin(2*PI*1000*t)")
    convert_tree(tmp_path, audiomethod="mel", report=REPORT)
    rows = {}
    for name in ("low", "high"):
        mel = load_pt(tmp_path / f"{name}.mp4.pt")["frames"][40, :, -1, 4].float()  # newest column
        rows[name] = int(mel.argmax())
    assert rows["high"] < rows["low"]


def test_all_files_get_the_longest_videos_decoded_frame_count(tmp_path):
    make_video(tmp_path / "a" / "short.mp4", seconds=1)
    make_video(tmp_path / "b" / "long.avi", seconds=2, fps=25)
    counts, _ = convert_tree(tmp_path, report=REPORT)
    short, long = load_pt(tmp_path / "a" / "short.mp4.pt"), load_pt(tmp_path / "b" / "long.avi.pt")
    assert short["source_frames"] == 30
    assert short["frames"].shape[0] == long["frames"].shape[0] == long["source_frames"] >= 50
    assert counts["converted"] == 2
    # the first and last frames survive the stretch
    direct = convert_video(tmp_path / "a" / "short.mp4")["frames"]
    assert torch.equal(short["frames"][0], direct[0]) and torch.equal(short["frames"][-1], direct[-1])


def test_frames_flag_sets_the_count_and_a_new_longer_video_realigns_on_rerun(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=1)
    convert_tree(tmp_path, frames=12, report=REPORT)
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == 12
    counts, _ = convert_tree(tmp_path, frames=12, report=REPORT)
    assert counts == {"skipped": 1, "failed": 0}
    convert_tree(tmp_path, report=REPORT)  # default: the longest video's own count
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == 30
    make_video(tmp_path / "b.mp4", seconds=2)
    counts, _ = convert_tree(tmp_path, report=REPORT)
    assert counts["converted"] == 1 and counts["aligned"] == 1
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == 60


def test_rerun_skips_finished_files_and_other_settings_redo_them(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=1)
    convert_tree(tmp_path, report=REPORT)
    pt = tmp_path / "a.mp4.pt"
    before = pt.stat().st_mtime_ns
    counts, _ = convert_tree(tmp_path, report=REPORT)
    assert counts["skipped"] == 1 and pt.stat().st_mtime_ns == before
    counts, _ = convert_tree(tmp_path, audiomethod="mel", report=REPORT)
    assert counts["converted"] == 1 and load_pt(pt)["audiomethod"] == "mel"
    assert not list(tmp_path.glob(".*.part"))


def test_corrupt_file_is_reported_and_the_others_still_convert(tmp_path):
    make_video(tmp_path / "good.mp4", seconds=1)
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    (tmp_path / "empty.avi").write_bytes(b"")
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 1
    assert (tmp_path / "good.mp4.pt").exists()
    assert not (tmp_path / "corrupt.mp4.pt").exists() and not (tmp_path / "empty.avi.pt").exists()
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and any("corrupt.mp4" in e for e in errors) and any("empty.avi" in e for e in errors)
    assert "converted 1" in r.stdout and "failed 2" in r.stdout


def test_hostile_file_names_work_and_run_nothing(tmp_path):
    folder = tmp_path / "it's a $(touch PWNED); folder"
    names = ["-leading dash.mp4", "quote\"s and 'ticks'.mp4", "ünïcödé [1] *?.mp4"]
    for n in names:
        make_video(folder / n, seconds=0.5)
    for script, args in [("resize_video.py", ["--mag", "2"]), ("create_fmrgbdata.py", [])]:
        r = run_script(script, "--target", folder, *args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    for n in names:
        assert (folder / f"resized_{Path(n).stem}.mp4").exists()
        assert (folder / f"{n}.pt").exists()
    assert not (tmp_path / "PWNED").exists()


def test_jobs_gives_the_same_files(tmp_path):
    for i in range(3):
        make_video(tmp_path / "one" / f"v{i}.mp4", seconds=0.5 + i * 0.5)
        make_video(tmp_path / "two" / f"v{i}.mp4", seconds=0.5 + i * 0.5)
    convert_tree(tmp_path / "one", report=REPORT)
    convert_tree(tmp_path / "two", jobs=2, report=REPORT)
    for i in range(3):
        assert torch.equal(load_pt(tmp_path / "one" / f"v{i}.mp4.pt")["frames"],
                           load_pt(tmp_path / "two" / f"v{i}.mp4.pt")["frames"])


def test_videos_of_different_sizes_in_one_run_each_get_exactly_their_own_frames(tmp_path):
    # one process decodes video after video into the same memory: no clip may keep another's pixels
    for name, size, hz in [("1.mp4", (320, 240), 300), ("2.mp4", (160, 120), 600), ("3.mkv", (240, 180), 900)]:
        make_video(tmp_path / name, seconds=1, size=size, audio=f"0.5*sin(2*PI*{hz}*t)")
    convert_tree(tmp_path, audiomethod="mel", report=REPORT)
    for name in ["1.mp4", "2.mp4", "3.mkv"]:
        saved = load_pt(tmp_path / f"{name}.pt")["frames"]
        assert torch.equal(saved, convert_video(tmp_path / name, audiomethod="mel")["frames"]), name


def test_a_video_whose_alignment_fails_counts_as_failed_not_converted(tmp_path, monkeypatch):
    make_video(tmp_path / "long.mp4", seconds=1)
    make_video(tmp_path / "short.mp4", seconds=0.5)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(fmrgb.prepare.convert, "stretch_time", disk_full)
    counts, failed = convert_tree(tmp_path, report=REPORT)
    assert failed == [tmp_path / "short.mp4"]
    assert counts.get("converted") == 1 and counts.get("failed") == 1 and not counts.get("aligned")


def test_usage_errors_exit_2(tmp_path):
    r = run_script("create_fmrgbdata.py", "--target", tmp_path / "nope")
    assert r.returncode == 2 and "no such folder" in r.stderr
    r = run_script("create_fmrgbdata.py", "--target", tmp_path, "--fmrgb", "4")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    for mag in ("0", "1.5", "two"):
        r = run_script("resize_video.py", "--target", tmp_path, "--mag", mag)
        assert r.returncode == 2 and "--mag" in r.stderr


# ----------------------------------------------------------------------------- resize_video

def test_resize_halves_the_size_keeps_the_sound_and_never_resizes_twice(tmp_path):
    make_video(tmp_path / "a.mp4", size=(162, 122), seconds=1, channels=2)  # 81x61 -> 80x60
    make_video(tmp_path / "silent.mov", size=(160, 120), seconds=1, audio=None)
    make_video(tmp_path / "a.avi", size=(160, 120), seconds=1)  # same stem as a.mp4
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts["resized"] == 3 and not failed
    out = ffmpeg.probe(tmp_path / "resized_a.mp4")
    assert (out.width, out.height) == (80, 60) and out.has_audio and out.video_codec == "h264"
    assert not ffmpeg.probe(tmp_path / "resized_silent.mov.mp4").has_audio
    assert (tmp_path / "resized_a.avi.mp4").exists()
    assert decode.decode_audio(tmp_path / "resized_a.mp4", 8000).std() > 0.1
    counts, _ = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts == {"skipped": 3, "failed": 0}
    assert not list(tmp_path.glob("resized_resized_*"))


def test_resize_turns_other_sound_codecs_into_aac_and_copies_aac(tmp_path):
    make_video(tmp_path / "mp3.mp4", seconds=1, extra=["-c:a", "libmp3lame"])
    make_video(tmp_path / "aac.mp4", seconds=1)
    assert ffmpeg.probe(tmp_path / "mp3.mp4").audio_codec == "mp3"
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts["resized"] == 2 and not failed
    for name in ("mp3", "aac"):
        assert ffmpeg.probe(tmp_path / f"resized_{name}.mp4").audio_codec == "aac"


def test_resize_replaces_a_broken_copy_and_leaves_no_partial_file(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=1)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    full = (tmp_path / "resized_a.mp4").read_bytes()
    (tmp_path / "resized_a.mp4").write_bytes(full[: len(full) // 2])  # its stamp (at the front) says it is a.mp4's
    (tmp_path / "bad.mp4").write_bytes(b"nothing")
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts["resized"] == 1 and failed == [tmp_path / "bad.mp4"]
    assert ffmpeg.probe(tmp_path / "resized_a.mp4").has_video
    assert not (tmp_path / "resized_bad.mp4").exists()
    assert not list(tmp_path.glob(".*.part"))


# ----------------------------------------------------------------------------- delete steps

def tree_snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}


def test_delete_not_resized_removes_only_originals_with_a_complete_copy(tmp_path):
    d = tmp_path / "data" / "cls"
    make_video(d / "done.mp4", seconds=1)
    make_video(d / "broken.mp4", seconds=1)
    make_video(d / "missing.mp4", seconds=1)
    resized.resize_videos(tmp_path / "data", mag=2, report=REPORT)
    (d / "resized_missing.mp4").unlink()
    full = (d / "resized_broken.mp4").read_bytes()
    (d / "resized_broken.mp4").write_bytes(full[: len(full) // 2])
    (d / "notes.csv").write_text("a,b\n")
    (d / "model.pt").write_bytes(b"weights")
    before = tree_snapshot(tmp_path / "data")

    r = run_script("delete_not_resized.py", "--target", tmp_path / "data", "--dry-run")
    assert r.returncode == 0 and "would delete" in r.stdout and tree_snapshot(tmp_path / "data") == before

    r = run_script("delete_not_resized.py", "--target", tmp_path / "data")
    assert r.returncode == 0
    after = tree_snapshot(tmp_path / "data")
    assert set(before) - set(after) == {Path("cls/done.mp4")}
    assert all(after[k] == before[k] for k in after)
    assert "kept" in r.stdout and "broken.mp4" in r.stdout and "missing.mp4: no resized copy" in r.stdout


def test_delete_allmp4_removes_only_converted_videos(tmp_path):
    d = tmp_path / "data[1]"
    sibling = tmp_path / "data1"
    make_video(d / "a.mp4", seconds=0.5)
    make_video(d / "b.mp4", seconds=0.5)
    make_video(sibling / "a.mp4", seconds=0.5)
    convert_tree(d, report=REPORT)
    (d / "b.mp4.pt").write_bytes(b"not a tensor file")
    (d / "readme.txt").write_text("keep me")
    outside = tmp_path / "outside.mp4"
    make_video(outside, seconds=0.5)
    os.symlink(outside, d / "link.mp4")
    before_sibling = tree_snapshot(sibling)
    r = run_script("delete_allmp4.py", "--target", d)
    assert r.returncode == 0
    assert not (d / "a.mp4").exists() and (d / "a.mp4.pt").exists()
    assert (d / "b.mp4").exists() and "b.mp4: .pt does not load" in r.stdout
    assert (d / "readme.txt").exists() and outside.exists() and (d / "link.mp4").is_symlink()
    assert tree_snapshot(sibling) == before_sibling
    r = run_script("delete_allmp4.py", "--target", d, "--all", "--dry-run")
    assert "would delete" in r.stdout and (d / "b.mp4").exists()


# ----------------------------------------------------------------------------- visualize

def test_visualize_writes_a_png_for_5_3_channel_and_bare_files(tmp_path):
    make_video(tmp_path / "a" / "v.mp4", seconds=1)
    make_video(tmp_path / "b" / "v.mp4", seconds=1)
    convert_tree(tmp_path / "a", report=REPORT)
    convert_tree(tmp_path / "b", fmrgb=3, audiomethod="mel", report=REPORT)
    torch.save(torch.zeros(4, 8, 8, 5, dtype=torch.uint8), tmp_path / "bare.pt")
    for pt in [tmp_path / "a" / "v.mp4.pt", tmp_path / "b" / "v.mp4.pt", tmp_path / "bare.pt"]:
        written = visualize.visualize(pt)
        assert written[0].suffix == ".png" and written[0].read_bytes()[:4] == b"\x89PNG"
    written = visualize.visualize(tmp_path / "b" / "v.mp4.pt", out_dir=tmp_path / "out", video=True)
    assert [p.name for p in written[1:]] == [f"v.mp4.pt.{c}.mp4" for c in ("grey", "amplitude", "mel")]
    assert ffmpeg.probe(written[1]).has_video


def test_visualize_on_a_folder_draws_one_file_per_class_preferring_one_with_sound(tmp_path):
    for cls in ("calm", "event"):
        for i in range(2):
            make_video(tmp_path / cls / f"{i}.mp4", seconds=0.5, audio=None if cls == "event" and i == 0 else "0.3")
    convert_tree(tmp_path, report=REPORT)
    r = run_script("visualize.py", "--target", tmp_path)
    assert r.returncode == 0
    assert sorted(r.stdout.split()) == [str(tmp_path / "calm" / "0.mp4.pt.png"), str(tmp_path / "event" / "1.mp4.pt.png")]


# ----------------------------------------------------------------------------- files that changed

def test_a_resized_copy_counts_only_for_the_file_it_was_made_from(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=1)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)  # resized_a.mp4, made from a.mp4
    (tmp_path / "a.mp4").unlink()
    make_video(tmp_path / "a.avi", seconds=1)  # another clip, same length, same stem
    (tmp_path / "resized_a.mp4").rename(tmp_path / "resized_a.avi.mp4")  # where a.avi's copy would be
    plan = {d.path: d.reason for d in deletion.originals_with_copies(tmp_path, report=REPORT)}
    assert "made from another file" in plan[tmp_path / "a.avi"]  # resized_a.avi.mp4 is not its copy

    (tmp_path / "a.avi").unlink()
    make_video(tmp_path / "b.mp4", seconds=1)
    counts, _ = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts["resized"] == 1
    make_video(tmp_path / "b.mp4", seconds=1, audio=None)  # re-exported: same length, other content
    assert "another version" in {d.path: d.reason for d in deletion.originals_with_copies(tmp_path, report=REPORT)}[tmp_path / "b.mp4"]
    # the old copy may be all that is left of the old clip: reported, not written over
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts == {"failed": 1} and failed == [tmp_path / "b.mp4"]
    (tmp_path / "resized_b.mp4").unlink()  # the user decides it is not needed
    counts, _ = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts == {"resized": 1, "failed": 0}
    assert all(d.reason is None for d in deletion.originals_with_copies(tmp_path, report=REPORT))


def test_a_replaced_video_never_replaces_its_old_pt_and_is_never_deleted_for_it(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=1)
    convert_tree(tmp_path, report=REPORT)
    make_video(tmp_path / "a.mp4", seconds=1, size=(64, 48), audio=None)  # same name, other clip
    assert "another version" in record.conversion_problem(tmp_path / "a.mp4")
    counts, failed = convert_tree(tmp_path, report=REPORT)  # the old .pt may be the only copy of the first clip
    assert failed == [tmp_path / "a.mp4"] and load_pt(tmp_path / "a.mp4.pt")["has_audio"]
    (tmp_path / "a.mp4.pt").unlink()
    counts, _ = convert_tree(tmp_path, report=REPORT)
    assert counts["converted"] == 1
    rec = load_pt(tmp_path / "a.mp4.pt")
    assert rec["frames"].shape[1:3] == (48, 64) and not rec["has_audio"]
    assert record.conversion_problem(tmp_path / "a.mp4") is None
    torch.save(rec["frames"], tmp_path / "a.mp4.pt")  # a bare tensor says nothing of its source
    assert "does not record" in record.conversion_problem(tmp_path / "a.mp4")


def test_converting_an_original_beside_its_resized_copy_warns(tmp_path, capsys):
    make_video(tmp_path / "a.mp4", seconds=0.5)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    capsys.readouterr()
    convert_tree(tmp_path, report=REPORT)
    assert "resized_ copy beside them" in capsys.readouterr().err


def test_visualize_out_keeps_classes_apart(tmp_path):
    for cls in ("x", "y"):
        make_video(tmp_path / "data" / cls / "1.mp4", seconds=0.5)
    convert_tree(tmp_path / "data", report=REPORT)
    r = run_script("visualize.py", "--target", tmp_path / "data", "--out", tmp_path / "pics")
    assert r.returncode == 0
    assert sorted(p.relative_to(tmp_path / "pics").as_posix() for p in (tmp_path / "pics").rglob("*.png")) == [
        "x/1.mp4.pt.png", "y/1.mp4.pt.png"]
