"""create_fmrgbdata.py --segments: one record per annotated segment of a long video, tied to the video."""
import numpy as np
import torch

from conftest import load_pt, make_video, run_script
from fmrgb.prepare.convert import convert_video
from fmrgb.prepare.record import made_from_problem, source_identity

TONE_2_TO_4 = "0.5*sin(2*PI*440*t)*between(t\\,2\\,4)"


def test_each_segment_becomes_a_record_named_from_the_video_and_the_span(tmp_path):
    video = make_video(tmp_path / "data" / "long" / "v.mp4", seconds=6, size=(64, 48), fps=30, audio=TONE_2_TO_4)
    notes = tmp_path / "segments.csv"
    notes.write_text("video,start,end,label\nv.mp4,2,4,loud\nv.mp4,0,1.5,calm\nmissing.mp4,0,1,calm\n")
    proc = run_script("create_fmrgbdata.py", "--target", tmp_path / "data", "--segments", notes)
    assert proc.returncode == 0, proc.stderr
    assert "segments: 2 records from 1 videos" in proc.stdout
    assert "missing.mp4" in proc.stderr and "no such video" in proc.stderr
    loud = load_pt(tmp_path / "data" / "loud" / "v.mp4@2-4s.pt")
    calm = load_pt(tmp_path / "data" / "calm" / "v.mp4@0-1.5s.pt")
    assert loud["frames"].shape[0] == calm["frames"].shape[0] == 60   # the longest segment's count
    assert calm["source_frames"] == 45 and loud["source_frames"] == 60
    assert (loud["segment_start"], loud["segment_end"], loud["segment_label"]) == (2.0, 4.0, "loud")
    for rec in (loud, calm):
        assert {k: rec[k] for k in ("source", "source_size", "source_sha256")} == source_identity(video)
        assert made_from_problem(rec, video) is None
    # the tone is on in the loud segment (amplitude 255 where the sound is loudest), off in the calm one
    assert loud["frames"][:, 0, 0, 3].float().mean() > 200
    assert calm["has_audio"] and calm["silent"] and int(calm["frames"][..., 3:].max()) == 0
    again = run_script("create_fmrgbdata.py", "--target", tmp_path / "data", "--segments", notes)
    assert "segments: 0 records from 0 videos, 1 videos up to date" in again.stdout


def test_a_segment_of_the_whole_video_is_the_videos_record(tmp_path):
    video = make_video(tmp_path / "data" / "v.mp4", seconds=1.5, size=(64, 48), fps=30,
                       audio="0.5*sin(2*PI*300*t*t)")
    notes = tmp_path / "ucf.txt"
    notes.write_text("v.mp4  Whole  0  44  -1  -1\n")   # UCF-Crime's file: frame numbers, the end included
    proc = run_script("create_fmrgbdata.py", "--target", tmp_path / "data", "--segments", notes,
                      "--audiomethod", "mel")
    assert proc.returncode == 0, proc.stderr
    got = load_pt(tmp_path / "data" / "Whole" / "v.mp4@f0-44.pt")
    want = convert_video(video, audiomethod="mel")
    assert got["channels"] == want["channels"]
    torch.testing.assert_close(got["frames"], want["frames"], rtol=0, atol=0)


def test_segments_refuse_shard_and_bad_files(tmp_path):
    (tmp_path / "data").mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start,end,label\nv.mp4,3,1,x\n")
    proc = run_script("create_fmrgbdata.py", "--target", tmp_path / "data", "--segments", bad)
    assert proc.returncode == 2 and "start < end" in proc.stderr
    proc = run_script("create_fmrgbdata.py", "--target", tmp_path / "data", "--segments", bad, "--shard", "0/2")
    assert proc.returncode == 2 and "--segments does not take --shard" in proc.stderr
    assert np.all([not p.suffix == ".pt" for p in (tmp_path / "data").rglob("*")])
