"""Properties of the sound channels and the time stretch, for whatever sound a dataset holds:
silence, clipping, DC offsets, extreme (finite) values, very short tracks, any frame count and
any frequency_param. Every output must be uint8 of the right shape, computed without NaN or
overflow (numpy's RuntimeWarnings are errors here: a NaN cast to uint8 is garbage), with the
amplitude exactly 255 on the loudest frame whenever the track is not silent.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fmrgb.prepare import sound, timeline

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FPS = [23.976, 25.0, 29.97, 30.0, 59.94]


@st.composite
def tracks(draw, *, extremes=True, max_frames=24, max_param=240):
    """(audio float32, n_frames, frequency_param, kind)."""
    n_frames = draw(st.integers(1, max_frames))
    fp = draw(st.integers(1, max_param))
    need = n_frames * fp
    kinds = ["noise", "silence", "clipping", "dc", "tone", "short", "long", "one_click"]
    kind = draw(st.sampled_from(kinds + (["extreme", "tiny"] if extremes else [])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    length = {"short": draw(st.integers(0, max(need - 1, 0))), "long": need + draw(st.integers(1, 3 * fp))}.get(kind, need)
    t = np.arange(length) / max(fp * 30, 1)
    if kind == "silence":
        audio = np.zeros(length)
    elif kind == "clipping":
        audio = np.clip(draw(st.floats(1, 1000)) * np.sin(2 * np.pi * 440 * t), -1, 1)
    elif kind == "dc":
        audio = draw(st.floats(-1, 1)) + draw(st.floats(0, 1)) * np.sin(2 * np.pi * 300 * t)
    elif kind == "tone":
        audio = draw(st.floats(1e-4, 1)) * np.sin(2 * np.pi * draw(st.floats(20, 20000)) * t)
    elif kind == "one_click":
        audio = np.zeros(length)
        if length:
            audio[rng.integers(length)] = draw(st.sampled_from([-1.0, 1.0, 1e-4]))
    elif kind == "extreme":  # finite float32 from the very top of the range to the bottom
        audio = rng.uniform(-1, 1, length) * 10.0 ** draw(st.integers(-30, 38))
        audio = np.clip(audio, -3.4e38, 3.4e38)
    elif kind == "tiny":
        audio = rng.uniform(-1, 1, length) * 10.0 ** draw(st.integers(-44, -20))
    else:
        audio = rng.uniform(-1, 1, length)
    audio = audio.astype(np.float32)
    assert np.isfinite(audio).all()
    return audio, n_frames, fp, kind


def loud_frames(per_frame):
    return np.sqrt(np.mean(np.square(per_frame, dtype=np.float64), axis=1)) > 0


# ----------------------------------------------------------------------------- amplitude

@PROPS
@given(tracks())
def test_amplitude_is_255_on_the_loudest_frame_and_0_on_silent_ones(track):
    audio, n_frames, fp, _ = track
    per_frame = sound.frame_samples(audio, n_frames, fp)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        amp = sound.amplitude(per_frame)
    assert amp.shape == (n_frames,) and amp.dtype == np.uint8
    loud = loud_frames(per_frame)
    if loud.any():
        assert amp.max() == 255
        rms = np.sqrt(np.mean(np.square(per_frame, dtype=np.float64), axis=1))
        assert amp[np.argmax(rms)] == 255
    assert (amp[~loud] == 0).all()


@PROPS
@given(tracks(extremes=False), st.integers(-20, 20))
def test_amplitude_ignores_the_volume(track, exponent):
    audio, n_frames, fp, _ = track
    per_frame = sound.frame_samples(audio, n_frames, fp)
    scaled = per_frame * np.float32(2.0 ** exponent)  # a power of two scales exactly
    assert np.array_equal(sound.amplitude(per_frame), sound.amplitude(scaled))


# ----------------------------------------------------------------------------- dominant frequency

@PROPS
@given(tracks(extremes=False), st.sampled_from(FPS))
def test_dominant_frequency_is_uint8_without_nan_and_0_where_nothing_sounds(track, fps):
    audio, n_frames, fp, _ = track
    per_frame = sound.frame_samples(audio, n_frames, fp)
    sr = sound.analysis_rate(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        freq = sound.dominant_frequency(per_frame, sr)
    assert freq.shape == (n_frames,) and freq.dtype == np.uint8
    assert (freq[~loud_frames(per_frame)] == 0).all()
    constant = (per_frame == per_frame[:, :1]).all(axis=1)
    assert (freq[constant] == 0).all()  # a DC offset alone is no pitch


# ----------------------------------------------------------------------------- mel

@PROPS
@given(tracks(extremes=False, max_param=160), st.sampled_from(FPS), st.integers(1, 40), st.integers(1, 12),
       st.integers(1, 12))
def test_mel_columns_and_images_are_uint8_of_the_right_shape_with_255_at_the_loudest_point(
        track, fps, window, height, width):
    audio, n_frames, fp, _ = track
    sr = sound.analysis_rate(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        cols = sound.mel_columns(audio, n_frames, fp, sr)
        images = sound.mel_images(cols, window, height, width)
    assert cols.dtype == np.uint8 and cols.ndim == 2 and cols.shape[0] == n_frames and 8 <= cols.shape[1] <= 64
    assert images.shape == (n_frames, height, width) and images.dtype == np.uint8
    if not sound.frame_samples(audio, n_frames, fp).any():
        assert not cols.any() and not images.any()


@PROPS
@given(tracks(extremes=False, max_param=160), st.sampled_from(FPS))
def test_mel_columns_reach_255_whenever_the_track_sounds(track, fps):
    audio, n_frames, fp, _ = track
    per_frame = sound.frame_samples(audio, n_frames, fp)
    # a constant offset is no sound to a spectrogram: ask only for tracks that move, and not only
    # in their very last sample (the Hann window gives the newest sample of a window weight 0)
    assume(per_frame.size > 1 and np.ptp(per_frame.reshape(-1)[:-1]) > 1e-3)
    cols = sound.mel_columns(audio, n_frames, fp, sound.analysis_rate(fp))
    assert cols.max() == 255


@PROPS
@given(tracks(extremes=False, max_frames=12, max_param=80), st.integers(1, 30))
def test_mel_image_at_its_own_size_is_the_last_window_columns_low_bands_at_the_bottom(track, window):
    audio, n_frames, fp, _ = track
    cols = sound.mel_columns(audio, n_frames, fp, 30 * fp)
    n_mels = cols.shape[1]
    images = sound.mel_images(cols, window, n_mels, window)
    for i in range(n_frames):
        for k in range(window):  # column window-1-k of frame i is frame i-k's column, or nothing yet
            want = cols[i - k][::-1] if i - k >= 0 else np.zeros(n_mels, np.uint8)
            assert np.array_equal(images[i][:, window - 1 - k], want)


@pytest.mark.parametrize("method", ["simple", "mel"])
def test_sound_channels_do_not_depend_on_the_level_of_a_finite_track(method):
    t = np.arange(3000) / 3000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

    def channels(audio):
        frames = np.zeros((30, 4, 4, 5), np.uint8)
        return sound.fuse(frames, audio, fps=30, audiomethod=method, frequency_param=100)[..., 3:]

    reference = channels(tone)
    assert reference[..., 1].max() > 0
    for level in (6e37, 1e20, 1e-20, 1e-30):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            got = channels((tone * level).astype(np.float32))
        assert np.abs(got.astype(int) - reference).max() <= 1, level


# ----------------------------------------------------------------------------- fuse

@PROPS
@given(tracks(extremes=False), st.sampled_from(FPS), st.sampled_from(["simple", "mel"]), st.sampled_from([3, 5]),
       st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_fuse_keeps_the_picture_and_gives_sane_sound_channels(track, fps, method, fmrgb, h, w, seed, no_track):
    audio, n_frames, fp, _ = track
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (n_frames, h, w, fmrgb - 2), dtype=np.uint8)
    frames = np.concatenate([picture, rng.integers(0, 256, (n_frames, h, w, 2), dtype=np.uint8)], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = sound.fuse(frames, None if no_track else audio, fps=fps, audiomethod=method, frequency_param=fp)
    assert out.shape == (n_frames, h, w, fmrgb) and out.dtype == np.uint8
    assert np.array_equal(out[..., :fmrgb - 2], picture)  # the picture is never touched
    channels = out[..., fmrgb - 2:]
    # each frame's own time span at this frame rate, on the run's one analysis rate
    per_frame, lengths = sound.span_rows(audio, sound.frame_bounds(n_frames, fps, sound.analysis_rate(fp)))
    if no_track or not loud_frames(per_frame).any():
        assert not channels.any()
        return
    amp = channels[..., 0]
    assert (amp == amp[:, :1, :1]).all()  # one value per frame, filling it
    assert amp.max() == 255 and np.array_equal(amp[:, 0, 0], sound.amplitude(per_frame, lengths))
    if method == "simple":
        assert (channels[..., 1] == channels[:, :1, :1, 1]).all()


# ----------------------------------------------------------------------------- stretch_time

@PROPS
@given(st.integers(1, 20), st.integers(1, 50), st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_stretch_time_keeps_shape_dtype_ends_and_stays_between_neighbours(n_in, n_out, h, c, seed):
    frames = np.random.default_rng(seed).integers(0, 256, (n_in, h, 3, c), dtype=np.uint8)
    out = timeline.stretch_time(frames, n_out)
    assert out.shape == (n_out, h, 3, c) and out.dtype == np.uint8
    assert np.array_equal(out[0], frames[0])
    if n_out > 1:
        assert np.array_equal(out[-1], frames[-1])
    if n_out == n_in:
        assert np.array_equal(out, frames)
    pos = np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    lo, hi = frames[np.floor(pos).astype(int)], frames[np.ceil(pos).astype(int)]
    assert (out >= np.minimum(lo, hi)).all() and (out <= np.maximum(lo, hi)).all()


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (1, 7), (7, 1), (300, 15), (15, 300)])
def test_stretch_time_edge_lengths(n_in, n_out):
    frames = (np.arange(n_in) * 3 % 256).astype(np.uint8).reshape(n_in, 1, 1, 1).repeat(2, axis=1)
    out = timeline.stretch_time(frames, n_out)
    assert out.shape == (n_out, 2, 1, 1)
    assert out[0, 0, 0, 0] == frames[0, 0, 0, 0]
    if n_out > 1:
        assert out[-1, 0, 0, 0] == frames[-1, 0, 0, 0]
