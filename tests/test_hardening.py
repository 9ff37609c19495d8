"""Hardening: every bad input and fault a real dataset throws at the toolkit, with nothing lost.

Each test builds its own tiny media with the toolkit's ffmpeg, runs the steps as a user would
(in-process where only the outcome matters, as a subprocess where the exit status, the signals or
the command line matter) and checks what a user relies on: one `error: <path>: <reason>` line per
bad file, the others done, no half-written output a later step would take as finished, and no byte
of anything else changed.
"""
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import create_fmrgbdata
from conftest import ROOT, load_pt, make_video, run_script
from fmrgb import convert, decode, deletion, files, record, resized
from fmrgb.scan import scan_tree

SIZE = (64, 48)
TONE = "0.5*sin(2*PI*440*t)"


def tiny(path, seconds=0.5, **kw):
    kw.setdefault("size", SIZE)
    return make_video(path, seconds=seconds, **kw)



def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(root):
    """{relative path: what it is} for everything under root, links as links (never followed)."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link -> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = digest(p)
    return out


def error_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("error: ")]


def part_files(root):
    return sorted(p for p in Path(root).rglob("*") if p.name.endswith(".part"))


# ----------------------------------------------------------------------------- bad files

def strip_atom(data, name):
    """An mp4 without its top-level `name` atom."""
    out, i = bytearray(), 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        if size == 1:
            size = int.from_bytes(data[i + 8:i + 16], "big")
        elif size == 0:
            size = len(data) - i
        if data[i + 4:i + 8] != name:
            out += data[i:i + size]
        i += size
    return bytes(out)


def make_zero(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def make_text(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a shopping list, not a video\n" * 40)


def make_truncated_no_moov(path):
    """First half of a normal mp4: the moov atom, written last, is gone."""
    full = tiny(path.with_name("full_" + path.name), seconds=1).read_bytes()
    path.with_name("full_" + path.name).unlink()
    path.write_bytes(full[: len(full) // 2])


def make_truncated_faststart(path):
    """First half of a +faststart mp4: the index is there, half the data is not."""
    src = path.with_name("full_" + path.name)
    full = tiny(src, seconds=1, extra=["-movflags", "+faststart"]).read_bytes()
    src.unlink()
    path.write_bytes(full[: len(full) // 2])


def make_no_moov(path):
    src = path.with_name("full_" + path.name)
    full = tiny(src, seconds=1).read_bytes()
    src.unlink()
    stripped = strip_atom(full, b"moov")
    assert len(stripped) < len(full)
    path.write_bytes(stripped)


def make_sound_only(path):
    """An AAC-only mp4 (what an .m4a renamed .mp4 is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    decode.run_ffmpeg(["-y", "-f", "lavfi", "-i", f"aevalsrc={TONE}:s=44100:d=1", "-c:a", "aac",
                      "-f", "mp4", decode.input_arg(path)])
    assert not decode.probe(path).has_video
    return path


BROKEN = {
    "zero_bytes": make_zero,
    "text_renamed": make_text,
    "truncated_moov_missing": make_truncated_no_moov,
    "moov_atom_stripped": make_no_moov,
    "sound_only": make_sound_only,
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_fails_alone_with_one_error_line_in_every_step(tmp_path, kind, capsys):
    good = tiny(tmp_path / "good.mp4")
    bad = tmp_path / "bad.mp4"
    BROKEN[kind](bad)
    before = digest(bad)

    counts, failed = convert.convert_tree(tmp_path)
    err = capsys.readouterr().err
    assert failed == [bad] and counts["converted"] == 1 and counts["failed"] == 1
    assert error_lines(err) == [ln for ln in err.splitlines() if str(bad) in ln]
    assert len(error_lines(err)) == 1 and error_lines(err)[0].startswith(f"error: {bad}: ")
    assert load_pt(tmp_path / "good.mp4.pt")["frames"].shape[0] == 15
    assert not (tmp_path / "bad.mp4.pt").exists()

    counts, failed = resized.resize_videos(tmp_path, mag=2)
    err = capsys.readouterr().err
    assert failed == [bad] and counts["resized"] == 1
    assert len(error_lines(err)) == 1 and error_lines(err)[0].startswith(f"error: {bad}: ")
    assert not (tmp_path / "resized_bad.mp4").exists()

    scan, failed = scan_tree(tmp_path)
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
    _, failed = convert.convert_tree(tmp_path)
    line = error_lines(capsys.readouterr().err)[0]
    assert failed and "video" in line.split(": ", 2)[2].lower()


def test_truncated_faststart_file_keeps_only_what_really_decodes(tmp_path, capsys):
    tiny(tmp_path / "good.mp4", seconds=1)
    bad = make_truncated_faststart(tmp_path / "half.mp4") or tmp_path / "half.mp4"
    _, failed = convert.convert_tree(tmp_path)
    err = capsys.readouterr().err
    pt = tmp_path / "half.mp4.pt"
    if failed:  # refusing is fine, as long as it is said and nothing is written
        assert failed == [bad] and len(error_lines(err)) == 1 and not pt.exists()
    else:  # converting is fine, as long as the record does not pretend to more frames than decode
        rec = load_pt(pt)
        assert 0 < rec["source_frames"] == decode.count_frames(bad) < 30
        assert rec["frames"].shape[0] == 30  # stretched to the complete clip, like any shorter video
    assert not part_files(tmp_path)


def test_error_lines_stay_one_line_even_for_a_name_with_a_newline(tmp_path, capsys):
    make_zero(tmp_path / "bad\nname.mp4")
    tiny(tmp_path / "ok.mp4")
    _, failed = resized.resize_videos(tmp_path, mag=2)
    err = capsys.readouterr().err
    assert len(failed) == 1 and len(error_lines(err)) == 1


def test_every_stderr_line_of_a_failed_file_with_a_newline_in_its_name_is_an_error_line(tmp_path, capsys):
    make_zero(tmp_path / "bad\nname.mp4")
    resized.resize_videos(tmp_path, mag=2)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines), lines


# ----------------------------------------------------------------------------- odd but valid media

def make_vfr(path):
    """30 frames over 1.5 s: the first 15 every 2/30 s, the rest every 1/30 s; a tone from t = 1 s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    decode.run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                      "-f", "lavfi", "-i", f"aevalsrc=if(gte(t\\,1)\\,{TONE}\\,0):s=44100:d=1.5",
                      "-vf", "setpts='if(lt(N,15),2*N,N+15)/TB/30'", "-fps_mode", "vfr",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      decode.input_arg(path)])
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
    assert rec["sample_rate"] == round(fps * 100) and rec["has_audio"] and not rec["silent"]
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
    counts, failed = convert.convert_tree(tmp_path)
    assert not failed and counts["converted"] == 2
    rec = load_pt(tmp_path / "one.mp4.pt")
    assert rec["source_frames"] == 1 and rec["frames"].shape[0] == 30
    assert (rec["frames"] == rec["frames"][:1]).all()


def test_variable_frame_rate_keeps_every_frame_and_the_sound_spans_the_clip(tmp_path):
    video = make_vfr(tmp_path / "vfr.mp4")
    rec = convert.convert_video(video)
    amp = rec["frames"][:, 0, 0, 3].numpy()
    assert rec["frames"].shape[0] == 30 == decode.count_frames(video)
    assert rec["frames"].shape[0] / rec["fps"] == pytest.approx(1.5, rel=0.1)  # the whole clip's sound
    assert (amp[:10] == 0).all() and (amp[22:] > 200).all()


def test_sound_starting_late_stays_on_its_frames(tmp_path):
    video = tmp_path / "late.mp4"
    decode.run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1",
                      "-itsoffset", "0.5", "-f", "lavfi", "-i", f"aevalsrc={TONE}:s=44100:d=0.5",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      decode.input_arg(video)])
    amp = convert.convert_video(video)["frames"][:, 0, 0, 3].numpy()
    assert len(amp) == 30
    assert (amp[:13] == 0).all() and (amp[17:29] > 200).all(), amp


def test_a_clip_20_times_longer_sets_everyones_length_and_shorter_ones_keep_their_ends(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        tiny(tmp_path / name, seconds=0.5)
    tiny(tmp_path / "long.mp4", seconds=10)
    counts, failed = convert.convert_tree(tmp_path)
    assert not failed and counts["converted"] == 3
    direct = convert.convert_video(tmp_path / "a.mp4")["frames"]
    for name in ("a.mp4", "b.mp4", "long.mp4"):
        assert load_pt(tmp_path / f"{name}.pt")["frames"].shape == (300, SIZE[1], SIZE[0], 5)
    a = load_pt(tmp_path / "a.mp4.pt")
    assert a["source_frames"] == 15
    assert torch.equal(a["frames"][0], direct[0]) and torch.equal(a["frames"][-1], direct[-1])


# ----------------------------------------------------------------------------- names

HOSTILE_NAMES = ["new\nline.mp4", "semi;colon.mp4", "$(touch PWNED_FILE).mp4", "-dash.mp4",
                 "ünïcödé ëñ.mp4", "glob [1] *?.mp4", "quote's \"q\".mp4", "sp ace.mkv"]


def test_hostile_names_and_a_glob_target_with_a_lookalike_sibling(tmp_path):
    folder_name = "-it's $(touch PWNED); x [1]"
    target = tmp_path / folder_name
    lookalike = tmp_path / "-it's $(touch PWNED); x 1"  # what the glob [1] would match
    for name in HOSTILE_NAMES:
        tiny(target / name)
    tiny(lookalike / "sp ace.mkv")
    tiny(lookalike / "1.mp4")
    before = snapshot(lookalike)
    # a leading '-' folder needs the --target=VALUE spelling; relative, from the parent folder
    r = run_script("resize_video.py", f"--target={folder_name}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resized {len(HOSTILE_NAMES)}," in r.stdout
    r = run_script("create_fmrgbdata.py", f"--target={folder_name}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in HOSTILE_NAMES:
        copy_name = Path(name).stem if name.endswith(".mp4") else name  # a.mkv -> resized_a.mkv.mp4
        assert (target / f"resized_{copy_name}.mp4").is_file(), name
        assert load_pt(target / f"{name}.pt")["frames"].shape[0] == 15, name
    assert snapshot(lookalike) == before
    assert not list(tmp_path.rglob("PWNED*")) and not list(ROOT.glob("PWNED*"))


# ----------------------------------------------------------------------------- symlinks

def test_links_out_of_the_target_loops_and_dangling_links_are_left_alone(tmp_path, capsys):
    target, outside = tmp_path / "data", tmp_path / "outside"
    tiny(target / "cls" / "a.mp4")
    tiny(outside / "o.mp4")
    os.symlink(outside / "o.mp4", target / "cls" / "out.mp4")
    os.symlink("loop2.mp4", target / "cls" / "loop1.mp4")
    os.symlink("loop1.mp4", target / "cls" / "loop2.mp4")
    os.symlink("nowhere.mp4", target / "cls" / "dangling.mp4")
    os.symlink("..", target / "cls" / "up")  # a directory loop
    os.symlink(outside, target / "outdir")
    os.symlink("a.mp4", target / "cls" / "inside.mp4")  # a link inside would repeat a.mp4: left alone too
    outside_before, links_before = snapshot(outside), snapshot(target)

    assert files.find_videos(target) == [target / "cls" / "a.mp4"]
    counts, failed = convert.convert_tree(target)
    assert not failed and counts["converted"] == 1
    counts, failed = resized.resize_videos(target, mag=2)
    assert not failed and counts["resized"] == 1
    assert not error_lines(capsys.readouterr().err)
    assert snapshot(outside) == outside_before
    after = snapshot(target)
    assert {k: v for k, v in after.items() if k in links_before} == links_before
    assert set(after) - set(links_before) == {"cls/a.mp4.pt", "cls/resized_a.mp4"}
    # the target itself may be a link to the data
    os.symlink(target, tmp_path / "data_link")
    counts, _ = convert.convert_tree(tmp_path / "data_link")
    assert counts.get("skipped") == 1 and counts["failed"] == 0


def test_delete_not_resized_never_deletes_the_file_its_resized_copy_points_to(tmp_path):
    video = tiny(tmp_path / "a.mp4")
    os.symlink("a.mp4", tmp_path / "resized_a.mp4")
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode in (0, 1)
    assert video.is_file() and digest(video)


# ----------------------------------------------------------------------------- read-only, empty, missing

def _readonly_runner():
    """A way to run a command with a folder read-only (a private read-only bind mount, as root),
    or None when this machine offers none."""
    if os.geteuid() != 0:
        return "chmod"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp"],
                           capture_output=True)
    return "mount" if probe.returncode == 0 else None


READONLY = _readonly_runner() if shutil.which("unshare") or os.geteuid() != 0 else None


def run_readonly(folder, script, *args):
    cmd = [sys.executable, str(ROOT / script), *map(str, args)]
    if READONLY == "mount":
        cmd = ["unshare", "-m", "sh", "-c",
               'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"', str(folder), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(READONLY is None, reason="no way to make a read-only folder here")
def test_read_only_target_fails_each_file_cleanly_and_changes_nothing(tmp_path):
    target = tmp_path / "ro"
    tiny(target / "a.mp4")
    tiny(target / "b.mp4")
    resized.resize_videos(target, mag=2)
    (target / "resized_b.mp4").unlink()  # a, b and resized_a.mp4 are three videos to convert
    before = snapshot(target)
    if READONLY == "chmod":
        target.chmod(0o555)
    try:
        for script, args, n_errors in [("create_fmrgbdata.py", [], 3), ("resize_video.py", [], 1),
                                       ("delete_allmp4.py", ["--all"], 3), ("delete_not_resized.py", [], 1)]:
            r = run_readonly(target, script, "--target", target, *args)
            assert r.returncode == 1, (script, r.stderr)
            assert "Traceback" not in r.stderr, (script, r.stderr)
            assert len(error_lines(r.stderr)) == n_errors, (script, r.stderr)
            assert snapshot(target) == before, script
    finally:
        target.chmod(0o755)


@pytest.mark.skipif(READONLY is None, reason="no way to make a read-only folder here")
def test_scan_of_a_read_only_target_is_a_clean_error(tmp_path):
    target = tmp_path / "ro"
    tiny(target / "a.mp4")
    if READONLY == "chmod":
        target.chmod(0o555)
    try:
        r = run_readonly(target, "create_fmrgbdata.py", "--target", target, "--scan")
    finally:
        target.chmod(0o755)
    assert r.returncode == 1 and "Traceback" not in r.stderr and error_lines(r.stderr), r.stderr


SCRIPTS = [("create_fmrgbdata.py", "converted 0,"), ("resize_video.py", "resized 0,"),
           ("delete_allmp4.py", "deleted 0,"), ("delete_not_resized.py", "deleted 0,")]


@pytest.mark.parametrize("script,summary", SCRIPTS)
def test_missing_target_is_a_usage_error_and_an_empty_one_a_quiet_success(tmp_path, script, summary):
    r = run_script(script, "--target", tmp_path / "nope")
    assert r.returncode == 2 and "no such folder" in r.stderr
    (tmp_path / "file.mp4").write_bytes(b"x")
    r = run_script(script, "--target", tmp_path / "file.mp4")
    assert r.returncode == 2 and "no such folder" in r.stderr
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no videos here")
    before = snapshot(empty)
    r = run_script(script, "--target", empty)
    assert r.returncode == 0 and summary in r.stdout and not r.stderr.strip(), r.stderr
    assert snapshot(empty) == before
    r = run_script(script, "--target", empty, "--no-such-flag")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


# ----------------------------------------------------------------------------- signals

def start(script, *args):
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(proc, target, pred, timeout=60):
    """Poll every millisecond until pred(names) holds; True if it did while proc ran. (A loop without
    a sleep would take a core from the very process it watches.)"""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred(os.listdir(target)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def is_part(names):
    return any(n.startswith(".") and n.endswith(".part") for n in names)


def finish(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"did not stop within {timeout} s")
    return out, err


def big_clips(target, n=4, seconds=1.0):
    return [make_video(target / f"v{i}.mp4", seconds=seconds, size=(320, 240)) for i in range(n)]


def test_sigkill_while_converting_leaves_nothing_a_later_step_takes_as_finished(tmp_path):
    videos = big_clips(tmp_path)
    digests = {v: digest(v) for v in videos}
    proc = start("create_fmrgbdata.py", "--target", tmp_path)
    saw_part = wait_for(proc, tmp_path, is_part)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc, 10)
    assert saw_part, "the run ended before a temp file was seen"
    assert proc.returncode == -signal.SIGKILL
    assert files.find_videos(tmp_path) == videos  # temp files are never taken for videos
    for pt in files.find_files(tmp_path, {".pt"}):  # what the training step reads is all finished
        rec = load_pt(pt)
        assert rec["frames"].shape[0] in (rec["source_frames"], 30)
    for v in videos:
        assert record.conversion_problem(v) == (None if v.with_name(v.name + ".pt").exists()
                                                       else "no .pt file")
    counts, failed = convert.convert_tree(tmp_path)
    assert not failed
    for v in videos:
        assert load_pt(v.with_name(v.name + ".pt"))["frames"].shape == (30, 240, 320, 5)
        assert digest(v) == digests[v]


def test_sigkill_while_resizing_leaves_no_resized_copy_that_passes_for_complete(tmp_path):
    videos = big_clips(tmp_path, seconds=2)
    digests = {v: digest(v) for v in videos}
    proc = start("resize_video.py", "--target", tmp_path, "--mag", "1")
    saw_part = wait_for(proc, tmp_path, is_part)
    time.sleep(0.05)  # let ffmpeg write into it
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc, 10)
    assert saw_part and proc.returncode == -signal.SIGKILL
    assert files.find_videos(tmp_path) == sorted(videos + list(tmp_path.glob("resized_*.mp4")))
    for copy in tmp_path.glob("resized_*.mp4"):
        assert resized.is_complete_copy(tmp_path / copy.name[len("resized_"):], copy, decode=True)[0]
    plan = dict(deletion.originals_with_copies(tmp_path))
    assert {v for v, why in plan.items() if why is None} == {
        tmp_path / c.name[len("resized_"):] for c in tmp_path.glob("resized_*.mp4")}
    counts, failed = resized.resize_videos(tmp_path, mag=1)
    assert not failed and counts.get("resized", 0) >= 1
    assert all(why is None for _, why in deletion.originals_with_copies(tmp_path))
    assert all(digest(v) == digests[v] for v in videos)


@pytest.mark.parametrize("script,args", [("create_fmrgbdata.py", []), ("create_fmrgbdata.py", ["--jobs", "2"]),
                                         ("resize_video.py", ["--mag", "1"])])
def test_ctrl_c_stops_promptly_with_130_and_removes_its_temp_files(tmp_path, script, args):
    big_clips(tmp_path, seconds=2 if script == "resize_video.py" else 1)
    proc = start(script, "--target", tmp_path, *args)
    # interrupt mid-work: once ffmpeg is writing a resized copy, or once a first .pt is finished
    # (the microseconds between creating a temp file and using it are tested in-process below)
    writing = (lambda names: any(n.endswith(".pt") for n in names)) if script == "create_fmrgbdata.py" else \
        (lambda names: any(n.endswith(".part") and (tmp_path / n).stat().st_size > 0 for n in names if n[0] == "."))
    assert wait_for(proc, tmp_path, writing), "the run ended before writing anything"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    t = time.monotonic()
    _, err = finish(proc, 15)
    assert proc.returncode == 130, err
    assert time.monotonic() - t < 10
    assert "Traceback" not in err and "interrupted" in err
    time.sleep(0.2)  # any straggler child would show up now
    assert not part_files(tmp_path)
    for pt in tmp_path.glob("*.pt"):
        assert load_pt(pt)["frames"].dtype == torch.uint8
    for copy in tmp_path.glob("resized_*.mp4"):
        assert resized.is_complete_copy(tmp_path / copy.name[len("resized_"):], copy, decode=True)[0]


def test_ctrl_c_right_after_the_temp_file_is_created_still_removes_it(tmp_path, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "chmod", interrupted)  # the first step after mkstemp
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_output(tmp_path / "out.pt") as tmp:
            tmp.write_bytes(b"data")
    monkeypatch.undo()
    assert not list(tmp_path.iterdir())


def test_two_conversions_of_one_folder_at_once_one_refuses_and_the_files_are_a_single_runs(tmp_path):
    one, two = tmp_path / "together", tmp_path / "alone"
    for i, seconds in enumerate((0.5, 1.0, 1.5)):
        tiny(one / f"v{i}.mp4", seconds=seconds)
    shutil.copytree(one, two)
    # the single run is a subprocess too, so all three use the same code from disk
    procs = [start("create_fmrgbdata.py", "--target", folder) for folder in (one, one, two)]
    results = [finish(p, 120) for p in procs]
    # the second to reach the folder's lock refuses (unless the first had already finished)
    assert sorted(p.returncode for p in procs[:2]) in ([0, 0], [0, 2]) and procs[2].returncode == 0, results
    for k, p in enumerate(procs[:2]):
        if p.returncode == 2:
            assert results[k][1].strip().splitlines() == [
                f"error: {one}: another step is working on this folder (pid {procs[1 - k].pid}: "
                "create_fmrgbdata.py): run this one when it has finished"]
    assert not part_files(one)
    for i in range(3):
        got, want = load_pt(one / f"v{i}.mp4.pt"), load_pt(two / f"v{i}.mp4.pt")
        assert got.keys() == want.keys()
        assert torch.equal(got.pop("frames"), want.pop("frames")) and got == want


# ----------------------------------------------------------------------------- disk full

def test_disk_full_names_the_file_leaves_no_partial_and_the_rest_converts(tmp_path, monkeypatch, capsys):
    videos = {n: tiny(tmp_path / f"{n}.mp4") for n in "abc"}
    digests = {n: digest(v) for n, v in videos.items()}
    real_save = torch.save

    def save(obj, f, *a, **kw):
        if Path(f.name).name.startswith(".b.mp4.pt."):
            f.write(b"PK\x03\x04 half a zip")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    args = create_fmrgbdata.get_args_parser().parse_args(["--target", str(tmp_path)])
    assert create_fmrgbdata.main(args) == 1
    out, err = capsys.readouterr()
    assert error_lines(err) == [f"error: {videos['b']}: [Errno 28] No space left on device: '{videos['b']}.pt'"]
    assert "converted 2," in out and "failed 1" in out
    assert not (tmp_path / "b.mp4.pt").exists() and not part_files(tmp_path)
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == load_pt(tmp_path / "c.mp4.pt")["frames"].shape[0] == 15
    assert {n: digest(v) for n, v in videos.items()} == digests


def test_disk_full_while_stretching_keeps_the_old_file_whole_and_a_rerun_finishes(tmp_path, monkeypatch, capsys):
    tiny(tmp_path / "short.mp4", seconds=0.5)
    convert.convert_tree(tmp_path)
    old = (tmp_path / "short.mp4.pt").read_bytes()
    tiny(tmp_path / "long.mp4", seconds=1)
    real_save = torch.save

    def save(obj, f, *a, **kw):
        if Path(f.name).name.startswith(".short.mp4.pt."):
            f.write(b"PK")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    counts, failed = convert.convert_tree(tmp_path)
    assert failed == [tmp_path / "short.mp4"] and counts["converted"] == 1
    assert "short.mp4: [Errno 28] No space left on device" in capsys.readouterr().err
    assert (tmp_path / "short.mp4.pt").read_bytes() == old and not part_files(tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    counts, failed = convert.convert_tree(tmp_path)
    assert not failed and counts.get("aligned") == 1
    assert load_pt(tmp_path / "short.mp4.pt")["frames"].shape[0] == 30


def test_disk_full_while_resizing_leaves_no_resized_copy(tmp_path, monkeypatch, capsys):
    videos = {n: tiny(tmp_path / f"{n}.mp4") for n in "ab"}
    real = decode.run_ffmpeg

    def run_ffmpeg(args, **kw):
        dest = str(args[-1])
        if dest.endswith(".part") and "/.resized_b.mp4." in dest:
            Path(dest[len("file:"):]).write_bytes(b"\x00\x00\x00\x20ftypisom half")
            raise RuntimeError("ffmpeg: Error writing trailer: No space left on device")
        return real(args, **kw)

    monkeypatch.setattr(resized, "run_ffmpeg", run_ffmpeg)
    counts, failed = resized.resize_videos(tmp_path, mag=2)
    assert failed == [videos["b"]] and counts["resized"] == 1
    assert error_lines(capsys.readouterr().err) == [
        f"error: {videos['b']}: ffmpeg: Error writing trailer: No space left on device"]
    assert not (tmp_path / "resized_b.mp4").exists() and not part_files(tmp_path)
    assert dict(deletion.originals_with_copies(tmp_path))[videos["b"]] == "no resized copy"


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
    resized.resize_videos(target, mag=2)
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
    convert.convert_tree(target)
    (c / "-dash.mp4.pt").write_bytes(b"not a tensor file")
    torch.save({"frames": torch.zeros(3, 4, 4, 5)}, c / "silent.mov.pt")  # float, not uint8
    (c / "sub" / "deep.mp4.pt").unlink()
    before = snapshot(tmp_path)
    converted = ["good one.mp4", "new\nline.mp4", "it's $(touch PWNED); x.mp4", "ünï [1] *?.mp4"]
    if (c / "truncated_faststart.mp4.pt").exists():
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


def test_frames_beyond_the_first_buffer_are_all_kept_and_the_spare_room_is_not(tmp_path, monkeypatch):
    # a header that under-counts (or a clip larger than the first buffer may be) makes the frame
    # array grow while decoding; here the first buffer holds one frame, so it grows 1 -> 64 for 45
    video = make_video(tmp_path / "a.mp4", seconds=1.5)
    expected, _ = decode.decode_video(video, extra_channels=2)
    frame_bytes = expected[0].nbytes
    monkeypatch.setattr(decode, "initial_frames_limit_bytes", lambda: frame_bytes)
    grown, _ = decode.decode_video(video, extra_channels=2)
    assert grown.shape == expected.shape == (45, 120, 160, 5)
    assert np.array_equal(grown[..., :3], expected[..., :3])
    assert grown.flags.owndata, "45 frames must not keep a 64-frame buffer alive"
    with_scratch, _ = decode.decode_video(video, extra_channels=2, scratch=decode.ScratchBuffer())
    assert np.array_equal(with_scratch[..., :3], expected[..., :3])
