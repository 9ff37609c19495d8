"""The sound channels on synthetic tracks, where the right answer is known exactly."""
import numpy as np
import pytest
import scipy.ndimage

from fmrgb.prepare import sound, timeline

FPS, FP = 30, 100
SR = FPS * FP  # 3000 Hz analysis rate, Nyquist 1500 Hz


def tone(freq, seconds=2.0, amp=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def freq_value(freq, sr=SR):
    return freq / (sr / 2) * 255


def test_dominant_frequency_of_a_tone_is_its_pitch_scaled_to_nyquist():
    per_frame = sound.frame_samples(tone(440), 60, FP)
    values = sound.dominant_frequency(per_frame, SR)
    one_bin = 255 * 2 / (1 << int(np.ceil(np.log2(4 * FP))))
    assert np.all(np.abs(values.astype(float) - freq_value(440)) <= one_bin + 0.5)


def test_dominant_frequency_is_absolute_not_relative_to_the_video():
    # a steady low tone must not become 255 just because it is the video's highest pitch
    values = sound.dominant_frequency(sound.frame_samples(tone(200), 60, FP), SR)
    assert abs(int(np.median(values)) - freq_value(200)) <= 2
    assert values.max() < 100


def test_dc_offset_is_not_a_pitch():
    values = sound.dominant_frequency(sound.frame_samples(tone(600) + 0.4, 60, FP), SR)
    assert abs(int(np.median(values)) - freq_value(600)) <= 2


def test_silent_frames_get_frequency_zero_not_noise_argmax():
    x = tone(440, seconds=2)
    x[SR:] = np.random.default_rng(0).normal(0, 1e-5, SR).astype(np.float32)  # second half near-silent
    values = sound.dominant_frequency(sound.frame_samples(x, 60, FP), SR)
    assert np.all(values[32:] == 0)
    assert np.all(values[:29] > 0)


def test_amplitude_is_relative_rms_with_255_on_the_loudest_frame():
    x = tone(440, seconds=2) * np.linspace(0.01, 1, 2 * SR, dtype=np.float32)
    amp = sound.amplitude(sound.frame_samples(x, 60, FP))
    assert amp.dtype == np.uint8 and amp.shape == (60,)
    assert amp.max() == 255 and amp.argmax() == 59
    assert np.all(np.diff(amp.astype(int)) >= 0) and amp[0] < 10


def test_silence_gives_zeros_never_nan():
    per_frame = sound.frame_samples(np.zeros(SR, np.float32), 30, FP)
    assert not sound.amplitude(per_frame).any()
    assert not sound.dominant_frequency(per_frame, SR).any()
    assert not sound.mel_columns(np.zeros(SR, np.float32), 30, FP, SR).any()


def test_audio_shorter_than_the_video_is_padded_with_silence():
    per_frame = sound.frame_samples(tone(440, seconds=1), 60, FP)
    amp = sound.amplitude(per_frame)
    assert amp[:30].min() > 200 and not amp[31:].any()


def test_mel_brightest_row_moves_up_for_a_higher_tone():
    def brightest_row(freq):
        cols = sound.mel_columns(tone(freq), 60, FP, SR)
        img = sound.mel_images(cols, FPS, 48, 64)  # (T, H, W), low bands at the bottom
        return int(np.argmax(img[-1, :, -1]))

    low, high = brightest_row(200), brightest_row(1000)
    assert high < low  # row 0 is the top of the image


def test_mel_image_is_one_second_ending_at_the_frame():
    x = np.zeros(3 * SR, np.float32)
    x[SR:SR + FP] = tone(500, seconds=FP / SR)  # a click in frame 30 only
    img = sound.mel_images(sound.mel_columns(x, 90, FP, SR), FPS, 16, FPS)
    assert not img[29].any()  # before the click nothing is lit
    assert img[30][:, -1].max() > 0  # at its frame it is the newest column
    assert img[30 + FPS - 1][:, 0].max() > 0  # a second later it is the oldest column
    # the analysis window (n_fft) spans a little over two frames, so it lingers two columns more
    assert not img[30 + FPS + 3].any()  # then it has left the window


def test_stretch_time_matches_scipy_zoom_linear():
    frames = np.random.default_rng(1).integers(0, 256, (17, 4, 5, 3), dtype=np.uint8)
    for n_out in (40, 17, 9):
        ours = timeline.stretch_time(frames, n_out)
        ref = scipy.ndimage.zoom(frames.astype(np.float32), (n_out / 17, 1, 1, 1), order=1)
        assert ours.shape == (n_out, 4, 5, 3) and ours.dtype == np.uint8
        assert np.abs(ours.astype(np.float32) - ref).max() <= 0.5 + 1e-3


def test_fuse_fills_amplitude_then_frequency_after_the_picture():
    frames = np.full((60, 6, 8, 5), 7, np.uint8)
    out = sound.fuse(frames, tone(440), fps=FPS, audiomethod="simple", frequency_param=FP)
    assert out.shape == (60, 6, 8, 5) and out.dtype == np.uint8
    assert (out[..., :3] == 7).all()  # the picture is left alone
    assert (out[..., 3] == out[:, :1, :1, 3]).all()  # one value fills the whole frame
    assert out[..., 3].max() == 255
    assert abs(int(out[30, 0, 0, 4]) - freq_value(440)) <= 2
    grey = sound.fuse(np.full((60, 6, 8, 3), 7, np.uint8), None, fps=FPS, audiomethod="mel", frequency_param=FP)
    assert (grey[..., 0] == 7).all() and not grey[..., 1:].any()


@pytest.mark.parametrize("sr_fps", [(23.976, 100), (29.97, 50), (60, 10)])
def test_odd_frame_rates_and_params_keep_one_row_per_frame(sr_fps):
    fps, fp = sr_fps
    sr = sound.analysis_rate(fp)
    n = 48
    out = sound.fuse(np.zeros((n, 4, 4, 5), np.uint8), tone(100, seconds=3, sr=sr), fps=fps,
                        audiomethod="mel", frequency_param=fp)
    assert out.shape == (n, 4, 4, 5)
    assert out[..., 3].max() == 255


@pytest.mark.parametrize("sr,n_fft,n_mels", [(3000, 256, 64), (2997, 256, 64), (44100, 2048, 128), (300, 32, 8)])
def test_mel_filters_are_librosas(sr, n_fft, n_mels):
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about empty filters at very low rates
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    np.testing.assert_allclose(sound.mel_filters(sr, n_fft, n_mels), ref, rtol=1e-4, atol=1e-7)


def test_mel_image_is_the_window_resized_by_nearest_neighbour():
    import torch

    cols = np.random.default_rng(3).integers(0, 256, (20, 16), dtype=np.uint8)
    ours = sound.mel_images(cols, 10, 24, 40)
    pad = np.concatenate([np.zeros((9, 16), np.uint8), cols])
    img = np.lib.stride_tricks.sliding_window_view(pad, 10, axis=0)[:, ::-1, :]  # (T, mels, window), low at bottom
    ref = torch.nn.functional.interpolate(torch.from_numpy(img.copy())[:, None].float(), size=(24, 40),
                                          mode="nearest")[:, 0].to(torch.uint8).numpy()
    assert np.array_equal(ours, ref)
