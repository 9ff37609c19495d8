"""model.py: shapes, ConvLSTM gates and time handling, ViViT past 64 frames, raw logits."""
import pytest
import torch

from model import INPUT_LAYOUT, MODELS, ConvLSTMCell, ConvLSTMClassifier, ViViT, build_model


def video_for(name, B, C, T, S):
    shape = (B, C, T, S, S) if INPUT_LAYOUT[name] == "cthw" else (B, T, C, S, S)
    return torch.randn(*shape)


def test_every_model_has_a_layout():
    assert set(INPUT_LAYOUT) == set(MODELS) == {"conv3d", "convlstm", "vivit"}
    assert INPUT_LAYOUT == {"conv3d": "cthw", "convlstm": "tchw", "vivit": "tchw"}


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
