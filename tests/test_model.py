"""model.py: shapes, ConvLSTM gates and time handling, ViViT past 64 frames, raw logits; the VideoResNet
backbones: torchvision's state-dict format, the inflated stem, weights from files."""
import json
from pathlib import Path

import pytest
import torch

from fmrgb.training.pretrained import kinetics_weights, load_weights, model_from_weights
from model import BACKBONES, INPUT_LAYOUT, MODELS, ConvLSTMCell, ConvLSTMClassifier, ViViT, build_model

# key -> shape of torchvision's r3d_18, mc3_18 and r2plus1d_18 state dicts (3 channels, 400 classes), written
# from torchvision/models/video/resnet.py, not from our model: what its published Kinetics files hold
TORCHVISION_SHAPES = json.loads((Path(__file__).parent / "torchvision_video_resnet.json").read_text())


def video_for(name, B, C, T, S):
    shape = (B, C, T, S, S) if INPUT_LAYOUT[name] == "cthw" else (B, T, C, S, S)
    return torch.randn(*shape)


def test_every_model_has_a_layout():
    assert set(INPUT_LAYOUT) == set(MODELS) == {"conv3d", "convlstm", "vivit", *BACKBONES}
    assert INPUT_LAYOUT == {"conv3d": "cthw", "convlstm": "tchw", "vivit": "tchw",
                            "r3d_18": "cthw", "mc3_18": "cthw", "r2plus1d_18": "cthw"}


@pytest.mark.parametrize("name", ["conv3d", "convlstm", "vivit"])
@pytest.mark.parametrize("channels", [3, 5])
def test_logits_shape_for_3_and_5_channels(name, channels):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=3, frames=8, size=32).eval()
    x = video_for(name, 2, channels, 8, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3)
        assert torch.isfinite(out).all()
        # the output depends on the input: a blank clip and a bright one get different logits
        blank, bright = model(torch.zeros_like(x)), model(torch.full_like(x, 3.0))
        assert (blank - bright).abs().max() > 1e-3, (blank, bright)
        # raw logits, no softmax inside the model (CrossEntropyLoss applies it): raising the head's
        # bias raises the output by exactly that much (a softmax would cancel the shift)
        model.head.bias += 5.0
        torch.testing.assert_close(model(x) - out, torch.full_like(out, 5.0), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["conv3d", "convlstm", "vivit"])
def test_small_and_odd_inputs_work(name):
    model = build_model(name, in_channels=5, num_classes=2, frames=3, size=16).eval()
    with torch.no_grad():
        assert model(video_for(name, 1, 5, 3, 16)).shape == (1, 2)


def test_vivit_works_past_64_frames_and_attends_over_time():
    torch.manual_seed(0)
    model = ViViT(in_channels=5, num_classes=2, frames=80, size=16).eval()
    x = torch.randn(2, 80, 5, 16, 16)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 2)
        # each clip is classified on its own: the batch dimension is not mixed (the seed's softmax was)
        torch.testing.assert_close(model(x[:1]), out[:1], atol=1e-5, rtol=1e-5)
        # another clip length than built for still works (interpolated temporal positions)
        assert model(torch.randn(1, 100, 5, 16, 16)).shape == (1, 2)


def test_vivit_uses_fused_transformer_encoder():
    model = ViViT(in_channels=3, num_classes=2, frames=8, size=16)
    for enc in (model.space, model.time):
        assert isinstance(enc, torch.nn.TransformerEncoder)
        layer = enc.layers[0]
        assert layer.self_attn.batch_first and layer.norm_first


def test_convlstm_cell_gates_sigmoid_and_tanh_candidate():
    torch.manual_seed(0)
    cell = ConvLSTMCell(in_channels=4, hidden=6)
    x = torch.randn(2, 4, 5, 5)
    h = torch.randn(2, 6, 5, 5)
    c = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        h1, c1 = cell(cell.conv_x(x), (h, c))
        i, f, g, o = (cell.conv_x(x) + cell.conv_h(h)).chunk(4, dim=1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    torch.testing.assert_close(c1, c_ref)
    torch.testing.assert_close(h1, h_ref)
    # with a sigmoid candidate (the seed's bug) the cell state could never decrease below f*c
    c_wrong = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.sigmoid(g)
    assert not torch.allclose(c1, c_wrong)


def test_convlstm_classifies_from_the_last_time_step():
    torch.manual_seed(0)
    model = ConvLSTMClassifier(in_channels=5, num_classes=2, frames=6, size=16).eval()
    x = torch.randn(1, 6, 5, 16, 16)  # (B, T, C, H, W); T != C so a channel/time mix-up shows
    with torch.no_grad():
        base = model(x)
        later = x.clone()
        later[:, -1] += 3.0               # only the last time step changes
        assert not torch.allclose(model(later), base)
        # the hidden state carries earlier steps into the last one
        earlier = x.clone()
        earlier[:, 0] += 3.0
        assert not torch.allclose(model(earlier), base)
        # the stem is run on all frames at once, so a batch equals its items one by one
        x2 = torch.randn(3, 6, 5, 16, 16)
        torch.testing.assert_close(model(x2)[1:2], model(x2[1:2]), atol=1e-5, rtol=1e-5)


def test_unknown_model_name_and_bad_sizes_are_clear():
    with pytest.raises(AssertionError, match="unknown model"):
        build_model("resnet", in_channels=5, num_classes=2, frames=8, size=16)
    with pytest.raises(AssertionError, match="divisible by patch_size"):
        build_model("vivit", in_channels=5, num_classes=2, frames=8, size=20)


# ----------------------------------------------------------------------------- VideoResNet backbones

def torchvision_state(name, seed=0):
    """A state dict in torchvision's format with random values (a stand-in for its Kinetics-400 file):
    He-scaled filters and BN statistics away from their initial 0/1, so a wrong layer or an unused one shows."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in TORCHVISION_SHAPES[name].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 1:  # BN weight, bias, running_mean; the head's bias
            state[key] = torch.randn(shape, generator=g) * 0.1 + (1.0 if key.endswith(".weight") else 0.0)
        else:
            fan_in = torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


def backbone(name, *, in_channels, num_classes=400, weights=None, **kw):
    kw = dict(in_channels=in_channels, num_classes=num_classes, frames=8, size=32, **kw)
    return (build_model(name, **kw) if weights is None else model_from_weights(name, weights, **kw)).eval()


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_has_torchvisions_keys_and_loads_its_file_strictly(name, tmp_path):
    model = backbone(name, in_channels=3)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == TORCHVISION_SHAPES[name]
    state = torchvision_state(name)
    torch.save(state, tmp_path / f"{name}.pth")
    for weights in (state, str(tmp_path / f"{name}.pth")):  # the dict, or the file torchvision publishes
        loaded = backbone(name, in_channels=3, weights=weights)
        for k, v in loaded.state_dict().items():
            torch.testing.assert_close(v, state[k], rtol=0, atol=0, msg=k)
        assert loaded.fresh_parameters == frozenset()  # the published model, nothing new
    # strict: a file of another architecture is refused, naming the keys
    with pytest.raises(RuntimeError, match="layer4.1.conv2"):
        backbone(name, in_channels=3, weights={k: v for k, v in state.items() if not k.startswith("layer4.1.conv2")})


@pytest.mark.parametrize("name", BACKBONES)
def test_inflated_stem_keeps_the_rgb_response(name):
    torch.manual_seed(0)
    state = torchvision_state(name)
    rgb = backbone(name, in_channels=3, weights=state)
    inflated = backbone(name, in_channels=5, weights=state)
    assert inflated.fresh_parameters == {"stem.0.weight"}
    assert inflated.stem[0].weight[:, 3:].abs().max() == 0  # the sound filters start at zero
    x = torch.randn(2, 5, 8, 32, 32)
    with torch.no_grad():
        expected = rgb(x[:, :3])
        torch.testing.assert_close(inflated(x), expected, rtol=1e-4, atol=1e-4)
        x[:, 3:] = torch.randn(2, 2, 8, 32, 32) * 10  # whatever the sound channels hold
        torch.testing.assert_close(inflated(x), expected, rtol=1e-4, atol=1e-4)
    # another class count: a new head, everything else the pretrained weights
    two = backbone(name, in_channels=5, num_classes=2, weights=state)
    assert two.fc.weight.shape == (2, 512)
    assert two.fresh_parameters == {"stem.0.weight", "fc.weight", "fc.bias"}
    for k, v in two.state_dict().items():
        if not k.startswith(("stem.0.", "fc.")):
            torch.testing.assert_close(v, state[k], rtol=0, atol=0, msg=k)
    # the zero sound filters still learn: their gradient depends on the input, not on their value
    two.train()
    torch.nn.functional.cross_entropy(two(x), torch.tensor([0, 1])).backward()
    assert two.stem[0].weight.grad[:, 3:].abs().max() > 0


@pytest.mark.parametrize("name", BACKBONES)
def test_grey_stem_is_the_sum_of_the_rgb_filters(name):
    state = torchvision_state(name)
    rgb = backbone(name, in_channels=3, weights=state)
    grey = backbone(name, in_channels=3, channels=("grey", "amplitude", "frequency"), weights=state)
    torch.testing.assert_close(grey.stem[0].weight[:, 0], state["stem.0.weight"].sum(1))
    assert grey.stem[0].weight[:, 1:].abs().max() == 0
    clip = torch.rand(2, 1, 8, 32, 32)
    with torch.no_grad():  # a grey clip answers as the colour clip with R = G = B
        torch.testing.assert_close(grey.stem(torch.cat([clip, torch.randn(2, 2, 8, 32, 32)], 1)),
                                   rgb.stem(clip.expand(-1, 3, -1, -1, -1)), rtol=1e-4, atol=1e-4)
    assert backbone(name, in_channels=1, weights=state).stem[0].weight.shape[1] == 1  # grey alone


@pytest.mark.parametrize("name, frames_out", [("r3d_18", 2), ("mc3_18", 16), ("r2plus1d_18", 2)])
def test_backbone_forward_shapes(name, frames_out):
    torch.manual_seed(0)
    model = build_model(name, in_channels=5, num_classes=3, frames=16, size=112).eval()
    features = []
    model.layer4.register_forward_hook(lambda m, i, out: features.append(out.shape))
    with torch.no_grad():
        out = model(torch.randn(1, 5, 16, 112, 112))  # the published input size: 16 frames of 112x112
        assert out.shape == (1, 3) and torch.isfinite(out).all()
        assert features == [(1, 512, frames_out, 7, 7)]  # MC3's stages 2-4 never stride in time
        assert model(torch.randn(2, 5, 8, 32, 32)).shape == (2, 3)  # any clip size


def test_weights_for_the_other_models_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    source = build_model("conv3d", in_channels=5, num_classes=2, frames=4, size=16)
    torch.save(source.state_dict(), tmp_path / "conv3d.pt")
    copy = model_from_weights("conv3d", tmp_path / "conv3d.pt", in_channels=5, num_classes=2, frames=4, size=16)
    for k, v in copy.state_dict().items():
        torch.testing.assert_close(v, source.state_dict()[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="none of these clips'"):  # nothing the weights know
        backbone("r3d_18", in_channels=2, channels=("amplitude", "frequency"), weights=torchvision_state("r3d_18"))
    with pytest.raises(ValueError, match="it has no stem.0.weight of 5 dimensions"):
        backbone("r3d_18", in_channels=5, weights=source.state_dict())
    with pytest.raises(ValueError, match="does not name its channels"):  # a bare state dict of 5 channels, for 3
        model_from_weights("conv3d", source.state_dict(), in_channels=3, num_classes=2, frames=4, size=16)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        load_weights(tmp_path / "list.pt")
