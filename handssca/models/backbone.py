"""Feature extraction of the paper's Section 3.2: ResNet-50 and the reduced feature pyramid.

Image I (B, 3, S, S) -> C2..C5 -> the single pooled pyramid map F (B, 256, S/8, S/8).

- :class:`ResNet50`: torchvision's ResNet-50 layout (Bottleneck, expansion 4, layers 3-4-6-3,
  stride on the 3x3 conv) with **torchvision's state-dict names** (``conv1``, ``bn1``,
  ``layer1.0.conv1`` ... ``layer4.2.bn3``, ``layerK.0.downsample.0/1``) and no classifier, so
  :func:`load_imagenet_weights` reads torchvision's ``resnet50`` weights directly. Every ReLU is a
  LeakyReLU (slope 0.01), as in the authors' code (torchvision uses ReLU).
- :class:`ReducedFPN`: 1x1 conv on C5, lateral 1x1 convs on C4, C3, C2, top-down bilinear
  upsampling (align_corners False) plus add down to P2, one 3x3 conv on P2, 2x2 average pooling.
  Only this one map is returned (architecture spec, "Backbone").

Counts (no classifier): ResNet-50 23,508,032 + FPN 1,574,144 = 25,082,176.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor

#: slope of every LeakyReLU in the network (the authors' code replaces ReLU by LeakyReLU(0.01))
LEAKY_SLOPE = 0.01


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
    """The pyramid reduced to its finest level, pooled once (architecture spec, "Backbone").

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
