"""Fine-tuning a backbone that starts from published weights: what train.py does differently then.

    defaults = input_defaults("r2plus1d_18")             # {"frames": 16, "size": 112}: its pretraining's input
    mean, std = pretrained_stats(mean, std, picture=3)   # the picture channels normalised as in Kinetics-400
    factors = lr_factors(model, model.fresh_parameters, factor=0.1)   # pretrained layers learn 10x slower

model.build_model(..., weights=) loads the weights through load_weights: a backbone's RGB stem inflated to
the sound channels (inflate_stem), a new head for another class count. The files: fmrgb.checkpoint
(download_pretrained, load_state_dict_file).
"""
from fmrgb.checkpoint import load_state_dict_file
from model import BACKBONES, KINETICS_MEAN, KINETICS_STD

# a grey picture (the sum of the RGB filters takes R = G = B) normalised with the averages of the RGB ones
KINETICS_GREY_MEAN = (sum(KINETICS_MEAN) / 3,)
KINETICS_GREY_STD = (sum(KINETICS_STD) / 3,)


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


def load_weights(model, weights, *, backbone, picture_channels):
    """Load `weights` (a state dict or a file's path) into `model` strictly, a backbone's fitted first
    (fit_pretrained); sets model.fresh_parameters to the names of the parameters not taken unchanged."""
    state = weights if isinstance(weights, dict) else load_state_dict_file(weights)
    fresh = set()
    if backbone:
        state, fresh = fit_pretrained(model, state, picture_channels=picture_channels)
    model.load_state_dict(state)  # strict: another architecture's file fails here, naming the keys
    model.fresh_parameters = frozenset(fresh)


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
