"""A delete is judged at the moment it happens: a file (or the copy or record its check read) that
changed between the check and its unlink stays, with the reason; one that vanished is named in one
line, never a traceback."""
import os
import shutil

from conftest import REPORT, kept, make_video
from fmrgb import files, runloop
from fmrgb.prepare import convert, deletion, resized


def carry_out(plan, capsys):
    counts, failed = runloop.apply_deletions(plan)
    return counts, failed, capsys.readouterr().out


def rewrite_in_place(path, other):
    """`other`'s bytes written into `path` itself (same inode), the old modification time put back."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(other.read_bytes())
        f.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def resized_tree(tmp_path):
    videos = [make_video(tmp_path / f"{n}.mp4", seconds=0.5) for n in "ab"]
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    return videos


def test_an_original_replaced_after_its_check_is_kept(tmp_path, capsys):
    a, b = resized_tree(tmp_path)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    make_video(tmp_path / "new.mp4", seconds=0.5, audio=None)
    os.replace(tmp_path / "new.mp4", a)  # another clip under its name, after the check
    new = a.read_bytes()
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and a.read_bytes() == new and not b.exists()
    assert "changed since it was checked" in kept(out, a)
    assert counts["deleted"] == 1 and counts["kept"] == 1 and not failed


def test_an_original_rewritten_in_place_with_its_old_time_after_its_check_is_kept(tmp_path, capsys):
    a, _ = resized_tree(tmp_path)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    rewrite_in_place(a, make_video(tmp_path / "other" / "x.mp4", seconds=0.5, audio=None))
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and "changed" in kept(out, a)


def test_a_copy_replaced_after_the_check_keeps_its_original(tmp_path, capsys):
    a, b = resized_tree(tmp_path)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    shutil.copy(tmp_path / "resized_b.mp4", tmp_path / "resized_a.mp4")  # b's copy where a's was
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and not b.exists()
    assert "resized_a.mp4 changed since the check" in kept(out, a)


def test_a_converted_video_replaced_after_its_check_is_kept(tmp_path, capsys):
    a = make_video(tmp_path / "a.mp4", seconds=0.5)
    b = make_video(tmp_path / "b.mp4", seconds=0.5)
    convert.convert_tree(tmp_path, report=REPORT)
    plan = deletion.converted_videos(tmp_path, report=REPORT)
    rewrite_in_place(a, make_video(tmp_path / "other" / "x.mp4", seconds=0.5, audio=None))
    os.unlink(tmp_path / "b.mp4.pt")  # and b's record goes: b is now the only copy of its clip
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and b.exists() and "changed" in kept(out, a)
    assert "b.mp4.pt changed since the check" in kept(out, b)


def test_a_file_removed_after_its_check_is_named_in_one_line(tmp_path, capsys):
    a, b = resized_tree(tmp_path)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    a.unlink()
    counts, failed, out = carry_out(plan, capsys)
    assert not failed and counts["deleted"] == 1 and not b.exists()
    assert [ln for ln in out.splitlines() if str(a) in ln] == [
        f"gone {a}: removed by something else while this step ran"]


def test_a_file_removed_while_the_step_checks_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    a, b = resized_tree(tmp_path)
    convert.convert_tree(tmp_path, report=REPORT)
    real = files.find_videos

    def then_removed(*args, **kw):  # another step deletes a.mp4 right after this one listed it
        found = real(*args, **kw)
        if a.exists():
            a.unlink()
        return found

    monkeypatch.setattr(files, "find_videos", then_removed)
    for make_plan in (deletion.originals_with_copies, deletion.converted_videos):
        make_video(a, seconds=0.5)
        counts, failed, out = carry_out(make_plan(tmp_path, report=REPORT), capsys)
        assert not failed and counts.get("gone") == 1, out
        assert f"gone {a}: removed by something else while this step ran" in out.splitlines()


def test_on_a_disk_with_coarse_times_a_same_size_rewrite_is_caught_by_its_content(tmp_path, monkeypatch, capsys):
    # exFAT and some network disks keep times to the second or less, and no ctime: the bytes decide
    a, _ = resized_tree(tmp_path)
    real = deletion.file_state

    def coarse(path):
        state = real(path)
        return state and deletion.FileState(state.dev, state.ino, state.size, 0, 0)

    monkeypatch.setattr(deletion, "file_state", coarse)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    data = bytearray(a.read_bytes())
    data[-100] ^= 0xFF  # same size, same file, other content
    with open(a, "r+b") as f:
        f.write(data)
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and kept(out, a) == "its content changed since it was checked"


def test_a_write_during_the_last_check_keeps_the_file(tmp_path, monkeypatch, capsys):
    a, _ = resized_tree(tmp_path)
    plan = deletion.originals_with_copies(tmp_path, report=REPORT)
    real = files.file_digest

    def then_written(path):  # something appends while the bytes are hashed again
        digest = real(path)
        with open(path, "ab") as f:
            f.write(b"more")
        return digest

    monkeypatch.setattr(files, "file_digest", then_written)
    counts, failed, out = carry_out(plan, capsys)
    assert a.exists() and kept(out, a) == "changed while it was checked again"


def test_a_write_during_the_first_check_keeps_the_file(tmp_path, monkeypatch, capsys):
    a, _ = resized_tree(tmp_path)
    real = deletion.is_complete_copy

    def then_written(video, *args, **kw):
        with open(video, "ab") as f:
            f.write(b"more")
        return real(video, *args, **kw)

    monkeypatch.setattr(deletion, "is_complete_copy", then_written)
    counts, failed, out = carry_out(deletion.originals_with_copies(tmp_path, report=REPORT), capsys)
    assert a.exists() and kept(out, a) == "changed while it was checked"
