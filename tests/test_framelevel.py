"""Frame-level evaluation of untrimmed videos: annotations (CSV, UCF-Crime's file), per-frame scores, metrics."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import predict
from conftest import make_video, write_dataset
from dataset import compute_stats
from fmrgb.training import checkpoint
from fmrgb.streaming.annotations import Segment, read_annotations
from fmrgb.training.checkpoint import Recipe, RecordSettings, RunArgs
from fmrgb.streaming.framelevel import event_columns, frame_level_metrics, frame_scores
from fmrgb.training.survey import inspect_files
from fmrgb.streaming.timelines import Timeline
from model import build_model

UCF = """Arson011_x264.mp4  Arson  150  420  680  1267
Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1
Shooting002_x264.mp4  Shooting  3  9  -1  -1
"""


def test_the_csv_reader_takes_segments_in_seconds_and_listed_videos(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("video,start,end,label\nsub/a.mp4,1.5,3,fight\na.mp4,5,6,fight\nb.mp4,,,\n")
    notes = read_annotations(path)
    assert notes.videos == {"a.mp4", "b.mp4"}
    assert notes.segments_of("x/a.mp4") == (Segment("a.mp4", 1.5, 3.0, "fight"), Segment("a.mp4", 5.0, 6.0, "fight"))
    assert notes.segments_of("b.mp4") == ()
    labels = notes.frame_labels("a.mp4", n_frames=8, fps=2.0)   # frame i shows i/2 .. (i+1)/2 s, centre (i+0.5)/2
    assert labels.tolist() == [False, False, False, True, True, True, False, False]


def test_the_ucf_crime_reader_takes_frame_numbers_and_skips_minus_one(tmp_path):
    path = tmp_path / "Temporal_Anomaly_Annotation.txt"
    path.write_text(UCF)
    notes = read_annotations(path)
    assert notes.videos == {"Arson011_x264.mp4", "Normal_Videos_003_x264.mp4", "Shooting002_x264.mp4"}
    assert [(s.start, s.end) for s in notes.segments_of("Arson011_x264.mp4")] == [(150, 420), (680, 1267)]
    assert notes.segments_of("Normal_Videos_003_x264.mp4") == ()
    labels = notes.frame_labels("Shooting002_x264.mp4", n_frames=12, fps=30.0)
    assert np.flatnonzero(labels).tolist() == [3, 4, 5, 6, 7, 8, 9]   # the end frame is included
    assert notes.labels() == ["Arson", "Shooting"]


@pytest.mark.parametrize("text,why", [("video,start,end,label\na.mp4,3,2,x\n", "start < end"),
                                      ("video,start,end,label\na.mp4,one,2,x\n", "seconds"),
                                      ("a.mp4 Arson 1\n", "UCF-Crime"),
                                      ("a.mp4 Arson x y\n", "frame numbers")])
def test_bad_annotations_are_refused_with_their_line(tmp_path, text, why):
    path = tmp_path / "notes.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=why):
        read_annotations(path)


def test_a_frames_score_is_the_mean_of_the_windows_holding_it():
    tl = Timeline(("calm", "loud"), np.array([0.0, 1.0, 2.0]), np.array([2.0, 3.0, 4.0]),
                  np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]))
    scores = frame_scores(tl, n_frames=8, fps=2.0, columns=[1])
    np.testing.assert_allclose(scores, [0.1, 0.1, 0.3, 0.3, 0.65, 0.65, 0.8, 0.8])


def test_the_score_classes_are_the_annotated_ones_or_all_but_the_first():
    assert event_columns(("Normal", "Arson", "Shooting"), ["Shooting"]) == [2]
    assert event_columns(("NonViolence", "Violence"), ["fight"]) == [1]


def test_frame_level_metrics_are_sklearns_over_all_frames(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("video,start,end,label\na.mp4,1,2,loud\nb.mp4,,,\n")
    a = Timeline(("calm", "loud"), np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]),
                 np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    b = Timeline(("calm", "loud"), np.array([0.0]), np.array([1.0]), np.array([[0.5, 0.5]]))
    m = frame_level_metrics([("a.mp4", 2.0, a), ("b.mp4", 2.0, b), ("c.mp4", 2.0, b)], read_annotations(path))
    y = [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    s = [0.2, 0.2, 0.7, 0.7, 0.4, 0.4, 0.5, 0.5, 0.5, 0.5]
    assert m["frame_roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert (m["frames"], m["positive_frames"], m["videos"]) == (10, 2, 3)
    assert m["unannotated_videos"] == ["c.mp4"] and m["score_classes"] == ["loud"]


def make_checkpoint(tmp_path):
    paths = write_dataset(tmp_path / "data", per_class=2, T=8, H=20, W=20)
    mean, std = compute_stats(paths, frames=6, size=16)
    kwargs = {"in_channels": 5, "num_classes": 2, "frames": 6, "size": 16}
    torch.manual_seed(0)
    recipe = Recipe.of(learnmethod="conv3d", model_kwargs=kwargs, classes=["calm", "loud"],
                       record=RecordSettings.of(inspect_files(paths)), mean=mean, std=std, frames=6, size=16,
                       lr=1e-3, run=RunArgs({}))
    checkpoint.save(tmp_path / "best.pt", checkpoint.Checkpoint(recipe, build_model("conv3d", **kwargs).state_dict()))
    return tmp_path / "best.pt"


@pytest.mark.parametrize("notes", ["video,start,end,label\nv.mp4,1,2,loud\n", "v.mp4 loud 30 59 -1 -1\n"])
def test_predict_annotations_writes_frame_level_metrics(tmp_path, notes, capsys):
    model = make_checkpoint(tmp_path)
    video = make_video(tmp_path / "v.mp4", seconds=3, size=(64, 48), fps=30)
    (tmp_path / "notes.txt").write_text(notes)
    out = tmp_path / "out" / "timeline.csv"
    assert predict.main(predict.get_args_parser().parse_args(
        ["--model", str(model), "--data", str(video), "--window", "1", "--stride", "0.5", "--out", str(out),
         "--annotations", str(tmp_path / "notes.txt")])) == 0
    metrics = json.loads((tmp_path / "out" / "timeline_metrics.json").read_text())
    assert (metrics["frames"], metrics["positive_frames"]) == (90, 30)
    assert 0 <= metrics["frame_roc_auc"] <= 1 and 0 <= metrics["frame_ap"] <= 1
    assert "frame-level ROC AUC" in capsys.readouterr().out


def test_annotations_need_window(tmp_path, capsys):
    model = make_checkpoint(tmp_path)
    with pytest.raises(SystemExit) as e:
        predict.main(predict.get_args_parser().parse_args(
            ["--model", str(model), "--data", str(tmp_path), "--annotations", "x.csv"]))
    assert e.value.code == 2 and "--annotations needs --window" in capsys.readouterr().err
