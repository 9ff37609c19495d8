"""fmrgb/training/clip.py: the clip recipe: which frames a model sees, the small clip, normalising, the channels' roles."""
import pytest
import torch
import torch.nn.functional as F

from fmrgb.training.clip import (ClipRecipe, candidate_indices, centre_candidates, channel_indices, channel_roles,
                        picture_channels, random_candidates, segment_indices, small_clip, small_frames, transform)

NAMES = ["red", "green", "blue", "amplitude", "mel"]


# ----------------------------------------------------------------------------- which frames


def test_segment_centres_are_evenly_spaced_and_short_clips_repeat_frames():
    assert segment_indices(10, 4).tolist() == [1, 3, 6, 8]  # the centres of 4 segments of 2.5 frames
    assert segment_indices(8, 8).tolist() == list(range(8))
    assert segment_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert segment_indices(1, 3).tolist() == [0, 0, 0]


def test_evaluation_takes_segment_centres_and_training_a_frame_inside_each_segment():
    assert segment_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert segment_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # a short clip repeats frames
    torch.manual_seed(0)
    n, frames = 300, 16
    draws = torch.stack([segment_indices(n, frames, torch.rand(frames)) for _ in range(50)])  # (50, 16)
    seg = torch.arange(frames)
    # frame f spans [f, f + 1) and segment i [i n / frames, (i + 1) n / frames): they overlap
    assert ((draws + 1) * frames > seg * n).all() and (draws * frames < (seg + 1) * n).all()
    assert (draws.amax(0) - draws.amin(0) >= 10).all()  # and anywhere in it (segments of 18.75 frames)


def test_training_picks_one_of_each_segments_candidates_and_evaluation_the_centre():
    torch.manual_seed(0)
    n, frames = 300, 16
    idx = candidate_indices(n, frames, 3)
    assert torch.equal(idx[centre_candidates(frames, 3)], segment_indices(n, frames))
    draws = torch.stack([random_candidates(frames, 3) for _ in range(60)])     # (60, 16) positions
    assert torch.equal(draws // 3, torch.arange(frames).expand(60, frames))  # one in its own segment
    assert set((draws % 3).flatten().tolist()) == {0, 1, 2}                  # any of the three
    seg = torch.arange(frames)
    frames_taken = idx[draws]  # frame f spans [f, f + 1) and segment i [i n / frames, (i + 1) n / frames)
    assert ((frames_taken + 1) * frames > seg * n).all() and (frames_taken * frames < (seg + 1) * n).all()


def test_small_clip_keeps_segment_candidates_and_centres_are_the_evaluation_frames():
    for n in [1, 2, 3, 5, 7, 12, 31, 32, 33, 100, 301]:
        for frames in [1, 4, 16]:
            recipe = ClipRecipe(frames=frames, size=8)
            idx = recipe.indices(n).view(frames, 3)
            assert torch.equal(idx[:, 1], segment_indices(n, frames)), (n, frames)  # the middle: the centre
            assert torch.equal(recipe.indices(n)[recipe.centres()], segment_indices(n, frames))
            assert bool((idx[:, 0] <= idx[:, 1]).all() and (idx[:, 1] <= idx[:, 2]).all())
            j = torch.arange(frames)[:, None]  # every candidate is a frame of its own segment [j n/f, (j+1) n/f)
            assert bool(((idx >= j * n // frames) & (idx * frames < (j + 1) * n)).all()), (n, frames)
    assert ClipRecipe(frames=4, size=8, steps=1).indices(50).tolist() == segment_indices(50, 4).tolist()


# ----------------------------------------------------------------------------- the small clip


def test_small_clip_is_the_rounded_antialiased_resize_and_its_centres_equal_a_one_step_clip():
    clip = torch.randint(0, 256, (30, 24, 40, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    small = small_clip(clip, ClipRecipe(frames=4, size=8))
    assert small.dtype == torch.uint8 and small.shape == (12, 5, 8, 8)
    picked = clip[ClipRecipe(frames=4, size=8).indices(30)].permute(0, 3, 1, 2)
    reference = F.interpolate(picked.float(), size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    assert (small.int() - reference.round().clamp(0, 255).int()).abs().max() <= 1  # uint8 arithmetic, rounded
    some = torch.tensor([0, 4, 5, 11])  # only some positions: the same frames, the same values
    assert torch.equal(small_clip(clip, ClipRecipe(frames=4, size=8), some), small[some])
    # evaluation from the cache (3 candidates, the middle taken) is bitwise evaluation without it (1 frame)
    assert torch.equal(small[ClipRecipe(frames=4, size=8).centres()], small_clip(clip, ClipRecipe(4, 8, steps=1)))


def test_short_clips_repeat_frames_and_same_size_clips_are_not_resampled():
    clip = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    small = small_clip(clip, ClipRecipe(frames=4, size=8))
    assert small.shape == (12, 3, 8, 8)
    assert torch.equal(small, clip[ClipRecipe(frames=4, size=8).indices(2)].permute(0, 3, 1, 2))


def test_resize_is_antialiased_bilinear_and_keeps_flat_channels_flat():
    clip = torch.zeros(3, 40, 60, 2, dtype=torch.uint8)
    clip[..., 0] = 200
    clip[:, :, 1::2, 1] = 255  # one-pixel stripes: antialiasing averages them to about half
    x = small_frames(clip, frames=3, size=8).float() / 255
    assert x.shape == (3, 2, 8, 8)
    torch.testing.assert_close(x[:, 0], torch.full((3, 8, 8), 200 / 255))
    assert (x[:, 1] - 0.5).abs().max() < 0.1  # without antialiasing bilinear samples would alias to 0 or 1


# ----------------------------------------------------------------------------- normalised for the model


def test_transform_equals_manual_computation_without_inversion():
    T, H, W, C = 10, 4, 4, 3
    g = torch.Generator().manual_seed(1)
    clip = torch.randint(0, 256, (T, H, W, C), generator=g, dtype=torch.uint8)
    clip[..., 0] = 255  # a fully bright channel must stay the brightest value (the seed's bug inverted it)
    clip[..., 1] = 0
    mean, std = [0.5, 0.25, 0.1], [0.5, 2.0, 0.3]
    out = transform(clip, frames=4, size=4, mean=mean, std=std, layout="tchw")
    manual = clip[[1, 3, 6, 8]].double().permute(0, 3, 1, 2) / 255.0          # (T, C, H, W) in 0..1
    manual = (manual - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(1, 3, 1, 1)
    assert out.shape == (4, 3, 4, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), manual, atol=1e-6, rtol=1e-6)
    assert torch.allclose(out[:, 0], torch.tensor((1.0 - 0.5) / 0.5))   # 255 -> 1.0, not inverted
    assert torch.allclose(out[:, 1], torch.tensor((0.0 - 0.25) / 2.0))
    cthw = transform(clip, frames=4, size=4, mean=mean, std=std, layout="cthw")
    assert cthw.shape == (3, 4, 4, 4)
    torch.testing.assert_close(cthw, out.permute(1, 0, 2, 3))


# ----------------------------------------------------------------------------- the channels


def test_channel_roles_by_name_and_for_unnamed_records():
    assert channel_roles(NAMES) == ("picture", "picture", "picture", "plane", "mel")
    assert channel_roles(["grey", "amplitude", "frequency"]) == ("picture", "plane", "plane")
    assert channel_roles(["c0", "c1", "c2"]) == ("picture", "mel", "mel")  # FMRGB's layout; sound only resized
    assert picture_channels(NAMES) == 3 and picture_channels(["grey", "amplitude", "mel"]) == 1
    assert picture_channels(["amplitude", "frequency"]) == 0


def test_channels_are_chosen_by_name_and_an_unknown_or_repeated_one_lists_the_names():
    assert channel_indices(NAMES, ["mel", "red"]) == [4, 0]
    for wanted, why in ((["red", "hue"], "unknown channel 'hue'"), (["red", "red"], "each channel once"),
                        ([], "each channel once")):
        with pytest.raises(ValueError, match=why) as e:
            channel_indices(NAMES, wanted)
        assert "red,green,blue,amplitude,mel" in str(e.value)
