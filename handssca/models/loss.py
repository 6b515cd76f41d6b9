"""The training loss of the paper's Eq. 4, in the exact form of the authors' code.

Eq. 4::

    Loss = a_theta ||theta' - theta|| + a_beta ||beta' - beta|| + a_2d ||J2d' - J2d||
           + a_3d ||J3d' - J3d|| + a_V ||V' - V||

with a_theta = 10, a_beta = 0.1, a_2d = 1e2, a_3d = 1e4, a_V = 1e4.

Departure from the paper (the code's form, which we follow): every term is a mean squared
error, the mean over all elements of the squared differences (PyTorch's ``mse_loss``), not the
L2 norm the equation writes; and theta is compared as 16 rotation matrices (B, 16, 3, 3), not as
the 48 axis-angle numbers. The ground-truth mesh V and joints J3d are computed from the
ground-truth MANO parameters through the same MANO layer as the prediction, so both 3D terms
are in metres in the MANO canonical frame (no translation). J2d is in normalised uv of the crop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..hand.rotations import axis_angle_to_matrix

Tensor = torch.Tensor


@dataclass(frozen=True)
class LossWeights:
    """The weights alpha of Eq. 4 (the paper's and the authors' values)."""

    alpha_V: float = 1e4       # vertices V, metres
    alpha_3d: float = 1e4      # 3D joints J3d, metres
    alpha_theta: float = 10.0  # pose theta as 16 rotation matrices
    alpha_beta: float = 0.1    # shape beta
    alpha_2d: float = 100.0    # 2D joints J2d, normalised uv


_EXPECTED = {
    "predictions": {"vertices": (778, 3), "joints": (21, 3), "rotmats": (16, 3, 3),
                    "shape": (10,), "joints2d": (21, 2)},
    "targets": {"pose": (48,), "shape": (10,), "joints2d": (21, 2)},
}


def _check(name: str, d: Dict[str, Tensor]) -> int:
    batch = None
    for key, shape in _EXPECTED[name].items():
        if key not in d:
            raise KeyError(f"{name} lacks {key!r}; expected keys {sorted(_EXPECTED[name])}")
        t = d[key]
        if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise ValueError(f"{name}[{key!r}] must be (B, {', '.join(map(str, shape))}), "
                             f"got {tuple(t.shape)}")
        if batch is None:
            batch = t.shape[0]
        elif t.shape[0] != batch:
            raise ValueError(f"{name}[{key!r}] has batch {t.shape[0]}, expected {batch}")
    return batch


def handssca_loss(predictions: Dict[str, Tensor], targets: Dict[str, Tensor], hand_layer,
                  weights: Optional[LossWeights] = None) -> Dict[str, Tensor]:
    """Eq. 4 as the authors' code computes it (see the module docstring for the departure).

    Args:
        predictions: the network's output: "vertices" V' (B, 778, 3), "joints" J3d' (B, 21, 3),
            "rotmats" (B, 16, 3, 3), "shape" beta' (B, 10), "joints2d" J2d' (B, 21, 2).
        targets: "pose" theta (B, 48) axis-angle (flat_hand_mean=False), "shape" beta (B, 10),
            "joints2d" J2d (B, 21, 2) normalised uv.
        hand_layer: the MANO layer that produced the predictions (``model.hand_layer``); the
            ground-truth V and J3d are computed with it, without gradient.
        weights: the alphas (default: the paper's).

    Returns:
        dict: "total" (scalar) and the weighted terms "vertices", "joints", "pose", "shape",
        "joints2d" (each alpha times its MSE), which sum to "total".
    """
    w = weights or LossWeights()
    b = _check("predictions", predictions)
    bt = _check("targets", targets)
    if b != bt:
        raise ValueError(f"predictions have batch {b}, targets {bt}")
    pose_gt, shape_gt = targets["pose"], targets["shape"]
    with torch.no_grad():
        gt = hand_layer(pose_gt, shape_gt)
    rot_gt = axis_angle_to_matrix(pose_gt.reshape(-1, 16, 3))
    pred = predictions
    terms = {
        "vertices": w.alpha_V * F.mse_loss(pred["vertices"], gt["vertices"].to(pred["vertices"])),
        "joints": w.alpha_3d * F.mse_loss(pred["joints"], gt["joints"].to(pred["joints"])),
        "pose": w.alpha_theta * F.mse_loss(pred["rotmats"], rot_gt.to(pred["rotmats"])),
        "shape": w.alpha_beta * F.mse_loss(pred["shape"], shape_gt.to(pred["shape"])),
        "joints2d": w.alpha_2d * F.mse_loss(pred["joints2d"],
                                            targets["joints2d"].to(pred["joints2d"])),
    }
    total = sum(terms.values())
    return {"total": total, **terms}
