"""`KEEP_VIDEOS=1 ./pipeline.sh` then a plain run: the clip's record x.mp4.pt is there when its
resized copy is converted. The copy is not converted (the same clip would be in the data twice,
and could land in both splits): it fails with a line naming both records and what to do."""
from conftest import REPORT, error_lines, make_video, run_script
from fmrgb.prepare import resized


def test_a_copy_of_a_clip_already_converted_is_refused_with_both_names(tmp_path):
    video = make_video(tmp_path / "cls" / "x.mp4", seconds=0.5)
    other = make_video(tmp_path / "cls" / "y.mp4", seconds=0.5, audio=None)
    assert run_script("create_fmrgbdata.py", "--target", tmp_path).returncode == 0  # KEEP_VIDEOS=1 run
    (tmp_path / "cls" / "y.mp4.pt").unlink()  # y was never converted: its copy converts as usual
    for step in ("resize_video.py", "delete_not_resized.py"):  # the plain run
        assert run_script(step, "--target", tmp_path).returncode == 0
    assert not video.exists() and not other.exists()
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    copy = tmp_path / "cls" / "resized_x.mp4"
    assert r.returncode == 1
    assert error_lines(r.stderr) == [
        f"error: {copy}: the same clip as x.mp4.pt (converted from x.mp4 before it was resized): "
        "delete one of the two, or it is in the data twice"]
    assert not (tmp_path / "cls" / "resized_x.mp4.pt").exists()
    assert (tmp_path / "cls" / "resized_y.mp4.pt").exists()


def test_a_copy_of_another_version_under_the_old_name_converts(tmp_path):
    video = make_video(tmp_path / "x.mp4", seconds=0.5)
    assert run_script("create_fmrgbdata.py", "--target", tmp_path).returncode == 0
    make_video(video, seconds=0.5, audio=None)  # the camera reused the name for a new clip
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    video.unlink()
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 0 and not error_lines(r.stderr), r.stderr
    assert (tmp_path / "resized_x.mp4.pt").exists()
