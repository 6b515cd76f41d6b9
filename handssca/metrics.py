"""The official hand-pose metrics of FreiHAND, HO-3D and DexYCB, batched
(book/datasets_and_metrics.md, sections Metrics and Pitfalls; the toolkits' ``eval.py`` and
``hpe_eval.py``).

Every function takes a prediction ``pred`` and a ground truth ``gt`` of shape (S, K, 3): S samples
of K points (K = 21 joints or 778 MANO vertices), in **metres**, as numpy arrays or torch tensors
(converted to float64 numpy). A single sample of shape (K, 3) is accepted as S = 1. Errors come
back in **millimetres**; AUC, PCK and F-scores as fractions in [0, 1].

Which protocol each function follows (G = ground truth, P = prediction, e_k = ||G_k - P_k||):

- ``procrustes_align``: FreiHAND/HO-3D/DexYCB ``align_w_scale`` (section 4.2), a similarity fit
  with reflections allowed; or HandOccNet's Umeyama ``rigid_align`` with the reflection fix
  (``allow_reflection=False``).
- ``align_scale_translation``: HO-3D ``align_sc_tr`` (section 4.3): scale by the wrist -> middle
  MCP bone, then put the wrist on the ground-truth wrist.
- ``mpjpe`` / ``mpvpe``: mean of e over points and samples; ``root`` subtracts one joint from both
  sides first (DexYCB toolkit "root-relative", wrist = 0).
- ``pa_mpjpe`` / ``pa_mpvpe``: the same after ``procrustes_align`` fitted on the points themselves.
- ``sc_tr_mpjpe``: the same after ``align_scale_translation`` (HO-3D only).
- ``f_score``: FreiHAND/HO-3D ``calculate_fscore`` (section 4.4): strict ``<``, per sample, mean
  over samples; vertex Procrustes first by default.
- ``pck_auc``: ``EvalUtil.get_measures`` (section 4.1): inclusive ``<=``, 100 thresholds on
  0-50 mm, trapezoid per keypoint divided by 50 mm, mean over keypoints.
- ``evaluate_mesh_and_joints``: every value the FreiHAND/HO-3D servers print (section 2.5).
- ``evaluate_joints_dexycb``: HandOccNet/HandSSCA's DexYCB numbers plus the toolkit's (4.5).

The mean error of the official ``EvalUtil`` is the mean over keypoints of the mean over samples;
with every keypoint visible (as in all three benchmarks) that is the plain mean over all
(sample, point) pairs, which is what is computed here.

Only numpy and scipy are used (torch tensors are accepted and converted): this module never imports
the model or the data loaders.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np
from scipy.integrate import trapezoid
from scipy.spatial import cKDTree

from handssca.hand.joints import FREIHAND_JOINT_NAMES, HO3D_JOINT_NAMES

__all__ = [
    "AUC_MIN_MM",
    "AUC_MAX_MM",
    "AUC_STEPS",
    "F_THRESHOLDS",
    "PCKResult",
    "OFFICIAL_SCORE_NAMES",
    "procrustes_align",
    "align_scale_translation",
    "point_errors",
    "mpjpe",
    "mpvpe",
    "pa_mpjpe",
    "pa_mpvpe",
    "sc_tr_mpjpe",
    "nearest_neighbour_distances",
    "f_score",
    "pck_auc",
    "pck_auc_from_errors",
    "unmirror_left_hands",
    "evaluate_mesh_and_joints",
    "evaluate_joints_dexycb",
]

#: added to both Frobenius norms in the official ``align_w_scale`` (guards a collapsed point set).
_OFFICIAL_EPS = 1e-8
#: the AUC range and grid of all three benchmarks: linspace(0, 50 mm, 100), step 50/99 mm.
AUC_MIN_MM = 0.0
AUC_MAX_MM = 50.0
AUC_STEPS = 100
#: F-score thresholds of FreiHAND and HO-3D, in metres (F@5 mm and F@15 mm).
F_THRESHOLDS = (0.005, 0.015)

#: key of :func:`evaluate_mesh_and_joints` -> name in the official ``scores.txt`` (section 2.5).
#: The official file prints the mean errors in cm; the keys here hold mm (x10).
OFFICIAL_SCORE_NAMES = {
    "mpjpe": "xyz_mean3d",
    "mpjpe_auc": "xyz_auc3d",
    "pa_mpjpe": "xyz_procrustes_al_mean3d",
    "pa_mpjpe_auc": "xyz_procrustes_al_auc3d",
    "sc_tr_mpjpe": "xyz_scale_trans_al_mean3d",
    "sc_tr_mpjpe_auc": "xyz_scale_trans_al_auc3d",
    "mpvpe": "mesh_mean3d",
    "mpvpe_auc": "mesh_auc3d",
    "pa_mpvpe": "mesh_al_mean3d",
    "pa_mpvpe_auc": "mesh_al_auc3d",
    "f5": "f_score_5",
    "f15": "f_score_15",
    "f5_aligned": "f_al_score_5",
    "f15_aligned": "f_al_score_15",
}


class PCKResult(NamedTuple):
    """Result of :func:`pck_auc`; unpacks as ``auc, thresholds, pck = pck_auc(...)``.

    Attributes:
        auc: area under the PCK curve divided by the threshold range, a fraction in [0, 1].
        thresholds: (T,) the thresholds in **mm** (T = 100 on 0-50 mm by default).
        pck: (T,) PCK at each threshold, averaged over keypoints (the official curve).
    """

    auc: float
    thresholds: np.ndarray
    pck: np.ndarray


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _to_numpy(x, name: str) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested list to a float64 numpy array."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array of points, got {type(x).__name__}") from err
    return arr


def _points(x, name: str) -> tuple[np.ndarray, bool]:
    """Validate a point batch: returns ((S, K, 3) float64, True if the input was a single (K, 3))."""
    arr = _to_numpy(x, name)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (S, K, 3) or (K, 3) with K >= 1, got {tuple(np.shape(x))}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr, single


def _pair(pred, gt, pred_name: str = "pred", gt_name: str = "gt") -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate a (prediction, ground truth) pair of equal shape."""
    p, single_p = _points(pred, pred_name)
    g, single_g = _points(gt, gt_name)
    if p.shape != g.shape:
        raise ValueError(
            f"{pred_name} and {gt_name} must have the same shape (S, K, 3), got {p.shape} and {g.shape}"
        )
    return p, g, single_p and single_g


def _joint_index(joint_order: str, name: str) -> int:
    orders = {"ho3d": HO3D_JOINT_NAMES, "freihand": FREIHAND_JOINT_NAMES}
    if joint_order not in orders:
        raise ValueError(f"joint_order: expected 'ho3d' or 'freihand', got {joint_order!r}")
    return orders[joint_order].index(name)


def _reduce(per_point_m: np.ndarray, reduce: bool):
    """(S, K) errors in metres -> mean in mm (float) or per-sample means in mm (S,)."""
    per_sample = per_point_m.mean(axis=1) * 1000.0
    return float(per_sample.mean()) if reduce else per_sample


# --------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------
def _official_parts(pred: np.ndarray, gt: np.ndarray):
    """The pieces of the official ``align_w_scale`` (section 4.2), batched.

    Returns (P'' (S,K,3), R (S,3,3), sigma (S,), s_G (S,), t_G (S,1,3), t_P (S,1,3), s_P (S,)) with
    P_al = P'' R^T sigma s_G + t_G.
    """
    t_g = gt.mean(axis=1, keepdims=True)
    t_p = pred.mean(axis=1, keepdims=True)
    g0 = gt - t_g
    p0 = pred - t_p
    s_g = np.linalg.norm(g0, axis=(1, 2)) + _OFFICIAL_EPS
    s_p = np.linalg.norm(p0, axis=(1, 2)) + _OFFICIAL_EPS
    gn = g0 / s_g[:, None, None]
    pn = p0 / s_p[:, None, None]
    # scipy.linalg.orthogonal_procrustes(G'', P''): SVD of G''^T P'' = U W V^T, R = U V^T, sigma = sum W.
    u, w, vt = np.linalg.svd(np.swapaxes(gn, 1, 2) @ pn)
    rot = u @ vt
    sigma = w.sum(axis=-1)
    return pn, rot, sigma, s_g, t_g, t_p, s_p


def _umeyama(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """HandOccNet's ``rigid_align`` (Umeyama with the reflection fix, section 4.2), batched."""
    n = pred.shape[1]
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_g = gt.mean(axis=1, keepdims=True)
    h = np.swapaxes(pred - mu_p, 1, 2) @ (gt - mu_g) / n  # (S, 3, 3)
    u, s, vt = np.linalg.svd(h)
    rot = np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)  # R = V U^T
    # A reflection (det R < 0): negate the last singular value and the last row of V^T, refit R.
    flip = np.where(np.linalg.det(rot) < 0, -1.0, 1.0)
    sign = np.ones_like(s)
    sign[:, -1] = flip
    s = s * sign
    vt = vt * sign[:, :, None]
    rot = np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)
    var_p = pred.var(axis=1).sum(axis=-1)  # population variance summed over x, y, z
    # Departure from HandOccNet (which divides by zero here): a prediction collapsed to one point
    # gets scale 0, so it lands on the ground-truth centroid, as the official method does.
    scale = np.divide(s.sum(axis=-1), var_p, out=np.zeros_like(var_p), where=var_p > 0)
    trans = mu_g - scale[:, None, None] * (mu_p @ np.swapaxes(rot, 1, 2))
    return scale[:, None, None] * (pred @ np.swapaxes(rot, 1, 2)) + trans


def procrustes_align(pred, gt, allow_reflection: bool = True) -> np.ndarray:
    """Similarity-align each predicted point set onto its ground truth
    (book/datasets_and_metrics.md,
    section Procrustes alignment; FreiHAND ``eval.py``, ``align_w_scale``).

    ``allow_reflection=True`` is the official ``align_w_scale`` of FreiHAND, HO-3D and the DexYCB
    toolkit: centre both sets, divide each by its Frobenius norm (+1e-8), solve the orthogonal
    Procrustes problem min_R ||G'' R - P''|| (R orthogonal, det R = -1 allowed), and map
    P_al = P'' R^T sigma s_G + t_G with sigma the sum of the singular values of G''^T P''.

    ``allow_reflection=False`` is HandOccNet's ``rigid_align`` (Umeyama): R = V U^T from the SVD of
    the cross-covariance, with the last singular direction negated when det R < 0, scale
    c = sum(S) / sum(Var P), t = mu_G - c R mu_P. HandOccNet and HandSSCA report DexYCB PA-MPJPE
    with it. Without a reflection the two agree to about 1e-8.

    Args:
        pred: (S, K, 3) predicted points P (or a single (K, 3)).
        gt: (S, K, 3) ground-truth points G.
        allow_reflection: True for the official method, False for the reflection-blocking one.

    Returns:
        (S, K, 3) aligned predictions, in the shape of the input.
    """
    p, g, single = _pair(pred, gt)
    if allow_reflection:
        pn, rot, sigma, s_g, t_g, _, _ = _official_parts(p, g)
        out = (pn @ np.swapaxes(rot, 1, 2)) * (sigma * s_g)[:, None, None] + t_g
    else:
        out = _umeyama(p, g)
    return out[0] if single else out


def _apply_keypoint_transform(verts: np.ndarray, kp_pred: np.ndarray, kp_gt: np.ndarray) -> np.ndarray:
    """The official ``align_by_trafo`` with the keypoint fit of ``align_w_scale(..., return_trafo=True)``.

    Used only when the submitted mesh has another vertex count than the ground truth (section
    2.5). Reproduced as the official scripts do it, quirk included: the vertices are centred on
    their own mean, rotated and scaled by sigma * s_G **without** dividing by the keypoints' s_P,
    then shifted by t_G - t_P + (vertex mean). It is therefore not the keypoint similarity
    transform applied to the mesh; it matches what the servers compute.
    """
    _, rot, sigma, s_g, t_g, t_p, _ = _official_parts(kp_pred, kp_gt)
    mean_v = verts.mean(axis=1, keepdims=True)
    return ((verts - mean_v) @ np.swapaxes(rot, 1, 2)) * (sigma * s_g)[:, None, None] + (t_g - t_p) + mean_v


def align_scale_translation(pred, gt, joint_order: str = "ho3d", bone: tuple[int, int] | None = None) -> np.ndarray:
    """HO-3D's scale + translation alignment ``align_sc_tr`` (HO-3D ``eval.py``;
    book/datasets_and_metrics.md,
    section Scale-translation alignment), batched.

    1. Scale P so that the bone ||P[b1] - P[b0]|| equals ||G[b1] - G[b0]|| (a prediction whose bone
       has zero length is left unscaled before the multiplication by the ground-truth length, as
       the official script does).
    2. Translate so that P[0] = G[0] (the wrist).

    The bone is wrist -> middle MCP: index (0, 4) in HO-3D order (the official script since commit
    6bce77f, 2021-06-30), which is (0, 9) in FreiHAND order. Before that commit the HO-3D script
    used index 9 in HO-3D order, i.e. wrist -> pinky P3; ``joint_order="ho3d", bone=(0, 9)``
    reproduces those older numbers.

    Args:
        pred: (S, 21, 3) predicted joints.
        gt: (S, 21, 3) ground-truth joints, same order.
        joint_order: "ho3d" or "freihand", the order of both arrays (picks the default bone).
        bone: explicit (b0, b1) joint indices, overriding the default.

    Returns:
        (S, 21, 3) aligned predictions, in the shape of the input.
    """
    p, g, single = _pair(pred, gt)
    if bone is None:
        bone = (_joint_index(joint_order, "W"), _joint_index(joint_order, "M1"))
    else:
        _joint_index(joint_order, "W")  # validates joint_order
    b0, b1 = (int(b) for b in bone)
    k = p.shape[1]
    if not (0 <= b0 < k and 0 <= b1 < k) or b0 == b1:
        raise ValueError(f"bone: expected two different joint indices in [0, {k}), got {bone}")
    s_p = np.linalg.norm(p[:, b1] - p[:, b0], axis=-1)
    s_g = np.linalg.norm(g[:, b1] - g[:, b0], axis=-1)
    factor = np.where(s_p > 0, s_g / np.where(s_p > 0, s_p, 1.0), s_g)
    scaled = p * factor[:, None, None]
    out = scaled - scaled[:, :1] + g[:, :1]
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# mean errors
# --------------------------------------------------------------------------------------------
def point_errors(pred, gt) -> np.ndarray:
    """Euclidean error of every point, e = ||G - P||, in mm.

    Args:
        pred, gt: (S, K, 3) in metres.

    Returns:
        (S, K) errors in mm.
    """
    p, g, _ = _pair(pred, gt)
    return np.linalg.norm(p - g, axis=-1) * 1000.0


def mpjpe(pred, gt, root: int | None = 0, reduce: bool = True):
    """Mean per-joint position error in mm (book/datasets_and_metrics.md, section Which root,
    which alignment).

    With ``root=0`` (the default) joint 0, the wrist in both F and H order, is subtracted from the
    prediction and the ground truth first: the DexYCB toolkit's "root-relative" MPJPE, which is also
    HandOccNet/HandSSCA's DexYCB "MPJPE". ``root=None`` gives the absolute error (the FreiHAND/HO-3D
    servers' ``xyz_mean3d``, DexYCB "absolute").

    Args:
        pred, gt: (S, K, 3) joints in metres.
        root: the joint subtracted from both sides, or None.
        reduce: True for the mean over samples (float), False for per-sample means (S,).

    Returns:
        MPJPE in mm: a float, or (S,) per-sample values.
    """
    p, g, _ = _pair(pred, gt)
    if root is not None:
        if not 0 <= int(root) < p.shape[1]:
            raise ValueError(f"root: expected a joint index in [0, {p.shape[1]}), got {root}")
        p = p - p[:, int(root) : int(root) + 1]
        g = g - g[:, int(root) : int(root) + 1]
    return _reduce(np.linalg.norm(p - g, axis=-1), reduce)


def mpvpe(pred_verts, gt_verts, reduce: bool = True):
    """Mean per-vertex position error in mm, without alignment (the servers' ``mesh_mean3d``).

    Args:
        pred_verts, gt_verts: (S, V, 3) vertices in metres (V = 778 for MANO).
        reduce: True for the mean (float), False for per-sample means (S,).
    """
    p, g, _ = _pair(pred_verts, gt_verts, "pred_verts", "gt_verts")
    return _reduce(np.linalg.norm(p - g, axis=-1), reduce)


def pa_mpjpe(pred, gt, allow_reflection: bool = True, reduce: bool = True):
    """Procrustes-aligned MPJPE in mm (book/datasets_and_metrics.md, section Procrustes
    alignment).

    The alignment is fitted per sample on the joints themselves. ``allow_reflection=True`` is the
    official ``xyz_procrustes_al_mean3d`` (FreiHAND, HO-3D, DexYCB toolkit "procrustes");
    ``allow_reflection=False`` is HandOccNet/HandSSCA's DexYCB PA-MPJPE.

    Args:
        pred, gt: (S, K, 3) joints in metres.
        allow_reflection: see :func:`procrustes_align`.
        reduce: True for the mean (float), False for per-sample means (S,).
    """
    p, g, _ = _pair(pred, gt)
    aligned = procrustes_align(p, g, allow_reflection=allow_reflection)
    return _reduce(np.linalg.norm(aligned - g, axis=-1), reduce)


def pa_mpvpe(pred_verts, gt_verts, allow_reflection: bool = True, reduce: bool = True):
    """Procrustes-aligned MPVPE in mm: the fit uses the vertices themselves (``mesh_al_mean3d``).

    Args:
        pred_verts, gt_verts: (S, V, 3) vertices in metres.
        allow_reflection: see :func:`procrustes_align`.
        reduce: True for the mean (float), False for per-sample means (S,).
    """
    p, g, _ = _pair(pred_verts, gt_verts, "pred_verts", "gt_verts")
    aligned = procrustes_align(p, g, allow_reflection=allow_reflection)
    return _reduce(np.linalg.norm(aligned - g, axis=-1), reduce)


def sc_tr_mpjpe(pred, gt, joint_order: str = "ho3d", bone: tuple[int, int] | None = None, reduce: bool = True):
    """HO-3D's scale-translation-aligned MPJPE in mm (``xyz_scale_trans_al_mean3d``, section 4.3).

    Args:
        pred, gt: (S, 21, 3) joints in metres, in ``joint_order``.
        joint_order, bone: see :func:`align_scale_translation`.
        reduce: True for the mean (float), False for per-sample means (S,).
    """
    p, g, _ = _pair(pred, gt)
    aligned = align_scale_translation(p, g, joint_order=joint_order, bone=bone)
    return _reduce(np.linalg.norm(aligned - g, axis=-1), reduce)


# --------------------------------------------------------------------------------------------
# F-score
# --------------------------------------------------------------------------------------------
def nearest_neighbour_distances(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Distance from every point of one set to its nearest point in the other, per sample.

    Exact nearest neighbours with scipy's k-d tree, one tree per sample and side; the distance is
    sqrt(sum of squared differences), the same arithmetic as the official dense numpy code, so a
    distance equal to a threshold compares as there. (A k-d tree was measured about 4x faster than
    a brute-force torch.cdist on 778 x 778 sets on 2 CPU cores.)

    Args:
        a: (S, N, 3) points.
        b: (S, M, 3) points.

    Returns:
        (d_ab (S, N), d_ba (S, M)): d_ab[s, i] = min_j ||a[s, i] - b[s, j]||, and the reverse.
    """
    pa, _ = _points(a, "a")
    pb, _ = _points(b, "b")
    if pa.shape[0] != pb.shape[0]:
        raise ValueError(f"a and b must hold the same number of samples S, got {pa.shape[0]} and {pb.shape[0]}")
    d_ab = np.empty(pa.shape[:2])
    d_ba = np.empty(pb.shape[:2])
    for i in range(pa.shape[0]):
        d_ab[i] = cKDTree(pb[i]).query(pa[i])[0]
        d_ba[i] = cKDTree(pa[i]).query(pb[i])[0]
    return d_ab, d_ba


def _f_from_distances(d_pred: np.ndarray, d_gt: np.ndarray, threshold: float) -> np.ndarray:
    """Per-sample F-score from the two nearest-neighbour distance sets (strict <)."""
    # Named as in the official code ("recall" counts predicted points); F is symmetric anyway.
    recall = (d_pred < threshold).mean(axis=1)
    precision = (d_gt < threshold).mean(axis=1)
    denom = recall + precision
    return np.divide(2.0 * recall * precision, denom, out=np.zeros_like(denom), where=denom > 0)


def _thresholds(threshold) -> tuple[np.ndarray, bool]:
    arr = np.asarray(threshold, dtype=np.float64)
    scalar = arr.ndim == 0
    arr = np.atleast_1d(arr)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"threshold: expected a positive distance in metres or a list of them, got {threshold!r}")
    if np.any(arr > 1.0):
        raise ValueError(f"threshold: {threshold!r} looks like millimetres; give metres (e.g. 0.005 for F@5)")
    return arr, scalar


def f_score(pred_verts, gt_verts, threshold, align: bool = True, allow_reflection: bool = True, reduce: bool = True):
    """F-score at a distance threshold (FreiHAND/HO-3D ``calculate_fscore``;
    book/datasets_and_metrics.md, section F-score).

    Per sample: "recall" = fraction of predicted points whose nearest ground-truth point is closer
    than ``threshold`` (strict <), "precision" = the same from the ground-truth side,
    F = 2 rec prec / (rec + prec) (0 if both are 0). The result is the mean of the per-sample F.

    ``align=True`` (default) first replaces the prediction by its vertex-Procrustes-aligned copy
    (the transform fitted on the vertices themselves): the ``f_al_score_*`` values the papers
    report. ``align=False`` is the unaligned ``f_score_*`` of the servers.

    Args:
        pred_verts: (S, V, 3) predicted vertices in metres.
        gt_verts: (S, V', 3) ground-truth vertices in metres (V' = V when ``align``).
        threshold: a distance in **metres** (0.005 for F@5, 0.015 for F@15), or a sequence of them.
        align: vertex Procrustes before the test (see above).
        allow_reflection: passed to :func:`procrustes_align`.
        reduce: True for the mean over samples, False for per-sample values.

    Returns:
        A fraction: float for one threshold, (T,) for T thresholds; with ``reduce=False`` (S,) or
        (T, S).
    """
    thr, scalar = _thresholds(threshold)
    p, _ = _points(pred_verts, "pred_verts")
    g, _ = _points(gt_verts, "gt_verts")
    if p.shape[0] != g.shape[0]:
        raise ValueError(
            f"pred_verts and gt_verts must hold the same number of samples, got {p.shape[0]} and {g.shape[0]}"
        )
    if align:
        if p.shape != g.shape:
            raise ValueError(
                f"f_score(align=True) needs the same vertex count on both sides, got {p.shape} and {g.shape}; "
                "pass align=False for an unaligned score"
            )
        p = procrustes_align(p, g, allow_reflection=allow_reflection)
    d_pred, d_gt = nearest_neighbour_distances(p, g)
    per_sample = np.stack([_f_from_distances(d_pred, d_gt, t) for t in thr])  # (T, S)
    out = per_sample.mean(axis=1) if reduce else per_sample
    return (float(out[0]) if reduce else out[0]) if scalar else out


# --------------------------------------------------------------------------------------------
# PCK / AUC
# --------------------------------------------------------------------------------------------
def pck_auc_from_errors(errors, thresholds) -> tuple[float, np.ndarray]:
    """AUC and mean PCK curve from per-point errors (the official ``EvalUtil``, section 4.1).

    For each keypoint k: PCK_k(t) = fraction of samples with e <= t (inclusive), AUC_k = the
    trapezoid integral of PCK_k over ``thresholds`` divided by that of 1. The AUC is the mean of
    AUC_k over keypoints, the curve the mean of PCK_k.

    Args:
        errors: (S, K) errors, in the unit of ``thresholds``.
        thresholds: (T,) increasing thresholds, T >= 2.

    Returns:
        (auc, pck (T,)).
    """
    e = np.asarray(errors, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"errors: expected shape (S, K) with S >= 1, got {e.shape}")
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds: expected an increasing 1-D array of at least 2 values, got shape {t.shape}")
    pck_k = (e[None, :, :] <= t[:, None, None]).mean(axis=1)  # (T, K)
    auc_k = trapezoid(pck_k, t, axis=0) / trapezoid(np.ones_like(t), t)
    return float(auc_k.mean()), pck_k.mean(axis=1)


def _auc_grid_m(t_min_mm: float, t_max_mm: float, steps: int) -> np.ndarray:
    if not (t_max_mm > t_min_mm >= 0) or steps < 2:
        raise ValueError(f"expected 0 <= t_min_mm < t_max_mm and steps >= 2, got {t_min_mm}, {t_max_mm}, {steps}")
    # The grid is built in metres, as the FreiHAND/HO-3D scripts do, so that an error equal to a
    # threshold compares exactly as there.
    return np.linspace(t_min_mm / 1000.0, t_max_mm / 1000.0, steps)


def pck_auc(
    pred,
    gt,
    align: bool | str = True,
    root: int | None = None,
    allow_reflection: bool = True,
    joint_order: str = "ho3d",
    t_min_mm: float = AUC_MIN_MM,
    t_max_mm: float = AUC_MAX_MM,
    steps: int = AUC_STEPS,
) -> PCKResult:
    """PCK curve and its AUC over 0-50 mm (``EvalUtil`` of the toolkits' ``utils/eval_util.py``;
    book/datasets_and_metrics.md, section Mean errors, PCK and AUC, and pitfall 18).

    Thresholds are ``linspace(0, 50 mm, 100)`` (step 50/99 mm, built in metres as the FreiHAND and
    HO-3D scripts do); PCK is inclusive (e <= t); the AUC is integrated per keypoint with the
    trapezoid rule, divided by the range, then averaged over keypoints.

    Args:
        pred, gt: (S, K, 3) points in metres (joints or vertices).
        align: True or "procrustes" (official similarity fit, the ``*_procrustes_al_auc3d`` values),
            "scale_translation" (HO-3D ``align_sc_tr``), False or "none" (no alignment).
        root: with no alignment, a joint subtracted from both sides first (DexYCB root-relative:
            0); must be None with an alignment.
        allow_reflection: for the Procrustes fit, see :func:`procrustes_align`.
        joint_order: for "scale_translation", see :func:`align_scale_translation`.
        t_min_mm, t_max_mm, steps: the threshold grid.

    Returns:
        :class:`PCKResult` (auc, thresholds in mm (T,), pck (T,)).
    """
    p, g, _ = _pair(pred, gt)
    if isinstance(align, str):
        mode = align
    else:
        mode = "procrustes" if align else "none"
    if mode not in ("procrustes", "scale_translation", "none"):
        raise ValueError(f"align: expected True/'procrustes', 'scale_translation' or False/'none', got {align!r}")
    if root is not None and mode != "none":
        raise ValueError("root: only meaningful without alignment (align=False); the alignments fix the position")
    if mode == "procrustes":
        p = procrustes_align(p, g, allow_reflection=allow_reflection)
    elif mode == "scale_translation":
        p = align_scale_translation(p, g, joint_order=joint_order)
    elif root is not None:
        if not 0 <= int(root) < p.shape[1]:
            raise ValueError(f"root: expected a joint index in [0, {p.shape[1]}), got {root}")
        p = p - p[:, int(root) : int(root) + 1]
        g = g - g[:, int(root) : int(root) + 1]
    grid = _auc_grid_m(t_min_mm, t_max_mm, steps)
    auc, curve = pck_auc_from_errors(np.linalg.norm(p - g, axis=-1), grid)
    return PCKResult(auc, grid * 1000.0, curve)


# --------------------------------------------------------------------------------------------
# whole protocols
# --------------------------------------------------------------------------------------------
def _mean_and_auc(pred_m: np.ndarray, gt_m: np.ndarray) -> tuple[float, float]:
    """Official (mean error in mm, AUC over 0-50 mm) of already aligned points in metres."""
    err = np.linalg.norm(pred_m - gt_m, axis=-1)
    auc, _ = pck_auc_from_errors(err, _auc_grid_m(AUC_MIN_MM, AUC_MAX_MM, AUC_STEPS))
    return float(err.mean() * 1000.0), auc


def evaluate_mesh_and_joints(
    pred_joints,
    gt_joints,
    pred_verts=None,
    gt_verts=None,
    joint_order: str = "freihand",
    f_thresholds: Sequence[float] = F_THRESHOLDS,
) -> dict[str, float]:
    """Every value the FreiHAND and HO-3D evaluation scripts print (their ``eval.py``;
    book/datasets_and_metrics.md, sections HO-3D submission and scores, Metrics, Pitfalls).

    Protocol of each key (mm for errors, fractions for AUC and F; ``OFFICIAL_SCORE_NAMES`` maps
    the keys to the servers' names, which print cm):

    - ``mpjpe``, ``mpjpe_auc``: absolute camera-space joints, no alignment (``xyz_mean3d``). Only
      meaningful when the prediction carries a real root (HO-3D: translated onto the given wrist).
    - ``pa_mpjpe``, ``pa_mpjpe_auc``: official ``align_w_scale`` on the joints (PA-MPJPE).
    - ``sc_tr_mpjpe``, ``sc_tr_mpjpe_auc``: HO-3D ``align_sc_tr``, wrist -> middle MCP bone.
    - ``mpvpe``, ``mpvpe_auc``: absolute vertices, no alignment (``mesh_mean3d``).
    - ``pa_mpvpe``, ``pa_mpvpe_auc``: ``align_w_scale`` fitted on the vertices (PA-MPVPE).
    - ``f5``, ``f15``: unaligned F-scores at 5 and 15 mm (strict <, per-sample mean).
    - ``f5_aligned``, ``f15_aligned``: after the vertex Procrustes fit: the F@5/F@15 of the papers.

    As in the official scripts, when the predicted mesh has another vertex count than the ground
    truth the four mesh errors are NaN (the scripts write -1) and the aligned F-scores use the
    transform fitted on the keypoints (``align_by_trafo``, quirk included, see
    ``_apply_keypoint_transform``). Without meshes only the joint keys are returned.

    Args:
        pred_joints, gt_joints: (S, 21, 3) joints in metres, camera frame, both in ``joint_order``.
        pred_verts, gt_verts: (S, 778, 3) MANO vertices in metres, or both None.
        joint_order: "freihand" or "ho3d"; only the scale-translation bone depends on it.
        f_thresholds: F-score thresholds in metres; keys are named f<mm> (default 5 and 15 mm).

    Returns:
        dict of floats.
    """
    pj, gj, _ = _pair(pred_joints, gt_joints, "pred_joints", "gt_joints")
    out: dict[str, float] = {}
    out["mpjpe"], out["mpjpe_auc"] = _mean_and_auc(pj, gj)
    out["pa_mpjpe"], out["pa_mpjpe_auc"] = _mean_and_auc(procrustes_align(pj, gj), gj)
    out["sc_tr_mpjpe"], out["sc_tr_mpjpe_auc"] = _mean_and_auc(
        align_scale_translation(pj, gj, joint_order=joint_order), gj
    )
    if pred_verts is None and gt_verts is None:
        return out
    if pred_verts is None or gt_verts is None:
        raise ValueError("pred_verts and gt_verts: give both meshes or neither")
    pv, _ = _points(pred_verts, "pred_verts")
    gv, _ = _points(gt_verts, "gt_verts")
    if pv.shape[0] != pj.shape[0] or gv.shape[0] != pj.shape[0]:
        raise ValueError(
            f"pred_verts/gt_verts: expected {pj.shape[0]} samples like the joints, got {pv.shape[0]} and {gv.shape[0]}"
        )
    nan = float("nan")
    if pv.shape[1] == gv.shape[1]:
        pv_al = procrustes_align(pv, gv)
        out["mpvpe"], out["mpvpe_auc"] = _mean_and_auc(pv, gv)
        out["pa_mpvpe"], out["pa_mpvpe_auc"] = _mean_and_auc(pv_al, gv)
    else:
        pv_al = _apply_keypoint_transform(pv, pj, gj)
        out.update(mpvpe=nan, mpvpe_auc=nan, pa_mpvpe=nan, pa_mpvpe_auc=nan)
    thr, _ = _thresholds(list(f_thresholds))
    for name, cand in (("", pv), ("_aligned", pv_al)):
        d_pred, d_gt = nearest_neighbour_distances(cand, gv)
        for t in thr:
            out[f"f{t * 1000:g}{name}"] = float(_f_from_distances(d_pred, d_gt, t).mean())
    return out


def unmirror_left_hands(pred_joints, is_left=None, root: int = 0) -> np.ndarray:
    """HandOccNet/HandSSCA's DexYCB test-time un-mirroring (HandOccNet's
    ``DEX_YCB.evaluate``; book/datasets_and_metrics.md, sections DexYCB in HandOccNet and
    HandSSCA, Which
    root, which alignment).

    Left hands are mirrored into right hands for the network; at test time the prediction is
    centred on its wrist and, for a left hand, x is negated to map it back.

    Args:
        pred_joints: (S, 21, 3) predicted joints in metres.
        is_left: (S,) booleans, True where the sample is a left hand; None = all right hands.
        root: the centring joint (0 = wrist).

    Returns:
        (S, 21, 3) wrist-centred predictions, un-mirrored where left.
    """
    p, _ = _points(pred_joints, "pred_joints")
    if not 0 <= int(root) < p.shape[1]:
        raise ValueError(f"root: expected a joint index in [0, {p.shape[1]}), got {root}")
    root = int(root)
    rel = p - p[:, root : root + 1]
    if is_left is None:
        return rel
    left = np.asarray(is_left, dtype=bool).reshape(-1)
    if left.shape[0] != rel.shape[0]:
        raise ValueError(f"is_left: expected {rel.shape[0]} flags (one per sample), got {left.shape[0]}")
    rel[left, :, 0] *= -1.0
    return rel


def evaluate_joints_dexycb(pred_joints, gt_joints, is_left: Iterable[bool] | None = None) -> dict[str, float]:
    """DexYCB joint metrics as HandOccNet/HandSSCA report them, plus the toolkit's (section 4.5).

    The prediction is first un-mirrored and put on the ground-truth wrist
    (:func:`unmirror_left_hands`, then + G[0]); all keys below use that prediction.

    - ``mpjpe``: wrist-relative MPJPE in mm, the papers' DexYCB "MPJPE" (equal to the toolkit's
      "root-relative" value).
    - ``pa_mpjpe``: PA-MPJPE in mm with the reflection-blocking Umeyama fit, as HandOccNet and
      HandSSCA compute it.
    - ``rr_auc``: the toolkit's root-relative AUC (0-50 mm, 100 steps, in mm as the toolkit does).
    - ``toolkit_pa_mpjpe``, ``toolkit_pa_auc``: the toolkit's "procrustes" row (official
      ``align_w_scale``, reflections allowed, fitted in mm as the toolkit does).

    The toolkit's "absolute" row needs an absolute prediction and is not computed: the network
    predicts wrist-relative joints, whose absolute error after this placement equals ``mpjpe``.

    Args:
        pred_joints: (S, 21, 3) predicted joints in metres, F order (mirrored for left hands).
        gt_joints: (S, 21, 3) ground-truth joints in metres, camera frame, F order.
        is_left: (S,) True for left-hand samples; None = all right.

    Returns:
        dict of floats.
    """
    pj, gj, _ = _pair(pred_joints, gt_joints, "pred_joints", "gt_joints")
    placed = unmirror_left_hands(pj, is_left) + gj[:, :1]
    out: dict[str, float] = {}
    err = np.linalg.norm(placed - gj, axis=-1)  # equals the root-relative error (the wrist is 0)
    out["mpjpe"] = float(err.mean() * 1000.0)
    out["pa_mpjpe"] = pa_mpjpe(placed, gj, allow_reflection=False)
    grid_mm = np.linspace(AUC_MIN_MM, AUC_MAX_MM, AUC_STEPS)
    rel_p = (placed - placed[:, :1]) * 1000.0
    rel_g = (gj - gj[:, :1]) * 1000.0
    out["rr_auc"], _ = pck_auc_from_errors(np.linalg.norm(rel_p - rel_g, axis=-1), grid_mm)
    pa_mm = procrustes_align(placed * 1000.0, gj * 1000.0)
    err_pa = np.linalg.norm(pa_mm - gj * 1000.0, axis=-1)
    out["toolkit_pa_mpjpe"] = float(err_pa.mean())
    out["toolkit_pa_auc"], _ = pck_auc_from_errors(err_pa, grid_mm)
    return out
