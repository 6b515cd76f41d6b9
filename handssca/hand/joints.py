"""Joint orders, index maps and fingertip vertices of the three datasets
(book/datasets_and_metrics.md,
section Joint orders).

Two 21-joint orders are in use:

F order (FreiHAND = OpenPose = DexYCB = manopth output; the network predicts this order)
    W, T1 T2 T3 T4, I1 I2 I3 I4, M1 M2 M3 M4, R1 R2 R3 R4, P1 P2 P3 P4
H order (HO3D = MANO's own 16 kinematic joints followed by the five tips)
    W, I1-3, M1-3, P1-3, R1-3, T1-3, T4, I4, M4, R4, P4

T/I/M/R/P = thumb/index/middle/ring/pinky, 1..3 from the palm outwards, 4 = fingertip.
"""
from __future__ import annotations

import numpy as np

#: MANO's 16 kinematic joints, in MANO's order (the order of its pose vector and J_regressor).
MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
#: parent of each MANO joint (-1 for the root), the kinematic tree of MANO's ``kintree_table``.
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

FREIHAND_JOINT_NAMES = (
    "W",
    "T1", "T2", "T3", "T4",
    "I1", "I2", "I3", "I4",
    "M1", "M2", "M3", "M4",
    "R1", "R2", "R3", "R4",
    "P1", "P2", "P3", "P4",
)
HO3D_JOINT_NAMES = (
    "W",
    "I1", "I2", "I3",
    "M1", "M2", "M3",
    "P1", "P2", "P3",
    "R1", "R2", "R3",
    "T1", "T2", "T3",
    "T4", "I4", "M4", "R4", "P4",
)

#: F = H[HO3D_TO_FREIHAND] (a gather). Equal to manopth's reorder and HO3D's jointsMapManoToSimple.
HO3D_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
#: H = F[FREIHAND_TO_HO3D] (a gather). What a HO3D submission applies to F-order predictions.
FREIHAND_TO_HO3D = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20)

#: parent of each joint in F order, for drawing skeletons.
FREIHAND_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: Fingertip vertices of the right MANO mesh (778 vertices), thumb, index, middle, ring, pinky.
#: The three conventions differ by a vertex or so (book/datasets_and_metrics.md, section Joint
#: orders; pitfall 7).
FINGERTIP_VERTICES = {
    "manopth": (745, 317, 444, 556, 673),   # DexYCB GT, HandOccNet/HandSSCA predictions
    "freihand": (744, 320, 443, 555, 672),  # FreiHAND GT
    "ho3d": (744, 333, 444, 555, 672),      # HO3D GT
}

#: OpenGL camera frame (HO3D files) <-> OpenCV camera frame: flip y and z. Its own inverse.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def mano_to_freihand(joints16, tips5):
    """Assemble the 21 F-order joints from MANO's 16 joints and the 5 fingertip points.

    Args:
        joints16: (..., 16, 3) joints in MANO order.
        tips5: (..., 5, 3) fingertips, thumb, index, middle, ring, pinky.

    Returns:
        (..., 21, 3) in F order. Works for numpy arrays and torch tensors.
    """
    if hasattr(joints16, "new_tensor"):  # torch
        import torch
        h = torch.cat([joints16, tips5], dim=-2)
        return h[..., list(HO3D_TO_FREIHAND), :]
    h = np.concatenate([joints16, tips5], axis=-2)  # H order: MANO 16 + tips (T, I, M, R, P)
    return h[..., list(HO3D_TO_FREIHAND), :]
