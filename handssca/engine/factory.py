"""The model factory of the engine: the paper's network, or the same network on a light backbone.

The ``paper`` profile trains :func:`handssca.models.build_model` as it is: ResNet-50 + reduced
FPN, C = 256 (architecture spec). On two CPU cores that network learns too slowly for the
``quick`` and ``smoke`` profiles, so the engine can swap its backbone for :class:`LightBackbone`,
a narrow ResNet (one basic block per stage) with the same reduced FPN on top. Everything after
the backbone (the attention block under study, the heatmap head, the encoder, the MANO head) is
the package's own, only narrower when the profile asks for a smaller C.

This is a departure from the paper made for speed only; results of a light model are labelled
with their backbone (``ModelSpec.backbone``) in every checkpoint and result file.

A model is described by a :class:`ModelSpec`: the :class:`~handssca.models.HandSSCAConfig`
fields (``model``) plus the backbone description (``backbone``). ``make_model(spec)`` builds it,
``spec_of(model)`` reads it back, and both travel in every checkpoint's JSON.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.backbone import LEAKY_SLOPE

Tensor = torch.Tensor

BACKBONE_KINDS = ("resnet50", "light")


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convs), LeakyReLU(0.01) as in the authors' backbone.

    (B, C_in, h, w) -> (B, C_out, h / stride, w / stride).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class LightBackbone(nn.Module):
    """A narrow ResNet + the reduced FPN: image I (B, 3, S, S) -> F (B, C, S/8, S/8).

    Same data flow as :class:`handssca.models.Backbone` (stem to S/4, four stages C2..C5 at
    S/4, S/8, S/16, S/32, top-down pyramid to P2, 3x3 smoothing, 2x2 average pooling), with basic
    blocks instead of bottlenecks and ``widths`` channels instead of 256-512-1024-2048.

    Args:
        channels: C, the channels of F.
        widths: channels of the stem and of C2..C5 (5 numbers).
        blocks: basic blocks per stage (4 numbers).
    """

    def __init__(self, channels: int = 64, widths: Sequence[int] = (16, 32, 64, 128, 256),
                 blocks: Sequence[int] = (1, 1, 1, 1)):
        super().__init__()
        widths, blocks = tuple(int(w) for w in widths), tuple(int(b) for b in blocks)
        if len(widths) != 5 or len(blocks) != 4 or min(widths) < 1 or min(blocks) < 1:
            raise ValueError(f"LightBackbone: expected 5 positive widths (stem, C2..C5) and 4 "
                             f"positive block counts, got widths={widths}, blocks={blocks}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        inplanes = widths[0]
        stages = []
        for i, (w, n) in enumerate(zip(widths[1:], blocks)):
            mods = [BasicBlock(inplanes if b == 0 else w, w, (1 if i == 0 else 2) if b == 0 else 1)
                    for b in range(n)]
            stages.append(nn.Sequential(*mods))
            inplanes = w
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList(nn.Conv2d(w, channels, 1) for w in widths[1:])
        self.smooth = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.AvgPool2d(2, stride=2)

    def forward(self, images: Tensor) -> Tensor:
        x = self.stem(images)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)  # C2 (S/4), C3 (S/8), C4 (S/16), C5 (S/32)
        p = self.laterals[3](feats[3])
        for k in (2, 1, 0):
            lat = self.laterals[k](feats[k])
            p = F.interpolate(p, size=lat.shape[-2:], mode="bilinear", align_corners=False) + lat
        return self.pool(self.smooth(p))


@dataclass
class ModelSpec:
    """What fixes a model's shapes: the network's config and its backbone.

    Attributes:
        model: keyword arguments of :func:`handssca.models.build_model` (the fields of
            :class:`~handssca.models.HandSSCAConfig`).
        backbone: {"kind": "resnet50"} (the paper's) or {"kind": "light", "widths": [5 ints],
            "blocks": [4 ints]} (:class:`LightBackbone`).
    """

    model: Dict[str, Any] = field(default_factory=dict)
    backbone: Dict[str, Any] = field(default_factory=lambda: {"kind": "resnet50"})

    @property
    def input_size(self) -> int:
        """S, the side of the square input crop the network takes."""
        return int(self.model.get("input_size", 256))

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"model": copy.deepcopy(self.model), "backbone": copy.deepcopy(self.backbone)}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        """Inverse of :meth:`to_dict`; raises ValueError on a malformed dict."""
        if not isinstance(d, dict) or "model" not in d:
            raise ValueError(f"a model spec must be a dict with 'model' (and 'backbone'), got {d!r}")
        return cls(model=dict(d["model"]), backbone=dict(d.get("backbone") or {"kind": "resnet50"}))


def _check_backbone(backbone: Dict[str, Any]) -> Dict[str, Any]:
    kind = backbone.get("kind", "resnet50")
    if kind not in BACKBONE_KINDS:
        raise ValueError(f"backbone kind must be one of {BACKBONE_KINDS}, got {kind!r}")
    unknown = set(backbone) - {"kind", "widths", "blocks"}
    if unknown or (kind == "resnet50" and set(backbone) - {"kind"}):
        raise ValueError(f"unexpected backbone options {sorted(set(backbone) - {'kind'})} for "
                         f"kind {kind!r}; 'light' takes 'widths' (5 ints) and 'blocks' (4 ints)")
    return dict(backbone, kind=kind)


def make_model(spec: ModelSpec, hand_model=None) -> nn.Module:
    """Build the network of ``spec`` (training mode, fp32, on the CPU).

    The paper's network when ``spec.backbone["kind"] == "resnet50"``; otherwise
    :func:`handssca.models.build_model` with its backbone replaced by a :class:`LightBackbone`
    of the same output (B, C, S/8, S/8).
    """
    from ..models import build_model

    backbone = _check_backbone(spec.backbone)
    model = build_model(**dict(spec.model), hand_model=hand_model)
    if backbone["kind"] == "light":
        light = LightBackbone(model.config.C, backbone.get("widths", (16, 32, 64, 128, 256)),
                              backbone.get("blocks", (1, 1, 1, 1)))
        model.backbone = light
    model.engine_backbone = backbone  # read back by spec_of()
    return model


def init_mean_hand(model: nn.Module, scale: float = 0.01) -> nn.Module:
    """Start the MANO head at the mean hand: every rotation the identity (the articulation at
    ``hands_mean``, flat_hand_mean=False) and beta = 0, with the output layers' weights scaled by
    ``scale`` so that the first predictions stay near it (HMR-style mean-parameter start).

    Not in the paper or the authors' code (their head starts from PyTorch's default
    initialisation); the CPU profiles use it because a network that starts from random
    articulations spends its first minutes worse than the mean pose.
    """
    head = model.mano_head
    identity6d = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # I's first column, then its second
    with torch.no_grad():
        head.pose.weight.mul_(scale)
        head.pose.bias.copy_(identity6d.repeat(head.pose.bias.numel() // 6))
        head.shape.weight.mul_(scale)
        head.shape.bias.zero_()
    return model


def spec_of(model: nn.Module) -> ModelSpec:
    """The :class:`ModelSpec` that rebuilds ``model`` (config and backbone)."""
    cfg = dataclasses.asdict(model.config)
    backbone = getattr(model, "engine_backbone", {"kind": "resnet50"})
    return ModelSpec(model=cfg, backbone=copy.deepcopy(backbone))


def spec_from_profile(train_cfg: Dict[str, Any], attention: str,
                      input_size: Optional[int] = None) -> ModelSpec:
    """The model spec of a profile's training section for an ``attention`` variant.

    ``train_cfg["model"]`` holds build_model keywords (C, input_size, hourglass_depth, ...);
    ``train_cfg["backbone"]`` the backbone description.
    """
    model = dict(train_cfg.get("model") or {})
    model["attention"] = attention
    if input_size is not None:
        model["input_size"] = int(input_size)
    return ModelSpec(model=model, backbone=dict(train_cfg.get("backbone") or {"kind": "resnet50"}))


def parameter_count(model: nn.Module) -> Dict[str, int]:
    """Learnable parameters per part (backbone, attention, heatmap_head, encoder, mano_head)
    and in total."""
    parts = ("backbone", "attention", "heatmap_head", "encoder", "mano_head")
    out = {p: sum(x.numel() for x in getattr(model, p).parameters()) for p in parts}
    out["total"] = sum(x.numel() for x in model.parameters())
    return out


def model_summary(spec: ModelSpec) -> Tuple[str, Dict[str, Any]]:
    """A one-line description of a spec for logs ("ssca, S=128, C=64, light backbone")."""
    m, b = spec.model, spec.backbone
    text = (f"{m.get('attention', 'ssca')}, S={m.get('input_size', 256)}, C={m.get('C', 256)}, "
            f"{b.get('kind', 'resnet50')} backbone")
    return text, {"model": dict(m), "backbone": dict(b)}
