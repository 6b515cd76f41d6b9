"""Pixel and camera geometry of the crops: projection, boxes, the crop transform, mirroring.

Coordinates
-----------
- **Points** in an image (2D joints, projections ``K X``) use OpenCV's pixel convention: the
  centre of pixel column i is at u = i. ``cv2.warpAffine`` uses the same convention.
- **Boxes** ``[x1, y1, x2, y2]`` use pixel *edges*: the whole W x H image is ``[0, 0, W, H]``
  (a point u lies at edge coordinate u + 0.5). A crop maps its box edges onto the crop's edges.
- **3D**: metres, OpenCV camera frame (x right, y down, z forward).

Choices where the official code gives no lead: boxes and points follow the one pixel convention
above
(a crop of the whole image is the identity); a box is made square about its centre and not
clipped to the image (what falls outside is black).

Mirroring
---------
(HandOccNet; book/datasets_and_metrics.md, section DexYCB in HandOccNet and HandSSCA.)
Left hands (DexYCB) are mirrored into right hands: image flipped (u -> W - 1 - u,
:func:`mirror_uv`, :func:`mirror_box`), 3D x -> -x (:func:`mirror_points`), the y and z
components of every axis-angle triplet of the pose negated (:func:`mirror_pose`), betas
unchanged, and the camera mirrored with them (:func:`mirror_camera`), so that K still projects
the 3D points. :func:`unmirror` maps predictions back at evaluation.

:func:`project` is the package's one pinhole projection (:mod:`handssca.render` uses it too).
This module depends on numpy only.
"""
from __future__ import annotations

import numpy as np

#: the crop box is the tight box of the 2D joints (or the dataset's hand box) times this factor.
BBOX_EXPAND = 1.5
#: M, the mirror x -> -x across the camera's y-z plane (3, 3).
MIRROR = np.diag([-1.0, 1.0, 1.0])


def project(points, K) -> np.ndarray:
    """Pinhole projection uv = (K X)[:2] / (K X)[2] (FreiHAND's ``projectPoints``).

    Args:
        points: X (..., N, 3) camera-frame points. K: (..., 3, 3).
    Returns:
        (..., N, 2) pixel coordinates (OpenCV convention).
    """
    X = np.asarray(points, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    p = np.einsum("...ij,...nj->...ni", K, X)
    return p[..., :2] / p[..., 2:3]


def bbox_from_points(uv, expand: float = BBOX_EXPAND) -> np.ndarray:
    """The tight box of 2D points (pixel centres), expanded about its centre (HandOccNet;
    book/datasets_and_metrics.md, section HO-3D in HandOccNet and HandSSCA).

    Args:
        uv: (N, 2) pixel coordinates. expand: factor on width and height.
    Returns:
        [x1, y1, x2, y2] in edge coordinates (whole image = [0, 0, W, H]).
    """
    uv = np.asarray(uv, dtype=np.float64)
    lo, hi = uv.min(0) + 0.5, uv.max(0) + 0.5
    c, half = (lo + hi) / 2, (hi - lo) / 2 * expand
    return np.array([c[0] - half[0], c[1] - half[1], c[0] + half[0], c[1] + half[1]])


def expand_box(box, expand: float = BBOX_EXPAND) -> np.ndarray:
    """Scale a box [x1, y1, x2, y2] about its centre by ``expand``."""
    b = np.asarray(box, dtype=np.float64)
    c, half = (b[:2] + b[2:]) / 2, (b[2:] - b[:2]) / 2 * expand
    return np.concatenate([c - half, c + half])


def square_box(box) -> np.ndarray:
    """The square box with the same centre and side max(width, height) (the crop is square)."""
    b = np.asarray(box, dtype=np.float64)
    c, half = (b[:2] + b[2:]) / 2, np.max(b[2:] - b[:2]) / 2
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def box_is_usable(box, width: int, height: int, min_size: float = 2.0) -> bool:
    """A finite box of at least ``min_size`` pixels a side that overlaps the image."""
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        return False
    if b[2] - b[0] < min_size or b[3] - b[1] < min_size:
        return False
    return b[2] > 0 and b[3] > 0 and b[0] < width and b[1] < height


def rotation_z(deg: float) -> np.ndarray:
    """R_z(r): rotation by r degrees about the camera's optical axis, (3, 3).

    The same matrix as the 2D rotation [[cos, -sin], [sin, cos]] on (u, v) (x and u right,
    y and v down), so rotating 3D points by it rotates their projections the same way."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_transform(box, size: int, scale: float = 1.0, rot_deg: float = 0.0) -> np.ndarray:
    """The 2D transform A (2, 3) from original pixels to crop pixels (both OpenCV convention).

    The box edges (scaled by ``scale`` about the box centre) go to the crop's edges, rotated by
    ``rot_deg`` about the centre: p_crop + 0.5 = S / (w s) R(r) (p + 0.5 - c) + S / 2, where c and
    w are the box centre and side (edge coordinates) and R(r) = ``rotation_z(r)[:2, :2]``.

    Args:
        box: [x1, y1, x2, y2], square (edge coordinates). size: S. scale: s. rot_deg: r.
    """
    b = np.asarray(box, dtype=np.float64)
    c = (b[:2] + b[2:]) / 2
    w = max(b[2] - b[0], b[3] - b[1])
    if not np.isfinite(w) or w <= 0:
        raise ValueError(f"crop_transform: expected a box of positive size, got {b.tolist()}")
    M = size / (w * scale) * rotation_z(rot_deg)[:2, :2]
    t = M @ (0.5 - c) + size / 2.0 - 0.5
    return np.concatenate([M, t[:, None]], 1)


def apply_affine(A, uv) -> np.ndarray:
    """Apply a (2, 3) affine transform to (N, 2) points."""
    uv = np.asarray(uv, dtype=np.float64)
    return uv @ np.asarray(A)[:, :2].T + np.asarray(A)[:, 2]


def affine_matrix(A) -> np.ndarray:
    """The (3, 3) homogeneous matrix [[A], [0, 0, 1]] of a (2, 3) affine transform A."""
    return np.vstack([np.asarray(A, dtype=np.float64), [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------
# mirroring (left hands -> right hands, HandOccNet; book/datasets_and_metrics.md, section DexYCB in
# HandOccNet and HandSSCA)
# ----------------------------------------------------------------------------------------------
def mirror_points(points):
    """x -> -x for (..., 3) points (numpy or torch). Its own inverse."""
    if hasattr(points, "new_tensor"):
        return points * points.new_tensor([-1.0, 1.0, 1.0])
    return np.asarray(points) * np.array([-1.0, 1.0, 1.0])


def mirror_pose(pose):
    """Mirror MANO axis-angle parameters across the camera's y-z plane: the y and z components of
    every (x, y, z) triplet negated (M R M has axis (a_x, -a_y, -a_z), M = diag(-1, 1, 1)).

    Args:
        pose: (..., 3k) axis-angle values (48 for the whole pose), numpy or torch.
    Returns:
        the same shape. Its own inverse. Betas are unchanged by mirroring.
    """
    flip = [1.0, -1.0, -1.0]
    if hasattr(pose, "new_tensor"):
        s = pose.shape
        return (pose.reshape(*s[:-1], -1, 3) * pose.new_tensor(flip)).reshape(s)
    p = np.asarray(pose)
    return (p.reshape(*p.shape[:-1], -1, 3) * np.array(flip)).reshape(p.shape)


def mirror_uv(uv, width: int) -> np.ndarray:
    """u -> W - 1 - u for (N, 2) pixel points of a W-wide image flipped horizontally."""
    uv = np.array(uv, dtype=np.float64)
    uv[..., 0] = width - 1 - uv[..., 0]
    return uv


def mirror_box(box, width: int) -> np.ndarray:
    """A box [x1, y1, x2, y2] (edge coordinates) of a W-wide image flipped horizontally."""
    b = np.asarray(box, dtype=np.float64)
    return np.array([width - b[2], b[1], width - b[0], b[3]])


def mirror_camera(K, width: int) -> np.ndarray:
    """The intrinsics that project mirrored points (x -> -x) onto the flipped image.

    u' = W - 1 - u for every point, so K' = F K diag(-1, 1, 1) with F = [[-1, 0, W - 1],
    [0, 1, 0], [0, 0, 1]]; for zero skew that is c_x -> W - 1 - c_x."""
    F = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return F @ np.asarray(K, dtype=np.float64) @ MIRROR


def unmirror(points, is_left):
    """Map root-relative predictions for mirrored left hands back to left hands (x -> -x where
    ``is_left``), as HandOccNet does at evaluation (book/datasets_and_metrics.md, section Which
    root, which alignment).

    Args:
        points: (B, N, 3) joints or vertices (numpy or torch), root-relative, in the sample frame.
        is_left: (B,) booleans (the samples' ``is_left``).
    Returns:
        (B, N, 3); right hands unchanged. Applying it twice is the identity.
    """
    if hasattr(points, "new_tensor"):
        import torch  # only for torch inputs (torch is loaded already): this module needs numpy only
        left = torch.as_tensor(is_left, dtype=torch.bool, device=points.device).reshape(-1, 1, 1)
        return torch.where(left, mirror_points(points), points)
    p = np.asarray(points)
    left = np.asarray(is_left, dtype=bool).reshape(-1, 1, 1)
    return np.where(left, mirror_points(p), p)


__all__ = ["BBOX_EXPAND", "MIRROR", "project", "bbox_from_points", "expand_box", "square_box",
           "box_is_usable", "rotation_z", "crop_transform", "apply_affine", "affine_matrix", "mirror_points",
           "mirror_pose", "mirror_uv", "mirror_box", "mirror_camera", "unmirror"]
