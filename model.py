"""Video classifiers for FMRGB tensors: a small 3D CNN, a ConvLSTM and a factorised-encoder ViViT.

Every classifier takes `forward(video) -> logits (B, num_classes)` (raw logits: the loss applies
the softmax) and is built for any number of input channels (3: grey+sound, 5: RGB+sound), frames
and picture size. `INPUT_LAYOUT[name]` says which layout a model wants:
"cthw" -> video (B, C, T, H, W), "tchw" -> video (B, T, C, H, W).

    model = build_model("vivit", in_channels=5, num_classes=2, frames=32, size=64)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_LAYOUT = {"conv3d": "cthw", "convlstm": "tchw", "vivit": "tchw"}


# ----------------------------------------------------------------------------- helpers

def _check_common(in_channels, num_classes, frames, size):
    assert in_channels >= 1, f"in_channels must be >= 1, got {in_channels}"
    assert num_classes >= 2, f"num_classes must be >= 2, got {num_classes}"
    assert frames >= 1, f"frames must be >= 1, got {frames}"
    assert size >= 1, f"size must be >= 1, got {size}"


def conv3d_bn_relu(cin, cout, *, stride=1):
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


def conv2d_bn_relu(cin, cout, *, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def transformer_encoder(*, dim, depth, heads, mlp_ratio, dropout):
    """Pre-norm encoder on torch's TransformerEncoder (fused attention kernels on GPU)."""
    layer = nn.TransformerEncoderLayer(
        d_model=dim, nhead=heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
        activation="gelu", batch_first=True, norm_first=True,
    )
    return nn.TransformerEncoder(layer, num_layers=depth, norm=nn.LayerNorm(dim),
                                 enable_nested_tensor=False)


def resize_positions(pos, n):
    """Learned position table (1, N, D) -> (1, n, D) by linear interpolation (same table if n == N)."""
    if pos.shape[1] == n:
        return pos
    return F.interpolate(pos.transpose(1, 2), size=n, mode="linear", align_corners=True).transpose(1, 2)


# ----------------------------------------------------------------------------- blocks

class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell (Shi et al. 2015, without peepholes).

    gates = conv_x(x_t) + conv_h(h_{t-1}), split into i, f, g, o;
    i, f, o = sigmoid; g (the candidate) = tanh; c_t = f*c + i*g; h_t = o*tanh(c_t).
    conv_x does not depend on the state, so the layer applies it to all time steps in one batched
    call and the cell receives its result (`x_gates`); only conv_h runs inside the loop over time.
    """

    def __init__(self, *, in_channels, hidden, kernel_size=3):
        super().__init__()
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        self.hidden = hidden
        self.conv_x = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2, bias=False)
        with torch.no_grad():  # forget gate starts open: the usual LSTM initialisation
            self.conv_x.bias.zero_()
            self.conv_x.bias[hidden:2 * hidden].fill_(1.0)

    def forward(self, x_gates, state):
        h, c = state                                   # (B, hid, H, W) each
        gates = x_gates + self.conv_h(h)               # (B, 4*hid, H, W)
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        g = torch.tanh(g)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c


class ConvLSTMLayer(nn.Module):
    """A ConvLSTM cell run over a sequence (B, T, C, H, W) -> hidden states (B, T, hid, H, W)."""

    def __init__(self, *, in_channels, hidden, kernel_size=3):
        super().__init__()
        self.cell = ConvLSTMCell(in_channels=in_channels, hidden=hidden, kernel_size=kernel_size)

    def forward(self, x):
        B, T, C, H, W = x.shape
        x_gates = self.cell.conv_x(x.flatten(0, 1))            # (B*T, 4*hid, H, W), batched over time
        x_gates = x_gates.view(B, T, -1, H, W)                 # (B, T, 4*hid, H, W)
        h = x.new_zeros(B, self.cell.hidden, H, W)
        c = torch.zeros_like(h)
        outs = []
        for t in range(T):                                      # the recurrence is a loop over time
            h, c = self.cell(x_gates[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, dim=1)                         # (B, T, hid, H, W)


# ----------------------------------------------------------------------------- classifiers

class Conv3DClassifier(nn.Module):
    """Small 3D CNN: a strided stem, then (pool -> Conv3d-BN-ReLU) stages, global average pooling,
    dropout and a linear head. Input (B, C, T, H, W)."""

    layout = "cthw"

    def __init__(self, *, in_channels, num_classes, frames, size, widths=(16, 32, 64, 128), dropout=0.3):
        super().__init__()
        _check_common(in_channels, num_classes, frames, size)
        assert len(widths) >= 1, "widths must name at least one stage"
        self.frames, self.size = frames, size
        layers = [conv3d_bn_relu(in_channels, widths[0], stride=(1, 2, 2))]  # halves H, W
        t, s = frames, (size + 1) // 2
        for cin, cout in zip(widths[:-1], widths[1:]):
            kt, ks = (2 if t >= 2 else 1), (2 if s >= 2 else 1)  # never pool a dimension to zero
            layers += [nn.MaxPool3d((kt, ks, ks)), conv3d_bn_relu(cin, cout)]
            t, s = t // kt, s // ks
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, video):
        assert video.dim() == 5, f"expected (B, C, T, H, W), got shape {tuple(video.shape)}"
        x = self.features(video)                  # (B, C', T', H', W')
        x = self.pool(x).flatten(1)               # (B, C')
        return self.head(self.drop(x))            # (B, num_classes)


class ConvLSTMClassifier(nn.Module):
    """Per-frame strided conv stem (run on all B*T frames at once) -> stacked ConvLSTM layers ->
    last time step's hidden state -> global average pooling -> dropout -> linear. Input (B, T, C, H, W)."""

    layout = "tchw"

    def __init__(self, *, in_channels, num_classes, frames, size, stem=(16, 32), hidden=(32,),
                 kernel_size=3, dropout=0.3):
        super().__init__()
        _check_common(in_channels, num_classes, frames, size)
        assert len(stem) >= 1 and len(hidden) >= 1, "stem and hidden must each name at least one width"
        self.frames, self.size = frames, size
        chans = (in_channels, *stem)
        self.stem = nn.Sequential(*[conv2d_bn_relu(a, b, stride=2) for a, b in zip(chans[:-1], chans[1:])])
        ins = (stem[-1], *hidden[:-1])
        self.layers = nn.ModuleList(
            [ConvLSTMLayer(in_channels=a, hidden=b, kernel_size=kernel_size) for a, b in zip(ins, hidden)])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden[-1], num_classes)

    def forward(self, video):
        assert video.dim() == 5, f"expected (B, T, C, H, W), got shape {tuple(video.shape)}"
        B, T = video.shape[:2]
        x = self.stem(video.flatten(0, 1))        # (B*T, C', H', W'), every frame in one call
        x = x.view(B, T, *x.shape[1:])            # (B, T, C', H', W')
        for layer in self.layers:
            x = layer(x)                          # (B, T, hid, H', W')
        h = x[:, -1]                              # (B, hid, H', W'): the last time step
        h = h.mean(dim=(2, 3))                    # (B, hid)
        return self.head(self.drop(h))            # (B, num_classes)


class ViViT(nn.Module):
    """Factorised-encoder ViViT (Arnab et al. 2021, model 2).

    Tubelet embedding (Conv3d) -> spatial transformer over each time slot's patches with a CLS
    token -> temporal transformer over the slots' CLS tokens with its own CLS token -> linear head.
    Input (B, T, C, H, W). Works for any number of frames (clips of another length than `frames`
    get interpolated temporal positions).
    """

    layout = "tchw"

    def __init__(self, *, in_channels, num_classes, frames, size, patch_size=8, tubelet=2, dim=64,
                 spatial_depth=2, temporal_depth=2, heads=4, mlp_ratio=2.0, dropout=0.1):
        super().__init__()
        _check_common(in_channels, num_classes, frames, size)
        assert size % patch_size == 0, f"size {size} must be divisible by patch_size {patch_size}"
        assert dim % heads == 0, f"dim {dim} must be divisible by heads {heads}"
        self.frames, self.size, self.tubelet = frames, size, tubelet
        n_patches = (size // patch_size) ** 2
        n_slots = math.ceil(frames / tubelet)
        self.embed = nn.Conv3d(in_channels, dim, kernel_size=(tubelet, patch_size, patch_size),
                               stride=(tubelet, patch_size, patch_size))
        self.space_cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.space_pos = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        self.space = transformer_encoder(dim=dim, depth=spatial_depth, heads=heads, mlp_ratio=mlp_ratio,
                                         dropout=dropout)
        self.time_cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.time_pos = nn.Parameter(torch.randn(1, n_slots + 1, dim) * 0.02)
        self.time = transformer_encoder(dim=dim, depth=temporal_depth, heads=heads, mlp_ratio=mlp_ratio,
                                        dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, video):
        assert video.dim() == 5, f"expected (B, T, C, H, W), got shape {tuple(video.shape)}"
        B, T, C, H, W = video.shape
        assert H == W == self.size, f"expected {self.size}x{self.size} frames, got {H}x{W}"
        x = video.transpose(1, 2)                                 # (B, C, T, H, W)
        pad = (-T) % self.tubelet
        if pad:                                                   # repeat the last frame to fill a tubelet
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
        x = self.embed(x)                                         # (B, D, nt, h, w)
        D, nt = x.shape[1], x.shape[2]
        x = x.flatten(3).permute(0, 2, 3, 1).reshape(B * nt, -1, D)  # (B*nt, np, D)
        x = torch.cat([self.space_cls.expand(B * nt, -1, -1), x], dim=1)  # (B*nt, np+1, D)
        x = self.space(x + self.space_pos)[:, 0]                  # (B*nt, D): each slot's CLS token
        x = x.view(B, nt, D)                                      # (B, nt, D)
        x = torch.cat([self.time_cls.expand(B, -1, -1), x], dim=1)  # (B, nt+1, D)
        x = self.time(x + resize_positions(self.time_pos, nt + 1))[:, 0]  # (B, D)
        return self.head(self.drop(x))                            # (B, num_classes)


MODELS = {"conv3d": Conv3DClassifier, "convlstm": ConvLSTMClassifier, "vivit": ViViT}


def build_model(name, **kwargs):
    """build_model("conv3d" | "convlstm" | "vivit", in_channels=, num_classes=, frames=, size=, ...)."""
    assert name in MODELS, f"unknown model {name!r}; choose one of {sorted(MODELS)}"
    return MODELS[name](**kwargs)
