"""The engine's side of building a network: a profile's network configuration, the engine's
initialisations (ImageNet weights, the mean-hand start) and parameter counts.

There is one constructor, :func:`handssca.models.build_model`; a network is described by its
:class:`~handssca.models.HandSSCAConfig` (``model.config``, backbone included), which every
checkpoint records, and ``build_model(**config)`` rebuilds it. The ``paper`` profile trains the
paper's network (ResNet-50 + reduced FPN, C = 256); the ``quick`` and ``smoke`` profiles name the
light backbone (:class:`handssca.models.LightBackbone`) and a smaller C, a departure from the
paper made for speed on two CPU cores, recorded with every result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from .checkpoint import sha256_file


def network_config(train_cfg: Dict[str, Any], attention: str,
                   input_size: Optional[int] = None) -> Dict[str, Any]:
    """The keyword arguments of ``build_model`` for a profile's training section.

    Args:
        train_cfg: a resolved training section (:func:`~.profiles.training_config`):
            ``model`` holds build_model keywords (C, hourglass_depth, ...), ``backbone`` the
            backbone description, ``input_size`` S.
        attention: the Table 6 variant.
        input_size: S (default: the section's).

    Returns:
        a dict with the fields of :class:`~handssca.models.HandSSCAConfig` that the profile sets.
    """
    cfg = dict(train_cfg.get("model") or {})
    cfg["attention"] = attention
    cfg["input_size"] = int(input_size if input_size is not None else train_cfg["input_size"])
    cfg["backbone"] = dict(train_cfg.get("backbone") or {"kind": "resnet50"})
    return cfg


def imagenet_weights_record(path) -> Dict[str, str]:
    """What identifies an ImageNet weights file in a run's configuration: {"file": its name,
    "sha256": its digest}. Two runs started from different files are different runs.

    Raises:
        FileNotFoundError: no such file (the message names the setting).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"imagenet_weights: {p} is not a file (expected torchvision's "
                                f"resnet50 state dict, e.g. resnet50-11ad3fa6.pth)")
    return {"file": p.name, "sha256": sha256_file(p)}


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


def parameter_count(model: nn.Module) -> Dict[str, int]:
    """Learnable parameters per part (backbone, attention, heatmap_head, encoder, mano_head)
    and in total."""
    parts = ("backbone", "attention", "heatmap_head", "encoder", "mano_head")
    out = {p: sum(x.numel() for x in getattr(model, p).parameters()) for p in parts}
    out["total"] = sum(x.numel() for x in model.parameters())
    return out
