"""The raw sample and the sample dictionary: the chain every loader ends in.

Every loader (:mod:`~handssca.data.freihand`, :mod:`~handssca.data.ho3d`,
:mod:`~handssca.data.dexycb`) reads its files, converts them once
into a :class:`RawSample` (the hand as the dataset annotates it, in metres, the OpenCV camera frame
and the F joint order, MANO pose as offsets from ``hands_mean``), and hands it to
:func:`make_sample`, which builds the sample dictionary the engine relies on (its keys
``image``, ``joints2d``, ``joints3d``, ``vertices``, ``pose``, ``shape``, ``root``, ``K``,
``bbox``, ``is_left``, ``occlusion``, ``has_3d``, ``index``, ``sample_id`` are described in
:mod:`handssca.data`). Pixel, box and 3D conventions: :mod:`handssca.data.geometry`.

The chain of :func:`make_sample` (book/datasets_and_metrics.md, section HO-3D in HandOccNet and
HandSSCA; HandOccNet's ``common/utils/preprocessing.py``):

1. Left hands (DexYCB) are mirrored into right hands: image flipped (u -> W - 1 - u), 3D x -> -x,
   the y and z components of every axis-angle triplet of the pose negated, betas unchanged, and
   the camera mirrored with them (:func:`~handssca.data.geometry.mirror_camera`), so that K
   still projects the 3D points.
2. Augmentation (training only, :func:`~handssca.data.augmentation.sample_augmentation`): box
   scale s = 1 + 0.25 clip(N, -1, 1), rotation r = 30 deg clip(N, -2, 2) with probability 0.6
   (else 0), colour factor U[0.8, 1.2] per channel. The crop is rotated by r about the box
   centre; the 3D targets and the MANO global rotation are rotated by the same r about the
   camera's optical axis (R_z(r), same matrix on (x, y) as the 2D rotation on (u, v)), and the
   crop's K absorbs the difference: ``K_crop = A K R_z(r)^T`` with A the 2D crop transform. So
   ``K_crop`` projects the augmented camera-frame points ``R_z X`` exactly onto the crop's 2D
   joints, even off-centre.
3. The crop (S x S, ``cv2.warpAffine``, bilinear, black border), colour factor, ImageNet
   normalisation; 2D joints as crop pixels / S; 3D joints and vertices minus the wrist (F joint 0).

``root`` stays in the original (un-mirrored, un-augmented) camera frame: it is what evaluation
adds back after un-mirroring. The absolute augmented points are ``joints3d + R_z(r) M root``
(M the mirror, identity for right hands); :meth:`~handssca.data.dataset.HandDataset.get`
returns ``R_z(r)`` with the sample. At evaluation there is no augmentation, so ``K`` projects
``joints3d + M root``. When f_x != f_y and r != 0, ``K_crop`` has small off-diagonal terms
(K[0, 1], K[1, 0]): it is still the exact projection, but renderers that assume a pinhole
[[fx, 0, cx], [0, fy, cy]] drop that term. Unaugmented crops have a pinhole ``K``.

A choice where the official code gives no lead: the crop's own ``K`` is returned, so that the 3D
targets project onto the crop without knowing the crop transform (the other choices, on
pixels and boxes: :mod:`handssca.data.geometry`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .augmentation import NO_AUGMENTATION, Augmentation, rotate_global_orient
from .geometry import (MIRROR, affine_matrix, apply_affine, bbox_from_points, box_is_usable, crop_transform,
                       expand_box, mirror_box, mirror_camera, mirror_points, mirror_pose, mirror_uv, project,
                       rotation_z, square_box)
from .images import normalise_image, warp_image

#: default crop size S (the paper profile uses 224 for FreiHAND).
DEFAULT_INPUT_SIZE = 256


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
    """How a sample was made from its raw sample (returned by :meth:`.HandDataset.get`).

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
    K_crop = affine_matrix(A) @ K @ Rz.T
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
        sample, transform: from :meth:`.HandDataset.get`. layer: a right-hand ``HandLayer`` with the
            dataset's fingertip convention (``HandLayer(model, fingertips=dataset.fingertips)``).
    Returns:
        dict of floats (NaN for a sample without ground truth).
    """
    if not bool(sample["has_3d"]):
        return {"projection_px": float("nan"), "vertices_m": float("nan"), "joints_m": float("nan")}
    M = MIRROR if bool(sample["is_left"]) else np.eye(3)
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


__all__ = ["DEFAULT_INPUT_SIZE", "RawSample", "SampleTransform", "choose_box", "make_sample", "sample_errors"]
