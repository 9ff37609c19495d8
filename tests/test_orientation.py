"""The picture as a player shows it: the rotation and mirroring of the display matrix, the same in
decoding (OpenCV's fast path and ffmpeg's), a record, the resized copy and prediction. ffmpeg's own
output (it applies the matrix, flips included) is what a player shows."""
import numpy as np
import pytest

from conftest import REPORT, ffmpeg_make, run_script
from fmrgb.prepare import convert, decode, ffmpeg, resized

ORIENTATIONS = [(r, h) for r in (0, 90, 180, 270) for h in (False, True)]


def phone_clip(path, rotation, hflip):
    """A black clip with a white box in its top-left corner, stored with this display matrix."""
    plain = ffmpeg_make(path.with_name("plain_" + path.name), "-f", "lavfi", "-i",
                        "color=c=black:s=64x48:r=30:d=0.5,drawbox=x=0:y=0:w=24:h=12:color=white:t=fill",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    flags = ["-display_rotation", str(rotation)] + (["-display_hflip"] if hflip else [])
    out = ffmpeg_make(path, *flags, "-i", ffmpeg.input_arg(plain), "-c", "copy")
    plain.unlink()
    return out


def as_shown(path):
    """The first frame as ffmpeg shows it (display matrix applied), white where bright."""
    proc = ffmpeg.run_ffmpeg(["-i", ffmpeg.input_arg(path), "-frames:v", "1", "-f", "rawvideo",
                              "-pix_fmt", "gray", "pipe:1"])
    info = ffmpeg.parse_stream_info(proc.stderr.decode().split("Output #0", 1)[1])
    return np.frombuffer(proc.stdout, np.uint8).reshape(info.height, info.width) > 128


def white(frames):
    return frames[0, ..., 0] > 128


@pytest.mark.parametrize("rotation,hflip", ORIENTATIONS)
def test_decoding_shows_the_picture_as_a_player_does(tmp_path, rotation, hflip):
    video = phone_clip(tmp_path / "phone.mp4", rotation, hflip)
    truth = as_shown(video)
    frames, _ = decode.decode_video(video)
    assert frames.shape[1:3] == truth.shape and (white(frames) != truth).mean() < 0.02
    record = convert.convert_video(video, frames=4)["frames"].numpy()  # what training and prediction see
    assert (white(record) != truth).mean() < 0.02


@pytest.mark.parametrize("rotation,hflip", [(0, True), (90, True)])
def test_the_resized_copy_shows_what_the_original_shows(tmp_path, rotation, hflip):
    video = phone_clip(tmp_path / "phone.mp4", rotation, hflip)
    resized.resize_videos(tmp_path, mag=2, report=REPORT)
    copy = tmp_path / "resized_phone.mp4"
    frames, _ = decode.decode_video(copy)
    assert (white(frames) != as_shown(video)[::2, ::2]).mean() < 0.04
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode == 0 and not video.exists(), r.stdout


def test_the_display_matrix_tells_a_mirror_from_a_half_turn(tmp_path):
    assert ffmpeg.display_matrix(phone_clip(tmp_path / "h.mp4", 0, True), 0) == (-1.0, 0.0, 0.0, 1.0)
    assert ffmpeg.display_matrix(phone_clip(tmp_path / "r.mp4", 180, False), 0) == (-1.0, 0.0, 0.0, -1.0)
    assert ffmpeg.display_matrix(phone_clip(tmp_path / "p.mp4", 0, False), 0) is None
