"""What the three datasets share: crops, HandOccNet's augmentation, mirroring, images, errors.

Every loader (:mod:`.freihand`, :mod:`.ho3d`, :mod:`.dexycb`) reads its files, converts them once
into a :class:`RawSample` (the hand as the dataset annotates it, in metres, the OpenCV camera frame
and the F joint order, MANO pose as offsets from ``hands_mean``), and hands it to
:func:`make_sample`, which builds the sample dictionary the engine relies on (its keys
``image``, ``joints2d``, ``joints3d``, ``vertices``, ``pose``, ``shape``, ``root``, ``K``,
``bbox``, ``is_left``, ``occlusion``, ``has_3d``, ``index``, ``sample_id`` are described in
:mod:`handssca.data`).

Coordinates
-----------
- **Points** in an image (2D joints, projections ``K X``) use OpenCV's pixel convention: the
  centre of pixel column i is at u = i. ``cv2.warpAffine`` uses the same convention.
- **Boxes** ``[x1, y1, x2, y2]`` use pixel *edges*: the whole W x H image is ``[0, 0, W, H]``
  (a point u lies at edge coordinate u + 0.5). A crop maps its box edges onto the crop's edges.
- **3D**: metres, OpenCV camera frame (x right, y down, z forward).

The chain of :func:`make_sample` (section 2.6 of the data spec, HandOccNet's preprocessing)
------------------------------------------------------------------------------------------
1. Left hands (DexYCB) are mirrored into right hands: image flipped (u -> W - 1 - u), 3D x -> -x,
   the y and z components of every axis-angle triplet of the pose negated, betas unchanged, and
   the camera mirrored with them (:func:`mirror_camera`), so that K still projects the 3D points.
2. Augmentation (training only, :func:`sample_augmentation`): box scale s = 1 + 0.25 clip(N, -1, 1),
   rotation r = 30 deg clip(N, -2, 2) with probability 0.6 (else 0), colour factor U[0.8, 1.2]
   per channel. The crop is rotated by r about the box centre; the 3D targets and the MANO
   global rotation are rotated by the same r about the camera's optical axis (R_z(r), same
   matrix on (x, y) as the 2D rotation on (u, v)), and the crop's K absorbs the difference:
   ``K_crop = A K R_z(r)^T`` with A the 2D crop transform. So ``K_crop`` projects the augmented
   camera-frame points ``R_z X`` exactly onto the crop's 2D joints, even off-centre.
3. The crop (S x S, ``cv2.warpAffine``, bilinear, black border), colour factor, ImageNet
   normalisation; 2D joints as crop pixels / S; 3D joints and vertices minus the wrist (F joint 0).

``root`` stays in the original (un-mirrored, un-augmented) camera frame: it is what evaluation
adds back after un-mirroring. The absolute augmented points are ``joints3d + R_z(r) M root``
(M the mirror, identity for right hands); :meth:`HandDataset.get` returns ``R_z(r)`` with the
sample. At evaluation there is no augmentation, so ``K`` projects ``joints3d + M root``.
When f_x != f_y and r != 0, ``K_crop`` has small off-diagonal terms (K[0, 1], K[1, 0]): it is
still the exact projection, but renderers that assume a pinhole [[fx, 0, cx], [0, fy, cy]] drop
that term. Unaugmented crops have a pinhole ``K``.

Choices where the data spec is silent: boxes and points follow the one pixel convention above
(a crop of the whole image is the identity); a box is made square about its centre and not
clipped to the image (what falls outside is black); the crop's own ``K`` is returned, so that
the 3D targets project onto the crop without knowing the crop transform.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import multiprocessing.context
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import IMAGENET_MEAN, IMAGENET_STD  # ImageNet statistics (RGB, images in [0, 1]), defined once

#: default crop size S (the paper profile uses 224 for FreiHAND).
DEFAULT_INPUT_SIZE = 256
#: the crop box is the tight box of the 2D joints (or the dataset's hand box) times this factor.
BBOX_EXPAND = 1.5
#: HandOccNet's augmentation (common/utils/preprocessing.py, data spec 2.6).
SCALE_FACTOR = 0.25          # s = 1 + 0.25 clip(N(0,1), -1, 1)
ROTATION_FACTOR_DEG = 30.0   # r = 30 deg clip(N(0,1), -2, 2)
ROTATION_PROB = 0.6          # ... applied with probability 0.6, else r = 0
COLOR_RANGE = (0.8, 1.2)     # per-channel factor U[0.8, 1.2]
#: a run that skips more than this share of a dataset's samples stops with an error.
DEFAULT_MAX_SKIP = 0.01
#: side file of a synthetic root with what real datasets lack (per-sample occlusion fraction).
SYNTH_INFO = "synth_info.json"

_MIRROR = np.diag([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------
# errors and the skip counter
# ----------------------------------------------------------------------------------------------
class DatasetLayoutError(FileNotFoundError):
    """A dataset root, file or folder is missing, or the folder is not laid out as expected.

    The message names the first missing path and shows the expected layout.
    """


class CorruptSampleError(ValueError):
    """One sample's image or annotation cannot be read or is malformed (it is skipped and counted)."""


class TooManySkippedError(RuntimeError):
    """More than the allowed share of a dataset's samples were corrupt."""


def require_paths(paths: Iterable, dataset: str, layout: str) -> None:
    """Raise :class:`DatasetLayoutError` naming the first of ``paths`` that does not exist.

    Args:
        paths: paths in the order they should be checked (the root first).
        dataset: the dataset's name for the message.
        layout: the expected layout (a few lines of text) shown in the message.
    """
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DatasetLayoutError(
                f"{dataset}: {p} not found. Expected the official layout:\n{layout.rstrip()}\n"
                f"(see data/README.md, section Datasets)")


class SkipCounter:
    """Counts the distinct samples of a dataset skipped as corrupt, across DataLoader workers.

    Each newly skipped sample is reported with ``warnings.warn`` (its id, the reason, the running
    count); when more than ``max_fraction`` of the dataset's ``n`` samples have been skipped,
    :meth:`record` raises :class:`TooManySkippedError`. The flags live in shared memory made at
    construction, so forked or spawned workers add to the same count.

    Args:
        name: the dataset's name (for messages).
        n: the number of samples the share is taken of.
        max_fraction: the allowed share, in [0, 1].
    """

    def __init__(self, name: str, n: int, max_fraction: float = DEFAULT_MAX_SKIP):
        if not 0.0 <= float(max_fraction) <= 1.0:
            raise ValueError(f"max_skip: expected a fraction in [0, 1], got {max_fraction}")
        self.name, self.n, self.max_fraction = name, int(n), float(max_fraction)
        # one flag per sample in shared memory without a lock (a lock is tied to one start method);
        # the count is the number of flags set, so concurrent skips cannot double-count
        self._flags = multiprocessing.RawArray("b", max(self.n, 1))
        self._reasons: dict[str, str] = {}  # this process's reasons, for the summary

    # shared memory can only travel to a process being started; otherwise pickle a copy
    def __getstate__(self):
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            state["_flags"] = bytes(self._flags)
        return state

    def __setstate__(self, state):
        flags = state["_flags"]
        if isinstance(flags, bytes):
            arr = multiprocessing.RawArray("b", len(flags))
            np.frombuffer(arr, dtype=np.int8)[:] = np.frombuffer(flags, dtype=np.int8)
            state["_flags"] = arr
        self.__dict__.update(state)

    def _array(self) -> np.ndarray:
        return np.frombuffer(self._flags, dtype=np.int8)

    @property
    def count(self) -> int:
        """How many distinct samples have been skipped so far."""
        return int(np.count_nonzero(self._array()))

    @property
    def limit(self) -> int:
        """The largest number of skipped samples allowed."""
        return int(np.floor(self.max_fraction * self.n + 1e-9))

    def record(self, key: int, sample_id: str, reason: str) -> None:
        """Count sample ``key`` (0..n-1) as skipped, warn, and stop when past the allowed share."""
        flags = self._array()
        k = int(key) % len(flags)
        new = not flags[k]
        flags[k] = 1
        count = int(np.count_nonzero(flags))
        if new:
            self._reasons[str(sample_id)] = reason
            warnings.warn(f"{self.name}: skipped corrupt sample {sample_id}: {reason} "
                          f"({count} of {self.n} skipped so far; limit {self.max_fraction:.2%})",
                          RuntimeWarning, stacklevel=3)
        if count > self.limit:
            raise TooManySkippedError(
                f"{self.name}: {count} of {self.n} samples are corrupt, more than the allowed "
                f"{self.max_fraction:.2%} (max_skip); last: {sample_id}: {reason}. Check the download, "
                f"or raise max_skip to go on.")

    def summary(self) -> str:
        """A one-line summary (and a warning when anything was skipped)."""
        msg = f"{self.name}: {self.count} of {self.n} samples skipped as corrupt"
        if self.count:
            some = ", ".join(list(self._reasons)[:5])
            warnings.warn(msg + (f" (e.g. {some})" if some else ""), RuntimeWarning, stacklevel=2)
        return msg


# ----------------------------------------------------------------------------------------------
# small geometry
# ----------------------------------------------------------------------------------------------
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
    """The tight box of 2D points (pixel centres), expanded about its centre (data spec 2.6).

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


def _affine3(A) -> np.ndarray:
    return np.vstack([np.asarray(A, dtype=np.float64), [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------
# mirroring (left hands -> right hands, HandOccNet; data spec 3.3)
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
    return F @ np.asarray(K, dtype=np.float64) @ _MIRROR


def unmirror(points, is_left):
    """Map root-relative predictions for mirrored left hands back to left hands (x -> -x where
    ``is_left``), as HandOccNet does at evaluation (data spec 3.3, 4.5).

    Args:
        points: (B, N, 3) joints or vertices (numpy or torch), root-relative, in the sample frame.
        is_left: (B,) booleans (the samples' ``is_left``).
    Returns:
        (B, N, 3); right hands unchanged. Applying it twice is the identity.
    """
    if hasattr(points, "new_tensor"):
        import torch
        left = torch.as_tensor(is_left, dtype=torch.bool, device=points.device).reshape(-1, 1, 1)
        return torch.where(left, mirror_points(points), points)
    p = np.asarray(points)
    left = np.asarray(is_left, dtype=bool).reshape(-1, 1, 1)
    return np.where(left, mirror_points(p), p)


# ----------------------------------------------------------------------------------------------
# augmentation (HandOccNet)
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One draw of the training augmentation (data spec 2.6).

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
    from scipy.spatial.transform import Rotation
    p = np.array(pose, dtype=np.float64)
    p[:3] = (Rotation.from_matrix(np.asarray(R, dtype=np.float64)) * Rotation.from_rotvec(p[:3])).as_rotvec()
    return p


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
def read_image(path, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an RGB image as (H, W, 3) uint8.

    Args:
        path: the file. expected_size: (width, height) the file must have, if given.
    Raises:
        CorruptSampleError: missing, unreadable or of the wrong size.
    """
    import cv2
    path = str(path)
    if not os.path.exists(path):
        raise CorruptSampleError(f"image {path} is missing")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise CorruptSampleError(f"image {path} cannot be decoded")
    if expected_size is not None and (img.shape[1], img.shape[0]) != tuple(expected_size):
        raise CorruptSampleError(f"image {path} is {img.shape[1]}x{img.shape[0]}, expected "
                                 f"{expected_size[0]}x{expected_size[1]}")
    return img[:, :, ::-1]


def warp_image(img: np.ndarray, A, size: int) -> np.ndarray:
    """The S x S crop of ``img`` under the (2, 3) transform A (bilinear, black outside)."""
    import cv2
    return cv2.warpAffine(np.ascontiguousarray(img), np.asarray(A, dtype=np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def normalise_image(img: np.ndarray, color=(1.0, 1.0, 1.0)) -> np.ndarray:
    """uint8 (S, S, 3) RGB -> float32 (3, S, S): /255, times the colour factors (clipped to [0, 1]),
    minus the ImageNet mean, over the ImageNet std."""
    x = img.astype(np.float32) / 255.0
    if tuple(color) != (1.0, 1.0, 1.0):
        x = np.clip(x * np.asarray(color, dtype=np.float32), 0.0, 1.0)
    x = (x - np.asarray(IMAGENET_MEAN, dtype=np.float32)) / np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def denormalise_image(image) -> np.ndarray:
    """A sample's ``image`` (3, S, S), numpy or torch, back to (S, S, 3) float RGB in [0, 1]."""
    x = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    x = x.transpose(1, 2, 0) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return np.clip(x, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# the raw sample and the sample dictionary
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RawSample:
    """One hand as a dataset annotates it, after the dataset's own conversions (each done once).

    All 3D values in metres, OpenCV camera frame of the original image, F joint order; a left
    hand stays a left hand here (``is_left``), :func:`make_sample` mirrors it.

    Attributes:
        image_path: the RGB file.
        image_size: (W, H) of the original image.
        K: (3, 3) intrinsics of the original image.
        joints3d: (21, 3) absolute joints, or None (no ground truth).
        vertices: (778, 3) absolute mesh vertices, or None.
        pose: (48,) MANO axis-angle, offsets from hands_mean, global rotation in the camera frame
            (of the hand's own MANO model: the left model for a left hand), or None.
        shape: (10,) betas, or None.
        root: (3,) absolute wrist (F joint 0); NaN when unknown.
        joints2d: (21, 2) pixel coordinates in the original image, or None (then projected from
            joints3d when that is given).
        box: [x1, y1, x2, y2] the dataset's own hand box (edge coordinates) used at test time, or
            None (then the box of the 2D joints, or the whole image).
        is_left: a left hand.
        occlusion: fraction of hand pixels hidden, NaN when unknown.
        sample_id: the dataset's id of the sample.
    """
    image_path: str
    image_size: tuple
    K: np.ndarray
    joints3d: np.ndarray | None = None
    vertices: np.ndarray | None = None
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    root: np.ndarray = dataclasses.field(default_factory=lambda: np.full(3, np.nan))
    joints2d: np.ndarray | None = None
    box: np.ndarray | None = None
    is_left: bool = False
    occlusion: float = float("nan")
    sample_id: str = ""

    @property
    def has_3d(self) -> bool:
        """Joints, vertices, pose and shape are all known."""
        return all(x is not None for x in (self.joints3d, self.vertices, self.pose, self.shape))


@dataclasses.dataclass(frozen=True)
class SampleTransform:
    """How a sample was made from its raw sample (returned by :meth:`HandDataset.get`).

    Attributes:
        affine: (2, 3) original image pixels (after mirroring) -> crop pixels.
        rotation: (3, 3) R_z(r) applied to the 3D targets and the MANO global rotation.
        mirrored: the image and the 3D were mirrored (a left hand).
        augmentation: the :class:`Augmentation` drawn (``NO_AUGMENTATION`` at test time).
        box: the crop box, in the (possibly mirrored) image, before the augmentation's scale.
    """
    affine: np.ndarray
    rotation: np.ndarray
    mirrored: bool
    augmentation: Augmentation
    box: np.ndarray


def choose_box(raw: RawSample, mode: str) -> np.ndarray:
    """The square crop box of a raw sample, in the original (un-mirrored) image.

    Args:
        mode: "joints" (the 2D joints' box x1.5, training and DexYCB testing; the whole image when
            that box is unusable), "dataset" (the dataset's hand box x1.5, HO3D testing), "image"
            (the whole image, FreiHAND testing as HandSSCA does).
    """
    W, H = raw.image_size
    whole = np.array([0.0, 0.0, float(W), float(H)])
    if mode == "image":
        box = whole
    elif mode == "dataset":
        if raw.box is None:
            raise ValueError(f"{raw.sample_id}: crop mode 'dataset' needs the dataset's hand box")
        box = expand_box(raw.box)
    elif mode == "joints":
        uv = raw.joints2d
        if uv is None and raw.joints3d is not None:
            uv = project(raw.joints3d, raw.K)
        box = bbox_from_points(uv) if uv is not None and np.all(np.isfinite(uv)) else whole
    else:
        raise ValueError(f"crop box mode: expected 'joints', 'dataset' or 'image', got {mode!r}")
    if not box_is_usable(box, W, H):
        box = whole  # degenerate box: the whole image (HandOccNet's test-time fallback)
    return square_box(box)


def make_sample(raw: RawSample, img: np.ndarray | None, *, index: int, input_size: int, box: np.ndarray,
                aug: Augmentation = NO_AUGMENTATION) -> tuple[dict, SampleTransform]:
    """Build the sample dictionary of the contract from a raw sample (module docstring, steps 1-3).

    Args:
        raw: the raw sample. img: its RGB image (H, W, 3) uint8, or None for a black crop (an
            unreadable image kept at evaluation so the sample order survives).
        index: the sample's position in the dataset. input_size: S. box: the square crop box
            (:func:`choose_box`) in the original image. aug: the augmentation draw.

    Returns:
        (sample dict, :class:`SampleTransform`). numpy arrays; the dataset turns them into tensors.
    """
    import torch

    S = int(input_size)
    W, H = raw.image_size
    mirrored = bool(raw.is_left)
    K = np.asarray(raw.K, dtype=np.float64)
    uv = None if raw.joints2d is None else np.asarray(raw.joints2d, dtype=np.float64)
    if uv is None and raw.joints3d is not None:
        uv = project(raw.joints3d, K)
    X = None if raw.joints3d is None else np.asarray(raw.joints3d, dtype=np.float64)
    V = None if raw.vertices is None else np.asarray(raw.vertices, dtype=np.float64)
    pose = None if raw.pose is None else np.asarray(raw.pose, dtype=np.float64)
    crop_box = np.asarray(box, dtype=np.float64)
    if mirrored:  # step 1: the left hand becomes a right hand
        if img is not None:
            img = img[:, ::-1]
        K = mirror_camera(K, W)
        uv = None if uv is None else mirror_uv(uv, W)
        X = None if X is None else mirror_points(X)
        V = None if V is None else mirror_points(V)
        pose = None if pose is None else mirror_pose(pose)
        crop_box = mirror_box(crop_box, W)
    # step 2: crop transform with the augmentation's scale and rotation
    A = crop_transform(crop_box, S, aug.scale, aug.rot_deg)
    Rz = rotation_z(aug.rot_deg)
    K_crop = _affine3(A) @ K @ Rz.T
    # step 3: image, 2D, 3D
    if img is None:
        crop = np.zeros((S, S, 3), np.uint8)
    else:
        crop = warp_image(img, A, S)
    has_3d = X is not None and V is not None and pose is not None and raw.shape is not None
    if has_3d:
        wrist = X[0]
        joints3d = (X - wrist) @ Rz.T
        vertices = (V - wrist) @ Rz.T
        pose = rotate_global_orient(pose, Rz)
        shape = np.asarray(raw.shape, dtype=np.float64)
    else:
        joints3d, vertices = np.zeros((21, 3)), np.zeros((778, 3))
        pose, shape = np.zeros(48), np.zeros(10)
    joints2d = apply_affine(A, uv) / S if uv is not None else np.zeros((21, 2))
    sample = {
        "image": torch.from_numpy(normalise_image(crop, aug.color)),
        "joints2d": torch.tensor(joints2d, dtype=torch.float32),
        "joints3d": torch.tensor(joints3d, dtype=torch.float32),
        "vertices": torch.tensor(vertices, dtype=torch.float32),
        "pose": torch.tensor(pose, dtype=torch.float32),
        "shape": torch.tensor(shape, dtype=torch.float32),
        "root": torch.tensor(np.asarray(raw.root, dtype=np.float64), dtype=torch.float32),
        "K": torch.tensor(K_crop, dtype=torch.float32),
        "bbox": torch.tensor(np.asarray(box, dtype=np.float64), dtype=torch.float32),
        "is_left": bool(raw.is_left),
        "occlusion": torch.tensor(float(raw.occlusion), dtype=torch.float32),
        "has_3d": bool(has_3d),
        "index": torch.tensor(int(index), dtype=torch.int64),
        "sample_id": str(raw.sample_id),
    }
    return sample, SampleTransform(affine=A, rotation=Rz, mirrored=mirrored, augmentation=aug, box=crop_box)


def sample_errors(sample: dict, transform: SampleTransform, layer) -> dict:
    """How well a sample agrees with itself (the checks of the data chapter and the tests).

    - ``projection_px``: the largest distance between the 3D joints placed in the sample's camera
      frame (``joints3d + R_z M root``) projected with ``K`` and the 2D joints (crop pixels);
    - ``vertices_m`` / ``joints_m``: the largest distance between the root-relative mesh / joints
      of the sample's MANO parameters through ``layer`` and the sample's own.

    Args:
        sample, transform: from :meth:`HandDataset.get`. layer: a right-hand ``HandLayer`` with the
            dataset's fingertip convention (``HandLayer(model, fingertips=dataset.fingertips)``).
    Returns:
        dict of floats (NaN for a sample without ground truth).
    """
    import torch
    if not bool(sample["has_3d"]):
        return {"projection_px": float("nan"), "vertices_m": float("nan"), "joints_m": float("nan")}
    M = _MIRROR if bool(sample["is_left"]) else np.eye(3)
    S = sample["image"].shape[-1]
    X = sample["joints3d"].double().numpy() + np.asarray(transform.rotation) @ M @ sample["root"].double().numpy()
    uv = project(X, sample["K"].double().numpy())
    proj = float(np.abs(uv - sample["joints2d"].double().numpy() * S).max())
    p = next(iter(layer.buffers()))
    with torch.no_grad():
        out = layer(sample["pose"][None].to(p.dtype), sample["shape"][None].to(p.dtype))
    wrist = out["joints"][0, 0]
    v = (out["vertices"][0] - wrist - sample["vertices"].to(p.dtype)).norm(dim=-1).max().item()
    j = (out["joints"][0] - wrist - sample["joints3d"].to(p.dtype)).norm(dim=-1).max().item()
    return {"projection_px": proj, "vertices_m": v, "joints_m": j}


# ----------------------------------------------------------------------------------------------
# the shared Dataset base
# ----------------------------------------------------------------------------------------------
def _torch_dataset():
    from torch.utils.data import Dataset
    return Dataset


class HandDataset(_torch_dataset()):
    """Base of the three datasets: ``__getitem__``, augmentation, corrupt-sample handling.

    A subclass sets ``name``, ``input_size``, ``train`` (augment and crop from the joints),
    ``test_box`` (the crop box mode at test time), ``fingertips`` (the dataset's fingertip-vertex
    convention, for a matching ``HandLayer``), calls :meth:`_init_skips` and implements
    ``__len__``, :meth:`sample_id` and :meth:`raw` (which raises :class:`CorruptSampleError` for a
    sample that cannot be read).

    Corrupt samples: an unreadable image or annotation is counted (``skipped``) and reported with
    ``warnings.warn``. In training the next readable sample takes its place; at test time (the
    order and count of predictions matter) the sample keeps its place with a black image, and
    ``root`` NaN if its annotation was unreadable. Past ``max_skip`` (a share of the dataset) the
    run stops with :class:`TooManySkippedError`.
    """

    name = "dataset"
    fingertips = "manopth"
    test_box = "joints"
    train_box = "joints"

    def _init_skips(self, n: int, max_skip: float) -> None:
        self.skips = SkipCounter(self.name, n, max_skip)

    @property
    def skipped(self) -> int:
        """How many distinct samples were skipped as corrupt so far."""
        return self.skips.count

    def skip_summary(self) -> str:
        """A one-line summary of the skipped samples (and a warning when there were any)."""
        return self.skips.summary()

    def sample_id(self, index: int) -> str:  # pragma: no cover - abstract
        """The dataset's id of the sample at ``index`` (cheap: no file is read)."""
        raise NotImplementedError

    def raw(self, index: int) -> RawSample:  # pragma: no cover - abstract
        """The :class:`RawSample` at ``index`` (raises :class:`CorruptSampleError`)."""
        raise NotImplementedError

    def skip_key(self, index: int) -> int:
        """The key under which a corrupt sample is counted (0..n-1 of the skip counter)."""
        return index

    def raw_image(self, raw: RawSample) -> np.ndarray:
        """The RGB image of a raw sample (raises :class:`CorruptSampleError`)."""
        return read_image(raw.image_path, raw.image_size)

    def _rng(self, rng) -> np.random.Generator:
        if rng is not None:
            return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        # torch's generator is seeded per DataLoader worker and epoch (numpy's global one is not)
        import torch
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def get(self, index: int, rng=None, augment: bool | None = None) -> tuple[dict, SampleTransform]:
        """The sample at ``index`` and how it was made.

        Args:
            index: 0 <= index < len(self).
            rng: a numpy Generator or seed for the augmentation draw (default: drawn from torch's
                generator, so ``torch.manual_seed`` and DataLoader workers seed it).
            augment: override the dataset's ``augment`` setting.
        Returns:
            (the sample dictionary, :class:`SampleTransform`).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} samples")
        index = index % n
        augment = self.augment if augment is None else augment
        attempts = n if self.train else 1
        for k in range(attempts):
            i = (index + k) % n
            raw, img = None, None
            try:
                raw = self.raw(i)
                img = self.raw_image(raw)
            except CorruptSampleError as e:
                self.skips.record(self.skip_key(i), self.sample_id(i), str(e))
                if self.train:
                    continue
                if raw is None:
                    raw = self.placeholder(i)
            box = choose_box(raw, self.train_box if self.train else self.test_box)
            aug = sample_augmentation(self._rng(rng)) if augment else NO_AUGMENTATION
            return make_sample(raw, img, index=i, input_size=self.input_size, box=box, aug=aug)
        raise TooManySkippedError(f"{self.name}: no readable sample at all")

    def placeholder(self, index: int) -> RawSample:
        """A raw sample without annotation, kept at test time in place of an unreadable one."""
        return RawSample(image_path="", image_size=(self.input_size, self.input_size), K=np.eye(3),
                         sample_id=self.sample_id(index))

    def __getitem__(self, index: int) -> dict:
        return self.get(index)[0]


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def read_synth_info(root) -> dict | None:
    """The side file ``synth_info.json`` of a synthetic root, or None when absent (real data)."""
    p = Path(root) / SYNTH_INFO
    if not p.exists():
        return None
    try:
        with open(p, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as e:
        warnings.warn(f"{p}: unreadable ({e}); occlusion fractions unknown", RuntimeWarning, stacklevel=2)
        return None
    return info if isinstance(info, dict) else None


def occlusion_from_info(info: dict | None, image_keys: Sequence[str]) -> np.ndarray:
    """Per-sample occlusion fractions from ``synth_info.json`` (its ``samples`` entry, keyed by the
    image path relative to the root, "/"-separated); NaN when unknown (real datasets)."""
    out = np.full(len(image_keys), np.nan)
    samples = (info or {}).get("samples")
    if not isinstance(samples, dict):
        return out
    for i, key in enumerate(image_keys):
        entry = samples.get(key)
        occ = entry.get("occlusion") if isinstance(entry, dict) else None
        if occ is not None:
            out[i] = float(occ)
    return out


def hand_model_for(root, is_rhand: bool = True, hand_model=None):
    """The hand model a dataset's MANO parameters are read with: ``hand_model`` if given; for a
    synthetic root, the kind recorded in its ``synth_info.json`` (its annotations fit that model
    only); otherwise ``load_hand_model()`` (the real MANO when installed)."""
    if hand_model is not None:
        return hand_model
    from handssca.hand import load_hand_model
    info = read_synth_info(root)
    kind = ((info or {}).get("hand_model") or {}).get("kind")
    model = load_hand_model(is_rhand=is_rhand, kind=kind if kind in ("mano", "procedural") else None)
    if info is None and model.kind != "mano":
        warnings.warn(f"{root}: a real dataset read without MANO (the procedural hand is in use): the meshes "
                      "built from its MANO parameters, and the HO3D/DexYCB poses, do not match its images; "
                      "install MANO (data/README.md)", RuntimeWarning, stacklevel=2)
    return model


def as_array(value, shape: Sequence[int], what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (raises :class:`CorruptSampleError`)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CorruptSampleError(f"{what}: not numeric ({e})") from None
    if a.size == int(np.prod(shape)) and a.shape != tuple(shape):
        a = a.reshape(shape)
    if a.shape != tuple(shape):
        raise CorruptSampleError(f"{what}: expected shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise CorruptSampleError(f"{what}: contains NaN or infinite values")
    return a
