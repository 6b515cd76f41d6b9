"""The authors' released HandS3C weights: import them into this network, and export back.

The authors distribute one ``snapshot_<epoch>.pth.tar`` per dataset (HO3D, DexYCB: 256 x 256
input; FreiHAND: 224 x 224), a ``torch.save`` of ``{"epoch", "network", "optimizer"}`` whose
``network`` is the state dict of their network wrapped in ``DataParallel`` (every key starts with
``module.``). :func:`import_hands3c` turns such a file (or its state dict) into the state dict of
``build_model(attention="ssca", input_size=S)``; :func:`export_hands3c` is the inverse map, from
one of our networks to a state dict in the authors' names (e.g. to run our weights in their code,
or to write a file in their format for tests).

Key map (the authors' names after ``module.`` -> ours; the modules agree in function, the
key table ``tests/data/hands3c-checkpoint-keys.tsv``)::

  =============================================  ==============================================
  ``backbone.layer0.0`` / ``.layer0.1``           ``backbone.resnet.conv1`` / ``.bn1``
  ``backbone.layerK.0.i.*`` (K = 1..4)            ``backbone.resnet.layerK.i.*``
  ``backbone.toplayer``, ``latlayer1/2/3``,       ``backbone.fpn.top``, ``lateral4/3/2``,
  ``smooth3``                                     ``smooth``
  ``S3C.ln_1``                                    ``attention.norm``
  ``S3C.self_attention.in_proj/conv2d/``          ``attention.ss2d.in_proj/conv2d/out_norm/
  ``out_norm/out_proj``                           out_proj``
  ``S3C.self_attention.x_proj_weight``,           ``attention.ss2d.spatial.s6.x_proj_weight``,
  ``dt_projs_weight``, ``dt_projs_bias``,         ``dt_proj_weight``, ``dt_proj_bias``, ``A_log``,
  ``A_logs``, ``Ds`` (``_ch``: channel branch)    ``D`` (``channel.s6.*``)
  ``regressor.hand_regHead.betas`` (21, 1)        ``heatmap_head.inverse_temperature`` (21,)
  ``regressor.hand_regHead.hg.0.hg.i.j.0.*``      ``heatmap_head.hourglass.levels.i.j.*`` (level i,
                                                  i = 0 the innermost with the 4th block; block j)
  ``regressor.hand_regHead.res.0.0``,             ``heatmap_head.residual``, ``.fc.0`` / ``.fc.1``,
  ``fc.0.block.0/1``, ``score.0``                 ``.score``
  ``regressor.hand_Encoder.heatmap_conv``,        ``encoder.heatmap_proj``, ``.feature_proj``
  ``encoding_conv``
  ``regressor.hand_Encoder.reg.n.*``              ``encoder.stages.(n // 2).(n % 2).*``, norms
  (norms ``bn, bn1, bn2``)                        ``bn1, bn2, bn3`` (the same three, by shape)
  ``regressor.mano_regHead.mano_base_layer.0/2``  ``mano_head.mlp.0/2``
  ``regressor.mano_regHead.pose_reg/shape_reg``   ``mano_head.pose/shape``
  =============================================  ==============================================

Non-weights in the file, dropped on import: the soft-argmax grids ``regressor.hand_regHead.uu``
and ``.vv`` (W x W) and the nine buffers of the authors' MANO layer
``regressor.mano_regHead.mano_layer.th_*``. That is 11 keys: the key table
(``tests/data/hands3c-checkpoint-keys.tsv``: 715 keys = 704 weights + 11) gives 11; this module
follows the table.

The weights compute the authors' function only with the network's two conventions (the encoder
reads the heatmap probabilities, the 6D rotation is two columns one after the other, network
version :data:`~.network.NETWORK_VERSION`).
"""
from __future__ import annotations

import functools
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch

from ..utils import atomic_path
from .network import HandSSCAConfig, make_parts

Tensor = torch.Tensor

#: what a snapshot file holds (``torch.save`` of this dict)
SNAPSHOT_KEYS = ("epoch", "network", "optimizer")
#: the key prefix ``DataParallel`` adds
PREFIX = "module."
#: the soft-argmax grids (W, W)
GRID_KEYS = ("regressor.hand_regHead.uu", "regressor.hand_regHead.vv")
#: the authors' MANO layer's buffers, in their file (manopth's names)
MANO_KEYS = tuple(f"regressor.mano_regHead.mano_layer.th_{n}" for n in (
    "betas", "shapedirs", "posedirs", "v_template", "J_regressor", "weights", "faces",
    "hands_mean", "selected_comps"))
#: every key of the file that is not a weight of the network: dropped on import (11 keys)
NON_WEIGHTS = GRID_KEYS + MANO_KEYS
#: the configuration of the authors' network (every other field of HandSSCAConfig is either
#: the input size, which the file's shapes give, or does not change the weights)
AUTHORS_CONFIG = {"attention": "ssca", "channel_select": "code", "C": 256, "N": 16, "expand": 2,
                  "dt_rank": 16, "d_conv": 3, "hourglass_depth": 2,
                  "backbone": {"kind": "resnet50"}}
#: the authors' keys whose shape differs from ours: {authors' key: their shape from ours}
_RESHAPED = {"regressor.hand_regHead.betas": lambda shape: (shape[0], 1)}

# (prefix of our key, prefix of the authors' key)
_PREFIXES = (
    ("backbone.resnet.conv1.", "backbone.layer0.0."),
    ("backbone.resnet.bn1.", "backbone.layer0.1."),
    ("backbone.fpn.top.", "backbone.toplayer."),
    ("backbone.fpn.lateral4.", "backbone.latlayer1."),
    ("backbone.fpn.lateral3.", "backbone.latlayer2."),
    ("backbone.fpn.lateral2.", "backbone.latlayer3."),
    ("backbone.fpn.smooth.", "backbone.smooth3."),
    ("attention.norm.", "S3C.ln_1."),
    ("attention.ss2d.in_proj.", "S3C.self_attention.in_proj."),
    ("attention.ss2d.conv2d.", "S3C.self_attention.conv2d."),
    ("attention.ss2d.out_norm.", "S3C.self_attention.out_norm."),
    ("attention.ss2d.out_proj.", "S3C.self_attention.out_proj."),
    ("heatmap_head.residual.", "regressor.hand_regHead.res.0.0."),
    ("heatmap_head.fc.0.", "regressor.hand_regHead.fc.0.block.0."),
    ("heatmap_head.fc.1.", "regressor.hand_regHead.fc.0.block.1."),
    ("heatmap_head.score.", "regressor.hand_regHead.score.0."),
    ("encoder.heatmap_proj.", "regressor.hand_Encoder.heatmap_conv."),
    ("encoder.feature_proj.", "regressor.hand_Encoder.encoding_conv."),
    ("mano_head.mlp.0.", "regressor.mano_regHead.mano_base_layer.0."),
    ("mano_head.mlp.2.", "regressor.mano_regHead.mano_base_layer.2."),
    ("mano_head.pose.", "regressor.mano_regHead.pose_reg."),
    ("mano_head.shape.", "regressor.mano_regHead.shape_reg."),
)
# our encoder's pre-activation bottlenecks name their norms bn1..bn3, the authors' bn, bn1, bn2
_ENCODER_NORMS = {"bn1": "bn", "bn2": "bn1", "bn3": "bn2"}
# our S6 parameter names -> the authors' (VMamba's)
_SSM_NAMES = {"x_proj_weight": "x_proj_weight", "dt_proj_weight": "dt_projs_weight",
              "dt_proj_bias": "dt_projs_bias", "A_log": "A_logs", "D": "Ds"}
# (pattern of our key, the authors' key from the match)
_PATTERNS: Tuple[Tuple[re.Pattern, Callable[[re.Match], str]], ...] = (
    (re.compile(r"backbone\.resnet\.layer([1-4])\.(\d+)\.(.+)"),
     lambda m: f"backbone.layer{m[1]}.0.{m[2]}.{m[3]}"),
    (re.compile(r"heatmap_head\.hourglass\.levels\.(\d+)\.(\d+)\.(.+)"),
     lambda m: f"regressor.hand_regHead.hg.0.hg.{m[1]}.{m[2]}.0.{m[3]}"),
    (re.compile(r"encoder\.stages\.(\d+)\.([01])\.(bn[123]|conv[123])\.(.+)"),
     lambda m: (f"regressor.hand_Encoder.reg.{2 * int(m[1]) + int(m[2])}."
                f"{_ENCODER_NORMS.get(m[3], m[3])}.{m[4]}")),
    (re.compile(r"attention\.ss2d\.(spatial|channel)\.s6\.(\w+)"),
     lambda m: (f"S3C.self_attention.{_SSM_NAMES[m[2]]}"
                f"{'_ch' if m[1] == 'channel' else ''}")),
    (re.compile(r"heatmap_head\.inverse_temperature"),
     lambda m: "regressor.hand_regHead.betas"),
)


class Hands3cFormatError(ValueError):
    """A file or state dict is not a HandS3C checkpoint this importer can map, or does not fit
    the network (the message names the key, the shapes, or what the file looks like)."""


def authors_key(key: str) -> str:
    """Our state-dict key -> the authors' (without ``module.``); KeyError when it has none."""
    for ours, theirs in _PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    for pattern, fn in _PATTERNS:
        m = pattern.fullmatch(key)
        if m is not None:
            return fn(m)
    raise KeyError(f"no HandS3C name for our key {key!r}")


@functools.lru_cache(maxsize=8)
def key_map(input_size: int = 256) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """{the authors' key: (our key, the authors' shape)} for the SSCA network at input size S.

    704 entries (every weight and BN buffer; the 11 :data:`NON_WEIGHTS` are not in it). Built
    on the ``meta`` device: shapes only, nothing allocated.
    """
    with torch.device("meta"):
        parts = make_parts(HandSSCAConfig(input_size=int(input_size)))
    out: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
    for part, module in parts.items():
        for k, v in module.state_dict().items():
            ours = f"{part}.{k}"
            theirs = authors_key(ours)
            shape = tuple(v.shape)
            out[theirs] = (ours, _RESHAPED[theirs](shape) if theirs in _RESHAPED else shape)
    return out


def soft_argmax_grids(w: int) -> Tuple[Tensor, Tensor]:
    """The soft-argmax's grids as the authors' file stores them: uu (W, W), the u (x) coordinate
    of each pixel centre, (i + 0.5) / W at column i; vv (W, W), the v (y) coordinate,
    (j + 0.5) / W at row j (what :func:`~.regressor.soft_argmax` computes on the fly)."""
    c = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    vv, uu = torch.meshgrid(c, c, indexing="ij")
    return uu.contiguous(), vv.contiguous()


# ----------------------------------------------------------------------------------------------
# reading a file
# ----------------------------------------------------------------------------------------------
def _read(source: Union[str, Path, Mapping], where: str) -> Any:
    """The object a path holds (``torch.load`` with ``weights_only=True``), or ``source``."""
    if isinstance(source, Mapping):
        return source
    if not isinstance(source, (str, Path)):
        raise Hands3cFormatError(f"expected a path to a snapshot_*.pth.tar file or a state dict, "
                                 f"got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"HandS3C checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        raise Hands3cFormatError(
            f"{where} is not a HandS3C checkpoint: it looks like a safetensors file, the format of "
            f"this package's own checkpoints (a run's checkpoints/); load the run with "
            f"handssca.engine.load_run instead")
    try:
        # the safe loader: a snapshot holds only tensors, numbers and dicts
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False, which would run whatever the file holds
        raise Hands3cFormatError(
            f"{where} is not a HandS3C checkpoint: torch.load(weights_only=True) cannot read it, "
            f"because it holds objects other than tensors, numbers and dicts; it was not loaded, "
            f"since unpickling those objects could run code. Use the snapshot_*.pth.tar file as "
            f"the authors released it") from None
    except Exception as exc:  # noqa: BLE001 - any failure means "not a readable snapshot"
        raise Hands3cFormatError(
            f"{where} is not a HandS3C checkpoint: torch.load(weights_only=True) cannot read it "
            f"(it is not a torch file, or it pickles objects other than tensors, numbers and "
            f"dicts): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def _network_state(obj: Any, where: str) -> Tuple[Mapping[str, Any], Optional[int]]:
    """(the network's state dict, the epoch or None) of a snapshot dict or a bare state dict."""
    if not isinstance(obj, Mapping):
        raise Hands3cFormatError(
            f"{where} is not a HandS3C checkpoint: expected a dict {{'epoch', 'network', "
            f"'optimizer'}} or a state dict, got {type(obj).__name__}")
    if "network" in obj:
        net = obj["network"]
        if not isinstance(net, Mapping):
            raise Hands3cFormatError(f"{where}: 'network' must be a state dict, got "
                                     f"{type(net).__name__}")
        epoch = obj.get("epoch")
        return net, int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) else None
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return obj, None
    keys = sorted(str(k) for k in obj)
    if {"optimizer", "scheduler", "rng"} <= set(keys):
        what = ("this package's own training state (checkpoints/*.state.pt), which holds no "
                "weights; load the run with handssca.engine.load_run")
    else:
        what = f"a dict with keys {keys[:8]} and no 'network' state dict"
    raise Hands3cFormatError(f"{where} is not a HandS3C checkpoint: it looks like {what}; a "
                             f"snapshot holds {{'epoch', 'network', 'optimizer'}}")


def _strip_prefix(sd: Mapping[str, Any], where: str) -> Dict[str, Tensor]:
    """The state dict without ``module.``, values checked to be tensors."""
    out: Dict[str, Tensor] = {}
    for k, v in sd.items():
        name = k[len(PREFIX):] if isinstance(k, str) and k.startswith(PREFIX) else k
        if not isinstance(name, str) or not isinstance(v, Tensor):
            raise Hands3cFormatError(f"{where}: entry {k!r} is a {type(v).__name__}, expected a "
                                     f"tensor under a string key")
        if name in out:
            raise Hands3cFormatError(f"{where}: {name!r} appears with and without 'module.'")
        out[name] = v
    return out


def _foreign(keys) -> Optional[str]:
    """What a state dict that is not the authors' network looks like, or None if it may be."""
    keys = list(keys)
    tops = sorted({k.split(".")[0] for k in keys})
    if any(k.startswith("S3C.") for k in keys):
        return None
    if any(k.startswith(("backbone.resnet.", "heatmap_head.", "mano_head.", "attention."))
           for k in keys):
        return ("a state dict of this package's own network (names such as 'heatmap_head.*'): "
                "build_model(...).load_state_dict(...) reads it as it is")
    if "conv1.weight" in keys and "fc.weight" in keys:
        return ("torchvision's ImageNet resnet50 weights ('conv1.weight', 'fc.weight', no "
                "'backbone.'/'module.' prefix): a backbone initialisation for training "
                "(train --imagenet-weights FILE, handssca.models.load_imagenet_weights), not a "
                "HandS3C network")
    if "backbone" in tops or "regressor" in tops:
        others = [t for t in tops if t not in ("backbone", "regressor")]
        return (f"a network with a backbone and a regressor but no SSCA block (no 'S3C.' keys), "
                f"with other stages {others} instead: another method's checkpoint, such as "
                f"HandOccNet's (transformer stages FIT/SET)")
    return f"none of its {len(keys)} keys belongs to the HandS3C network (first: {keys[:4]})"


def _width(sd: Mapping[str, Tensor]) -> Optional[int]:
    """W read from the shapes: the channel branch's SSM channel count (or the grids' side)."""
    x = sd.get("S3C.self_attention.x_proj_weight_ch")
    if x is not None and x.dim() == 3:
        return int(x.shape[-1])
    uu = sd.get(GRID_KEYS[0])
    return int(uu.shape[-1]) if uu is not None and uu.dim() == 2 else None


def _input_size(sd: Mapping[str, Tensor], input_size: Optional[int], where: str) -> int:
    """S = 8 W from the file's shapes (spec convention 3: 256 -> W 32, 224 -> W 28); an
    explicit ``input_size`` that disagrees is refused."""
    w = _width(sd)
    if w is None:
        return int(input_size or 256)  # the missing channel branch is named by the key check
    size = 8 * w
    if input_size is not None and int(input_size) != size:
        raise Hands3cFormatError(
            f"{where} was asked for at input size {input_size}, but its channel branch is "
            f"sized for W = {w} (S3C.self_attention.x_proj_weight_ch "
            f"{tuple(sd['S3C.self_attention.x_proj_weight_ch'].shape)}), i.e. input size {size}"
            f" (256 for HO3D/DexYCB, 224 for FreiHAND)")
    try:
        HandSSCAConfig(input_size=size)
    except ValueError as exc:
        raise Hands3cFormatError(f"{where}: its shapes give W = {w}, input size {size}, which "
                                 f"this network cannot be built for: {exc}") from exc
    return size


def _check_keys(sd: Mapping[str, Tensor], size: int, where: str) -> None:
    """Every key known, none missing, every shape the expected one, else a named refusal."""
    kmap = key_map(size)
    unknown = [k for k in sd if k not in kmap and k not in NON_WEIGHTS]
    if unknown:
        raise Hands3cFormatError(
            f"{where}: unknown key {unknown[0]!r} ({len(unknown)} unknown in all): not a weight "
            f"of the HandS3C network nor one of its {len(NON_WEIGHTS)} known non-weights")
    missing = [k for k in kmap if k not in sd]
    if missing:
        ours, shape = kmap[missing[0]]
        raise Hands3cFormatError(f"{where} lacks the key {missing[0]!r} (our {ours!r}, shape "
                                 f"{shape}); {len(missing)} missing in all")
    w = size // 8
    expected = dict((k, s) for k, (_, s) in kmap.items())
    expected.update({k: (w, w) for k in GRID_KEYS})
    for k, v in sd.items():
        if k in expected and tuple(v.shape) != expected[k]:
            ours = kmap[k][0] if k in kmap else "a soft-argmax grid"
            raise Hands3cFormatError(
                f"{where}: {k!r} (our {ours!r}) has shape {tuple(v.shape)}, expected "
                f"{expected[k]} at input size {size} (W = {w})")


def load_hands3c(source: Union[str, Path, Mapping], input_size: Optional[int] = None
                 ) -> Tuple[Dict[str, Tensor], Dict[str, Any]]:
    """Read the authors' checkpoint into our names; :func:`import_hands3c` with what was read.

    Returns:
        (our state dict, info) with info {"epoch": the file's epoch or None, "input_size": S,
        "W": S / 8, "dropped": the non-weights found and dropped, "prefixed": whether the keys
        carried ``module.``}.
    """
    where = f"HandS3C checkpoint {source}" if isinstance(source, (str, Path)) else "state dict"
    net, epoch = _network_state(_read(source, where), where)
    sd = _strip_prefix(net, where)
    foreign = _foreign(sd)
    if foreign is not None:
        raise Hands3cFormatError(f"{where} is not a HandS3C checkpoint: it looks like {foreign}")
    size = _input_size(sd, input_size, where)
    _check_keys(sd, size, where)
    out: Dict[str, Tensor] = OrderedDict()
    for theirs, (ours, _) in key_map(size).items():
        v = sd[theirs].detach().to("cpu")
        if theirs in _RESHAPED:
            v = v.reshape(-1)  # betas (21, 1) -> our inverse temperatures (21,)
        out[ours] = v.clone().contiguous()
    info = {"epoch": epoch, "input_size": size, "W": size // 8,
            "dropped": sorted(k for k in sd if k in NON_WEIGHTS),
            "prefixed": any(isinstance(k, str) and k.startswith(PREFIX) for k in net)}
    return out, info


def import_hands3c(source: Union[str, Path, Mapping], input_size: Optional[int] = None
                   ) -> Dict[str, Tensor]:
    """The authors' HandS3C weights as the state dict of our network.

    Args:
        source: a ``snapshot_*.pth.tar`` path (``torch.save`` of ``{"epoch", "network",
            "optimizer"}``, read with ``weights_only=True``), such a dict, or the network's
            state dict as the authors' code names it, with or without ``module.``.
        input_size: S, to check against the file; None reads it from the shapes
            (W = S / 8: 32 at 256, 28 at 224).

    Returns:
        a state dict that ``build_model(attention="ssca", input_size=S).load_state_dict(sd,
        strict=True)`` accepts (704 tensors; the 11 :data:`NON_WEIGHTS` are dropped).

    Raises:
        FileNotFoundError: no such file.
        Hands3cFormatError (a ValueError): not a HandS3C checkpoint (the message says what it
            looks like: this package's own checkpoint, torchvision's ResNet-50, another
            method's network, an arbitrary pickle, not a dict), an unknown or missing key, a
            shape that differs (the key and both shapes named), or an ``input_size`` that
            disagrees with the shapes.
    """
    return load_hands3c(source, input_size)[0]


# ----------------------------------------------------------------------------------------------
# the inverse map
# ----------------------------------------------------------------------------------------------
def _check_authors_config(config: HandSSCAConfig) -> None:
    have = config.to_dict()
    for k, v in AUTHORS_CONFIG.items():
        if have.get(k) != v:
            raise ValueError(f"export_hands3c: the authors' network has {k} = {v!r}; this model "
                             f"has {have.get(k)!r} (only the paper's SSCA network maps)")


def mano_buffers(hand_model) -> Dict[str, Tensor]:
    """The nine buffers the authors' MANO layer (manopth's ``ManoLayer``, 6 PCA components,
    ``flat_hand_mean=False``) puts in their file, computed from our hand model.

    th_betas (1, 10) zeros; th_shapedirs (778, 3, 10); th_posedirs (778, 3, 135); th_v_template
    (1, 778, 3); th_J_regressor (16, 778); th_weights (778, 16); th_faces (1538, 3) int64;
    th_hands_mean (1, 45); th_selected_comps (6, 45), the first 6 PCA axes.
    """
    n_verts = hand_model.v_template.shape[0]
    posedirs = hand_model.posedirs.detach().t().reshape(n_verts, 3, -1)  # smplx keeps (135, 3V)
    vals = {
        "betas": torch.zeros(1, hand_model.shapedirs.shape[-1]),
        "shapedirs": hand_model.shapedirs, "posedirs": posedirs,
        "v_template": hand_model.v_template[None], "J_regressor": hand_model.J_regressor,
        "weights": hand_model.lbs_weights, "faces": hand_model.faces_tensor.long(),
        "hands_mean": hand_model.hands_mean_data[None],
        "selected_comps": hand_model.hands_components_data[:6],
    }
    return {f"regressor.mano_regHead.mano_layer.th_{k}": v.detach().cpu().clone().contiguous()
            for k, v in vals.items()}


def export_hands3c(model: torch.nn.Module, mano: bool = True, prefix: bool = True
                   ) -> Dict[str, Tensor]:
    """Our network's weights in the authors' names: the inverse of :func:`import_hands3c`.

    Args:
        model: a :class:`~.network.HandSSCA` in the authors' configuration
            (:data:`AUTHORS_CONFIG`; any input size).
        mano: also write the nine MANO buffers their file carries, computed from
            ``model.hand_model`` (:func:`mano_buffers`). With the real MANO these are MANO's
            data: a file written with them must not be redistributed.
        prefix: put ``module.`` in front of every key, as their ``DataParallel`` file does.

    Returns:
        an ordered state dict: the 704 weights (``betas`` reshaped to (21, 1)), the soft-argmax
        grids ``uu``/``vv`` (:func:`soft_argmax_grids`) and, with ``mano``, the MANO buffers:
        715 keys at any input size, the authors' key set.
    """
    raw = getattr(model, "_orig_mod", model)
    _check_authors_config(raw.config)
    kmap = key_map(raw.config.input_size)
    ours_to_theirs = {ours: (theirs, shape) for theirs, (ours, shape) in kmap.items()}
    head = PREFIX if prefix else ""
    out: Dict[str, Tensor] = OrderedDict()
    for k, v in raw.state_dict().items():
        theirs, shape = ours_to_theirs[k]
        out[head + theirs] = v.detach().cpu().clone().reshape(shape)
    uu, vv = soft_argmax_grids(raw.config.W)
    out[head + GRID_KEYS[0]], out[head + GRID_KEYS[1]] = uu, vv
    if mano:
        out.update((head + k, v) for k, v in mano_buffers(raw.hand_model).items())
    return out


def save_hands3c(model: torch.nn.Module, path: Union[str, Path], epoch: int = 0,
                 mano: bool = True) -> Path:
    """Write ``model`` as the authors' snapshot file: ``torch.save`` of ``{"epoch": epoch,
    "network": export_hands3c(model, mano), "optimizer": {}}`` (no optimiser state: the file
    is for inference), written to a temporary file and renamed."""
    path = Path(path)
    payload = {"epoch": int(epoch), "network": export_hands3c(model, mano), "optimizer": {}}
    with atomic_path(path) as tmp:
        torch.save(payload, str(tmp))
    return path
