"""The sound channels: amplitude, dominant frequency and the mel image, for a whole track at once.

    fuse(frames, audio, fps=30.0, audiomethod="simple", frequency_param=100)   # fills the last 2 channels

Every function works on a whole track or a whole video at once (numpy), never per frame.

Sound is analysed at the rate sr = round(fps * frequency_param): frame i owns the
frequency_param samples of the mono mix-down that begin at its time, round((start + i / fps) * sr),
where start is when the first frame shows (sample 0 is the file's start). Taken from the time,
not counted in whole samples per frame, the sound stays on its frame however long the clip.
"""
import numpy as np

SOUND_CHANNELS = 2  # every record ends with amplitude, then frequency or mel
# the channel names a record carries (the one definition; fmrgb.training.clip gives each its role)
RGB_NAMES = ("red", "green", "blue")        # the picture of a colour record (--fmrgb 5)
GREY_NAMES = ("grey",)                      # the picture of a grey one (--fmrgb 3)
PICTURE_NAMES = RGB_NAMES + GREY_NAMES
AMPLITUDE, FREQUENCY, MEL = "amplitude", "frequency", "mel"   # mel: the mel image, for --audiomethod mel
PLANE_NAMES = (AMPLITUDE, FREQUENCY)        # one value per frame, spread over the whole plane
SOUND_NAMES = (AMPLITUDE, FREQUENCY, MEL)

SILENCE_DB = -60.0  # frames this far below the video's loudest frame count as silent
MEL_FLOOR_DB = -80.0


def analysis_rate(fps, frequency_param):
    return max(1, int(round(fps * frequency_param)))


def frame_starts(n_frames, fps, sample_rate, start=0.0):
    """The first sample of each of n_frames frames: frame i shows time start + i / fps."""
    return np.rint(start * sample_rate + np.arange(n_frames) * (sample_rate / fps)).astype(np.int64)


def windows_at(audio, starts, length):
    """(len(starts), length) float32: the `length` samples from each start, zero outside the track."""
    audio = np.asarray(audio, np.float32)
    if len(starts) == 0:
        return np.zeros((0, length), np.float32)
    before = max(0, -int(starts.min()))
    after = max(0, int(starts.max()) + length - len(audio))
    padded = np.concatenate([np.zeros(before, np.float32), audio, np.zeros(after, np.float32)])
    return np.lib.stride_tricks.sliding_window_view(padded, length)[starts + before]


def frame_samples(audio, n_frames, frequency_param, starts=None):
    """Audio cut into one row per video frame: (T, frequency_param), the samples from each frame's
    start (frame_starts; by default i * frequency_param), zero past the track's end."""
    if starts is None:
        starts = np.arange(n_frames, dtype=np.int64) * frequency_param
    return windows_at(audio, starts, frequency_param)


def periodic_hann(n):
    """The Hann window for spectral analysis (as librosa and scipy use): its last sample is not 0."""
    return np.hanning(n + 1)[:-1].astype(np.float32)


def frame_rms(frames_audio):
    return np.sqrt(np.mean(np.square(frames_audio, dtype=np.float64), axis=1))


def to_uint8(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def amplitude(frames_audio):
    """Per-frame RMS relative to the loudest frame: (T,) uint8, 255 on the loudest frame, 0 for silence."""
    rms = frame_rms(frames_audio)
    peak = rms.max(initial=0.0)
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros(len(rms), np.uint8)
    return to_uint8(rms / peak * 255)


def dominant_frequency(frames_audio, sample_rate):
    """Per-frame dominant frequency: (T,) uint8 with 255 = the Nyquist frequency of `sample_rate`.

    One STFT over the whole track: each frame's own samples, mean removed (a DC offset is not a
    pitch), Hann-windowed and zero-padded so the peak bin sits close to the true frequency.
    Silent frames (SILENCE_DB below the loudest) get 0 rather than the argmax of noise.
    """
    n_frames, hop = frames_audio.shape
    if hop < 2:
        return np.zeros(n_frames, np.uint8)
    x = frames_audio - frames_audio.mean(axis=1, keepdims=True)
    n_fft = 1 << int(np.ceil(np.log2(4 * hop)))
    spectrum = np.abs(np.fft.rfft(x * periodic_hann(hop), n=n_fft, axis=1))
    freq = np.argmax(spectrum, axis=1) * (sample_rate / n_fft)
    value = freq / (sample_rate / 2) * 255
    rms = frame_rms(frames_audio)
    loud = rms > rms.max(initial=0.0) * 10 ** (SILENCE_DB / 20)
    return np.where(loud & (spectrum.max(axis=1) > 0), to_uint8(value), 0).astype(np.uint8)


def hz_to_mel(hz):
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, hz * 3.0 / 200.0)


def mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filters(sample_rate, n_fft, n_mels):
    """Triangular Slaney-normalised mel filters (n_mels, n_fft // 2 + 1), the same matrix as
    librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels) (a test checks it); written
    out here so a conversion does not import librosa and numba (+200 MB, +1 s per process)."""
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_columns(audio, n_frames, frequency_param, sample_rate, starts=None):
    """Log-mel spectrogram with one column per video frame, each column the window that ends
    with its frame's samples (frame_samples): (T, n_mels) uint8, 255 = the loudest point of the
    video, 0 = MEL_FLOOR_DB or below."""
    hop = frequency_param
    n_fft = 1 << int(np.ceil(np.log2(max(2 * hop, 16))))
    n_mels = max(8, min(64, n_fft // 4))
    if starts is None:
        starts = np.arange(n_frames, dtype=np.int64) * hop
    # nothing before the first frame's samples counts, as if the track began there
    audio = np.asarray(audio, np.float32)[max(0, int(starts[0])) if n_frames else 0:]
    starts = starts - (max(0, int(starts[0])) if n_frames else 0)
    windows = windows_at(audio, starts + hop - n_fft, n_fft)  # (T, n_fft)
    power = np.abs(np.fft.rfft(windows * periodic_hann(n_fft), axis=1)) ** 2
    # einsum, not `@`: a matmul this small finishes in 0.3 ms, but OpenBLAS then keeps its worker
    # thread spinning for ~0.1 s, taking the core that decodes the next video's sound
    mel = np.einsum("tf,mf->tm", power, mel_filters(sample_rate, n_fft, n_mels))  # (T, n_mels)
    peak = mel.max(initial=0.0)
    if peak <= 0:
        return np.zeros((n_frames, n_mels), np.uint8)
    db = 10 * np.log10(np.maximum(mel, peak * 1e-10) / peak)
    return to_uint8((np.maximum(db, MEL_FLOOR_DB) - MEL_FLOOR_DB) / -MEL_FLOOR_DB * 255)


def mel_images(columns, window, height, width, out=None, at=None):
    """For each frame the last `window` columns (about one second) as an image, low bands at the
    bottom, resized to the frame by nearest neighbour (each band and column a block of pixels, no
    invented in-between values): (T, height, width) uint8, written into `out` if given. With `at`
    (indices into columns) only those frames' images, in that order.

    All in uint8: the bands are resized once for the whole track, then each frame's image is a
    window of that, widened by one nearest-neighbour resize over all frames at once.
    """
    n_frames, n_mels = columns.shape
    history = np.concatenate([np.zeros((window - 1, n_mels), np.uint8), columns])
    band_of_row = (n_mels - 1) - (np.arange(height) * n_mels // height)  # top row = highest band
    rows = history[:, band_of_row]  # (T + window - 1, H)
    windows = np.lib.stride_tricks.sliding_window_view(rows, window, axis=0)  # (T, H, window), a view
    if at is not None:
        windows, n_frames = windows[at], len(at)
    if out is None:
        out = np.empty((n_frames, height, width), np.uint8)
    # widening every frame's window is one nearest-neighbour resize of all windows stacked as one
    # tall image (source column of x = x * window // width), then one strided copy into `out`
    tall = np.ascontiguousarray(windows).reshape(n_frames * height, window)
    out[...] = cv2_resize_nearest(tall, width).reshape(n_frames, height, width)
    return out


def cv2_resize_nearest(image, width):
    import cv2

    return cv2.resize(image, (width, image.shape[0]), interpolation=cv2.INTER_NEAREST)


def channel_names(fmrgb, audiomethod):
    """The names of a record's channels: the picture (RGB or grey), then amplitude, then frequency or mel."""
    picture = RGB_NAMES if fmrgb == 5 else GREY_NAMES
    return [*picture, AMPLITUDE, FREQUENCY if audiomethod == "simple" else MEL]


def fuse(frames, audio, *, fps, audiomethod, frequency_param, start=0.0, source_frames=None, at=None):
    """Fill the last two channels of `frames` (T, H, W, C) uint8, which hold the picture in the
    first C - 2, with amplitude and frequency or mel from the sound track (mono float at the
    analysis rate, sample 0 at the file's start, or None); the first frame shows at `start` s.
    For a clip stretched from `source_frames` frames, `at` gives the source frame whose sound each
    frame takes (timeline.StretchPlan.nearest): the sound is analysed at the source frames' times,
    so a stretched clip holds only values the sound had. Works in place and returns `frames`."""
    n_frames, height, width, n_channels = frames.shape
    n_source = n_frames if source_frames is None else int(source_frames)
    amp_ch, freq_ch = n_channels - 2, n_channels - 1
    sr = analysis_rate(fps, frequency_param)
    if audio is None or len(audio) == 0 or not np.any(audio):
        frames[..., amp_ch:] = 0
        return frames
    audio = np.nan_to_num(np.asarray(audio, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    # every sound channel is relative to the video's loudest point, so scaling to a peak of 1 changes
    # nothing for ordinary tracks and keeps extreme levels (1e30, 1e-30) out of overflow and underflow
    peak = np.abs(audio).max()
    if peak == 0:
        frames[..., amp_ch:] = 0
        return frames
    audio = (audio / peak).astype(np.float32)
    starts = frame_starts(n_source, fps, sr, start)
    per_frame = frame_samples(audio, n_source, frequency_param, starts)
    pick = (lambda values: values) if at is None else (lambda values: values[at])
    frames[..., amp_ch] = pick(amplitude(per_frame))[:, None, None]
    if audiomethod == "simple":
        frames[..., freq_ch] = pick(dominant_frequency(per_frame, sr))[:, None, None]
    else:
        cols = mel_columns(audio, n_source, frequency_param, sr, starts)
        mel_images(cols, max(1, int(round(fps))), height, width, out=frames[..., freq_ch], at=at)
    return frames
