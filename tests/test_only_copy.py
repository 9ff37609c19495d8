"""An only copy is never rewritten or overwritten: a record whose video is gone keeps its frames bit for
bit (never stretched, never shortened, never replaced by a record of another clip that now has its
name), and the run's length counts it by the frames it holds."""
import shutil

from conftest import REPORT, load_pt, make_video, run_script
from fmrgb.prepare import convert


def test_a_new_clip_under_an_old_clips_name_never_replaces_its_record(tmp_path):
    video = make_video(tmp_path / "A" / "VID_0001.mp4", seconds=0.5, size=(64, 48))
    convert.convert_tree(tmp_path, report=REPORT)
    pt = tmp_path / "A" / "VID_0001.mp4.pt"
    old = pt.read_bytes()
    video.unlink()  # delete_allmp4.py did this: the record is all there is of the first clip
    make_video(video, seconds=1, size=(80, 64))  # the camera reuses the name for another clip
    for flags in ([], ["--overwrite"]):
        r = run_script("create_fmrgbdata.py", "--target", tmp_path, *flags)
        assert r.returncode == 1 and pt.read_bytes() == old, flags
        assert r.stderr.strip().splitlines() == [
            f"error: {video}: {pt.name} was made from another clip (VID_0001.mp4 of {load_pt(pt)['source_size']} "
            f"bytes, SHA-256 {load_pt(pt)['source_sha256'][:12]}...), the only copy of it: not overwritten "
            f"(rename this video, or move {pt.name} away, to convert it)"], flags
    pt.rename(tmp_path / "first_clip.pt")  # what the line says to do
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 0 and load_pt(pt)["frames"].shape == (30, 64, 80, 5)


def test_a_record_whose_video_is_gone_is_never_stretched(tmp_path, capsys):
    make_video(tmp_path / "a.mp4", seconds=1, size=(64, 48))
    make_video(tmp_path / "b.mp4", seconds=0.5, size=(64, 48))
    convert.convert_tree(tmp_path, report=REPORT)
    (tmp_path / "b.mp4").unlink()
    kept = (tmp_path / "b.mp4.pt").read_bytes()
    assert load_pt(tmp_path / "b.mp4.pt")["frames"].shape[0] == 30  # stretched once, from its video
    make_video(tmp_path / "c.mp4", seconds=2, size=(64, 48))
    capsys.readouterr()
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts["converted"] == 1 and counts["aligned"] == 1
    assert (tmp_path / "b.mp4.pt").read_bytes() == kept
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == load_pt(tmp_path / "c.mp4.pt")["frames"].shape[0] == 60
    assert (f"warning: {tmp_path / 'b.mp4.pt'}: its video is gone: kept at its 30 frames, not brought to this "
            "run's 60 (it is the only copy of its clip)") in capsys.readouterr().err


def test_the_runs_length_counts_a_record_whose_video_is_gone_by_its_own_frames(tmp_path):
    make_video(tmp_path / "long.mp4", seconds=2.5, size=(64, 48))  # 75 frames
    convert.convert_tree(tmp_path, report=REPORT, frames=4)
    (tmp_path / "long.mp4").unlink()
    kept = (tmp_path / "long.mp4.pt").read_bytes()
    assert load_pt(tmp_path / "long.mp4.pt")["source_frames"] == 75
    make_video(tmp_path / "new.mp4", seconds=0.5, size=(64, 48))  # 15 frames
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed
    assert load_pt(tmp_path / "new.mp4.pt")["frames"].shape[0] == 15  # max(4, 15), not stretched to 75
    assert (tmp_path / "long.mp4.pt").read_bytes() == kept


def test_a_record_whose_video_is_gone_is_never_shortened_by_a_shorter_run(tmp_path):
    make_video(tmp_path / "long.mp4", seconds=1, size=(64, 48))
    convert.convert_tree(tmp_path, report=REPORT)
    (tmp_path / "long.mp4").unlink()
    kept = (tmp_path / "long.mp4.pt").read_bytes()
    make_video(tmp_path / "mid.mp4", seconds=0.7, size=(64, 48))
    for frames in (None, 8):
        counts, failed = convert.convert_tree(tmp_path, report=REPORT, frames=frames)
        assert not failed and (tmp_path / "long.mp4.pt").read_bytes() == kept
    assert load_pt(tmp_path / "mid.mp4.pt")["frames"].shape[0] == 8


def test_an_old_record_without_a_fingerprint_is_not_overwritten_by_a_video_of_its_name(tmp_path):
    video = make_video(tmp_path / "a.mp4", seconds=0.5, size=(64, 48))
    convert.convert_tree(tmp_path, report=REPORT)
    pt = tmp_path / "a.mp4.pt"
    rec = load_pt(pt)
    del rec["source_sha256"]  # what the previous format wrote: name and size only
    import torch
    torch.save(rec, pt)
    old = pt.read_bytes()
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 1 and pt.read_bytes() == old
    assert r.stderr.strip().splitlines() == [
        f"error: {video}: {pt.name} does not record which video it was made from (made by an older version), "
        f"so it may be the only copy of another clip: not overwritten (if it is this video's, delete it, "
        "or move it away, to convert again)"]
    shutil.move(pt, tmp_path / "old.pt")
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 0 and "source_sha256" in load_pt(pt)
