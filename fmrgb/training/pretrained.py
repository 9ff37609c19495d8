"""Starting from other weights, all of it: torchvision's Kinetics-400 files of the backbones (their addresses
and hashes, the download, their normalisation), a train.py checkpoint (loaded as it was trained: its filters and
its statistics), fitting the first layer to the run's channels by name, and what train.py does differently.

    weights = start_weights(s, ctx)                      # --pretrained (downloaded once) / --weights, or None
    model = model_from_weights("r2plus1d_18", weights, channels=("red", "green", "blue", "amplitude", "mel"),
                               in_channels=5, num_classes=2, frames=16, size=112)
    defaults = input_defaults("r2plus1d_18")             # {"frames": 16, "size": 112}: its pretraining's input
    mean, std = input_stats(weights, names, mean, std)   # the channels the weights know, normalised as they were
    factors = lr_factors(model, model.fresh_parameters, factor=0.1)   # what was trained learns 10x slower
"""
import dataclasses
from typing import Any, Mapping

import torch

from fmrgb.cli import error_summary
from fmrgb.prepare.sound import AMPLITUDE, FREQUENCY, GREY_NAMES, RGB_NAMES
from fmrgb.training.checkpoint import clean_state_dict, read_weights
from fmrgb.training.distributed import on_master
from model import BACKBONES, build_model

# torchvision's published Kinetics-400 weights of the backbones (the file name ends in its SHA-256's start)
PRETRAINED_URLS = {name: f"https://download.pytorch.org/models/{name}-{digest}.pth" for name, digest in
                   (("r3d_18", "b3b3357e"), ("mc3_18", "a90a0ba3"), ("r2plus1d_18", "91a641e6"))}

# the normalisation of torchvision's Kinetics-400 training clips (RGB scaled to 0..1)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# OpenCV's RGB -> grey weights (ITU-R BT.601), the ones the records' grey picture is made with
LUMA = {"red": 0.299, "green": 0.587, "blue": 0.114}
GREY = GREY_NAMES[0]


@dataclasses.dataclass(frozen=True)
class StartWeights:
    """Weights a run starts from: the state dict, the names of the input channels its first layer takes, in
    order (None: not known, as in a bare state dict of another model), the normalisation they were trained with
    by channel name ({name: (mean, std)}), where they come from (for the log), the input they were trained
    on ({"frames", "size"} of a train.py checkpoint, the run's defaults: ViViT's positions depend on them) and
    the classes their head's rows are (a train.py checkpoint's; None: not known)."""
    state: Mapping
    channels: Any = None
    stats: Mapping = dataclasses.field(default_factory=dict)
    source: str = ""
    input: Mapping = dataclasses.field(default_factory=dict)
    classes: Any = None


def download_pretrained(name):
    """The published Kinetics-400 state dict of backbone `name`, through torch's cache (downloaded once,
    hash-checked); RuntimeError, with the address, when it cannot be downloaded (no network)."""
    url = PRETRAINED_URLS[name]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, weights_only=True)
    except OSError as e:  # urllib's URLError, a refused connection, a full disk
        raise RuntimeError(f"cannot download {url}: {getattr(e, 'reason', None) or e}") from e


def kinetics_weights(state, source="Kinetics-400"):
    """StartWeights of a torchvision VideoResNet state dict (its published files): RGB in, Kinetics-400's
    normalisation."""
    return StartWeights(clean_state_dict(state), RGB_NAMES,
                        {c: (m, s) for c, m, s in zip(RGB_NAMES, KINETICS_MEAN, KINETICS_STD)}, source)


def load_weights(path):
    """The StartWeights in `path`: a train.py checkpoint as it was trained (its channels and statistics); a
    bare state dict whose 3-channel stem.0.weight is a VideoResNet's, torchvision's published format (RGB,
    Kinetics-400's statistics); any other state dict as it is (its channels unknown)."""
    state, recipe = read_weights(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict (parameter name -> tensor)")
    state = clean_state_dict(state)
    if recipe is not None:
        names = tuple(recipe.use_channels or recipe.record.channels)
        return StartWeights(state, names, {c: (m, s) for c, m, s in zip(names, recipe.mean, recipe.std)}, str(path),
                            {"frames": recipe.frames, "size": recipe.size}, tuple(recipe.classes))
    stem = state.get("stem.0.weight")
    if stem is not None and stem.dim() == 5 and stem.shape[1] == 3:
        return kinetics_weights(state, source=str(path))
    return StartWeights(state, None, {}, str(path))


def start_weights(s, ctx):
    """The StartWeights a new run with settings `s` (its pretrained, learnmethod and weights) starts from, or
    None: --pretrained (process 0 downloads it into torch's cache, then every process reads it there) or
    --weights; ValueError when they cannot be had."""
    if s.pretrained:
        try:
            on_master(lambda: download_pretrained(s.learnmethod) is None, ctx)
            return kinetics_weights(download_pretrained(s.learnmethod))
        except RuntimeError as e:
            raise ValueError(f"--pretrained: {e}; without a network, fetch that file elsewhere and pass --weights PATH")
    if s.weights:
        try:
            return load_weights(s.weights)
        except Exception as e:
            raise ValueError(f"--weights {s.weights}: {error_summary(e)}")
    return None


def input_filters(weight, *, source, target):
    """First-layer filters (out, len(source), ...) for the input channels named `target`, matched by name ->
    (filters (out, len(target), ...), how each target channel got its filter: "copied" | "derived" | "new").

    A channel the weights know keeps its filter, wherever it stands; grey takes the sum of the red, green and
    blue filters (a grey clip answers as the colour clip with R = G = B); red, green and blue take the grey
    filter times their luma weight (a colour clip answers as its grey picture); any other channel a zero filter:
    the model answers exactly as the weights did at the start, and it still learns (a filter's gradient depends
    on its input, not on its value)."""
    assert weight.dim() >= 3 and weight.shape[1] == len(source), \
        f"filters of shape {tuple(weight.shape)} for {len(source)} channels {source}"
    src = {name: i for i, name in enumerate(source)}
    out, how = weight.new_zeros(weight.shape[0], len(target), *weight.shape[2:]), []
    for j, name in enumerate(target):  # a handful of channels, whole filters each
        if name in src:
            out[:, j], kind = weight[:, src[name]], "copied"
        elif name == GREY and all(c in src for c in RGB_NAMES):
            out[:, j], kind = sum(weight[:, src[c]] for c in RGB_NAMES), "derived"
        elif name in LUMA and GREY in src:
            out[:, j], kind = weight[:, src[GREY]] * LUMA[name], "derived"
        else:
            kind = "new"
        how.append(kind)
    return out, tuple(how)


def fit_weights(model, start, channels, classes=None):
    """(state, fresh parameter names): `start` (StartWeights) made to fit `model`, whose input channels are
    named `channels`: the first layer's filters matched by channel name (input_filters); its head kept where
    its rows are these `classes` (put in their order when the same set; with names unknown on either side,
    kept at the same count), else replaced by the model's own new one; and what the model itself adapts (its
    `fit_state`, as ViViT resizes its position tables). ValueError when the channels cannot be matched."""
    own, state, fresh = model.state_dict(), dict(start.state), set()
    key, head = model.input_weight, model.head_name
    weight = state.get(key)
    if weight is None or weight.dim() != own[key].dim():
        raise ValueError(f"it has no {key} of {own[key].dim()} dimensions")
    if start.channels is None:
        if weight.shape[1] != len(channels):
            raise ValueError(f"its {key} takes {weight.shape[1]} channels and these clips have {len(channels)} "
                             f"({','.join(channels)}); it does not name its channels, as a train.py checkpoint does")
    elif tuple(start.channels) != tuple(channels):
        state[key], how = input_filters(weight, source=start.channels, target=channels)
        if set(how) == {"new"}:
            raise ValueError(f"it takes the channels {','.join(start.channels)}, none of these clips' "
                             f"({','.join(channels)})")
        if set(how) != {"copied"}:
            fresh.add(key)
    rows = None if start.classes is None or classes is None else list(start.classes)
    same_set = rows is not None and sorted(rows) == sorted(classes)
    for name in (f"{head}.weight", f"{head}.bias"):
        if name not in state:
            continue
        if same_set and state[name].shape[0] == len(rows):  # Fight/NonFight as NonFight/Fight: reordered
            state[name] = state[name][[rows.index(c) for c in classes]]
        elif state[name].shape != own[name].shape or rows is not None:  # other classes: a new head
            state[name] = own[name]
            fresh.add(name)
    if hasattr(model, "fit_state"):  # e.g. ViViT's position tables, trained at other frames or another size
        state, resized = model.fit_state(state)
        fresh |= resized
    return state, fresh


def default_channels(in_channels):
    """Channel names for a model of `in_channels` inputs when none are given: grey alone (1), RGB (3), RGB then
    amplitude and frequency (5), RGB then sound_<i> otherwise."""
    if in_channels == 1:
        return GREY_NAMES
    extra = (AMPLITUDE, FREQUENCY) if in_channels == 5 else tuple(f"sound_{i}" for i in range(in_channels - 3))
    return RGB_NAMES + extra


def model_from_weights(name, weights, *, channels=None, classes=None, **kwargs):
    """Model `name` (model.build_model's arguments) started from `weights` (StartWeights, a state dict or the
    path of a file, see load_weights), loaded strictly after fit_weights: its input channels are `channels`
    (names; default: default_channels), its classes `classes` (names; None: the head kept at the same count).
    A bare state dict's stem is read as torchvision's (RGB) for a backbone. The model's `fresh_parameters`
    names the parameters not taken unchanged from `weights`."""
    model = build_model(name, **kwargs)
    channels = tuple(channels or default_channels(kwargs.get("in_channels", 3)))
    if isinstance(weights, dict):
        stem = weights.get("stem.0.weight")
        rgb = name in BACKBONES and stem is not None and stem.dim() == 5 and stem.shape[1] == 3
        weights = kinetics_weights(weights) if rgb else StartWeights(clean_state_dict(weights))
    elif not isinstance(weights, StartWeights):
        weights = load_weights(weights)
    state, fresh = fit_weights(model, weights, channels, classes)
    model.load_state_dict(state)  # strict: another architecture's file fails here, naming the keys
    model.fresh_parameters = frozenset(fresh)
    return model


def input_defaults(name):
    """{"frames", "size"} of model `name` when the command line gives none: a backbone gets its pretraining's
    16 frames of 112x112, the other models 32 frames of 64x64."""
    return {"frames": 16, "size": 112} if name in BACKBONES else {"frames": 32, "size": 64}


def input_stats(start, channels, mean, std):
    """(mean, std) for the input channels named `channels`: the normalisation `start` (StartWeights) was
    trained with where it knows the channel (grey from RGB: their averages; red, green or blue from grey:
    grey's), the data's `mean`, `std` for the channels new to it: its filters expect their input so normalised."""
    known = dict(start.stats)
    if GREY not in known and all(c in known for c in RGB_NAMES):
        known[GREY] = tuple(sum(known[c][k] for c in RGB_NAMES) / 3 for k in (0, 1))
    for c in RGB_NAMES:
        if c not in known and GREY in known:
            known[c] = known[GREY]
    pairs = [known.get(name, (m, s)) for name, m, s in zip(channels, mean, std)]
    return [float(m) for m, _ in pairs], [float(s) for _, s in pairs]


def lr_factors(model, fresh, factor):
    """{parameter name: factor} for the parameters taken unchanged from the pretrained weights (all but
    `fresh`, e.g. the inflated stem convolution and a new head, which learn at the full rate): the usual
    fine-tuning practice, small steps for what already works, full steps for what is new."""
    return {name: float(factor) for name, _ in model.named_parameters() if name not in fresh}
