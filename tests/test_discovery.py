"""Every file under --target is processed or named: symlinked files and named pipes are named (a pipe is
never opened, so no step waits on it), animated pictures are converted like clips, still pictures and
sound files are named."""
import os
import subprocess

import imageio_ffmpeg
import pytest

from conftest import REPORT, load_pt, make_video, run_script
from fmrgb import files
from fmrgb.prepare import convert

VIDEO_STEPS = [("create_fmrgbdata.py",), ("create_fmrgbdata.py", "--scan"), ("resize_video.py",),
               ("delete_not_resized.py", "--dry-run"), ("delete_allmp4.py", "--dry-run")]


def warnings(text):
    return [ln for ln in text.splitlines() if ln.startswith("warning: ")]


def picture(path, *args):
    """An image file made by ffmpeg from its test pattern (animated unless args ask for one frame)."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10", "-t", "1", *args, str(path)], check=True)
    return path


@pytest.mark.parametrize("step", VIDEO_STEPS, ids=" ".join)
def test_a_named_pipe_with_a_video_name_is_named_and_never_opened(tmp_path, step):
    make_video(tmp_path / "a.mp4", seconds=0.3, size=(64, 48))
    os.mkfifo(tmp_path / "pipe.mp4")  # opening it for reading would wait for a writer forever
    r = run_script(*step, "--target", tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert warnings(r.stderr) == [f"warning: {tmp_path / 'pipe.mp4'}: is a named pipe, not a file: "
                                  "never opened, left out"]


def test_a_symlinked_video_file_is_named_by_every_video_step(tmp_path):
    real = make_video(tmp_path / "outside" / "o.mp4", seconds=0.3, size=(64, 48))
    target = tmp_path / "data"
    make_video(target / "a.mp4", seconds=0.3, size=(64, 48))
    os.symlink(real, target / "link.mp4")
    line = f"warning: {target / 'link.mp4'}: is a symlink, not followed: left out (copy the file here to include it)"
    for step in VIDEO_STEPS:
        r = run_script(*step, "--target", target)
        assert r.returncode == 0 and warnings(r.stderr) == [line], (step, r.stderr)
    assert not (target / "link.mp4.pt").exists() and (target / "a.mp4.pt").exists()


def test_animated_pictures_are_converted_and_a_still_one_is_named(tmp_path, capsys):
    gif = picture(tmp_path / "anim.gif")
    webp = picture(tmp_path / "anim.webp", "-loop", "0")
    apng = picture(tmp_path / "anim.apng", "-f", "apng")
    still = picture(tmp_path / "still.gif", "-frames:v", "1")
    still_webp = picture(tmp_path / "still.webp", "-frames:v", "1")
    assert [files.is_animated(p) for p in (gif, webp, apng, still, still_webp)] == [True, True, True, False, False]
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts["converted"] == 3
    for p in (gif, webp, apng):
        rec = load_pt(p.with_name(p.name + ".pt"))
        assert rec["frames"].shape == (10, 48, 64, 5) and rec["fps"] == 10.0 and not rec["has_audio"]
    err = capsys.readouterr().err
    for p in (still, still_webp):
        assert f"warning: {p}: a still {p.suffix[1:]} picture, not a clip: left out" in err
        assert not p.with_name(p.name + ".pt").exists()


def test_pictures_and_sound_files_are_named_other_files_are_not(tmp_path):
    make_video(tmp_path / "a.mp4", seconds=0.3, size=(64, 48))
    picture(tmp_path / "photo.jpg", "-frames:v", "1")
    (tmp_path / "take.wav").write_bytes(b"RIFF")
    (tmp_path / "notes.txt").write_text("labels")  # not media: nothing to say about it, nor of a link to it,
    os.symlink(tmp_path / "notes.txt", tmp_path / "labels.csv")  # nor of a pipe that is not a video's
    os.mkfifo(tmp_path / "logpipe")
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 0
    assert warnings(r.stderr) == [
        f"warning: {tmp_path / 'photo.jpg'}: a jpg file is a picture or a sound, not a clip: left out",
        f"warning: {tmp_path / 'take.wav'}: a wav file is a picture or a sound, not a clip: left out"]
    # visualize.py's picture of a record is the toolkit's own: not named
    r = run_script("visualize.py", "--target", tmp_path / "a.mp4.pt")
    assert r.returncode == 0 and (tmp_path / "a.mp4.pt.png").exists()
    r = run_script("delete_allmp4.py", "--target", tmp_path, "--dry-run")
    assert len(warnings(r.stderr)) == 2
