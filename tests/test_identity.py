"""Data safety: a derived file (.pt, resized copy) is tied to its source's very bytes, a resized name
keeps its meaning, nothing is written over what a step did not make, and nothing is skipped silently.
Each delete guard has a case that only it stops."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

import make_sample_data as msd
from conftest import REPORT, damage_until, load_pt, make_video, run_script
from fmrgb import files
from fmrgb.prepare import convert, deletion, ffmpeg, record, resized
from fmrgb.prepare.scan import scan_tree


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def kept(stdout, path):
    """The reason delete_* printed for keeping `path`, or None when it did not keep it."""
    prefix = f"kept {path}: "
    return next((ln[len(prefix):] for ln in stdout.splitlines() if ln.startswith(prefix)), None)


def error_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("error: ")]


def replace_with_same_size_other_clip(path, **kw):
    """Put another clip at `path` with exactly the old byte size and times (a top-level mp4 `free`
    box, which every reader skips, pads it): only the content tells the two apart."""
    st = path.stat()
    other = make_video(path.with_name("other_" + path.name), **kw)
    data = other.read_bytes()
    other.unlink()
    pad = st.st_size - len(data)
    assert pad >= 8, "the other clip must be smaller"
    path.write_bytes(data + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    return path


# ----------------------------------------------------------------------------- 1. identity by content

def test_a_video_replaced_by_other_content_of_the_same_size_and_time_is_kept_and_its_record_too(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=1)
    convert.convert_tree(tmp_path, report=REPORT)
    assert load_pt(tmp_path / "a.mp4.pt")["source_sha256"] == sha256(video)
    replace_with_same_size_other_clip(video, seconds=1, size=(64, 48), audio=None)
    new = sha256(video)

    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists() and sha256(video) == new
    assert "another version" in kept(r.stdout, video)

    old = (tmp_path / "a.mp4.pt").read_bytes()  # the only copy of the first clip, for all a step knows
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert failed == [video] and (tmp_path / "a.mp4.pt").read_bytes() == old
    (tmp_path / "a.mp4.pt").rename(tmp_path / "first.pt")  # as the error line says
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert counts.get("converted") == 1 and not failed
    rec = load_pt(tmp_path / "a.mp4.pt")
    assert rec["frames"].shape[1:3] == (48, 64) and not rec["has_audio"] and rec["source_sha256"] == new
    assert record.conversion_problem(video) is None


def test_a_record_from_before_fingerprints_keeps_its_video_and_is_not_overwritten(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=0.5)
    convert.convert_tree(tmp_path, report=REPORT)
    rec = load_pt(tmp_path / "a.mp4.pt")
    del rec["source_sha256"]  # what the previous format wrote: name and size only
    torch.save(rec, tmp_path / "a.mp4.pt")
    assert "does not record which video" in record.conversion_problem(video)
    assert {d.path: d.reason for d in deletion.converted_videos(tmp_path, report=REPORT)}[video] is not None
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert failed == [video] and "source_sha256" not in load_pt(tmp_path / "a.mp4.pt")


def test_a_resized_copy_of_other_content_of_the_same_size_is_neither_taken_nor_overwritten(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=1)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_a.mp4"
    old_copy = copy.read_bytes()
    replace_with_same_size_other_clip(video, seconds=1, size=(64, 48))  # same frame count, too

    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists()
    assert "another version" in kept(r.stdout, video)
    # the copy may be all that is left of the old clip: reported, never written over
    r = run_script("resize_video.py", "--target", tmp_path, "--mag", "2")
    assert r.returncode == 1 and copy.read_bytes() == old_copy
    assert error_lines(r.stderr) == [f"error: {video}: resized_a.mp4 is there and was made from another version "
                                     f"of this file: not overwritten (move it away to resize a.mp4)"]
    copy.rename(tmp_path.parent / f"{tmp_path.name}-old_copy.mp4")
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts.get("resized") == 1 and not failed
    assert resized.is_complete_copy(video, copy, decode=True) == (True, "")


# ----------------------------------------------------------------------------- 2. names that keep their meaning

def test_resized_names_come_from_the_videos_own_name_whatever_its_siblings():
    d = Path("/data/cls")
    alone = files.resized_names([d / "a.avi"])
    together = files.resized_names([d / "a.avi", d / "a.mp4", d / "a.mkv"])
    assert alone[d / "a.avi"] == together[d / "a.avi"] == d / "resized_a.avi.mp4"
    assert together[d / "a.mp4"] == d / "resized_a.mp4" and together[d / "a.mkv"] == d / "resized_a.mkv.mp4"


def test_fixing_a_broken_sibling_never_writes_over_the_only_copy_of_the_other(tmp_path):
    good = make_video(tmp_path / "a.mp4", seconds=1)
    broken = tmp_path / "a.avi"
    broken.write_bytes(b"RIFF" + b"\x00" * 200)
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts.get("resized") == 1 and failed == [broken]
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and not good.exists()  # its copy is verified: the original goes
    only_copy = (tmp_path / "resized_a.mp4").read_bytes()

    make_video(broken, seconds=1, size=(64, 48))  # a.avi fixed: now the only original named a.*
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts.get("resized") == 1 and not failed
    assert (tmp_path / "resized_a.mp4").read_bytes() == only_copy
    assert resized.is_complete_copy(broken, tmp_path / "resized_a.avi.mp4")[0]


def test_a_users_own_resized_file_is_never_overwritten_nor_taken_for_a_copy(tmp_path):
    x, y = make_video(tmp_path / "x.mp4", seconds=1), make_video(tmp_path / "y.mp4", seconds=1)
    mine = make_video(tmp_path / "resized_x.mp4", seconds=1, size=(80, 60))  # the user's own, no stamp
    notes = tmp_path / "resized_y.mp4"
    notes.write_bytes(b"not even a video")
    before = {p: p.read_bytes() for p in (mine, notes)}
    r = run_script("resize_video.py", "--target", tmp_path, "--mag", "2")
    assert r.returncode == 1 and "resized 0," in r.stdout and "failed 2" in r.stdout
    assert sorted(error_lines(r.stderr)) == [
        f"error: {x}: resized_x.mp4 is there and was not made by resize_video.py: not overwritten "
        f"(move it away to resize x.mp4)",
        f"error: {y}: resized_y.mp4 is there and was not made by resize_video.py: not overwritten "
        f"(move it away to resize y.mp4)"]
    assert {p: p.read_bytes() for p in (mine, notes)} == before
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and x.exists() and y.exists()
    assert "not made by resize_video.py" in kept(r.stdout, x)


def test_two_videos_sharing_a_copy_name_write_nothing_until_one_is_renamed(tmp_path):
    a, b = make_video(tmp_path / "a.avi", seconds=0.5), make_video(tmp_path / "a.avi.mp4", seconds=0.5)
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert sorted(failed) == [a, b] and not (tmp_path / "resized_a.avi.mp4").exists()
    b.rename(tmp_path / "b.mp4")
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert counts.get("resized") == 2 and not failed
    # a.avi.mp4 comes back: the existing copy is a.avi's, so it is the one refused
    make_video(tmp_path / "a.avi.mp4", seconds=0.5)
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert failed == [tmp_path / "a.avi.mp4"] and counts.get("skipped") == 2
    assert resized.is_complete_copy(a, tmp_path / "resized_a.avi.mp4")[0]


# ----------------------------------------------------------------------------- 3. --mag

def test_a_changed_mag_makes_the_copy_again(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=0.5, size=(160, 120))
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert ffmpeg.probe(tmp_path / "resized_a.mp4").width == 80
    counts, failed = resized.resize_videos(tmp_path, mag=4, report=REPORT)
    assert counts == {"resized": 1, "failed": 0} and not failed
    info = ffmpeg.probe(tmp_path / "resized_a.mp4")
    assert (info.width, info.height) == (40, 30)
    assert resized.is_complete_copy(video, tmp_path / "resized_a.mp4", mag=4)[0]
    assert resized.resize_videos(tmp_path, mag=4, report=REPORT)[0] == {"skipped": 1, "failed": 0}


# ----------------------------------------------------------------------------- 10. nothing skipped silently

def test_a_symlinked_class_folder_is_named_not_silently_left_out(tmp_path):
    target = tmp_path / "data"
    make_video(target / "calm" / "a.mp4", seconds=0.5)
    make_video(tmp_path / "elsewhere" / "b.mp4", seconds=0.5)
    os.symlink(tmp_path / "elsewhere", target / "loud")
    for script in ("create_fmrgbdata.py", "resize_video.py", "delete_allmp4.py"):
        r = run_script(script, "--target", target, "--dry-run" if script.startswith("delete") else "--jobs=1")
        assert r.returncode == 0, r.stderr
        assert f"warning: {target / 'loud'}: folder is a symlink, not followed" in r.stderr, script
    assert not (tmp_path / "elsewhere" / "b.mp4.pt").exists()


def test_an_unreadable_class_folder_is_named(tmp_path, monkeypatch, capsys):
    make_video(tmp_path / "calm" / "a.mp4", seconds=0.5)
    (tmp_path / "loud").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):  # what a folder without read permission does (root reads everything)
        if Path(path) == tmp_path / "loud":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped = []
    assert files.find_videos(tmp_path, on_skip=lambda p, why: skipped.append((p, why))) == [tmp_path / "calm" / "a.mp4"]
    assert skipped == [(tmp_path / "loud", "folder cannot be read (Permission denied): its files are left out")]
    counts, _ = convert.convert_tree(tmp_path, report=REPORT)
    assert counts["converted"] == 1
    assert f"warning: {tmp_path / 'loud'}: folder cannot be read" in capsys.readouterr().err


def test_a_scan_that_lists_a_deleted_video_is_refused(tmp_path):
    for i, seconds in enumerate((0.5, 1.0, 0.7)):
        make_video(tmp_path / f"v{i}.mp4", seconds=seconds, size=(64, 48))
    scan, _ = scan_tree(tmp_path, report=REPORT)
    assert scan["max_frames"] == 30
    (tmp_path / "v1.mp4").unlink()  # the longest: the scan's length is now nobody's
    with pytest.raises(ValueError, match=r"out of date .*v1\.mp4 is gone"):
        convert.convert_tree(tmp_path, shard=(0, 2), report=REPORT)
    r = run_script("create_fmrgbdata.py", "--target", tmp_path, "--shard", "0/2")
    assert r.returncode == 2 and "v1.mp4 is gone" in r.stderr and not list(tmp_path.glob("*.pt"))


def test_a_record_whose_video_is_gone_keeps_the_run_from_shrinking_it(tmp_path):
    make_video(tmp_path / "long.mp4", seconds=1)
    make_video(tmp_path / "short.mp4", seconds=0.5)
    convert.convert_tree(tmp_path, report=REPORT)
    (tmp_path / "long.mp4").unlink()
    make_video(tmp_path / "mid.mp4", seconds=0.7)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts["converted"] == 1
    for name in ("long", "short", "mid"):  # 30: the gone video's own frames, not lost to a shorter run
        assert load_pt(tmp_path / f"{name}.mp4.pt")["frames"].shape[0] == 30, name


def test_a_record_whose_video_is_gone_made_with_other_settings_is_named(tmp_path, capsys):
    make_video(tmp_path / "a.mp4", seconds=0.5)
    make_video(tmp_path / "b.mp4", seconds=1)
    convert.convert_tree(tmp_path, report=REPORT)
    (tmp_path / "a.mp4").unlink()
    (tmp_path / "model.pt").write_bytes(b"weights")  # not a video's record: never touched
    capsys.readouterr()
    convert.convert_tree(tmp_path, audiomethod="mel", report=REPORT)
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'a.mp4.pt'}: its video is gone and it was made with other settings" in err
    assert "model.pt" not in err and load_pt(tmp_path / "a.mp4.pt")["audiomethod"] == "simple"


def test_a_frames_run_never_shortens_a_record_whose_video_is_gone(tmp_path, capsys):
    make_video(tmp_path / "a.mp4", seconds=1)
    make_video(tmp_path / "b.mp4", seconds=1)
    convert.convert_tree(tmp_path, report=REPORT)
    (tmp_path / "b.mp4").unlink()  # delete_allmp4 did this: b.mp4.pt is the only copy of b
    before = load_pt(tmp_path / "b.mp4.pt")["frames"]
    counts, failed = convert.convert_tree(tmp_path, frames=8, report=REPORT)
    assert not failed
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == 8  # a still has its video
    assert torch.equal(load_pt(tmp_path / "b.mp4.pt")["frames"], before)
    assert f"warning: {tmp_path / 'b.mp4.pt'}: its video is gone: kept at its 30 frames" in capsys.readouterr().err


def test_delete_allmp4_keeps_a_video_whose_pt_holds_other_frames_than_it_decodes_to(tmp_path):
    short = make_video(tmp_path / "short.mp4", seconds=1)
    convert.convert_tree(tmp_path, frames=8, report=REPORT)
    assert load_pt(tmp_path / "short.mp4.pt")["source_frames"] == 30
    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and short.exists()
    assert "holds 8 of the video's 30 frames" in kept(r.stdout, short)
    convert.convert_tree(tmp_path, frames=40, report=REPORT)  # stretched: 40 blended frames, not its 30
    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and short.exists()
    assert "30 frames stretched to 40, blended" in kept(r.stdout, short)
    convert.convert_tree(tmp_path, report=REPORT)  # its own 30 frames: the video may go
    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and not short.exists()


# ----------------------------------------------------------------------------- 12. sample data, visualize

def test_sample_data_rerun_with_other_settings_refuses_and_keeps_clips_csv_true(tmp_path):
    args = ["--out", tmp_path, "--n", "1", "--seconds", "0.5", "--size", "64x48", "--jobs", "1"]
    r = run_script("make_sample_data.py", *args)
    assert r.returncode == 0, r.stderr
    csv_before = (tmp_path / "clips.csv").read_bytes()
    clips = {p: p.read_bytes() for p in tmp_path.rglob("*.mp4")}
    r = run_script("make_sample_data.py", *args[:4], "--seconds", "1.0", *args[6:])
    assert r.returncode == 2 and "not what these settings make" in r.stderr and "--overwrite" in r.stderr
    assert (tmp_path / "clips.csv").read_bytes() == csv_before
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.mp4")} == clips
    r = run_script("make_sample_data.py", *args)  # the settings they were made with: fine
    assert r.returncode == 0 and "2 already there" in r.stdout
    params = msd.dataset_params(0, 1, seconds=0.5, size=(64, 48))
    assert all(msd.clip_problem(p, msd.clip_path(tmp_path, p)) is None for p in params)


def test_visualize_video_without_out_keeps_classes_apart(tmp_path):
    make_video(tmp_path / "data" / "calm" / "1.mp4", seconds=0.5, size=(32, 24))
    make_video(tmp_path / "data" / "loud" / "1.mp4", seconds=0.5, size=(64, 48))
    convert.convert_tree(tmp_path / "data", report=REPORT)
    r = run_script("visualize.py", "--target", tmp_path / "data", "--video", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for cls, width in (("calm", 32), ("loud", 64)):
        red = tmp_path / "fmrgb_channels" / cls / "1.mp4.pt.red.mp4"
        assert ffmpeg.probe(red).width == width, cls


# ----------------------------------------------------------------------------- each delete guard alone

def stamped_copy(source, dest, *extra):
    """A copy stamped as resize_video.py stamps it, with extra ffmpeg output options."""
    args = resized.resize_args(source, dest, mag=2, copy_audio=False)
    ffmpeg.run_ffmpeg(args[:-1] + list(extra) + args[-1:])
    return dest


def test_guard_frame_count_keeps_an_original_whose_stamped_clean_copy_is_short(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=1)
    copy = stamped_copy(video, tmp_path / "resized_a.mp4", "-frames:v", "10")
    assert ffmpeg.video_stream_length(copy, decode=True)[::2] == (10, [])
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists()
    assert "10 frames" in kept(r.stdout, video)


def test_guard_decode_errors_keeps_an_original_whose_copy_is_damaged_but_complete(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=1, audio=None)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_a.mp4"

    def every_frame_comes_out_with_errors():  # damage the decoder conceals
        frames, _, errors = ffmpeg.video_stream_length(copy, decode=True)
        return errors and frames == 30

    damage_until(copy, every_frame_comes_out_with_errors, width=32, steps=range(1, 40))
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and video.exists()
    assert "errors" in kept(r.stdout, video)


def test_guard_symlink_keeps_an_original_whose_copy_is_a_link_even_to_a_good_copy(tmp_path):
    target, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    video = make_video(target / "a.mp4", seconds=1)
    elsewhere.mkdir()
    shutil.copy(video, elsewhere / "a.mp4")  # the same bytes: a copy made there is a.mp4's, by its stamp
    resized.resize_videos(elsewhere, mag=2, report=REPORT)
    os.symlink(elsewhere / "resized_a.mp4", target / "resized_a.mp4")
    assert resized.is_complete_copy(video, elsewhere / "resized_a.mp4", decode=True)[0]
    r = run_script("delete_not_resized.py", "--target", target)
    assert r.returncode == 0 and video.exists()
    assert kept(r.stdout, video) == "resized copy is a symlink"


def test_guard_source_keeps_a_video_whose_pt_was_made_from_another_video(tmp_path):
    a = make_video(tmp_path / "a.mp4", seconds=0.5)
    make_video(tmp_path / "b.mp4", seconds=0.5, audio=None)
    convert.convert_tree(tmp_path, report=REPORT)
    shutil.copy(tmp_path / "b.mp4.pt", tmp_path / "a.mp4.pt")  # loads fine, same recipe: b's frames
    r = run_script("delete_allmp4.py", "--target", tmp_path)
    assert r.returncode == 0 and a.exists() and not (tmp_path / "b.mp4").exists()
    assert "another version" in kept(r.stdout, a)
