"""create_fmrgbdata.py --size S: frames stored at S x S, resized as training resizes while the video is read,
with or without --frames; delete_allmp4.py keeps a video whose record holds fewer or smaller frames unless
--lose_frames_or_pixels."""
import numpy as np
import pytest
import torch
from conftest import REPORT, load_pt, make_video, run_script

from fmrgb.prepare import convert, framesinks, memory, timeline
from fmrgb.training.clip import ClipRecipe, resize, small_clip
from fmrgb.prepare.record import conversion_problem, record_path


def watch_frame_arrays(monkeypatch):
    """The byte sizes of every frame array decoding makes."""
    sizes = []
    new, take = framesinks.new_frame_array, memory.ScratchBuffer.take
    monkeypatch.setattr(framesinks, "new_frame_array", lambda shape: sizes.append(np.prod(shape)) or new(shape))
    monkeypatch.setattr(memory.ScratchBuffer, "take",
                        lambda self, shape: sizes.append(np.prod(shape)) or take(self, shape))
    return sizes


def test_a_size_112_frames_32_record_of_a_720p_clip_holds_32x112x112x5_bytes_and_a_small_header(
        tmp_path, monkeypatch):
    video = make_video(tmp_path / "hd" / "hd.mp4", seconds=2, size=(1280, 720))
    counts, failed = convert.convert_tree(tmp_path / "hd", frames=32, size=112, report=REPORT)
    assert counts["converted"] == 1 and not failed
    rec = load_pt(record_path(video))
    assert tuple(rec["frames"].shape) == (32, 112, 112, 5) and rec["source_shape"] == [720, 1280]
    on_disk = record_path(video).stat().st_size
    assert 32 * 112 * 112 * 5 < on_disk < 32 * 112 * 112 * 5 + 16_384  # 2.0 MB, against 691 MB at full size
    sizes = watch_frame_arrays(monkeypatch)
    again = convert.convert_video(video, frames=32, size=112, scratch=memory.ScratchBuffer())
    assert np.array_equal(again["frames"].numpy(), rec["frames"].numpy())
    assert max(sizes) <= framesinks.SHRINK_CHUNK * 720 * 1280 * 3  # a chunk of full-size pictures at most


@pytest.mark.parametrize("method", ["simple", "mel"])
def test_a_sized_record_is_the_full_one_resized_as_training_resizes(tmp_path, method):
    video = make_video(tmp_path / "v.mp4", seconds=1, size=(64, 48))
    full = convert.convert_video(video, audiomethod=method)["frames"]
    small = convert.convert_video(video, audiomethod=method, size=16)["frames"]
    picture = resize(full[..., :3].permute(0, 3, 1, 2), 16).permute(0, 2, 3, 1)
    assert small.shape == (30, 16, 16, 5) and torch.equal(small[..., :3], picture)
    assert torch.equal(small[:, 0, 0, 3], full[:, 0, 0, 3])
    recipe = ClipRecipe(frames=8, size=16)  # training at --size 16 takes the stored frames as they are
    names = ["red", "green", "blue", "amplitude", "frequency" if method == "simple" else "mel"]
    assert torch.equal(small_clip(small, recipe, names=names)[:, :4], small_clip(full, recipe, names=names)[:, :4])
    shortened = convert.convert_video(video, audiomethod=method, size=16, frames=12)["frames"].numpy()
    assert np.array_equal(shortened, timeline.stretch_time(small.numpy(), 12, sound_channels=2,
                                                           planes=2 if method == "simple" else 1))


def test_a_run_at_another_size_converts_again_and_one_at_the_same_size_skips(tmp_path):
    video = make_video(tmp_path / "d" / "v.mp4", seconds=0.5, size=(64, 48))
    assert convert.convert_tree(tmp_path / "d", size=16, report=REPORT)[0]["converted"] == 1
    assert convert.convert_tree(tmp_path / "d", size=16, report=REPORT)[0]["skipped"] == 1
    assert convert.convert_tree(tmp_path / "d", report=REPORT)[0]["converted"] == 1
    assert tuple(load_pt(record_path(video))["frames"].shape[1:3]) == (48, 64)


@pytest.mark.parametrize("flags, says", [(["--size", "16"], "16x16 frames of the video's 64x48"),
                                         (["--frames", "5"], "5 of the video's 15 frames"),
                                         (["--frames", "40"], "15 frames stretched to 40, blended")])
def test_delete_allmp4_keeps_a_video_whose_record_holds_less_unless_told_the_loss(tmp_path, flags, says):
    video = make_video(tmp_path / "d" / "v.mp4", seconds=0.5, size=(64, 48))
    assert run_script("create_fmrgbdata.py", "--target", tmp_path / "d", *flags).returncode == 0
    assert says in conversion_problem(video) and "--lose_frames_or_pixels" in conversion_problem(video)
    assert run_script("delete_allmp4.py", "--target", tmp_path / "d").returncode == 0
    assert video.exists()
    assert run_script("delete_allmp4.py", "--target", tmp_path / "d", "--lose_frames_or_pixels").returncode == 0
    assert not video.exists() and record_path(video).exists()
