"""Writers (and readers) for the official submission files of FreiHAND, HO-3D and DexYCB.

Sources: book/datasets_and_metrics.md, sections HO-3D submission and scores, DexYCB, Which root,
which alignment, and Pitfalls (pitfalls 3-6, 19); the toolkits' ``eval.py``, ``pred.py`` and
``hpe_eval.py``. Every writer takes what the network and the MANO layer produce, **in metres, OpenCV camera frame (x right, y down, z forward), FreiHAND
joint order** (F order), and applies each dataset's conversion exactly once:

==========  =====================================  ===========================================
dataset     file                                   conversion applied by the writer
==========  =====================================  ===========================================
FreiHAND    ``pred.json``: ``[xyz_list,            none (metres, camera frame, F order, in
            verts_list]``                          index order of the evaluation split)
HO-3D       ``pred.zip`` holding ``pred.json``     F -> H joint order; y and z negated (OpenGL);
            at its top level (``zip -j``)          vertices keep MANO order; rows in
                                                   ``evaluation.txt`` order, exactly that count
DexYCB      text, one line per sample:             metres -> **mm**; camera frame, F order
            ``index,x0,y0,z0,...,x20,y20,z20``
==========  =====================================  ===========================================

Files are written atomically: into a temporary file in the target folder, then renamed over the
target, so an interrupted run never leaves a half-written submission.

manopth returns millimetres; a writer refuses coordinates above 10 m in magnitude, which catches
a forgotten /1000 (book/datasets_and_metrics.md, pitfall 3).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from handssca.hand.joints import FREIHAND_TO_HO3D, HO3D_TO_FREIHAND, OPENGL_TO_OPENCV
from handssca.utils import atomic_path

__all__ = [
    "FREIHAND_EVAL_SIZE",
    "HO3D_EVAL_SIZE",
    "write_freihand_pred",
    "read_freihand_pred",
    "read_evaluation_list",
    "to_ho3d_submission_frame",
    "write_ho3d_pred",
    "read_ho3d_pred",
    "write_dexycb_results",
    "read_dexycb_results",
]

#: number of samples in the FreiHAND evaluation split (the size its eval.py checks).
FREIHAND_EVAL_SIZE = 3960
#: number of frames in HO-3D's evaluation split, per version (HO-3D ``db_size``).
HO3D_EVAL_SIZE = {"v2": 11524, "v3": 20137}
#: coordinates beyond this many metres are taken for millimetres and refused.
_MAX_ABS_METRES = 10.0
#: name of the JSON file inside the HO-3D zip (at the top level, as ``zip -j`` makes it).
_HO3D_MEMBER = "pred.json"


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------
def _array(x, name: str, n_points: int | None, count: int | None = None) -> np.ndarray:
    """Validate a (S, n_points, 3) array in metres; torch tensors are converted."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3 or (n_points is not None and arr.shape[1] != n_points):
        want = f"(S, {n_points}, 3)" if n_points is not None else "(S, N, 3)"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if count is not None and arr.shape[0] != count:
        raise ValueError(f"{name}: expected {count} samples like the other arrays, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{name}: sample {bad} contains NaN or infinite values")
    if arr.size and np.abs(arr).max() > _MAX_ABS_METRES:
        raise ValueError(
            f"{name}: coordinates up to {np.abs(arr).max():.1f} look like millimetres; the writers take metres "
            "(manopth outputs mm: divide by 1000)"
        )
    return arr


def _rounded(arr: np.ndarray, decimals: int | None) -> np.ndarray:
    return arr if decimals is None else np.round(arr, decimals)


def _atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Run ``write(binary_file)`` on a temporary file next to ``path``, then rename it to ``path``
    (:func:`handssca.utils.atomic_path`: the file gets the umask's permissions; a full disk
    names ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename makes it the submission
    return path


def _dump_pred_json(fh, joints: np.ndarray, verts: np.ndarray) -> None:
    """Write ``[xyz_list, verts_list]`` into a binary file, as the official ``dump`` does.

    Byte-for-byte what ``json.dump([xyz_list, verts_list], fh)`` writes, produced one sample at a
    time with ``json.dumps`` (its C encoder; ``json.dump`` falls back to a pure-Python encoder,
    several times slower on 10^7 numbers).
    """
    for k, arr in enumerate((joints, verts)):
        fh.write(b"[[" if k == 0 else b"], [")
        for i, sample in enumerate(arr):
            if i:
                fh.write(b", ")
            fh.write(json.dumps(sample.tolist()).encode("ascii"))
    fh.write(b"]]")


def _parse_pred_json(data) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(data, list) and len(data) == 2):
        raise ValueError("pred.json: expected a JSON list of two lists [xyz_list, verts_list]")
    xyz = np.asarray(data[0], dtype=np.float64)
    verts = np.asarray(data[1], dtype=np.float64)
    if len(xyz) != len(verts):
        raise ValueError(f"pred.json: {len(xyz)} joint entries but {len(verts)} mesh entries")
    return xyz, verts


# --------------------------------------------------------------------------------------------
# FreiHAND
# --------------------------------------------------------------------------------------------
def write_freihand_pred(
    path: str | os.PathLike,
    joints,
    verts,
    expected_count: int | None = None,
    decimals: int | None = None,
) -> Path:
    """Write a FreiHAND ``pred.json`` (the FreiHAND toolkit's ``eval.py``;
    book/datasets_and_metrics.md,
    sections FreiHAND files and FreiHAND and HO-3D scripts compared).

    The file is ``[xyz_list, verts_list]`` with ``xyz_list[i]`` (21, 3) and ``verts_list[i]``
    (778, 3): metres, camera frame, F order, row i = evaluation sample i. Nothing is converted.

    Args:
        path: the output file (conventionally ``pred.json``).
        joints: (S, 21, 3) joints in metres, camera frame, F order, in sample index order.
        verts: (S, 778, 3) MANO vertices in metres, camera frame.
        expected_count: when given, S must equal it (``FREIHAND_EVAL_SIZE`` = 3,960 for the real
            evaluation split).
        decimals: round to this many decimals of a metre (6 = 1 um roughly halves the file);
            None writes full float precision.

    Returns:
        The path written.
    """
    j = _array(joints, "joints", 21)
    v = _array(verts, "verts", 778, count=j.shape[0])
    if expected_count is not None and j.shape[0] != expected_count:
        raise ValueError(
            f"FreiHAND submission: expected {expected_count} samples (the evaluation split size), got {j.shape[0]}"
        )
    j, v = _rounded(j, decimals), _rounded(v, decimals)
    return _atomic_write(path, lambda fh: _dump_pred_json(fh, j, v))


def read_freihand_pred(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a FreiHAND ``pred.json``: returns (joints (S, 21, 3), verts (S, 778, 3)) as stored."""
    with open(path, encoding="utf-8") as fh:
        return _parse_pred_json(json.load(fh))


# --------------------------------------------------------------------------------------------
# HO-3D
# --------------------------------------------------------------------------------------------
def read_evaluation_list(path: str | os.PathLike) -> list[str]:
    """Read HO-3D's ``evaluation.txt``: one ``SEQ/FID`` per line, in submission order."""
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def to_ho3d_submission_frame(joints, verts) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV camera frame + F order -> HO-3D's OpenGL frame + H order (HO-3D's
    ``eval.py``; book/datasets_and_metrics.md, sections OpenGL and OpenCV frames, HO-3D submission
    and
    scores, Pitfalls).

    Joints are gathered with ``FREIHAND_TO_HO3D`` and both arrays get y and z negated (diag(1, -1,
    -1), its own inverse). Vertices keep the MANO order.

    Args:
        joints: (S, 21, 3) in F order, OpenCV frame.
        verts: (S, V, 3) in the OpenCV frame.

    Returns:
        (joints (S, 21, 3) in H order, verts (S, V, 3)), both in the OpenGL frame.
    """
    flip = np.diag(OPENGL_TO_OPENCV)
    return np.asarray(joints)[:, list(FREIHAND_TO_HO3D)] * flip, np.asarray(verts) * flip


def _check_order(names: Sequence[str], evaluation_list: Sequence[str]) -> None:
    if len(names) != len(evaluation_list):
        raise ValueError(
            f"HO-3D submission: {len(names)} predictions but the evaluation list has {len(evaluation_list)} "
            "entries; the server needs exactly one prediction per evaluation.txt line"
        )
    for i, (got, want) in enumerate(zip(names, evaluation_list)):
        if got != want:
            raise ValueError(
                f"HO-3D submission: prediction {i} is for {got!r} but evaluation.txt line {i + 1} is {want!r}; "
                "rows must follow evaluation.txt order"
            )


def write_ho3d_pred(
    path: str | os.PathLike,
    joints,
    verts,
    names: Sequence[str],
    evaluation_list: str | os.PathLike | Sequence[str],
    wrist=None,
    version: str | None = None,
    decimals: int | None = None,
) -> Path:
    """Write an HO-3D ``pred.zip`` holding ``pred.json`` at its top level (HO-3D's
    ``pred.py``; book/datasets_and_metrics.md, sections HO-3D submission and scores, Pitfalls).

    Steps, each applied once: optionally translate each prediction so its wrist sits on the given
    ground-truth wrist (HandOccNet's step 2; makes the unaligned errors meaningful, pitfall 6);
    F -> H joint order; y and z negated (OpenCV -> OpenGL); check every sample as the template
    ``pred.py`` does (refuse when all joint z or all vertex z are > 0 after the flip: the input was
    not in the OpenCV frame, or was already flipped); write ``[xyz_list, verts_list]`` in
    ``evaluation.txt`` order.

    Args:
        path: the output zip (conventionally ``pred.zip``).
        joints: (S, 21, 3) joints in metres, OpenCV camera frame, F order.
        verts: (S, V, 3) vertices in metres, OpenCV frame, MANO order (V = 778 for mesh scores).
        names: (S,) the ``SEQ/FID`` of each row.
        evaluation_list: the path of ``evaluation.txt`` or its lines; ``names`` must equal it.
        wrist: optional (S, 3) ground-truth wrist positions, metres, OpenCV frame.
        version: "v2" or "v3" to also check the count against the official split size.
        decimals: round to this many decimals of a metre; None keeps full precision.

    Returns:
        The path written.

    Raises:
        ValueError: on a count or order mismatch with the evaluation list or the version's size, a
            sample with every z > 0 after the flip, or malformed arrays.
    """
    if isinstance(evaluation_list, (str, os.PathLike)):
        evaluation_list = read_evaluation_list(evaluation_list)
    evaluation_list = [str(n) for n in evaluation_list]
    if version is not None:
        if version not in HO3D_EVAL_SIZE:
            raise ValueError(f"version: expected one of {sorted(HO3D_EVAL_SIZE)}, got {version!r}")
        if len(evaluation_list) != HO3D_EVAL_SIZE[version]:
            raise ValueError(
                f"HO-3D {version}: the evaluation list has {len(evaluation_list)} entries, "
                f"the official split has {HO3D_EVAL_SIZE[version]}"
            )
    names = [str(n) for n in names]
    j = _array(joints, "joints", 21)
    v = _array(verts, "verts", None, count=j.shape[0])
    if len(names) != j.shape[0]:
        raise ValueError(f"names: expected one name per prediction ({j.shape[0]}), got {len(names)}")
    _check_order(names, evaluation_list)
    if wrist is not None:
        w = np.asarray(wrist, dtype=np.float64)
        if w.shape != (j.shape[0], 3):
            raise ValueError(f"wrist: expected shape ({j.shape[0]}, 3), got {w.shape}")
        shift = (w - j[:, 0])[:, None, :]  # F order: joint 0 is the wrist
        j, v = j + shift, v + shift
    j_gl, v_gl = to_ho3d_submission_frame(j, v)
    for what, arr in (("joints", j_gl), ("verts", v_gl)):
        all_pos = np.all(arr[:, :, 2] > 0, axis=1)
        if np.any(all_pos):
            i = int(np.argmax(all_pos))
            raise ValueError(
                f"HO-3D submission: every {what} z of sample {i} ({names[i]}) is > 0 after the OpenGL flip; "
                "the input must be in the OpenCV frame (z forward), not already flipped"
            )
    j_gl, v_gl = _rounded(j_gl, decimals), _rounded(v_gl, decimals)

    def write(fh):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open(_HO3D_MEMBER, "w", force_zip64=True) as member:
                _dump_pred_json(member, j_gl, v_gl)

    return _atomic_write(path, write)


def read_ho3d_pred(path: str | os.PathLike, to_opencv_freihand: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read an HO-3D ``pred.zip`` (or a bare ``pred.json``).

    Args:
        path: the zip, whose top level must hold ``pred.json``, or the JSON file itself.
        to_opencv_freihand: False returns the file's content (OpenGL frame, H order); True undoes
            the writer's conversion (OpenCV frame, F order).

    Returns:
        (joints (S, 21, 3), verts (S, V, 3)).
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if _HO3D_MEMBER not in zf.namelist():
                raise ValueError(f"{path}: no top-level {_HO3D_MEMBER} in the zip (found {zf.namelist()})")
            with zf.open(_HO3D_MEMBER) as fh:
                joints, verts = _parse_pred_json(json.load(fh))
    else:
        with open(path, encoding="utf-8") as fh:
            joints, verts = _parse_pred_json(json.load(fh))
    if to_opencv_freihand:
        flip = np.diag(OPENGL_TO_OPENCV)
        joints, verts = (joints * flip)[:, list(HO3D_TO_FREIHAND)], verts * flip
    return joints, verts


# --------------------------------------------------------------------------------------------
# DexYCB
# --------------------------------------------------------------------------------------------
def write_dexycb_results(
    path: str | os.PathLike,
    indices: Iterable[int],
    joints,
    expected_indices: Iterable[int] | None = None,
) -> Path:
    """Write a DexYCB toolkit HPE result file (dex-ycb-toolkit ``hpe_eval.py``;
    book/datasets_and_metrics.md, section
    Which root, which alignment).

    One line per sample, 64 comma-separated values: the sample index in the toolkit's dataset
    ordering, then 21 x [x, y, z] in **mm**, camera frame, F order (the toolkit's joint order).
    The metres given here are multiplied by 1000; values are written with full precision.

    Args:
        path: the output text file.
        indices: (S,) the toolkit sample index of each row (non-negative, unique).
        joints: (S, 21, 3) joints in metres, camera frame, F order.
        expected_indices: when given, the set of indices the toolkit's annotation file holds
            (every valid frame of the split); the written set must equal it (the toolkit refuses a
            missing index).

    Returns:
        The path written.
    """
    j = _array(joints, "joints", 21)
    idx = np.asarray(list(indices))
    if idx.ndim != 1 or idx.shape[0] != j.shape[0]:
        raise ValueError(f"indices: expected {j.shape[0]} sample indices (one per row), got shape {idx.shape}")
    if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0):
        raise ValueError("indices: expected non-negative integers (the toolkit's sample indices)")
    uniq, counts = np.unique(idx, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"indices: sample index {int(uniq[counts > 1][0])} appears more than once")
    if expected_indices is not None:
        want = {int(i) for i in expected_indices}
        have = {int(i) for i in idx}
        missing, extra = sorted(want - have), sorted(have - want)
        if missing or extra:
            raise ValueError(
                f"DexYCB results: {len(missing)} expected indices missing (first {missing[:5]}), "
                f"{len(extra)} unexpected (first {extra[:5]})"
            )
    mm = j.reshape(j.shape[0], 63) * 1000.0
    lines = [f"{int(i)}," + ",".join(repr(float(x)) for x in row) + "\n" for i, row in zip(idx, mm)]
    return _atomic_write(path, lambda fh: fh.write("".join(lines).encode("ascii")))


def read_dexycb_results(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a DexYCB result file as the toolkit does: returns (indices (S,), joints (S, 21, 3) in metres)."""
    indices, rows = [], []
    with open(path, encoding="ascii") as fh:
        for n, line in enumerate(fh, start=1):
            elems = line.split(",")
            if len(elems) != 64:
                raise ValueError(f"{path}: line {n} has {len(elems)} comma-separated values, expected 64")
            indices.append(int(elems[0]))
            rows.append(np.array(elems[1:], dtype=np.float64))
    joints = np.asarray(rows, dtype=np.float64).reshape(-1, 21, 3) / 1000.0
    return np.asarray(indices, dtype=np.int64), joints
