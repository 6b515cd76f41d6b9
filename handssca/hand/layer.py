"""``HandLayer``: MANO's forward pass as the network uses it, and the pose/frame helpers the
datasets need (book/datasets_and_metrics.md, sections The MANO vector, OpenGL and OpenCV frames,
DexYCB files, and pitfalls 8 and 16).

Conventions (the same for the real MANO and the procedural hand):

- pose theta (B, 48): 3 global axis-angle values, then 15 x 3 articulation values in MANO's joint
  order, as *offsets from hands_mean* (flat_hand_mean=False), as FreiHAND, HandOccNet and
  HandSSCA store them. The absolute articulation is theta[3:] + hands_mean (HO3D stores that,
  flat_hand_mean=True); DexYCB stores 45 PCA coefficients c with theta[3:] = c @ hands_components.
- shape beta (B, 10); translation t (B, 3) added to every point after posing.
- output in metres in MANO's canonical frame (plus t); joints in the F (FreiHAND) order.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from smplx.lbs import lbs
from torch import nn

from . import joints as J
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle

Tensor = torch.Tensor


def _check_tips(tips) -> tuple[int, ...]:
    tips = tuple(int(t) for t in tips)
    if len(tips) != 5 or min(tips) < 0 or max(tips) >= 778:
        raise ValueError(f"fingertips: expected 5 vertex ids in 0..777 (thumb, index, middle, ring, pinky), "
                         f"got {tips}")
    return tips


class HandLayer(nn.Module):
    """The MANO layer with the network's conventions: (theta, beta, t) -> vertices and F-order joints.

    Holds no learnable parameters, and its buffers are not saved with a ``state_dict`` (they are
    model data, MANO's licence forbids redistributing them, and they come back from the model file).

    Args:
        hand_model: a :class:`~handssca.hand.model.HandModel` (``load_hand_model()``); default:
            ``load_hand_model()``.
        fingertips: which vertices are the 5 fingertip joints: "manopth" (the default: DexYCB and
            the HandOccNet/HandSSCA predictions), "freihand", "ho3d", or 5 vertex ids.
    """

    def __init__(self, hand_model=None, fingertips="manopth"):
        super().__init__()
        if hand_model is None:
            from .model import load_hand_model
            hand_model = load_hand_model()
        if isinstance(fingertips, str):
            tips = hand_model.fingertip_vertices(fingertips)
        else:
            tips = _check_tips(fingertips)
        self.kind = hand_model.kind
        self.is_rhand = bool(hand_model.is_rhand)
        self.fingertips = fingertips if isinstance(fingertips, str) else tips
        self.faces = np.asarray(hand_model.faces, dtype=np.int64)
        buffers = {
            "v_template": hand_model.v_template, "shapedirs": hand_model.shapedirs,
            "posedirs": hand_model.posedirs, "J_regressor": hand_model.J_regressor,
            "lbs_weights": hand_model.lbs_weights, "parents": hand_model.parents,
            "hands_mean": hand_model.hands_mean_data, "hands_components": hand_model.hands_components_data,
            "tip_ids": torch.tensor(tips, dtype=torch.long),
            "faces_tensor": torch.tensor(self.faces),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.detach().clone(), persistent=False)

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, is_rhand={self.is_rhand}, fingertips={self.fingertips!r}"

    def forward(self, pose: Tensor, shape: Tensor, transl: Tensor | None = None) -> dict:
        """The MANO layer of the paper's regressor (Section 3.4): V = M(theta, beta) + t.

        MANO's forward pass: the shaped and pose-corrected template T-bar + S beta + P(R(theta) - I),
        the joints J = J_regressor (T-bar + S beta), forward kinematics and linear blend skinning
        with the weights W; then the translation t. Computed by ``smplx.lbs.lbs``.

        Args:
            pose: theta, either axis-angle (B, 48) or (B, 16, 3), or rotation matrices
                (B, 16, 3, 3) (told apart by shape). Matrices are turned into axis-angle first,
                so both forms mean the same offsets from hands_mean (the regressor's 6D output is
                used this way); at a half turn, where axis-angle is ambiguous, the two signs give
                different hands.
            shape: beta (B, 10).
            transl: t (B, 3) or None.

        Returns:
            dict with "vertices" V (B, 778, 3), "joints" (B, 21, 3) in the F order (MANO's 16
            joints and the 5 fingertip vertices), "joints16" (B, 16, 3) in MANO's order; metres.
        """
        aa = self._pose_axis_angle(pose)
        B = aa.shape[0]
        dtype = aa.dtype
        if not torch.is_tensor(shape) or shape.ndim != 2 or shape.shape != (B, self.num_betas):
            got = tuple(shape.shape) if torch.is_tensor(shape) else type(shape).__name__
            raise ValueError(f"HandLayer: shape (beta) must be a tensor of shape (B, {self.num_betas}) with the "
                             f"batch size B = {B} of pose, got {got}")
        if transl is not None and (not torch.is_tensor(transl) or tuple(transl.shape) != (B, 3)):
            got = tuple(transl.shape) if torch.is_tensor(transl) else type(transl).__name__
            raise ValueError(f"HandLayer: transl must be a tensor of shape (B, 3) = ({B}, 3), got {got}")
        mean = torch.cat([self.hands_mean.new_zeros(3), self.hands_mean]).to(dtype)
        full = aa.reshape(B, 48) + mean
        verts, joints16 = lbs(shape.to(dtype), full, self.v_template.to(dtype), self.shapedirs.to(dtype),
                              self.posedirs.to(dtype), self.J_regressor.to(dtype), self.parents,
                              self.lbs_weights.to(dtype), pose2rot=True)
        if transl is not None:
            verts = verts + transl.to(dtype)[:, None]
            joints16 = joints16 + transl.to(dtype)[:, None]
        tips = verts[:, self.tip_ids]
        return {"vertices": verts, "joints": J.mano_to_freihand(joints16, tips), "joints16": joints16}

    @staticmethod
    def _pose_axis_angle(pose) -> Tensor:
        if not torch.is_tensor(pose):
            raise ValueError(f"HandLayer: pose must be a tensor of shape (B, 48), (B, 16, 3) or (B, 16, 3, 3), "
                             f"got {type(pose).__name__}")
        if not pose.is_floating_point():
            raise ValueError(f"HandLayer: pose must be a floating-point tensor, got {pose.dtype}")
        s = tuple(pose.shape)
        if len(s) == 2 and s[1] == 48:
            return pose.reshape(s[0], 16, 3)
        if len(s) == 3 and s[1:] == (16, 3):
            return pose
        if len(s) == 4 and s[1:] == (16, 3, 3):
            return matrix_to_axis_angle(pose)
        raise ValueError(f"HandLayer: pose must have shape (B, 48) or (B, 16, 3) (axis-angle) or (B, 16, 3, 3) "
                         f"(rotation matrices), got {s}")


# ----------------------------------------------------------------------------------------------
# helpers: PCA poses, mean offsets, the shaped root joint, frame changes
# ----------------------------------------------------------------------------------------------
def _numpy_in_numpy_out(fn):
    """Let a torch function take numpy arrays (returns numpy arrays then, float64)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        was_numpy = any(isinstance(a, np.ndarray) for a in list(args) + list(kwargs.values()))
        conv = [torch.as_tensor(a, dtype=torch.float64) if isinstance(a, np.ndarray) else a for a in args]
        kconv = {k: (torch.as_tensor(v, dtype=torch.float64) if isinstance(v, np.ndarray) else v)
                 for k, v in kwargs.items()}
        out = fn(*conv, **kconv)
        if not was_numpy:
            return out
        if isinstance(out, tuple):
            return tuple(o.detach().cpu().numpy() for o in out)
        return out.detach().cpu().numpy()
    return wrapper


def _model_tensor(model, name: str, like: Tensor) -> Tensor:
    """A buffer of a HandModel or HandLayer ('hands_mean', 'hands_components', 'v_template', ...)
    on the device and in the dtype of ``like``. A HandModel keeps the model's pose space under
    '<name>_data' (smplx zeroes its own mean when flat_hand_mean=True)."""
    for attr in (name + "_data", name):
        t = getattr(model, attr, None)
        if torch.is_tensor(t):
            return t.to(device=like.device, dtype=like.dtype)
    raise TypeError(f"expected a HandModel (load_hand_model) or a HandLayer, got {type(model).__name__}")


@_numpy_in_numpy_out
def pca_to_axis_angle(coeffs, model):
    """PCA pose coefficients -> axis-angle articulation, in the same mean convention.

    DexYCB's ``pose_m[:, :48]`` holds 3 global values and 45 PCA coefficients for
    flat_hand_mean=False; the result is then theta for :class:`HandLayer`
    (book/datasets_and_metrics.md, section DexYCB files).

    Args:
        coeffs: (B, k) with k <= 45 PCA coefficients, or (B, 48) = 3 global values + 45 coefficients.
        model: a HandModel or HandLayer (its ``hands_components``).

    Returns:
        (B, 45) articulation c @ hands_components[:k], or (B, 48) with the global part kept.
    """
    if coeffs.ndim != 2 or not (1 <= coeffs.shape[1] <= 45 or coeffs.shape[1] == 48):
        raise ValueError(f"pca_to_axis_angle: coeffs must be (B, k) with k <= 45, or (B, 48) (global + 45), "
                         f"got {tuple(coeffs.shape)}")
    comps = _model_tensor(model, "hands_components", coeffs)
    if coeffs.shape[1] == 48:
        return torch.cat([coeffs[:, :3], coeffs[:, 3:] @ comps], 1)
    return coeffs @ comps[: coeffs.shape[1]]


def _split_pose(pose, fn_name):
    if pose.ndim != 2 or pose.shape[1] not in (45, 48):
        raise ValueError(f"{fn_name}: pose must be (B, 48) (global + articulation) or (B, 45), got {tuple(pose.shape)}")
    return pose.shape[1] - 45


@_numpy_in_numpy_out
def absolute_to_offset(pose, model):
    """Absolute articulation (flat_hand_mean=True, e.g. HO3D's handPose) -> offsets from hands_mean.

    Args:
        pose: (B, 48) or (B, 45). model: a HandModel or HandLayer.
    Returns:
        the same shape, articulation minus hands_mean (the global part unchanged).
    """
    k = _split_pose(pose, "absolute_to_offset")
    mean = _model_tensor(model, "hands_mean", pose)
    return torch.cat([pose[:, :k], pose[:, k:] - mean], 1)


@_numpy_in_numpy_out
def offset_to_absolute(pose, model):
    """Offsets from hands_mean (flat_hand_mean=False) -> absolute articulation. Inverse of
    :func:`absolute_to_offset`."""
    k = _split_pose(pose, "offset_to_absolute")
    mean = _model_tensor(model, "hands_mean", pose)
    return torch.cat([pose[:, :k], pose[:, k:] + mean], 1)


@_numpy_in_numpy_out
def root_joint(shape, model):
    """The shaped root joint J0(beta) = J_regressor[0] (T-bar + S beta), about which the global
    rotation turns the hand (book/datasets_and_metrics.md, section OpenGL and OpenCV frames;
    pitfall 16).

    Args:
        shape: beta (B, n_betas). model: a HandModel or HandLayer.
    Returns:
        (B, 3) in the canonical frame (metres).
    """
    sd = _model_tensor(model, "shapedirs", shape)
    if shape.ndim != 2 or shape.shape[1] != sd.shape[-1]:
        raise ValueError(f"root_joint: shape must be (B, {sd.shape[-1]}), got {tuple(shape.shape)}")
    r = _model_tensor(model, "J_regressor", shape)[0]              # (V,)
    v = _model_tensor(model, "v_template", shape)                    # (V, 3)
    return (r @ v)[None] + torch.einsum("v,vck,bk->bc", r, sd, shape)


@_numpy_in_numpy_out
def change_frame(global_orient, transl, shape, model, rotation, translation=None):
    """MANO parameters of the same hand in another frame X' = A X + c.

    MANO turns the hand about the shaped root J0, X = R (X_rest - J0) + J0 + t, so
    A X + c = (A R)(X_rest - J0) + J0 + t' with t' = A (J0 + t) + c - J0
    (book/datasets_and_metrics.md, section OpenGL and OpenCV frames:
    OpenGL -> OpenCV is A = diag(1, -1, -1), c = 0).

    Args:
        global_orient: (B, 3) axis-angle R. transl: (B, 3) t. shape: (B, 10) beta.
        model: a HandModel or HandLayer. rotation: A, (3, 3) or (B, 3, 3), a proper rotation.
        translation: c, (3,) or (B, 3), default 0.

    Returns:
        (global_orient', transl'), each (B, 3).
    """
    A = rotation.to(global_orient.dtype)
    if A.shape[-2:] != (3, 3):
        raise ValueError(f"change_frame: rotation must be (3, 3) or (B, 3, 3), got {tuple(A.shape)}")
    if not torch.allclose(torch.linalg.det(A), torch.ones((), dtype=A.dtype), atol=1e-5):
        raise ValueError("change_frame: rotation must be a proper rotation (det +1); a mirror (det -1) "
                         "turns a right hand into a left one and has no MANO parameters")
    for name, x in (("global_orient", global_orient), ("transl", transl)):
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"change_frame: {name} must be (B, 3), got {tuple(x.shape)}")
    j0 = root_joint(shape, model)
    R = axis_angle_to_matrix(global_orient)
    A = A.expand(R.shape) if A.ndim == 2 else A
    go = matrix_to_axis_angle(A @ R)
    t = torch.einsum("bij,bj->bi", A, j0 + transl) - j0
    if translation is not None:
        t = t + translation.to(t.dtype)
    return go, t


__all__ = ["HandLayer", "pca_to_axis_angle", "absolute_to_offset", "offset_to_absolute", "root_joint",
           "change_frame"]
