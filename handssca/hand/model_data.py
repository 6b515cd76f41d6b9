"""MANO-format model data as plain dicts: the procedural hand's, and the mirror of a hand.

A MANO-format dict holds what ``MANO_RIGHT.pkl`` holds, as numpy arrays (V = 778 vertices,
K = 16 joints, F = 1538 faces):

======================  =============  =======================================================
key                     shape          meaning (paper symbol)
======================  =============  =======================================================
``v_template``          (V, 3)         the template mesh T-bar, flat hand, zero pose
``f``                   (F, 3) int     the faces
``J_regressor``         (K, V)         joints J = J_regressor (T-bar + B_S(beta))
``kintree_table``       (2, K) int     row 0: parent of each joint (root: -1 or 2**32-1)
``weights``             (V, K)         skinning weights W
``shapedirs``           (V, 3, 10)     shape blend shapes S: B_S(beta) = S beta
``posedirs``            (V, 3, 135)    pose correctives P: B_P(theta) = P (R(theta) - I)
``hands_components``    (45, 45)       PCA axes of the 45 articulation values (rows)
``hands_mean``          (45,)          the mean articulation (flat_hand_mean=False adds it)
``J``                   (K, 3)         the template's joints
======================  =============  =======================================================
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from . import procedural as P
from .joints import MANO_PARENTS
from .pose_space import pose_pca


def _shape_dirs(dims0: P.HandDims, order: np.ndarray) -> np.ndarray:
    """(V, 3, 10) central differences of the template over the SHAPE_FACTORS (final order)."""
    out = np.zeros((P.N_VERTICES, 3, P.N_BETAS))
    for k, (name, sigma) in enumerate(P.SHAPE_FACTORS):
        base = getattr(dims0, name)
        plus, _ = P._template(dataclasses.replace(dims0, **{name: base + sigma}))
        minus, _ = P._template(dataclasses.replace(dims0, **{name: base - sigma}))
        out[:, :, k] = (0.5 * (plus - minus))[order]
    return out


@lru_cache(maxsize=1)
def _procedural_right() -> dict:
    g, faces_nat, order, _ = P._structure()
    X, _ = P._template(P.HandDims())
    R = P._joint_regressor(g, X)
    W = P._skinning_weights(g, X, faces_nat)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    v = X[order]
    faces = inv[faces_nat]
    R = R[:, order]
    W = W[order]
    mean, comps, _ = pose_pca()
    data = {
        "v_template": v,
        "f": faces.astype(np.int64),
        "J_regressor": sp.csc_matrix(R),
        "kintree_table": np.array([MANO_PARENTS, list(range(P.N_JOINTS))], dtype=np.int64),
        "weights": W,
        "shapedirs": _shape_dirs(P.HandDims(), order),
        "posedirs": np.zeros((P.N_VERTICES, 3, 135)),
        "hands_components": comps,
        "hands_mean": mean,
        "J": R @ v,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    for val in data.values():
        if isinstance(val, np.ndarray):
            val.setflags(write=False)
    return data


def procedural_mano_data(is_rhand: bool = True) -> dict:
    """The procedural hand in MANO's format (see the module table), deterministic.

    Built on first use (well under a second) and kept for the life of the process; each call
    returns a fresh dict of read-only arrays.

    Args:
        is_rhand: the right hand, or its exact mirror (x -> -x) for the left.
    """
    data = dict(_procedural_right())
    return data if is_rhand else mirror_mano_data(data)


_REFLECT = np.array([-1.0, 1.0, 1.0])  # x -> -x


def mirror_mano_data(data: dict) -> dict:
    """The mirror image x -> -x of a MANO-format hand (right <-> left), exactly.

    Positions and shape directions get x negated and the faces are re-wound so that they still face
    outwards. A rotation R of the hand becomes M R M (M = diag(-1, 1, 1)), i.e. axis-angle
    (a, b, c) -> (a, -b, -c), which is how the pose space (hands_mean, hands_components) and the
    pose correctives (which act on R - I) are carried over. Regressor and weights are unchanged.
    """
    out = dict(data)
    out["v_template"] = np.asarray(data["v_template"]) * _REFLECT
    out["f"] = np.asarray(data["f"])[:, [0, 2, 1]]
    out["shapedirs"] = np.asarray(data["shapedirs"]) * _REFLECT[None, :, None]
    # pose features are the entries (R - I)_ab of 15 joints; under M they change sign by s_a s_b
    s = _REFLECT
    feat = np.tile((s[:, None] * s[None, :]).reshape(9), 15)        # (135,)
    out["posedirs"] = np.asarray(data["posedirs"]) * _REFLECT[None, :, None] * feat[None, None, :]
    aa = np.tile(-_REFLECT, 15)                                       # (a, b, c) -> (a, -b, -c)
    out["hands_mean"] = np.asarray(data["hands_mean"]) * aa
    out["hands_components"] = np.asarray(data["hands_components"]) * aa[None, :]
    if "J" in data:
        out["J"] = np.asarray(data["J"]) * _REFLECT
    return out


def hand_measurements(data: dict) -> dict:
    """Dimensions of a MANO-format hand at the zero pose and zero shape, in metres.

    Works for MANO and the procedural hand alike (it reads joints, fingertip vertices and the
    vertices bound mostly to the root, i.e. the palm).

    Returns:
        dict: "hand_length" (wrist joint to the middle fingertip), "palm_breadth" and
        "palm_thickness" (extent across z and y of the palm's vertices within 12 mm of the middle
        of the wrist-to-middle-MCP segment, the thenar eminence included), "<digit>_length"
        (MCP joint to fingertip; the thumb from its CMC joint), "bbox" (3,).
    """
    from .joints import FINGERTIP_VERTICES
    v = np.asarray(data["v_template"], dtype=float)
    R = data["J_regressor"]
    R = R.toarray() if sp.issparse(R) else np.asarray(R)
    Jt = R @ v
    W = np.asarray(data["weights"])
    mid = 0.5 * (Jt[0] + Jt[4])  # halfway from the wrist to the middle finger's MCP
    axis = (Jt[4] - Jt[0]) / np.linalg.norm(Jt[4] - Jt[0])
    palm = v[(W.argmax(1) == 0) & (np.abs((v - mid) @ axis) < 0.012)]
    tips = dict(zip(P.TIP_ORDER, FINGERTIP_VERTICES["manopth"]))
    out = {
        "hand_length": float(np.linalg.norm(v[tips["middle"]] - Jt[0])),
        "palm_breadth": float(np.ptp(palm[:, 2])),
        "palm_thickness": float(np.ptp(palm[:, 1])),
    }
    for digit, tip in tips.items():
        out[f"{digit}_length"] = float(np.linalg.norm(v[tip] - Jt[P.DIGIT_JOINTS[digit][0]]))
    out["bbox"] = np.ptp(v, axis=0)
    return out
