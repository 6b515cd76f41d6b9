"""Reconstruct hands from images: mesh (OBJ, PLY), joints and MANO parameters (JSON), overlay (PNG).

For each image:

1. The crop: the given hand box ``[x1, y1, x2, y2]`` (pixels) squared and enlarged 1.5 times, as
   the training crops are made from the hand's 2D joints (HandOccNet); without a box, the whole
   image (squared, padded with black), and the output says so.
2. ``--left``: the image is mirrored first, so the network sees a right hand (it was trained on
   right hands, left ones mirrored), and the result is mirrored back (x -> -x in the camera
   frame; the mesh's triangles are reversed so that it stays outward-facing).
3. The network predicts a root-relative mesh and joints (metres, the camera's orientation, wrist
   at the origin), 2D joints in the crop, and MANO's theta and beta.
4. The camera is unknown: a pinhole with focal length ``max(W, H)`` pixels (about 53 degrees of
   view across the longer side) and the principal point at the image centre is assumed, unless
   ``focal`` is given; the hand's translation is then fitted so that its 3D joints project onto
   the predicted 2D joints (linear least squares). The mesh is written in that camera frame, so
   the overlay lines up with the image; its depth is only as right as the assumed focal length.

Outputs per image ``<stem>``: ``<stem>.obj``, ``<stem>.ply`` (trimesh), ``<stem>.json`` (joints,
2D joints, MANO parameters, camera, crop, frame and units stated), ``<stem>_overlay.png`` (the
mesh rendered over the image with pyrender, :func:`handssca.render.overlay_mesh`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..utils import atomic_path, refuse_existing, require_folder, write_json_atomic
from .runs import Run, load_run

#: the box is enlarged by this factor about its centre (the training crops' factor)
BOX_EXPAND = 1.5


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def require_image_file(path) -> Path:
    """``path`` as a Path; FileNotFoundError when nothing is there, ValueError when it is a
    folder (an image file is expected; the message shows how to pass a folder's images)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p} is a folder; expected image files (PNG, JPEG, ...): pass the "
                         f"images themselves, e.g. {p / '*.png'}")
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    return p


def read_rgb(path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; FileNotFoundError / ValueError name the file (an
    image above :data:`~handssca.data.images.MAX_IMAGE_PIXELS` is refused before decoding)."""
    import cv2

    from ..data.images import image_size

    p = require_image_file(path)
    image_size(p)  # its header's size, checked before any pixel is decoded
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{p} is not an image OpenCV can read (expected PNG, JPEG, ...)")
    return np.ascontiguousarray(img[:, :, ::-1])


def check_bbox(bbox, width: int, height: int, where: str = "--bbox") -> np.ndarray:
    """Validate a box [x1, y1, x2, y2] in pixels against a W x H image."""
    b = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        raise ValueError(f"{where}: expected 4 finite numbers X1 Y1 X2 Y2, got {list(np.ravel(bbox))}")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"{where}: expected X1 < X2 and Y1 < Y2, got {b.tolist()}")
    if b[2] <= 0 or b[3] <= 0 or b[0] >= width or b[1] >= height:
        raise ValueError(f"{where}: the box {b.tolist()} lies outside the {width} x {height} image")
    return b


def fit_translation(joints: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The translation t that best projects ``joints + t`` onto ``uv`` through K.

    Each joint gives two equations linear in t: f_x (X + t_x) - (u - c_x)(Z + t_z) = 0 and the
    same in y; solved by least squares. joints (J, 3) metres, uv (J, 2) pixels -> t (3,).
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    zeros = np.zeros_like(du)
    A = np.concatenate([np.stack([np.full_like(du, fx), zeros, -du], 1),
                        np.stack([zeros, np.full_like(dv, fy), -dv], 1)])
    b = np.concatenate([du * joints[:, 2] - fx * joints[:, 0], dv * joints[:, 2] - fy * joints[:, 1]])
    t, *_ = np.linalg.lstsq(A, b, rcond=None)
    return t


def _crop(img: np.ndarray, bbox, size: int):
    from ..data.geometry import crop_transform, expand_box, square_box
    from ..data.images import normalise_image, warp_image

    H, W = img.shape[:2]
    if bbox is None:
        box = square_box(np.array([0.0, 0.0, W, H]))
        how = "the whole image (no box given), squared about its centre and padded with black"
    else:
        box = square_box(expand_box(bbox, BOX_EXPAND))
        how = f"the given box, squared and enlarged x{BOX_EXPAND} about its centre"
    A = crop_transform(box, size)
    crop = warp_image(img, A, size)
    return torch.from_numpy(normalise_image(crop)), A, box, how


def predict_image(run: Run, image, bbox=None, left: bool = False,
                  focal: Optional[float] = None) -> Dict[str, Any]:
    """Predict one hand; returns arrays and descriptions (nothing is written).

    Args:
        run: a loaded run (:func:`~.runs.load_run`).
        image: (H, W, 3) uint8 RGB, or a path.
        bbox: [x1, y1, x2, y2] pixels around the hand, or None (the whole image).
        left: the hand is a left hand (mirror, predict a right hand, mirror back).
        focal: the camera's focal length in pixels (None: max(W, H), assumed).

    Returns:
        dict with "vertices" (778, 3) and "joints" (21, 3) in the camera frame (metres),
        "joints_root_relative", "joints2d" (21, 2) image pixels, "pose" (48,), "shape" (10,),
        "translation" (3,), "K" (3, 3), "faces" (F, 3), "crop_box", "crop", "image" (RGB).
    """
    from ..data.geometry import mirror_box

    img = read_rgb(image) if not isinstance(image, np.ndarray) else np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    H, W = img.shape[:2]
    if bbox is not None:
        bbox = check_bbox(bbox, W, H)
    if focal is not None and not (np.isfinite(focal) and focal > 0):
        raise ValueError(f"focal must be a positive number of pixels, got {focal}")
    work = img[:, ::-1] if left else img
    box_in = mirror_box(bbox, W) if (left and bbox is not None) else bbox
    x, A, box, how = _crop(np.ascontiguousarray(work), box_in, run.input_size)
    with torch.no_grad():
        out = run.model(x[None].to(run.device))
    j = out["joints"][0].float().cpu().numpy().astype(np.float64)
    v = out["vertices"][0].float().cpu().numpy().astype(np.float64)
    j_rel, v_rel = j - j[:1], v - j[:1]
    S = run.input_size
    uv_crop = out["joints2d"][0].float().cpu().numpy().astype(np.float64) * S
    Ainv = np.linalg.inv(np.vstack([A, [0.0, 0.0, 1.0]]))
    uv = uv_crop @ Ainv[:2, :2].T + Ainv[:2, 2]  # pixels of the (mirrored when left) image
    f = float(focal) if focal is not None else float(max(W, H))
    # principal point at the centre: (W - 1) / 2 in OpenCV's pixel-centre convention, which is
    # also symmetric under the mirroring u -> W - 1 - u, so K serves both images
    K = np.array([[f, 0.0, (W - 1) / 2.0], [0.0, f, (H - 1) / 2.0], [0.0, 0.0, 1.0]])
    t = fit_translation(j_rel, uv, K)
    joints, verts = j_rel + t, v_rel + t
    faces = np.asarray(run.model.faces, dtype=np.int64)
    if left:  # mirror back: x -> -x, reversed triangles, 2D joints back in the original image
        flip = np.array([-1.0, 1.0, 1.0])
        joints, verts, j_rel, v_rel, t = joints * flip, verts * flip, j_rel * flip, v_rel * flip, t * flip
        uv = uv.copy()
        uv[:, 0] = W - 1 - uv[:, 0]
        faces = faces[:, ::-1].copy()
        box = mirror_box(box, W)
    return {"vertices": verts, "joints": joints, "joints_root_relative": j_rel,
            "vertices_root_relative": v_rel, "joints2d": uv,
            "pose": out["pose"][0].float().cpu().numpy(), "shape": out["shape"][0].float().cpu().numpy(),
            "translation": t, "K": K, "focal_assumed": focal is None, "faces": faces,
            "crop_box": box, "crop": how, "image": img, "bbox": bbox, "left": bool(left)}


def _stem_for(path, used: set) -> str:
    stem = Path(str(path)).stem or "image"
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return name


def _output_files(out: Path, stem: str, overlay: bool) -> Dict[str, Path]:
    """The files :func:`predict` writes for the image named ``stem``."""
    files = {"obj": out / f"{stem}.obj", "ply": out / f"{stem}.ply", "json": out / f"{stem}.json"}
    if overlay:
        files["overlay"] = out / f"{stem}_overlay.png"
    return files


def predict(images: Union[str, Path, Sequence], checkpoint, out, bbox=None, left: bool = False,
            which: str = "last", device: Optional[str] = None, focal: Optional[float] = None,
            overlay: bool = True, verbose: bool = True,
            overwrite: bool = False) -> List[Dict[str, Any]]:
    """Reconstruct the hand in each image and write mesh, JSON and overlay files.

    Args:
        images: an image path, or a list of paths.
        checkpoint: a run folder, a checkpoint file, or a loaded :class:`~.runs.Run`.
        out: the output folder (created).
        bbox: [x1, y1, x2, y2] pixels around the hand (the same box for every image), or None:
            the whole image is used (and the JSON says so).
        left: the hands are left hands.
        which: "last" or "best" checkpoint.
        device: "cpu", "cuda", ... (None: CUDA when available).
        focal: the camera's focal length in pixels (None: max(W, H) is assumed).
        overlay: also render the mesh over the image (pyrender).
        overwrite: replace output files of the same names in ``out`` (otherwise refused,
            before anything is computed or written).

    Returns:
        one dict per image: the written files ("obj", "ply", "json", "overlay") and the JSON's
        content.
    """
    import cv2
    import trimesh

    from ..data.images import image_size

    log = _log if verbose else (lambda m: None)
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    if not paths:
        raise ValueError("no image given")
    for p in paths:  # fail before loading the network
        require_image_file(p)
    out = require_folder(out, "--out", "a folder for the outputs")
    for p in paths:  # and before decoding any image: each header's size within the bound
        image_size(p)
    used: set = set()
    stems = [_stem_for(path, used) for path in paths]
    if not overwrite:  # before loading the network: nothing of the user's is replaced
        refuse_existing(f for stem in stems for f in _output_files(out, stem, overlay).values())
    run = checkpoint if isinstance(checkpoint, Run) else load_run(checkpoint, which, device)
    out.mkdir(parents=True, exist_ok=True)
    from ..hand.joints import FREIHAND_JOINT_NAMES

    results = []
    if bbox is None:
        log("[predict] no --bbox given: using the whole image as the hand's crop")
    for path, stem in zip(paths, stems):
        r = predict_image(run, path, bbox, left, focal)
        files = _output_files(out, stem, overlay)
        mesh = trimesh.Trimesh(r["vertices"], r["faces"], process=False)
        for key in ("obj", "ply"):
            with atomic_path(files[key], suffix="." + key) as tmp:
                mesh.export(str(tmp), file_type=key)
        if overlay:
            from ..render import overlay_mesh

            img = overlay_mesh(r["image"], r["vertices"], r["faces"], r["K"])
            with atomic_path(files["overlay"], suffix=".png") as tmp:
                if not cv2.imwrite(str(tmp), np.ascontiguousarray(img[:, :, ::-1])):
                    raise OSError(f"could not write {files['overlay']}")
        H, W = r["image"].shape[:2]
        record = {
            "image": str(path), "image_size": [W, H], "hand": "left" if left else "right",
            "bbox": None if r["bbox"] is None else [float(x) for x in r["bbox"]],
            "crop": r["crop"], "crop_box": [float(x) for x in r["crop_box"]],
            "frame": "OpenCV camera frame of the image: x right, y down, z forward; metres",
            "camera": {"K": r["K"].tolist(), "focal_assumed": r["focal_assumed"],
                       "note": ("focal length assumed (max(W, H) pixels), principal point at the "
                                "image centre; the translation is fitted to the predicted 2D "
                                "joints, so depth is only as right as the assumed focal length")
                       if r["focal_assumed"] else "focal length as given"},
            "joint_order": list(FREIHAND_JOINT_NAMES),
            "joints": r["joints"].tolist(),
            "joints_root_relative": r["joints_root_relative"].tolist(),
            "joints2d": r["joints2d"].tolist(),
            "joints2d_units": "pixels of the input image (OpenCV convention: pixel centres at integers)",
            "translation": r["translation"].tolist(),
            "mano": {
                "pose": r["pose"].tolist(), "shape": r["shape"].tolist(),
                "convention": ("theta: 16 axis-angle rotations (48 values, global first), the "
                               "articulation as offsets from hands_mean (flat_hand_mean=False), "
                               "the global rotation in the camera frame, no PCA; beta: 10 shape "
                               "coefficients. Parameters of the right hand the network saw"
                               + (" (in the mirrored image: mirror the pose's y and z "
                                  "components for the left hand)" if left else "")),
                "hand_model": run.checkpoint.get("hand_model"),
            },
            "mesh": {"vertices": int(len(r["vertices"])), "faces": int(len(r["faces"])),
                     "obj": files["obj"].name, "ply": files["ply"].name},
            "overlay": files["overlay"].name if "overlay" in files else None,
            "checkpoint": {"path": run.checkpoint["weights"], "epoch": run.checkpoint.get("epoch"),
                           "trained_on": {"dataset": run.dataset, "data": run.data,
                                          "profile": run.profile}},
        }
        write_json_atomic(files["json"], record)
        log(f"[predict] {path} -> {', '.join(str(p) for p in files.values())}")
        results.append({"files": {k: str(v) for k, v in files.items()}, **record})
    return results
