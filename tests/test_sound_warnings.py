"""A conversion's warning about the sound says what really happened: no track, a track of digital
silence, or a track too short to resample to a very low analysis rate."""
from conftest import load_pt, make_video, run_script


def warning_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("warning: ")]


def test_a_short_clip_at_a_very_low_analysis_rate_is_not_called_soundless(tmp_path):
    video = make_video(tmp_path / "short.mp4", seconds=0.1, size=(64, 48))  # a 440 Hz tone
    r = run_script("create_fmrgbdata.py", "--target", tmp_path, "--frequency_param", "1")
    assert r.returncode == 0, r.stderr
    assert warning_lines(r.stderr) == [
        f"warning: {video}: the sound track gave no samples at the analysis rate of 30 Hz (30 x "
        "--frequency_param 1): too short for ffmpeg to resample that low; sound channels are 0 "
        "(a larger --frequency_param keeps its sound)"]
    rec = load_pt(tmp_path / "short.mp4.pt")
    assert rec["has_audio"] and rec["silent"] and not rec["frames"][..., 3:].any()
    r = run_script("create_fmrgbdata.py", "--target", tmp_path, "--frequency_param", "10", "--overwrite")
    assert r.returncode == 0 and not warning_lines(r.stderr), r.stderr  # 300 Hz: the sound is there
    assert load_pt(tmp_path / "short.mp4.pt")["frames"][..., 3].any()


def test_no_track_and_digital_silence_keep_their_words(tmp_path):
    none = make_video(tmp_path / "none.mp4", seconds=0.3, size=(64, 48), audio=None)
    zero = make_video(tmp_path / "zero.mp4", seconds=0.3, size=(64, 48), audio="0")
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert warning_lines(r.stderr) == [f"warning: {none}: no sound track; sound channels are 0",
                                       f"warning: {zero}: sound track is digital silence; sound channels are 0"]
    assert not load_pt(tmp_path / "none.mp4.pt")["has_audio"] and load_pt(tmp_path / "zero.mp4.pt")["has_audio"]
