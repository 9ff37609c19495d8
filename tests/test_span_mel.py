"""A kept frame's mel image describes its whole time span where that span is longer than the second an image
shows (sound.span_mel): a --frames conversion, stretch_time, and training's, the cache's and predict.py's time
steps (fmrgb.training.clip); a span up to a second keeps its frame's own image, as before."""
import numpy as np
import pytest
import torch
from conftest import make_video, pt_dict

import predict
from dataset import FMRGBDataset
from fmrgb.prepare import convert, sound, timeline
from fmrgb.training.cache import ClipCache
from fmrgb.training.checkpoint import RecordSettings
from fmrgb.training.clip import ClipRecipe, record_mel_window, small_clip, transform

# 160 ms of 440 Hz at 3.74-3.90 s of 8 s (frames 112-117 at 30 fps), silence elsewhere: inside the span
# [40, 120) of the kept frame 1 of --frames 4 and the time segment [60, 120) of a 4-step clip, yet in the
# last second of neither kept frame 80 nor the segment's candidates 70, 90, 110
BURST = "0.5*sin(2*PI*440*t)*between(t\\,3.74\\,3.90)"
MEL_NAMES = ["red", "green", "blue", "amplitude", "mel"]


@pytest.fixture(scope="module")
def burst(tmp_path_factory):
    """(the video, its full mel record's frames)."""
    video = make_video(tmp_path_factory.mktemp("burst") / "burst.mp4", seconds=8, size=(32, 24), audio=BURST)
    return video, convert.convert_video(video, audiomethod="mel")["frames"].numpy()


def test_a_long_spans_image_is_its_columns_max_pooled_to_the_width():
    columns = np.zeros((16, 8), np.uint8)
    columns[7, 2], columns[12, 5] = 200, 90  # two short sounds in the span [2, 14), none in its last 4 frames
    images = sound.mel_images(columns, 4, 8, 4)  # each frame's last 4 columns, one pixel column each
    long, made = sound.span_mel(lambda i: images[i], np.array([0, 2]), np.array([2, 14]), 4, (8, 4))
    assert long.tolist() == [1]  # the 2-frame span keeps its own image (not made here)
    pooled = columns[2:14].reshape(4, 3, 8).max(axis=1)  # frames 2-4, 5-7, 8-10, 11-13
    assert np.array_equal(made[0], sound.mel_images(pooled, 4, 8, 4)[-1])
    assert made[0].max() == 200 and not images[13].max() == 200  # the frame's own image had lost it


def test_a_burst_inside_a_long_span_shows_in_the_kept_frames_mel_image_of_a_frames_n_record(burst):
    video, full = burst
    plan = timeline.stretch_plan(240, 4)
    assert plan.nearest[1] == 80 and not full[80, ..., 4].any()  # the kept frame's own second is silent
    rec = convert.convert_video(video, audiomethod="mel", frames=4)["frames"].numpy()
    assert rec[1, ..., 4].max() == full[40:120, ..., 4].max() > 150  # the burst, as bright as it was
    rows = rec[1, :, :, 4].max(axis=1)
    assert rows.argmax() == full[115, :, :, 4].max(axis=1).argmax()  # in the 440 Hz band
    assert not rec[[0, 2, 3], ..., 4].any()  # and only in its own span
    assert np.array_equal(rec, timeline.stretch_time(full, 4, sound_channels=2, planes=1, mel_window=30))


def test_a_burst_inside_a_long_time_segment_reaches_training_the_cache_and_predict(burst, tmp_path):
    video, full = burst
    path = tmp_path / "b.pt"
    torch.save(pt_dict(torch.from_numpy(full), channels=MEL_NAMES, audiomethod="mel"), path)
    recipe = ClipRecipe(frames=4, size=16)
    window = record_mel_window({"fps": 30.0, "source_frames": 240}, 240)
    assert window == 30 and recipe.indices(240)[3:6].tolist() == [70, 90, 110]  # segment 1's candidates
    before = small_clip(torch.from_numpy(full), recipe, names=MEL_NAMES)  # no window: each frame's own image
    small = small_clip(torch.from_numpy(full), recipe, names=MEL_NAMES, mel_window=window)
    assert not before[3:6, 4].any() and small[3:6, 4].amax(dim=(1, 2)).min() > 100  # in each candidate
    assert not small[[0, 1, 2, 6, 7, 8, 9, 10, 11], 4].any()
    mean, std = [0.0] * 5, [1.0] * 5
    ds = FMRGBDataset([path], [0], frames=4, size=16, mean=mean, std=std, layout="cthw")
    cached = FMRGBDataset([path], [0], frames=4, size=16, mean=mean, std=std, layout="cthw",
                          cache=ClipCache(tmp_path / "cache", recipe, settle_s=0))
    clip, got_window = predict.load_clip(path, RecordSettings(tuple(MEL_NAMES), "mel", 100))
    predicted = transform(clip, frames=4, size=16, mean=mean, std=std, layout="cthw", names=MEL_NAMES,
                          mel_window=got_window)
    assert got_window == 30 and torch.equal(ds[0][0], predicted) and torch.equal(cached[0][0], predicted)
    assert predicted[4, 1].max() > 0.4  # time step 1's mel image carries the burst
    # a video classified straight away: converted to the training files' 4 frames, each showing its span
    clip, got_window = predict.load_clip(video, RecordSettings(tuple(MEL_NAMES), "mel", 100, pt_frames=4))
    x = transform(clip, frames=4, size=16, mean=mean, std=std, layout="cthw", names=MEL_NAMES,
                  mel_window=got_window)
    assert got_window == 1 and x[4, 1].max() > 0.4 and not x[4, [0, 2, 3]].any()


def test_spans_up_to_a_second_keep_their_frames_own_mel_image(burst):
    video, full = burst
    rec = convert.convert_video(video, audiomethod="mel", frames=24)["frames"].numpy()  # spans of 10 frames
    assert np.array_equal(rec[..., 4], full[timeline.stretch_plan(240, 24).nearest, ..., 4])
    recipe = ClipRecipe(frames=16, size=16)  # segments of 15 frames
    small = small_clip(torch.from_numpy(full), recipe, names=MEL_NAMES, mel_window=30)
    assert torch.equal(small, small_clip(torch.from_numpy(full), recipe, names=MEL_NAMES))
    assert small[:, 4].any()  # and the burst is there, in the frames whose own second holds it


def test_a_frame_two_short_segments_pick_gets_each_ones_image_with_the_cache_or_without(tmp_path):
    """A --frames 20 record of 10 s at 30 fps: one mel image spans 2 of its frames, a time segment of 8 takes
    2.5, so neighbouring segments' candidates share frames: each gets its own segment's image, and the
    stored clip (the cache) indexed by any draw is what training makes without it."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (20, 16, 16, 5), dtype=torch.uint8, generator=g)
    meta = pt_dict(frames, channels=MEL_NAMES, audiomethod="mel", source_frames=300)
    recipe, window = ClipRecipe(frames=8, size=16), record_mel_window(meta, 20)
    assert window == 2
    whole = small_clip(frames, recipe, names=MEL_NAMES, mel_window=window)
    for positions in ([2, 5, 8, 11, 14, 17, 20, 23], [0, 3, 6, 9, 12, 15, 18, 21], recipe.centres().tolist()):
        alone = small_clip(frames, recipe, positions, names=MEL_NAMES, mel_window=window)
        torch.testing.assert_close(whole[positions], alone, rtol=0, atol=0)


@pytest.mark.parametrize("budget", [1, 3 * 8 * 5])  # one tile a chunk, three: parts of one span
def test_a_long_span_is_pooled_in_bounded_chunks_to_the_same_image(monkeypatch, budget):
    """One span of 200 frames (50 images side by side) next to short ones: pooled a few images at a time
    (memory bounded whatever the span's length), the images are those of pooling all at once."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (260, 8, 5), dtype=np.uint8)
    lo, hi = np.array([0, 3, 203, 230]), np.array([3, 203, 230, 260])
    whole = sound.span_mel(lambda i: images[i], lo, hi, 4, (8, 5))
    monkeypatch.setattr(sound, "MEL_TILES_BYTES", budget)
    asked = []
    chunked = sound.span_mel(lambda i: (asked.append(len(i)), images[i])[1], lo, hi, 4, (8, 5))
    assert max(asked) == max(1, budget // (8 * 5)) and sum(asked) == 50 + 7 + 8  # each image once
    assert whole[0].tolist() == chunked[0].tolist() == [1, 2, 3]
    assert np.array_equal(whole[1], chunked[1])
    # the long span's image: the 50 images of frames 6, 10, ..., 202 (each its last 4 frames: the span
    # [3, 203) whole), their 250 columns side by side, oldest first, 50 pooled into each of the 5 columns
    own = images[np.arange(6, 203, 4)]  # (50, 8, 5)
    assert np.array_equal(whole[1][0], own.transpose(1, 0, 2).reshape(8, 5, 50).max(2))
