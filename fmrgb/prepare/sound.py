"""The sound channels: amplitude, dominant frequency and the mel image, for a whole track at once.

    fuse(frames, audio, fps=30.0, audiomethod="simple", frequency_param=100)   # fills the last 2 channels

Every function works on a whole track or a whole video at once (numpy), never per frame.

Sound is analysed at one rate for every file of a run, whatever its frame rate: sr = 30 *
frequency_param Hz (analysis_rate; the seed's rate at 30 fps, 3000 Hz by default), so a frequency
value and a mel band mean the same Hz in every file. Frame i owns the samples of its own time span,
[b(i), b(i + 1)) with b(i) = round((start + i / fps) * sr), where start is when the first frame shows
(sample 0 is the file's start): 100 samples at 30 fps, 125 at 24, 50 at 60. Taken from the time,
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


REFERENCE_FPS = 30  # --frequency_param is the samples per frame at 30 fps: the seed's rate there, kept for every file


def analysis_rate(frequency_param):
    """The sound's analysis rate in Hz, one for the whole run: 30 x frequency_param. Frequency value 255
    is its Nyquist frequency, 15 x frequency_param Hz (1500 Hz by default); the mel bands span 0 to it."""
    return REFERENCE_FPS * int(frequency_param)


def frame_starts(n_frames, fps, sample_rate, start=0.0):
    """The first sample of each of n_frames frames: frame i shows time start + i / fps."""
    return np.rint(start * sample_rate + np.arange(n_frames) * (sample_rate / fps)).astype(np.int64)


def frame_bounds(n_frames, fps, sample_rate, start=0.0):
    """(n_frames + 1,) int64: frame i owns the samples [bounds[i], bounds[i + 1]), its own time span."""
    return frame_starts(n_frames + 1, fps, sample_rate, start)


def span_rows(audio, bounds):
    """(rows (T, L) float32, lengths (T,)): each frame's own samples (frame_bounds), zero past its span's
    end and past the track's; L is the longest span."""
    lengths = np.diff(bounds)
    rows = windows_at(audio, bounds[:-1], max(1, int(lengths.max(initial=1))))  # a copy: fancy indexing
    rows[np.arange(rows.shape[1])[None, :] >= lengths[:, None]] = 0
    return rows, lengths


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


def frame_rms(frames_audio, lengths=None):
    """Each row's RMS over its first `lengths` samples (the rest are zero), or over the whole row."""
    n = frames_audio.shape[1] if lengths is None else np.maximum(lengths, 1)
    return np.sqrt(np.sum(np.square(frames_audio, dtype=np.float64), axis=1) / n)


def to_uint8(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def amplitude(frames_audio, lengths=None):
    """Per-frame RMS (over each row's `lengths` samples) relative to the loudest frame: (T,) uint8, 255 on
    the loudest frame, 0 for silence."""
    rms = frame_rms(frames_audio, lengths)
    peak = rms.max(initial=0.0)
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros(len(rms), np.uint8)
    return to_uint8(rms / peak * 255)


def dominant_frequency(frames_audio, sample_rate, lengths=None):
    """Per-frame dominant frequency: (T,) uint8 with 255 = the Nyquist frequency of `sample_rate`.

    One FFT over the whole track: each frame's own samples (its first `lengths` of the row), mean
    removed (a DC offset is not a pitch), with a Hann window of its own length, zero-padded, the peak
    refined between bins (a parabola through the log magnitudes), so a tone gives the same value
    whatever the span's length (the frame rate). Silent frames (SILENCE_DB below the loudest) get 0
    rather than the argmax of noise.
    """
    n_frames, width = frames_audio.shape
    lengths = np.full(n_frames, width) if lengths is None else np.asarray(lengths)
    if width < 2:
        return np.zeros(n_frames, np.uint8)
    k = np.arange(width)[None, :]
    own = k < lengths[:, None]
    span = np.maximum(lengths, 1)[:, None]
    x = np.where(own, frames_audio - frames_audio.sum(axis=1, keepdims=True) / span, 0)
    hann = np.where(own, 0.5 - 0.5 * np.cos(2 * np.pi * k / span), 0)  # periodic, as periodic_hann
    n_fft = 1 << int(np.ceil(np.log2(4 * width)))
    spectrum = np.abs(np.fft.rfft((x * hann).astype(np.float32), n=n_fft, axis=1))
    peak = np.clip(np.argmax(spectrum, axis=1), 1, spectrum.shape[1] - 2)
    a, b, c = (np.log(np.take_along_axis(spectrum, (peak + d)[:, None], 1)[:, 0] + 1e-20) for d in (-1, 0, 1))
    curve = a - 2 * b + c
    shift = np.where(curve < 0, 0.5 * (a - c) / np.where(curve < 0, curve, -1), 0)
    freq = (peak + np.clip(shift, -0.5, 0.5)) * (sample_rate / n_fft)
    value = freq / (sample_rate / 2) * 255
    rms = frame_rms(frames_audio, lengths)
    loud = rms > rms.max(initial=0.0) * 10 ** (SILENCE_DB / 20)
    return np.where(loud & (spectrum.max(axis=1) > 0), to_uint8(value), 0).astype(np.uint8)


def span_sound(amplitudes, frequencies, lo, hi):
    """The sound of kept frames that each stand for a span of frames, [lo[j], hi[j]) (at least the
    frame lo[j]): amplitude the RMS of the span's amplitude values (each a frame's RMS on the clip's
    one scale, so the span's RMS on it, whole frames at a time; measured against the peak in
    docs/benchmarks.md), frequency (None: not wanted) that of the span's loudest frame. The
    one rule of a --frames conversion, of stretch_time and of training's and predict.py's time steps.
    Returns (uint8 (J,), uint8 (J,) or None)."""
    amplitudes = np.asarray(amplitudes)
    lo = np.asarray(lo, np.int64)
    hi = np.maximum(np.asarray(hi, np.int64), lo + 1)
    idx = lo[:, None] + np.arange(int((hi - lo).max(initial=1)))[None, :]
    own = idx < hi[:, None]
    idx = np.minimum(idx, len(amplitudes) - 1)
    a = np.where(own, amplitudes[idx].astype(np.float64), 0.0)
    amp = to_uint8(np.sqrt(np.sum(a * a, axis=1) / own.sum(axis=1)))
    if frequencies is None:
        return amp, None
    loudest = np.take_along_axis(idx, np.argmax(np.where(own, a, -1.0), axis=1)[:, None], 1)[:, 0]
    return amp, np.asarray(frequencies)[loudest]


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


def mel_columns(audio, n_frames, frequency_param, sample_rate, starts=None, ends=None):
    """Log-mel spectrogram with one column per video frame, each column the window that ends
    with its frame's samples (at `ends`, by default frequency_param samples after each start):
    (T, n_mels) uint8, 255 = the loudest point of the video, 0 = MEL_FLOOR_DB or below. The window
    and the bands follow from frequency_param alone, so a band means the same Hz at any frame rate."""
    hop = frequency_param
    n_fft = 1 << int(np.ceil(np.log2(max(2 * hop, 16))))
    n_mels = max(8, min(64, n_fft // 4))
    if starts is None:
        starts = np.arange(n_frames, dtype=np.int64) * hop
    # nothing before the first frame's samples counts, as if the track began there
    ends = starts + hop if ends is None else ends
    first = max(0, int(starts[0])) if n_frames else 0
    audio = np.asarray(audio, np.float32)[first:]
    windows = windows_at(audio, ends - first - n_fft, n_fft)  # (T, n_fft)
    power = np.abs(np.fft.rfft(windows * periodic_hann(n_fft), axis=1)) ** 2
    # einsum, not `@`: a matmul this small finishes in 0.3 ms, but OpenBLAS then keeps its worker
    # thread spinning for ~0.1 s, taking the core that decodes the next video's sound
    mel = np.einsum("tf,mf->tm", power, mel_filters(sample_rate, n_fft, n_mels))  # (T, n_mels)
    peak = mel.max(initial=0.0)
    if peak <= 0:
        return np.zeros((n_frames, n_mels), np.uint8)
    db = 10 * np.log10(np.maximum(mel, peak * 1e-10) / peak)
    return to_uint8((np.maximum(db, MEL_FLOOR_DB) - MEL_FLOOR_DB) / -MEL_FLOOR_DB * 255)


def mel_window(fps, n_frames=None, source_frames=None):
    """The frames of a clip one mel image spans, about a second: round(fps), at least 1 (None without an fps);
    a clip of n_frames kept of source_frames counts its frames at the rate they were kept."""
    if not fps:
        return None
    return max(1, int(round(float(fps) * (n_frames / source_frames if n_frames and source_frames else 1.0))))


MEL_TILES_BYTES = 64 * 2**20  # the images span_mel pools at once: bounds its memory, whatever the spans' lengths


def span_mel(image_at, lo, hi, window, shape):
    """The mel images of the spans [lo[j], hi[j]) of frames longer than `window` (mel_window: the frames one
    image spans), each describing its whole span; a shorter span keeps its frame's own image (not made here).
    image_at(frame indices) -> uint8 (k, H, W) (H, W = `shape`): each frame's image, its last `window` columns
    widened to W as mel_images draws them. A span's image is made of the images of its frames hi - 1,
    hi - 1 - window, ... side by side, the columns before lo left out, max-pooled down to W columns: a band's
    loudest moment in the span keeps its brightness (a mean would dim a short burst towards the silence
    around it). The one rule of a --frames conversion, of stretch_time and of training's and predict.py's
    time steps. Returns (int64 indices j of the long spans, uint8 (len, H, W) their images)."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    long = np.flatnonzero(hi - lo > window)
    height, width = shape
    pooled = np.zeros((len(long), width, height), np.uint8)  # column by column while pooling
    if not len(long):
        return long, pooled.transpose(0, 2, 1)
    first, last = lo[long], hi[long]
    tiles = -(-(last - first) // window)  # images side by side per span, the oldest cut at lo
    span = np.repeat(np.arange(len(long)), tiles)  # every (span, tile) pair: spans in order, oldest tile first
    within = np.arange(len(span)) - np.repeat(np.cumsum(tiles) - tiles, tiles)
    ends = last[span] - 1 - (tiles[span] - 1 - within) * window  # each tile's newest frame
    # column c of a tile shows frame end - window + 1 + c * window // W: those before lo are left out
    before = np.maximum(first[span] - (ends - window + 1), 0)
    kept = width - np.minimum(width, -(-before * width // window))  # a tile's newest `kept` columns
    m = np.add.reduceat(kept, np.cumsum(tiles) - tiles)  # columns per span (>= W: its newest tile is whole)
    offset = np.cumsum(kept) - kept - np.repeat(np.cumsum(m) - m, tiles)  # a tile's first column's place
    column, flat = np.arange(width), pooled.reshape(-1, height)
    step = max(1, MEL_TILES_BYTES // (height * width))
    for s in range(0, len(span), step):  # chunks of tiles, whole spans or parts of one: memory, not speed
        q = slice(s, s + step)
        keep = column[None, :] >= (width - kept[q])[:, None]  # (k, W)
        place = offset[q, None] + column[None, :] - (width - kept[q])[:, None]  # within the span, kept ones
        # the span's M columns pooled into W groups [c * M // W, (c + 1) * M // W): place p falls in group c
        key = (span[q, None] * width + ((place + 1) * width - 1) // m[span[q], None])[keep]  # non-decreasing
        if not len(key):  # an oldest tile narrower than one column of the image
            continue
        columns = image_at(ends[q]).transpose(0, 2, 1)[keep]  # (n, H), in time order
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        flat[key[starts]] = np.maximum(flat[key[starts]], np.maximum.reduceat(columns, starts, axis=0))
    return long, np.ascontiguousarray(pooled.transpose(0, 2, 1))


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


def sound_planes(audiomethod):
    """How many of a record's sound channels are planes of one value per frame: amplitude and
    frequency (simple), or amplitude alone (mel)."""
    return 2 if audiomethod == "simple" else 1


def channel_names(fmrgb, audiomethod):
    """The names of a record's channels: the picture (RGB or grey), then amplitude, then frequency or mel."""
    picture = RGB_NAMES if fmrgb == 5 else GREY_NAMES
    return [*picture, AMPLITUDE, FREQUENCY if audiomethod == "simple" else MEL]


def fuse(frames, audio, *, fps, audiomethod, frequency_param, start=0.0, source_frames=None, at=None, spans=None):
    """Fill the last two channels of `frames` (T, H, W, C) uint8, which hold the picture in the
    first C - 2, with amplitude and frequency or mel from the sound track (mono float at the
    analysis rate, sample 0 at the file's start, or None); the first frame shows at `start` s.
    For a clip stretched from `source_frames` frames, `at` gives the source frame whose mel image
    each frame takes and `spans` ((lo, hi), timeline.StretchPlan.spans) the source frames whose
    sound it describes (span_sound; a mel image, span_mel, where the span is longer than one image):
    the sound is analysed at the source frames' times, so a stretched clip holds only values the sound
    had. Works in place and returns `frames`."""
    n_frames, height, width, n_channels = frames.shape
    n_source = n_frames if source_frames is None else int(source_frames)
    amp_ch, freq_ch = n_channels - 2, n_channels - 1
    sr = analysis_rate(frequency_param)
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
    bounds = frame_bounds(n_source, fps, sr, start)
    rows, lengths = span_rows(audio, bounds)
    amp = amplitude(rows, lengths)
    freq = dominant_frequency(rows, sr, lengths) if audiomethod == "simple" else None
    if spans is not None:
        amp, freq = span_sound(amp, freq, *spans)
    elif at is not None:
        amp, freq = amp[at], None if freq is None else freq[at]
    frames[..., amp_ch] = amp[:, None, None]
    if audiomethod == "simple":
        frames[..., freq_ch] = freq[:, None, None]
    else:
        cols = mel_columns(audio, n_source, frequency_param, sr, bounds[:-1], bounds[1:])
        window = mel_window(fps)
        mel_images(cols, window, height, width, out=frames[..., freq_ch], at=at)
        if spans is not None:  # a kept frame standing for more than a second: its image shows its whole span
            long, images = span_mel(lambda idx: mel_images(cols, window, height, width, at=idx), *spans, window,
                                    (height, width))
            frames[long, ..., freq_ch] = images
    return frames
