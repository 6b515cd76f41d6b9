"""Feature extraction of the paper's Section 3.2: ResNet-50 and the reduced feature pyramid.

Image I (B, 3, S, S) -> C2..C5 -> the single pooled pyramid map F (B, 256, S/8, S/8).

- :class:`ResNet50`: torchvision's ResNet-50 layout (Bottleneck, expansion 4, layers 3-4-6-3,
  stride on the 3x3 conv) with **torchvision's state-dict names** (``conv1``, ``bn1``,
  ``layer1.0.conv1`` ... ``layer4.2.bn3``, ``layerK.0.downsample.0/1``) and no classifier, so
  :func:`load_imagenet_weights` reads torchvision's ``resnet50`` weights directly. Every ReLU is a
  LeakyReLU (slope 0.01), as in the authors' code (torchvision uses ReLU).
- :class:`ReducedFPN`: 1x1 conv on C5, lateral 1x1 convs on C4, C3, C2, top-down bilinear
  upsampling (align_corners False) plus add down to P2, one 3x3 conv on P2, 2x2 average pooling.
  Only this one map is returned (the paper, Section 3.2; book/paper_vs_code.md, "The network").

- :class:`LightBackbone`: a narrow ResNet (basic blocks) with the same pyramid, for the CPU
  profiles (not in the paper: a departure for speed, labelled in every result).
- :func:`build_backbone`: the backbone a configuration names (``{"kind": "resnet50"}``, the
  paper's, or ``{"kind": "light", "widths": [...], "blocks": [...]}``).

Counts (no classifier): ResNet-50 23,508,032 + FPN 1,574,144 = 25,082,176.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor

#: slope of every LeakyReLU in the network (the authors' code replaces ReLU by LeakyReLU(0.01))
LEAKY_SLOPE = 0.01
#: the backbones a configuration may name: the paper's ResNet-50, or the light one
BACKBONE_KINDS = ("resnet50", "light")
#: the light backbone's defaults: channels of the stem and of C2..C5, basic blocks per stage
LIGHT_WIDTHS = (16, 32, 64, 128, 256)
LIGHT_BLOCKS = (1, 1, 1, 1)
#: the light backbone's largest width and block count per stage: several times the profiles'
#: values, so that a tampered description cannot build a network of gigabytes (see
#: :data:`handssca.models.network.MAX_PARAMETERS`)
LIGHT_MAX_WIDTH, LIGHT_MAX_BLOCKS = 512, 4


class Bottleneck(nn.Module):
    """torchvision's ResNet ``Bottleneck`` (v1.5: stride on the 3x3 conv), expansion 4.

    (B, C_in, h, w) -> (B, 4 * planes, h / stride, w / stride). ReLU -> LeakyReLU(0.01).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            # names downsample.0 (conv) and downsample.1 (bn), as torchvision's
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet50(nn.Module):
    """ResNet-50 trunk without its classifier, returning C2..C5.

    Input I (B, 3, S, S) -> C2 (B, 256, S/4, S/4), C3 (B, 512, S/8), C4 (B, 1024, S/16),
    C5 (B, 2048, S/32). 23,508,032 parameters.
    """

    layers = (3, 4, 6, 3)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), self.layers), start=1):
            stride = 1 if i == 1 else 2
            mods = []
            for b in range(blocks):
                mods.append(Bottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i}", nn.Sequential(*mods))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5


class ReducedFPN(nn.Module):
    """The pyramid reduced to its finest level, pooled once (the paper, Section 3.2;
    book/paper_vs_code.md, "The network").

    C2..C5 -> P5 = top(C5); P_k = up(P_{k+1}) + lateral_k(C_k) for k = 4, 3, 2;
    F = avgpool_2x2(smooth(P2)): (B, 256, S/8, S/8). 1,574,144 parameters.
    """

    def __init__(self, channels: int = 256):
        super().__init__()
        self.top = nn.Conv2d(2048, channels, 1)
        self.lateral4 = nn.Conv2d(1024, channels, 1)
        self.lateral3 = nn.Conv2d(512, channels, 1)
        self.lateral2 = nn.Conv2d(256, channels, 1)
        self.smooth = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.AvgPool2d(2, stride=2)

    @staticmethod
    def _upsample_add(x: Tensor, lateral: Tensor) -> Tensor:
        return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear",
                             align_corners=False) + lateral

    def forward(self, c2: Tensor, c3: Tensor, c4: Tensor, c5: Tensor) -> Tensor:
        p5 = self.top(c5)
        p4 = self._upsample_add(p5, self.lateral4(c4))
        p3 = self._upsample_add(p4, self.lateral3(c3))
        p2 = self._upsample_add(p3, self.lateral2(c2))
        return self.pool(self.smooth(p2))


class Backbone(nn.Module):
    """ResNet-50 + reduced FPN: image I (B, 3, S, S) -> feature map F (B, 256, S/8, S/8).

    25,082,176 parameters. ``self.resnet`` carries torchvision's names.
    """

    def __init__(self, channels: int = 256):
        super().__init__()
        self.resnet = ResNet50()
        self.fpn = ReducedFPN(channels)

    def forward(self, images: Tensor) -> Tensor:
        return self.fpn(*self.resnet(images))


# ----------------------------------------------------------------------------------------------
# The light backbone (CPU profiles)
# ----------------------------------------------------------------------------------------------
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

    Not in the paper: on two CPU cores ResNet-50 learns too slowly for the ``quick`` and
    ``smoke`` profiles, so they use this backbone (a departure for speed only; every checkpoint
    and result records its backbone). Same data flow as :class:`Backbone` (stem to S/4, four
    stages C2..C5 at S/4, S/8, S/16, S/32, top-down pyramid to P2, 3x3 smoothing, 2x2 average
    pooling), with basic blocks instead of bottlenecks and ``widths`` channels instead of
    256-512-1024-2048.

    Args:
        channels: C, the channels of F.
        widths: channels of the stem and of C2..C5 (5 numbers).
        blocks: basic blocks per stage (4 numbers).
    """

    def __init__(self, channels: int = 64, widths: Sequence[int] = LIGHT_WIDTHS,
                 blocks: Sequence[int] = LIGHT_BLOCKS):
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


def check_backbone(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """A backbone description, checked and completed with the defaults.

    Args:
        spec: {"kind": "resnet50"} (the paper's) or {"kind": "light", "widths": [5 ints],
            "blocks": [4 ints]} (:class:`LightBackbone`; missing lists take the defaults).

    Returns:
        a new dict: {"kind": "resnet50"} or {"kind": "light", "widths": [...], "blocks": [...]}
        (lists of ints, so the description survives JSON unchanged).

    Raises:
        ValueError: not a mapping, an unknown kind, an option the kind does not take, or bad
            widths/blocks, naming what was expected.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"backbone must be a dict such as {{'kind': 'resnet50'}}, got "
                         f"{type(spec).__name__} {spec!r}")
    kind = spec.get("kind", "resnet50")
    if kind not in BACKBONE_KINDS:
        raise ValueError(f"backbone kind must be one of {BACKBONE_KINDS}, got {kind!r}")
    allowed = {"kind"} if kind == "resnet50" else {"kind", "widths", "blocks"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"unexpected backbone options {extra} for kind {kind!r}; 'resnet50' "
                         f"takes none, 'light' takes 'widths' (5 ints) and 'blocks' (4 ints)")
    if kind == "resnet50":
        return {"kind": "resnet50"}
    try:
        widths = [int(w) for w in spec.get("widths", LIGHT_WIDTHS)]
        blocks = [int(b) for b in spec.get("blocks", LIGHT_BLOCKS)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"light backbone: widths and blocks must be lists of ints, got "
                         f"{spec!r}") from exc
    if (len(widths) != 5 or len(blocks) != 4 or min(widths) < 1 or min(blocks) < 1
            or max(widths) > LIGHT_MAX_WIDTH or max(blocks) > LIGHT_MAX_BLOCKS):
        raise ValueError(f"light backbone: expected 5 positive widths (stem, C2..C5) of at most "
                         f"{LIGHT_MAX_WIDTH} and 4 positive block counts of at most "
                         f"{LIGHT_MAX_BLOCKS}, got widths={widths}, blocks={blocks}")
    return {"kind": "light", "widths": widths, "blocks": blocks}


def build_backbone(spec: Mapping[str, Any], channels: int = 256) -> nn.Module:
    """The backbone a description names (:func:`check_backbone`): image I (B, 3, S, S) ->
    F (B, C, S/8, S/8) with C = ``channels``."""
    spec = check_backbone(spec)
    if spec["kind"] == "resnet50":
        return Backbone(channels)
    return LightBackbone(channels, spec["widths"], spec["blocks"])


# ----------------------------------------------------------------------------------------------
# ImageNet weights
# ----------------------------------------------------------------------------------------------

def _find_resnet(module: nn.Module) -> ResNet50:
    if isinstance(module, ResNet50):
        return module
    for m in module.modules():
        if isinstance(m, ResNet50):
            return m
    raise TypeError(f"no ResNet50 inside the given {type(module).__name__}")


def _extract_state_dict(obj) -> Mapping[str, Tensor]:
    """A raw state dict, or a checkpoint dict holding one under a usual key."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a state dict (a mapping of names to tensors), got "
                         f"{type(obj).__name__}")
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return obj
    for key in ("state_dict", "model", "model_state_dict", "net", "network"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor)
                                                         for v in inner.values()):
            return inner
    raise ValueError("expected a state dict of tensors, or a checkpoint dict holding one under "
                     f"'state_dict' or 'model'; got a dict with keys {sorted(obj)[:8]}")


def load_imagenet_weights(model: nn.Module, source: Union[str, Path, Mapping[str, Tensor]]
                          ) -> Dict[str, int]:
    """Load torchvision's ImageNet ``resnet50`` weights into the ResNet-50 of ``model``.

    Args:
        model: a :class:`HandSSCA`, a :class:`Backbone` or a :class:`ResNet50`.
        source: a path to a file the user has (torchvision's ``resnet50-*.pth``, any ``torch.save``
            of a state dict, a checkpoint dict holding one under ``state_dict``/``model``, or a
            ``.safetensors`` file), or such a dict itself.

    The classifier ``fc.*`` is ignored; a leading ``module.`` (DataParallel) is stripped.
    ``num_batches_tracked`` may be absent (torchvision's older files lack it). Anything else
    missing, unexpected or of another shape raises ValueError naming the first such key; nothing
    is loaded in that case.

    Returns:
        {"loaded": number of tensors copied, "ignored": number of ``fc.*`` entries skipped}.
    """
    resnet = _find_resnet(model)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"ImageNet weights file not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    else:
        obj = source
    sd = _extract_state_dict(obj)
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    own = resnet.state_dict()
    ignored = [k for k in sd if k.startswith("fc.")]
    unexpected = [k for k in sd if k not in own and not k.startswith("fc.")]
    if unexpected:
        raise ValueError(f"unexpected key in ResNet-50 weights: {unexpected[0]!r} "
                         f"({len(unexpected)} unexpected in all); expected torchvision's resnet50 "
                         "names")
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"missing key in ResNet-50 weights: {missing[0]!r} "
                         f"({len(missing)} missing in all); expected torchvision's resnet50 names")
    for k, v in sd.items():
        if k in own and tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"shape mismatch in ResNet-50 weights at {k!r}: expected "
                             f"{tuple(own[k].shape)}, got {tuple(v.shape)}")
    loadable = {k: v for k, v in sd.items() if k in own}
    resnet.load_state_dict(loadable, strict=False)
    return {"loaded": len(loadable), "ignored": len(ignored)}
