"""fmrgb.streaming.windows: which frames each window holds, the frames held while a stream goes by, and events."""
import numpy as np
import pytest

from fmrgb.streaming.windows import EventTracker, WindowBuffer, WindowSpec, find_events, window_starts


def run_buffer(n, spec, chunk):
    """(the windows as (start, n frames, first frame value, last frame value), the buffer): frames numbered
    0..n-1 (each frame's one pixel is its index) pushed `chunk` at a time."""
    buf = WindowBuffer(spec)
    frames = np.arange(n, dtype=np.int64).reshape(n, 1)
    got = []
    for i in range(0, n, chunk):
        got += buf.push(frames[i:i + chunk])
    got += buf.finish()
    return [(s, len(f), int(f[0, 0]), int(f[-1, 0])) for s, f in got], buf


def test_spec_from_seconds():
    assert WindowSpec.of(window=2.0, stride=1.0, fps=30.0) == WindowSpec(60, 30, 30.0)
    assert WindowSpec.of(window=0.01, stride=0.01, fps=25.0) == WindowSpec(1, 1, 25.0)  # at least a frame
    assert WindowSpec(60, 30, 30.0).seconds(30, 60) == (1.0, 3.0)
    with pytest.raises(ValueError, match="positive"):
        WindowSpec.of(window=2.0, stride=0, fps=30.0)


@pytest.mark.parametrize("n,length,step,expected", [
    (10, 4, 2, [0, 2, 4, 6]),            # ends exactly at the last frame
    (11, 4, 2, [0, 2, 4, 6, 7]),         # the tail the stride left out
    (3, 4, 2, [0]),                      # shorter than one window: one window of all of it
    (0, 4, 2, []),
    (12, 4, 5, [0, 5, 8]),               # stride longer than the window: gaps, and the tail
])
def test_window_starts(n, length, step, expected):
    assert window_starts(n, WindowSpec(length, step, 1.0)) == expected


@pytest.mark.parametrize("n,chunk", [(100, 1), (100, 7), (100, 100), (11, 3), (3, 2)])
def test_buffer_gives_the_windows_of_window_starts_with_their_frames(n, chunk):
    spec = WindowSpec(8, 3, 1.0)
    got, _ = run_buffer(n, spec, chunk)
    starts = window_starts(n, spec)
    assert [s for s, *_ in got] == starts
    for s, k, first, last in got:
        assert (first, last) == (s, s + k - 1)  # the window's own frames, in order
        assert k == min(8, n)


def test_buffer_holds_a_window_and_two_chunks_whatever_the_length():
    spec = WindowSpec(60, 30, 30.0)
    _, buf = run_buffer(30 * 600, spec, 25)  # ten minutes at 30 fps
    assert buf.most_held <= spec.length + 2 * 25
    assert buf.received == 18000


def test_events_merge_consecutive_windows_above_the_threshold():
    starts = np.arange(8.0)
    ends = starts + 2
    p_loud = np.array([0.1, 0.7, 0.9, 0.6, 0.2, 0.8, 0.3, 0.95])
    probs = np.stack([1 - p_loud, p_loud], 1)
    events = find_events(starts, ends, probs, ("calm", "loud"), 0.5)
    loud = [(e.start, e.end, e.peak) for e in events if e.label == "loud"]
    assert loud == [(1.0, 5.0, 0.9), (5.0, 7.0, 0.8), (7.0, 9.0, 0.95)]  # the last one closed at the end
    calm = [(e.start, e.end) for e in events if e.label == "calm"]
    assert calm == [(0.0, 2.0), (4.0, 6.0), (6.0, 8.0)]


def test_tracker_closes_an_event_as_soon_as_a_window_falls_below():
    tracker = EventTracker(("a", "b"), 0.5)
    assert tracker.add(0, 1, [0.2, 0.8]) == []
    assert tracker.add(1, 2, [0.3, 0.7]) == []
    closed = tracker.add(2, 3, [0.9, 0.1])
    assert [(e.label, e.start, e.end, e.peak) for e in closed] == [("b", 0, 2, 0.8)]
    assert [(e.label, e.start, e.end) for e in tracker.finish()] == [("a", 2, 3)]
    assert tracker.finish() == []


def test_a_window_at_the_threshold_is_not_above_it():
    assert find_events([0.0], [1.0], [[0.5, 0.5]], ("a", "b"), 0.5) == []
