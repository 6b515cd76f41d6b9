"""Rotation representations used by MANO and the regressor.

- axis-angle (..., 3): MANO's pose parameters theta (Eq. 4's theta is 16 of these, 48 values).
- rotation matrices (..., 3, 3).
- the continuous 6D representation of Zhou et al. (CVPR 2019): the first two columns of R, one
  after the other, (..., 6) = [R[:, 0], R[:, 1]]; the MANO head predicts 16 of these (96 values)
  and Gram-Schmidt turns them into matrices. This is the layout of the authors' code (their
  released weights depend on it; see the book's "paper vs code" page). Reading the six numbers
  as a row-major (3, 2) matrix instead (a1 = x[0::2], a2 = x[1::2]) gives the same functions
  only after permuting each joint's six rows of the head's last layer
  (:data:`ROT6D_ROWS_FROM_ROW_MAJOR`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues' formula. aa (..., 3) -> R (..., 3, 3); exact at the identity (aa = 0)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    # The closed forms are evaluated on a safe copy (1 where the angle is small) so that their
    # backward pass never sees 0/0: torch.where passes a zero gradient to the branch it does not
    # pick, but 0 * nan is still nan.
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    # sin(t)/t and (1-cos t)/t^2, with their Taylor series near 0
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2_safe)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """R (..., 3, 3) -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0 (Shepperd's method)."""
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # four candidate (unnormalised) quaternions; the one with the largest norm is stable
    sq = torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22,
    ], -1)
    # sqrt(max(sq, 0)) with a finite gradient: sqrt'(0) is infinite, so zero candidates (those of
    # the identity, for one) take the square root of a safe 1 and are then set to 0.
    pos = sq > 0
    q_abs = torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    cands = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2],
                     m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2,
                     m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                     q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2],
                     m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
    ], -2)  # (..., 4, 4)
    cands = cands / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """Unit quaternion (..., 4) (w, x, y, z) -> axis-angle (..., 3), angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s2 = (v * v).sum(-1, keepdim=True)
    small = s2 < 1e-12
    # |v| on a safe copy: the gradient of a norm at the zero vector is 0/0
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    half = torch.atan2(s, q[..., :1])  # in [0, pi/2]
    # angle / sin(angle/2) = 2 half / sin(half), with its series near 0: 2 asin(|v|)/|v| =
    # 2 + |v|^2/3 + ... for a unit quaternion, where sin(half) = |v|
    factor = torch.where(small, 2 + s2 / 3, 2 * half / torch.sin(half))
    return v * factor


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """R (..., 3, 3) -> axis-angle (..., 3), stable near 0 and near pi (through quaternions)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


#: the 6D layout of this package (a1 = x[0:3], a2 = x[3:6]) from a row-major (3, 2) layout
#: (a1 = x[0::2], a2 = x[1::2]): ``x_ours = x_row_major[..., ROT6D_ROWS_FROM_ROW_MAJOR]``
ROT6D_ROWS_FROM_ROW_MAJOR = (0, 2, 4, 1, 3, 5)


def rot6d_to_matrix(x: Tensor) -> Tensor:
    """Zhou et al.'s 6D representation -> rotation matrix by Gram-Schmidt.

    Args:
        x: (..., 6): a1 = x[..., 0:3] and a2 = x[..., 3:6], the (unnormalised) first two columns
            of R, as the authors' MANO head lays them out.

    Returns:
        (..., 3, 3) with columns ``b1 = a1/|a1|``, b2 = normalised a2 - (b1.a2) b1, b3 = b1 x b2.
    """
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6): its first column, then its second
    (the inverse of :func:`rot6d_to_matrix` on rotations)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)
