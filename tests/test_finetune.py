"""train.py with a pretrained backbone (--pretrained, --weights) and with --augment: what starts from which
weights (a train.py checkpoint as it was trained), how each channel is matched by its name and normalised,
which layers learn slower, what happens offline, which clips augment."""
import dataclasses
import json
import urllib.error

import pytest
import torch

import dataset
import predict
import train
from conftest import CHANNELS5, load_pt, read_csv, write_dataset
from fmrgb.training.pretrained import (KINETICS_MEAN, KINETICS_STD, LUMA, PRETRAINED_URLS, StartWeights,
                                       input_stats, load_weights, model_from_weights)
from model import MODELS, build_model

FAST = ["--frames", "8", "--size", "16", "--num_workers", "0", "--batch_size", "8", "--device", "cpu",
        "--test_size", "0.25", "--patience", "10"]


def parse(*argv):
    return train.get_args_parser().parse_args(list(map(str, argv)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root, per_class=8, T=8, H=16, W=16)
    return root


@pytest.fixture(scope="module")
def kinetics():
    """A stand-in for torchvision's r3d_18 Kinetics-400 file: 3 channels, 400 classes (tests/test_model.py
    checks that this is torchvision's format)."""
    torch.manual_seed(1)
    return build_model("r3d_18", in_channels=3, num_classes=400, frames=8, size=16).state_dict()


@pytest.fixture(scope="module")
def finetuned(tiny, kinetics, tmp_path_factory):
    """One --pretrained r3d_18 run, the download replaced by the stand-in; the calls it made."""
    out, calls = tmp_path_factory.mktemp("ft"), []

    def download(url, **kw):
        calls.append((url, kw))
        return {k: v.clone() for k, v in kinetics.items()}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "load_state_dict_from_url", download)
        assert train.main(parse("--data", tiny, "--out", out, *FAST, "--learnmethod", "r3d_18", "--pretrained",
                                "--epochs", "1", "--lr", "1e-3")) == 0
    return out, calls


def test_pretrained_downloads_the_published_file_and_fine_tunes(finetuned, kinetics, tiny):
    out, calls = finetuned
    assert calls and {url for url, _ in calls} == {PRETRAINED_URLS["r3d_18"]}
    assert PRETRAINED_URLS["r3d_18"] == "https://download.pytorch.org/models/r3d_18-b3b3357e.pth"
    assert all(kw["weights_only"] and kw["check_hash"] for _, kw in calls)
    ckpt = load_pt(out / "last.pt")
    assert ckpt["model"] == "r3d_18" and ckpt["model_kwargs"]["in_channels"] == 5
    # the picture channels normalised as in Kinetics-400, the sound channels with the data's statistics
    assert ckpt["mean"][:3] == pytest.approx(KINETICS_MEAN) and ckpt["std"][:3] == pytest.approx(KINETICS_STD)
    train_files = [tiny / name for name in json.loads((out / "split.json").read_text())["train"]]
    mean, std = dataset.compute_stats(train_files, frames=8, size=16)
    assert ckpt["mean"][3:] == pytest.approx(mean[3:]) and ckpt["std"][3:] == pytest.approx(std[3:])
    # the pretrained layers learn at --lr x 0.1; the inflated stem convolution and the new head at --lr; the
    # normalisation layers and biases are not decayed (r3d_18: 62 tensors, 20 convolutions, 20 BatchNorms)
    assert ckpt["train_args"]["fresh_parameters"] == ["fc.bias", "fc.weight", "stem.0.weight"]
    groups = ckpt["optimizer_state"]["param_groups"]
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (pytest.approx(1e-3), 0.01, 2), (pytest.approx(1e-3), 0.0, 1),
        (pytest.approx(1e-4), 0.01, 19), (pytest.approx(1e-4), 0.0, 40)]
    # and the run did start from the published weights: one small epoch leaves layer 4 close to them
    start = kinetics["layer4.1.conv2.0.weight"]
    assert (ckpt["model_state"]["layer4.1.conv2.0.weight"] - start).abs().max() < 0.05 * start.abs().max()


def test_a_fine_tuned_backbone_predicts_and_resumes_unchanged(finetuned, tiny):
    out, _ = finetuned
    rows = read_csv(out / "test_predictions.csv")
    recipe, results = predict.predict_files(out / "best.pt", [r["path"] for r in rows], log=lambda *a, **k: None)
    assert recipe.learnmethod == "r3d_18" and recipe.classes == ("calm", "loud")
    for r, (_, probs, err) in zip(rows, results):
        assert err is None and float(r["p_loud"]) == pytest.approx(float(probs[1]), abs=1e-5)
    # resuming keeps the optimizer's two groups (else loading its state fails) and needs no download
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded on resume"))
        assert train.main(parse("--data", tiny, "--resume", out / "last.pt", *FAST, "--epochs", "2")) == 0
    assert [g["lr"] for g in load_pt(out / "last.pt")["optimizer_state"]["param_groups"]] == \
        [pytest.approx(1e-3), pytest.approx(1e-3), pytest.approx(1e-4), pytest.approx(1e-4)]


def test_pretrained_offline_is_one_line_that_suggests_weights(tiny, tmp_path, monkeypatch, capsys):
    def offline(url, **kw):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(SystemExit) as e:
        train.main(parse("--data", tiny, "--out", tmp_path, *FAST, "--learnmethod", "mc3_18", "--pretrained"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert PRETRAINED_URLS["mc3_18"] in err and "--weights" in err and "name resolution" in err


def test_weights_flag_problems_exit_2_with_one_line(tiny, tmp_path, kinetics, capsys):
    torch.save({"frames": torch.zeros(2)}, tmp_path / "not_weights.pt")
    torch.save(kinetics, tmp_path / "r3d_18.pth")
    cases = [(["--learnmethod", "conv3d", "--pretrained"], "published weights exist for"),
             (["--learnmethod", "r3d_18", "--pretrained", "--weights", tmp_path / "r3d_18.pth"], "give one"),
             (["--learnmethod", "r3d_18", "--weights", tmp_path / "missing.pth"], "no such file"),
             (["--learnmethod", "r3d_18", "--weights", tmp_path / "not_weights.pt"], "it has no stem.0.weight"),
             (["--learnmethod", "mc3_18", "--weights", tmp_path / "r3d_18.pth"],  # another architecture
              "not weights of mc3_18: size mismatch for layer2.0.conv1.0.weight")]
    for extra, message in cases:
        with pytest.raises(SystemExit) as e:
            train.main(parse("--data", tiny, "--out", tmp_path / "o", *FAST, "--epochs", "1", *extra))
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_a_backbone_defaults_to_16_frames_of_112x112(tiny, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(train, "train_one", lambda session, *a, **k: (
        seen.append((session.settings.frames, session.settings.size)), (0, None))[1])
    common = ["--data", tiny, "--out", tmp_path, "--num_workers", "0", "--device", "cpu"]
    for extra in (["--learnmethod", "r2plus1d_18"], ["--learnmethod", "conv3d"],
                  ["--learnmethod", "mc3_18", "--frames", "8", "--size", "32"]):
        assert train.main(parse(*common, *extra)) == 0
    assert seen == [(16, 112), (32, 64), (8, 32)]


@pytest.mark.parametrize("augment, per_epoch", [("true", 8), ("false", 0)])
def test_only_the_training_clips_are_augmented(tiny, tmp_path, monkeypatch, augment, per_epoch):
    calls = []
    original = dataset.augment_clip
    monkeypatch.setattr(dataset, "augment_clip", lambda clip, **kw: (calls.append(1), original(clip, **kw))[1])
    assert train.main(parse("--data", tiny, "--out", tmp_path, *FAST, "--learnmethod", "conv3d", "--epochs", "2",
                            "--augment", augment)) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_train"] == 8 and m["n_val"] == m["n_test"] == 4
    assert len(calls) == 2 * per_epoch  # every training clip once an epoch; never a validation or test clip


@pytest.fixture(scope="module")
def grey(tmp_path_factory):
    root = tmp_path_factory.mktemp("grey")
    write_dataset(root, per_class=8, T=8, H=16, W=16, C=3)  # grey, amplitude, frequency
    return root


def test_a_train_checkpoint_as_weights_starts_as_it_was_trained(grey, tmp_path):
    """A grey r3d_18 trained from scratch, then --weights its best.pt at --lr 0: every filter as trained (not
    re-inflated as if its 3-channel stem were Kinetics' RGB), the checkpoint's own statistics (neither
    Kinetics' nor this split's), nothing new."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert train.main(parse("--data", grey, "--out", first, *FAST, "--learnmethod", "r3d_18", "--epochs", "1")) == 0
    assert train.main(parse("--data", grey, "--out", second, *FAST, "--learnmethod", "r3d_18", "--epochs", "1",
                            "--weights", first / "best.pt", "--lr", "0", "--seed", "1")) == 0
    before, after = load_pt(first / "best.pt"), load_pt(second / "last.pt")
    for k, v in before["model_state"].items():  # BatchNorm's running statistics move at --lr 0 too
        if "running_" not in k and "num_batches" not in k:
            torch.testing.assert_close(after["model_state"][k], v, rtol=0, atol=0, msg=k)
    assert after["mean"] == before["mean"] and after["std"] == before["std"]
    files = [grey / name for name in json.loads((second / "split.json").read_text())["train"]]
    assert dataset.compute_stats(files, frames=8, size=16)[0] != pytest.approx(before["mean"])  # not this split's
    assert after["train_args"]["fresh_parameters"] == []


def test_the_stem_is_fitted_by_channel_name_not_position(tiny, kinetics, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: dict(kinetics))
    assert train.main(parse("--data", tiny, "--out", tmp_path, *FAST, "--learnmethod", "r3d_18", "--pretrained",
                            "--epochs", "1", "--lr", "0", "--channels", "blue,amplitude,green,red")) == 0
    ckpt = load_pt(tmp_path / "last.pt")
    stem, rgb = ckpt["model_state"]["stem.0.weight"], kinetics["stem.0.weight"]
    for j, i in ((0, 2), (2, 1), (3, 0)):  # blue, green, red: their own Kinetics filters and statistics
        torch.testing.assert_close(stem[:, j], rgb[:, i], rtol=0, atol=0)
        assert (ckpt["mean"][j], ckpt["std"][j]) == pytest.approx((KINETICS_MEAN[i], KINETICS_STD[i]))
    assert stem[:, 1].abs().max() == 0 and ckpt["mean"][1] != pytest.approx(KINETICS_MEAN[1])  # amplitude: new
    # as many channels, in another order: the same filters, reordered (nothing new in the stem)
    bgr = model_from_weights("r3d_18", dict(kinetics), channels=("blue", "green", "red"), in_channels=3,
                             num_classes=2, frames=8, size=16)
    torch.testing.assert_close(bgr.stem[0].weight, rgb.flip(1), rtol=0, atol=0)
    assert bgr.fresh_parameters == {"fc.weight", "fc.bias"}


def test_grey_and_colour_take_each_others_statistics(grey, kinetics, tmp_path, monkeypatch):
    """Kinetics' RGB weights on grey records: the grey picture normalised with the averages of the RGB
    statistics (its filter is their sum); a colour run from that grey checkpoint: red, green and blue
    normalised as its grey was, the sound as the checkpoint had it."""
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: dict(kinetics))
    assert train.main(parse("--data", grey, "--out", tmp_path, *FAST, "--learnmethod", "r3d_18", "--pretrained",
                            "--epochs", "1", "--lr", "0")) == 0
    ckpt = load_pt(tmp_path / "last.pt")
    assert (ckpt["mean"][0], ckpt["std"][0]) == pytest.approx((sum(KINETICS_MEAN) / 3, sum(KINETICS_STD) / 3))
    mean, std = input_stats(load_weights(tmp_path / "last.pt"), ("red", "green", "blue", "amplitude", "mel"),
                            [9.0] * 5, [9.0] * 5)
    assert mean == [ckpt["mean"][0]] * 3 + [ckpt["mean"][1], 9.0]  # mel: new to it, the data's
    assert std == [ckpt["std"][0]] * 3 + [ckpt["std"][1], 9.0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_any_model_from_a_grey_one_answers_a_colour_clip_as_its_grey_picture(name):
    """Channels matched by name for every model: a colour model started from a grey model's weights (red,
    green, blue get the grey filter times their luma weight) answers a colour clip as the grey model answers
    its grey picture; the sound filters are copied whatever their position."""
    torch.manual_seed(0)
    kw = dict(num_classes=2, frames=4, size=16)
    grey = build_model(name, in_channels=3, **kw).eval()
    # a bare state dict does not name its channels; a train.py checkpoint does (load_weights): StartWeights
    colour = model_from_weights(name, StartWeights(grey.state_dict(), ("grey", "amplitude", "frequency")),
                                channels=("frequency", "red", "green", "blue", "amplitude"), in_channels=5, **kw).eval()
    assert colour.fresh_parameters == {MODELS[name].input_weight}
    rgb = torch.rand(2, 3, 4, 16, 16)
    sound = torch.rand(2, 2, 4, 16, 16)
    picture = sum(rgb[:, i:i + 1] * LUMA[c] for i, c in enumerate(("red", "green", "blue")))
    x_grey, x_colour = torch.cat([picture, sound], 1), torch.cat([sound[:, 1:], rgb, sound[:, :1]], 1)
    if MODELS[name].layout == "tchw":
        x_grey, x_colour = x_grey.transpose(1, 2), x_colour.transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(colour(x_colour), grey(x_grey), rtol=1e-4, atol=1e-4)


def test_a_checkpoint_as_weights_gives_its_frames_and_size_as_the_defaults(tiny, tmp_path):
    """ViViT's position embeddings depend on its frames and size: a run from its checkpoint takes them unless
    told otherwise (the model's usual 32 frames of 64x64 would not load)."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert train.main(parse("--data", tiny, "--out", first, *FAST, "--learnmethod", "vivit", "--epochs", "1")) == 0
    assert FAST[:4] == ["--frames", "8", "--size", "16"]
    assert train.main(parse("--data", tiny, "--out", second, *FAST[4:], "--learnmethod", "vivit", "--epochs", "1",
                            "--weights", first / "best.pt")) == 0
    ckpt = load_pt(second / "last.pt")
    assert (ckpt["frames"], ckpt["size"]) == (8, 16) and ckpt["train_args"]["fresh_parameters"] == []


def test_a_vivit_checkpoint_starts_a_vivit_of_other_frames_and_size():
    """Its position tables are resized (time: linearly; the patch grid: bicubically, as ViTs are fine-tuned at
    another resolution), the CLS rows kept; they learn at the full rate like the rest that is new."""
    torch.manual_seed(0)
    small = build_model("vivit", in_channels=5, num_classes=2, frames=8, size=16)
    with torch.no_grad():  # a grid whose positions grow down the rows: 2 x 2 patches of 8 pixels
        small.space_pos[0, 1:] = torch.tensor([0.0, 0.0, 1.0, 1.0])[:, None]
    start, names = StartWeights(small.state_dict(), tuple(CHANNELS5)), tuple(CHANNELS5)
    big = model_from_weights("vivit", start, channels=names, in_channels=5, num_classes=2, frames=12, size=32)
    assert big.fresh_parameters == {"space_pos", "time_pos"}
    assert big.space_pos.shape == (1, 17, 64) and big.time_pos.shape == (1, 7, 64)
    torch.testing.assert_close(big.space_pos[0, 0], small.space_pos[0, 0])  # the CLS row as it was
    rows = big.space_pos[0, 1:, 0].reshape(4, 4)  # 4 x 4 patches now: still growing down, the same across
    assert (rows[1:].mean(1) > rows[:-1].mean(1)).all() and torch.allclose(rows, rows[:, :1].expand(4, 4))
    with torch.no_grad():
        assert big(torch.rand(1, 12, 5, 32, 32)).shape == (1, 2)
    same = model_from_weights("vivit", start, channels=names, in_channels=5, num_classes=2, frames=8, size=16)
    assert same.fresh_parameters == frozenset()


def test_a_checkpoints_head_is_kept_only_for_its_own_classes():
    """A head's rows are its classes: the same ones in another order are put in the run's order, other
    classes of the same count get a new head (an RLVS model fine-tuned on RWF-2000 must not start with its
    Violence row as NonFight), and weights whose classes are not known keep a head of the same count."""
    torch.manual_seed(0)
    kw = dict(in_channels=5, num_classes=2, frames=4, size=16)
    source = build_model("conv3d", **kw)
    start = StartWeights(source.state_dict(), tuple(CHANNELS5), classes=("NonViolence", "Violence"))
    swapped = model_from_weights("conv3d", start, channels=tuple(CHANNELS5), classes=("Violence", "NonViolence"), **kw)
    torch.testing.assert_close(swapped.head.weight, source.head.weight.flip(0), rtol=0, atol=0)
    torch.testing.assert_close(swapped.head.bias, source.head.bias.flip(0), rtol=0, atol=0)
    assert swapped.fresh_parameters == frozenset()
    other = model_from_weights("conv3d", start, channels=tuple(CHANNELS5), classes=("Fight", "NonFight"), **kw)
    assert other.fresh_parameters == {"head.weight", "head.bias"}
    assert not torch.equal(other.head.weight, source.head.weight)
    unnamed = model_from_weights("conv3d", dataclasses.replace(start, classes=None), channels=tuple(CHANNELS5),
                                 classes=("Fight", "NonFight"), **kw)
    assert unnamed.fresh_parameters == frozenset()
