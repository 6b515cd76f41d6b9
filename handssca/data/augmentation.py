"""HandOccNet's training augmentation (``common/utils/preprocessing.py``;
book/datasets_and_metrics.md,
section HO-3D in HandOccNet and HandSSCA).

:func:`sample_augmentation` draws a box scale s = 1 + 0.25 clip(N, -1, 1), a rotation
r = 30 deg clip(N, -2, 2) with probability 0.6 (else 0) and a colour factor U[0.8, 1.2] per
channel. The crop is rotated by r about the box centre; the 3D targets and the MANO global
rotation (:func:`rotate_global_orient`) are rotated by the same r about the camera's optical axis
(R_z(r), :func:`handssca.data.geometry.rotation_z`, the same matrix on (x, y) as the 2D rotation
on (u, v)). How the crop's K absorbs the rotation: :mod:`handssca.data.sample`, step 2. At test
time there is no augmentation (:data:`NO_AUGMENTATION`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

#: HandOccNet's augmentation (common/utils/preprocessing.py).
SCALE_FACTOR = 0.25          # s = 1 + 0.25 clip(N(0,1), -1, 1)
ROTATION_FACTOR_DEG = 30.0   # r = 30 deg clip(N(0,1), -2, 2)
ROTATION_PROB = 0.6          # ... applied with probability 0.6, else r = 0
COLOR_RANGE = (0.8, 1.2)     # per-channel factor U[0.8, 1.2]


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One draw of HandOccNet's training augmentation (``preprocessing.py``).

    Attributes:
        scale: s, the box is scaled by s about its centre (s > 1: the hand looks smaller).
        rot_deg: r in degrees, the crop and the 3D targets turn by r about the optical axis.
        color: (3,) per-channel factors for R, G, B.
    """
    scale: float = 1.0
    rot_deg: float = 0.0
    color: tuple = (1.0, 1.0, 1.0)


NO_AUGMENTATION = Augmentation()


def sample_augmentation(rng: np.random.Generator) -> Augmentation:
    """Draw HandOccNet's augmentation: s = 1 + 0.25 clip(N, -1, 1); r = 30 deg clip(N, -2, 2) with
    probability 0.6, else 0; colour factor U[0.8, 1.2] per channel."""
    scale = 1.0 + SCALE_FACTOR * float(np.clip(rng.standard_normal(), -1.0, 1.0))
    rot = ROTATION_FACTOR_DEG * float(np.clip(rng.standard_normal(), -2.0, 2.0))
    if rng.random() > ROTATION_PROB:
        rot = 0.0
    color = tuple(float(c) for c in rng.uniform(COLOR_RANGE[0], COLOR_RANGE[1], size=3))
    return Augmentation(scale=scale, rot_deg=rot, color=color)


def rotate_global_orient(pose, R) -> np.ndarray:
    """The MANO pose with its global rotation premultiplied by R (3, 3): aa(R Rot(pose[:3]))."""
    p = np.array(pose, dtype=np.float64)
    p[:3] = (Rotation.from_matrix(np.asarray(R, dtype=np.float64)) * Rotation.from_rotvec(p[:3])).as_rotvec()
    return p


__all__ = ["SCALE_FACTOR", "ROTATION_FACTOR_DEG", "ROTATION_PROB", "COLOR_RANGE", "Augmentation",
           "NO_AUGMENTATION", "sample_augmentation", "rotate_global_orient"]
