"""Video classifiers for FMRGB tensors: a small 3D CNN, a ConvLSTM, a factorised-encoder ViViT, and the
VideoResNet family (r3d_18, mc3_18, r2plus1d_18) of torchvision. Networks only: starting one from
published weights is fmrgb.training.pretrained's.

Every classifier takes `forward(video) -> logits (B, num_classes)` (raw logits: the loss applies
the softmax) and is built for any number of input channels (3: grey+sound, 5: RGB+sound), frames
and picture size. Each names its first layer's filters (`input_weight`, (out, C, ...): dim 1 is the input
channels) and its output layer (`head_name`): what starting from other weights adapts.
`INPUT_LAYOUT[name]` says which layout a model wants:
"cthw" -> video (B, C, T, H, W), "tchw" -> video (B, T, C, H, W).

    model = build_model("vivit", in_channels=5, num_classes=2, frames=32, size=64)

The backbones have torchvision's state-dict keys and shapes, so its published files load strictly (3
channels, 400 classes: the published model): see fmrgb.training.pretrained.model_from_weights.
"""
import inspect
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_LAYOUT = {"conv3d": "cthw", "convlstm": "tchw", "vivit": "tchw",
                "r3d_18": "cthw", "mc3_18": "cthw", "r2plus1d_18": "cthw"}
BACKBONES = ("r3d_18", "mc3_18", "r2plus1d_18")  # the models that take torchvision's pretrained weights


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
    """Learned position table (1, 1 + N, D), the CLS token's row first -> (1, 1 + n, D): the CLS row as it
    is (it is no time step), the N others linearly interpolated to n (the same table if n == N)."""
    if pos.shape[1] == n + 1:
        return pos
    steps = F.interpolate(pos[:, 1:].transpose(1, 2), size=n, mode="linear", align_corners=True).transpose(1, 2)
    return torch.cat([pos[:, :1], steps], dim=1)


def resize_grid_positions(pos, side):
    """Learned position table of a square patch grid (1, 1 + S*S, D), the CLS row first -> (1, 1 + side*side,
    D): the CLS row as it is, the grid bicubically interpolated to side x side (as ViTs are fine-tuned at
    another resolution; the same table if side == S)."""
    n = pos.shape[1] - 1
    S = math.isqrt(n)
    assert S * S == n, f"{n} patch positions are not a square grid"
    if S == side:
        return pos
    grid = pos[:, 1:].reshape(1, S, S, -1).permute(0, 3, 1, 2)                   # (1, D, S, S)
    grid = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, side * side, -1)], dim=1)


def video_conv(kind, cin, cout, *, mid, stride=1):
    """A VideoResNet block's convolution: "3d" a full 3x3x3 kernel; "2d" (MC3) a 1x3x3 one, each frame on its
    own, strided in space only; "2plus1d" a 1x3x3 spatial conv to `mid` channels, BN, ReLU, a 3x1x1 temporal conv."""
    assert kind in ("3d", "2d", "2plus1d"), f"unknown conv kind {kind!r}"
    if kind == "3d":
        return nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
    spatial = nn.Conv3d(cin, cout if kind == "2d" else mid, (1, 3, 3), stride=(1, stride, stride),
                        padding=(0, 1, 1), bias=False)
    if kind == "2d":
        return spatial
    return nn.Sequential(spatial, nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         nn.Conv3d(mid, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False))


def video_stem(in_channels, kind):
    """VideoResNet stem to 64 channels, halving H and W: "3d" one 3x7x7 conv; "2plus1d" a 1x7x7 conv to 45
    channels then a 3x1x1 one. Its first conv is `stem.0`, the one fmrgb.training.pretrained.input_filters widens."""
    if kind == "3d":
        convs = [nn.Conv3d(in_channels, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)]
    else:
        convs = [nn.Conv3d(in_channels, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                 nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                 nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False)]
    return nn.Sequential(*convs, nn.BatchNorm3d(64), nn.ReLU(inplace=True))


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


class VideoBasicBlock(nn.Module):
    """torchvision's 3D ResNet basic block: conv-BN-ReLU, conv-BN, plus the shortcut (a strided 1x1x1 conv
    + BN when the shape changes), then ReLU. `conv` names the kind of both convs (video_conv)."""

    def __init__(self, *, cin, cout, conv, stride=1):
        super().__init__()
        # (2+1)D: as many parameters as the 3x3x3 conv it replaces (Tran et al. 2018); both convs use this one
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        self.conv1 = nn.Sequential(video_conv(conv, cin, cout, mid=mid, stride=stride), nn.BatchNorm3d(cout),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(video_conv(conv, cout, cout, mid=mid), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            ds = (1 if conv == "2d" else stride, stride, stride)  # the shortcut strides as the convs do
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=ds, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):                                   # (B, cin, T, H, W)
        out = self.conv2(self.conv1(x))                     # (B, cout, T', H', W')
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


# ----------------------------------------------------------------------------- classifiers

class Conv3DClassifier(nn.Module):
    """Small 3D CNN: a strided stem, then (pool -> Conv3d-BN-ReLU) stages, global average pooling,
    dropout and a linear head. Input (B, C, T, H, W)."""

    layout = "cthw"
    input_weight, head_name = "features.0.0.weight", "head"  # the first layer's filters, the output layer

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
    input_weight, head_name = "stem.0.0.weight", "head"

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
    input_weight, head_name = "embed.weight", "head"

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
        x = self.time(x + resize_positions(self.time_pos, nt))[:, 0]  # (B, D)
        return self.head(self.drop(x))                            # (B, num_classes)

    def fit_state(self, state):
        """Another ViViT's state dict with its position tables resized to this one's frames and size ->
        (state, the names resized): a checkpoint trained at other frames or another size starts this one."""
        state, resized = dict(state), set()
        side = math.isqrt(self.space_pos.shape[1] - 1)
        for name, fit in (("space_pos", lambda p: resize_grid_positions(p, side)),
                          ("time_pos", lambda p: resize_positions(p, self.time_pos.shape[1] - 1))):
            if name in state and state[name].shape != getattr(self, name).shape:
                state[name] = fit(state[name]).detach().clone()
                resized.add(name)
        return state, resized


class VideoResNet(nn.Module):
    """VideoResNet-18 (Tran et al. 2018) as published with torchvision: stem -> 4 stages of 2 basic blocks
    (64, 128, 256, 512 channels; stages 2-4 halve H and W, and T where their conv strides in time) -> global
    average pooling -> linear head `fc`. Subclasses name the stem and each stage's conv. Input (B, C, T, H, W)."""

    layout = "cthw"
    input_weight, head_name = "stem.0.weight", "fc"
    stem_kind, stage_convs = "3d", ("3d", "3d", "3d", "3d")

    def __init__(self, *, in_channels, num_classes, frames, size):
        super().__init__()
        _check_common(in_channels, num_classes, frames, size)
        self.frames, self.size = frames, size
        self.stem = video_stem(in_channels, self.stem_kind)
        for i, (cin, cout, conv) in enumerate(zip((64, 64, 128, 256), (64, 128, 256, 512), self.stage_convs)):
            self.add_module(f"layer{i + 1}", nn.Sequential(
                VideoBasicBlock(cin=cin, cout=cout, conv=conv, stride=1 if i == 0 else 2),
                VideoBasicBlock(cin=cout, cout=cout, conv=conv)))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation: a run from scratch starts as theirs does
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, video):
        assert video.dim() == 5, f"expected (B, C, T, H, W), got shape {tuple(video.shape)}"
        x = self.stem(video)                                        # (B, 64, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, T/8 (MC3: T), H/16, W/16)
        x = self.avgpool(x).flatten(1)                              # (B, 512)
        return self.fc(x)                                           # (B, num_classes)


class R3D18(VideoResNet):
    """R3D-18: 3x3x3 convolutions throughout."""


class MC3_18(VideoResNet):
    """MC3-18 (mixed convolutions): 3D in the stem and stage 1, 2D (1x3x3) in stages 2-4."""
    stage_convs = ("3d", "2d", "2d", "2d")


class R2Plus1D18(VideoResNet):
    """R(2+1)D-18: every 3D convolution factorised into a spatial and a temporal one."""
    stem_kind, stage_convs = "2plus1d", ("2plus1d",) * 4


MODELS = {"conv3d": Conv3DClassifier, "convlstm": ConvLSTMClassifier, "vivit": ViViT,
          "r3d_18": R3D18, "mc3_18": MC3_18, "r2plus1d_18": R2Plus1D18}


def settings_problem(name, *, size):
    """None when model `name` can take size x size frames, else why not: checked before any data is read."""
    patch = inspect.signature(MODELS[name]).parameters.get("patch_size")
    if patch is not None and size % patch.default:
        lower = size - size % patch.default
        return (f"--size {size} is not a multiple of {name}'s patch size {patch.default} (try --size "
                f"{lower or patch.default}{f' or {lower + patch.default}' if lower else ''})")
    return None


def build_model(name, **kwargs):
    """build_model(name, in_channels=, num_classes=, frames=, size=): model `name`, freshly initialised. Its
    `fresh_parameters` names the parameters not taken from other weights: all of them (see
    fmrgb.training.pretrained.model_from_weights for a model that starts from a file)."""
    assert name in MODELS, f"unknown model {name!r}; choose one of {sorted(MODELS)}"
    model = MODELS[name](**kwargs)
    model.fresh_parameters = frozenset(n for n, _ in model.named_parameters())
    return model
