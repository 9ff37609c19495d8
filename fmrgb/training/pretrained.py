"""Starting from published weights, all of it: torchvision's Kinetics-400 files of the backbones (their
addresses and hashes, the download), its normalisation, reading a weight file, inflating an RGB stem to the
sound channels, and what train.py does differently when fine-tuning.

    weights = start_weights(s, ctx)                      # --pretrained (downloaded once) / --weights, or None
    model = model_from_weights("r2plus1d_18", weights, in_channels=5, num_classes=2, frames=16, size=112)
    defaults = input_defaults("r2plus1d_18")             # {"frames": 16, "size": 112}: its pretraining's input
    mean, std = pretrained_stats(mean, std, picture=3)   # the picture channels normalised as in Kinetics-400
    factors = lr_factors(model, model.fresh_parameters, factor=0.1)   # pretrained layers learn 10x slower
"""
import torch

from fmrgb.training.checkpoint import clean_state_dict, weights_in
from fmrgb.cli import error_summary
from fmrgb.training.distributed import on_master
from model import BACKBONES, build_model

# torchvision's published Kinetics-400 weights of the backbones (the file name ends in its SHA-256's start)
PRETRAINED_URLS = {name: f"https://download.pytorch.org/models/{name}-{digest}.pth" for name, digest in
                   (("r3d_18", "b3b3357e"), ("mc3_18", "a90a0ba3"), ("r2plus1d_18", "91a641e6"))}

# the normalisation of torchvision's Kinetics-400 training clips (RGB scaled to 0..1)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# a grey picture (the sum of the RGB filters takes R = G = B) normalised with the averages of the RGB ones
KINETICS_GREY_MEAN = (sum(KINETICS_MEAN) / 3,)
KINETICS_GREY_STD = (sum(KINETICS_STD) / 3,)


def download_pretrained(name):
    """The published Kinetics-400 state dict of backbone `name`, through torch's cache (downloaded once,
    hash-checked); RuntimeError, with the address, when it cannot be downloaded (no network)."""
    url = PRETRAINED_URLS[name]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, weights_only=True)
    except OSError as e:  # urllib's URLError, a refused connection, a full disk
        raise RuntimeError(f"cannot download {url}: {getattr(e, 'reason', None) or e}") from e


def load_state_dict_file(path):
    """The weights in `path` (name -> tensor): a bare state dict such as torchvision's published files, or a
    train.py checkpoint's weights."""
    state = weights_in(torch.load(path, map_location="cpu", weights_only=True))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict (parameter name -> tensor)")
    return clean_state_dict(state)


def start_weights(s, ctx):
    """The state dict a new run with settings `s` starts from, or None: --pretrained (process 0 downloads it
    into torch's cache, then every process reads it there) or --weights; ValueError when they cannot be had."""
    if s.pretrained:
        try:
            on_master(lambda: download_pretrained(s.learnmethod) is None, ctx)
            return download_pretrained(s.learnmethod)
        except RuntimeError as e:
            raise ValueError(f"--pretrained: {e}; without a network, fetch that file elsewhere and pass --weights PATH")
    if s.weights:
        try:
            return load_state_dict_file(s.weights)
        except Exception as e:
            raise ValueError(f"--weights {s.weights}: {error_summary(e)}")
    return None


def inflate_stem(weight, *, in_channels, picture_channels):
    """Pretrained RGB stem filters (out, 3, kT, kH, kW) -> (out, in_channels, kT, kH, kW).

    Picture channels first, as in FMRGB records: RGB keeps the filters, grey gets their sum (so a grey clip
    answers as the colour clip with R = G = B). The sound channels get zero filters: the inflated stem answers
    exactly as the pretrained one at the start, and they still learn (a filter's gradient depends on its
    input, not on its value)."""
    assert weight.dim() == 5 and weight.shape[1] == 3, f"expected RGB stem filters, got shape {tuple(weight.shape)}"
    assert picture_channels in (1, 3), f"picture_channels must be 1 (grey) or 3 (RGB), got {picture_channels}"
    assert in_channels >= picture_channels, f"in_channels {in_channels} < picture_channels {picture_channels}"
    out = weight.new_zeros(weight.shape[0], in_channels, *weight.shape[2:])
    out[:, :picture_channels] = weight if picture_channels == 3 else weight.sum(1, keepdim=True)
    return out


def fit_pretrained(model, state, *, picture_channels):
    """(state, fresh parameter names): a pretrained backbone's state dict with its 3-channel (RGB) stem inflated
    to the model's input channels and, for another class count, the model's own new head."""
    own, state, fresh = model.state_dict(), dict(state), set()
    stem = state.get("stem.0.weight")
    assert stem is not None and stem.dim() == 5, "weights have no 5-d stem.0.weight: not a torchvision VideoResNet"
    if stem.shape[1] == 3 and (own["stem.0.weight"].shape[1], picture_channels) != (3, 3):
        state["stem.0.weight"] = inflate_stem(stem, in_channels=own["stem.0.weight"].shape[1],
                                              picture_channels=picture_channels)
        fresh.add("stem.0.weight")
    if "fc.weight" in state and state["fc.weight"].shape != own["fc.weight"].shape:
        state["fc.weight"], state["fc.bias"] = own["fc.weight"], own["fc.bias"]
        fresh |= {"fc.weight", "fc.bias"}
    return state, fresh


def model_from_weights(name, weights, *, picture_channels=None, **kwargs):
    """Model `name` (model.build_model's arguments) started from `weights`, a state dict or the path of a file
    holding one, loaded strictly. Backbones take torchvision's format (its Kinetics-400 files): a 3-channel
    stem is RGB, inflated to the input channels (inflate_stem); a head of another class count is new. Other
    models: this very model's state dict. `picture_channels`: how many leading input channels are the picture
    (3 RGB, 1 grey), the rest are sound; default 3 if in_channels >= 3 else 1: pass 1 for grey+sound records
    (3 channels). The model's `fresh_parameters` names the parameters not taken unchanged from `weights`."""
    model = build_model(name, **kwargs)
    if picture_channels is None:
        picture_channels = 3 if kwargs.get("in_channels", 0) >= 3 else 1
    state = weights if isinstance(weights, dict) else load_state_dict_file(weights)
    fresh = set()
    if name in BACKBONES:
        state, fresh = fit_pretrained(model, state, picture_channels=picture_channels)
    model.load_state_dict(state)  # strict: another architecture's file fails here, naming the keys
    model.fresh_parameters = frozenset(fresh)
    return model


def input_defaults(name):
    """{"frames", "size"} of model `name` when the command line gives none: a backbone gets its pretraining's
    16 frames of 112x112, the other models 32 frames of 64x64."""
    return {"frames": 16, "size": 112} if name in BACKBONES else {"frames": 32, "size": 64}


def pretrained_stats(mean, std, *, picture):
    """The data's per-channel (mean, std) with the `picture` leading channels (3 RGB, 1 grey) replaced by the
    pretraining's: its filters expect their input so normalised. The sound channels keep the data's."""
    assert picture in (1, 3), f"pretrained filters take 3 (RGB) or 1 (grey) picture channels, not {picture}"
    m, s = (KINETICS_MEAN, KINETICS_STD) if picture == 3 else (KINETICS_GREY_MEAN, KINETICS_GREY_STD)
    return [*m, *mean[picture:]], [*s, *std[picture:]]


def lr_factors(model, fresh, factor):
    """{parameter name: factor} for the parameters taken unchanged from the pretrained weights (all but
    `fresh`, e.g. the inflated stem convolution and a new head, which learn at the full rate): the usual
    fine-tuning practice, small steps for what already works, full steps for what is new."""
    return {name: float(factor) for name, _ in model.named_parameters() if name not in fresh}
