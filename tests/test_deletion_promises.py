"""The delete steps on a tree holding every kind of file a dataset holds (good, broken, linked,
oddly named, a glob for a name): exactly the provably redundant videos go, nothing else changes."""
import os
import shutil

import torch

from conftest import BROKEN, REPORT, load_pt, make_truncated_faststart, run_script, snapshot, tiny
from fmrgb.prepare import convert, resized


# ----------------------------------------------------------------------------- deletion promises

def build_tree(tmp_path):
    """Every kind of file a dataset holds, in a target whose name is a glob, beside a folder it matches."""
    target, sibling, outside = tmp_path / "data[1]", tmp_path / "data1", tmp_path / "outside"
    c = target / "cls a"
    good = [c / n for n in ["good one.mp4", "new\nline.mp4", "it's $(touch PWNED); x.mp4", "-dash.mp4",
                            "ünï [1] *?.mp4"]]
    for v in good:
        tiny(v)
    tiny(c / "silent.mov", seconds=1, audio=None)
    tiny(c / "sub" / "deep.mp4")
    for kind, make in BROKEN.items():
        make(c / f"{kind}.mp4")
    make_truncated_faststart(c / "truncated_faststart.mp4")
    tiny(sibling / "good one.mp4")
    tiny(outside / "o.mp4")
    os.symlink(outside / "o.mp4", c / "out.mp4")
    os.symlink("loop2.mp4", c / "loop1.mp4")
    os.symlink("loop1.mp4", c / "loop2.mp4")
    os.symlink("nowhere.mp4", c / "dangling.mp4")
    os.symlink("..", c / "up")
    os.symlink(outside, target / "outdir")
    os.symlink("good one.mp4", c / "inside link.mp4")
    (c / "notes.csv").write_text("path,label\n")
    (c / "readme.txt").write_text("keep")
    (c / "model.pt").write_bytes(b"weights")
    (c / ".deep.mp4.pt.abc123.part").write_bytes(b"left by a crash")
    (target / "empty folder").mkdir()
    return target, c, good


def test_delete_not_resized_deletes_exactly_the_originals_with_a_complete_copy(tmp_path):
    target, c, good = build_tree(tmp_path)
    resized.resize_videos(target, mag=2, report=REPORT)
    (c / "resized_truncated_faststart.mp4").unlink(missing_ok=True)
    (c / "sub" / "resized_deep.mp4").unlink()  # copy missing
    half = (c / "resized_-dash.mp4").read_bytes()
    (c / "resized_-dash.mp4").write_bytes(half[: len(half) // 2])  # copy broken
    shutil.copy(c / "resized_good one.mp4", c / "resized_silent.mov.mp4")  # copy of another, shorter video
    before = snapshot(tmp_path)

    r = run_script("delete_not_resized.py", "--target", target, "--dry-run")
    assert r.returncode == 0 and snapshot(tmp_path) == before
    r = run_script("delete_not_resized.py", "--target", target)
    assert r.returncode == 0, r.stderr
    after = snapshot(tmp_path)
    gone = {"data[1]/cls a/" + n for n in ["good one.mp4", "new\nline.mp4", "it's $(touch PWNED); x.mp4",
                                           "ünï [1] *?.mp4"]}  # not "inside link.mp4": links are left alone
    assert set(before) - set(after) == gone
    assert after == {k: v for k, v in before.items() if k not in gone}
    assert "deleted 4," in r.stdout


def test_delete_allmp4_deletes_exactly_the_converted_videos_and_all_only_videos(tmp_path):
    target, c, good = build_tree(tmp_path)
    # each clip its own 15 frames (the 0.5 s ones): a record stretched to a longer one's length keeps its video
    convert.convert_tree(target, frames=15, report=REPORT)
    (c / "-dash.mp4.pt").write_bytes(b"not a tensor file")
    torch.save({"frames": torch.zeros(3, 4, 4, 5)}, c / "silent.mov.pt")  # float, not uint8
    (c / "sub" / "deep.mp4.pt").unlink()
    before = snapshot(tmp_path)
    converted = ["good one.mp4", "new\nline.mp4", "it's $(touch PWNED); x.mp4", "ünï [1] *?.mp4"]
    half = c / "truncated_faststart.mp4.pt"
    if half.exists() and load_pt(half)["source_frames"] == 15:
        converted.append("truncated_faststart.mp4")

    r = run_script("delete_allmp4.py", "--target", target)
    assert r.returncode == 0, r.stderr
    after = snapshot(tmp_path)
    gone = {"data[1]/cls a/" + n for n in converted}
    assert set(before) - set(after) == gone
    assert after == {k: v for k, v in before.items() if k not in gone}

    r = run_script("delete_allmp4.py", "--target", target, "--all")
    assert r.returncode == 0, r.stderr
    final = snapshot(tmp_path)
    gone_all = {"data[1]/cls a/" + n for n in ["-dash.mp4", "silent.mov", "sub/deep.mp4", *(f"{k}.mp4" for k in BROKEN)]}
    if "truncated_faststart.mp4" not in converted:
        gone_all.add("data[1]/cls a/truncated_faststart.mp4")
    assert set(after) - set(final) == gone_all
    assert final == {k: v for k, v in after.items() if k not in gone_all}
