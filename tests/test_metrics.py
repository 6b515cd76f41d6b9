"""Official metrics: hand-made cases with known answers and slow, obvious reference implementations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.transform import Rotation

from handssca import metrics as M
from handssca.hand.joints import HO3D_TO_FREIHAND


#: AUC when every error is positive but tiny: all thresholds pass except 0, area h * 98.5 over 99 h
_ALIGNED_AUC = 98.5 / 99


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _hands(rng, s=6, k=21, spread=0.05, depth=0.6):
    """Random non-planar point sets in metres, around a camera depth."""
    return rng.normal(size=(s, k, 3)) * spread + np.array([0.0, 0.0, depth])


def _similar(rng, g):
    """A rotated (det +1), scaled and translated copy of each sample."""
    s = g.shape[0]
    rot = Rotation.random(s, random_state=int(rng.integers(1 << 31))).as_matrix()
    scale = rng.uniform(0.5, 2.0, size=(s, 1, 1))
    shift = rng.normal(size=(s, 1, 3)) * 0.2
    return scale * np.einsum("sij,skj->ski", rot, g) + shift


# ---- slow references ------------------------------------------------------------------------
def _ref_official(gt, pred):
    """align_w_scale for one sample, written out with scipy's orthogonal_procrustes."""
    t1, t2 = gt.mean(0), pred.mean(0)
    a, b = gt - t1, pred - t2
    s1 = np.linalg.norm(a) + 1e-8
    s2 = np.linalg.norm(b) + 1e-8
    r, s = scipy.linalg.orthogonal_procrustes(a / s1, b / s2)
    return (b / s2) @ r.T * s * s1 + t1


def _ref_umeyama(pred, gt):
    """Umeyama with the reflection fix for one sample, plain numpy."""
    n = pred.shape[0]
    mp, mg = pred.mean(0), gt.mean(0)
    h = (pred - mp).T @ (gt - mg) / n
    u, sv, vt = np.linalg.svd(h)
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:
        sv = sv.copy()
        vt = vt.copy()
        sv[-1] = -sv[-1]
        vt[2] = -vt[2]
        r = vt.T @ u.T
    c = sv.sum() / pred.var(axis=0).sum()
    t = mg - c * r @ mp
    return np.array([c * r @ x + t for x in pred])


def _ref_fscore(gt, pred, th):
    """Dense brute-force F-score of one sample, loops over one side."""
    d_gt = np.array([min(math.dist(g, p) for p in pred) for g in gt])
    d_pr = np.array([min(math.dist(p, g) for g in gt) for p in pred])
    rec = float(np.mean(d_pr < th))
    prec = float(np.mean(d_gt < th))
    return 0.0 if rec + prec == 0 else 2 * rec * prec / (rec + prec)


def _dense_fscore(gt, pred, th):
    """The same with a dense numpy distance matrix, for larger sets."""
    d = np.linalg.norm(gt[:, None] - pred[None], axis=-1)
    rec, prec = np.mean(d.min(0) < th), np.mean(d.min(1) < th)
    return 0.0 if rec + prec == 0 else 2 * rec * prec / (rec + prec)


def _ref_auc(errors, thresholds):
    """EvalUtil.get_measures: per keypoint PCK with <=, trapezoid by hand, mean over keypoints."""
    aucs, curves = [], []
    for k in range(errors.shape[1]):
        data = errors[:, k]
        pck = [float(np.mean([1.0 if e <= t else 0.0 for e in data])) for t in thresholds]
        area = sum((thresholds[i + 1] - thresholds[i]) * (pck[i] + pck[i + 1]) / 2 for i in range(len(pck) - 1))
        aucs.append(area / (thresholds[-1] - thresholds[0]))
        curves.append(pck)
    return float(np.mean(aucs)), np.mean(curves, axis=0)


# ---- Procrustes -----------------------------------------------------------------------------
@pytest.mark.parametrize("allow_reflection", [True, False])
def test_similarity_copy_scores_zero_after_alignment(rng, allow_reflection):
    g = _hands(rng)
    p = _similar(rng, g)
    assert M.mpjpe(p, g, root=None) > 10.0
    assert M.pa_mpjpe(p, g, allow_reflection=allow_reflection) < 1e-4
    gv = _hands(rng, s=2, k=778)
    assert M.pa_mpvpe(_similar(rng, gv), gv, allow_reflection=allow_reflection) < 1e-4


def test_mirrored_copy_aligns_only_with_the_official_method(rng):
    g = _hands(rng)
    mirrored = _similar(rng, g) * np.array([-1.0, 1.0, 1.0])
    assert M.pa_mpjpe(mirrored, g, allow_reflection=True) < 1e-4
    assert M.pa_mpjpe(mirrored, g, allow_reflection=False) > 5.0


def test_official_alignment_matches_scipy_per_sample(rng):
    g = _hands(rng)
    p = g + rng.normal(size=g.shape) * 0.01
    p[::2] *= np.array([1.0, -1.0, 1.0])  # some samples need a reflection
    got = M.procrustes_align(p, g)
    want = np.stack([_ref_official(g[i], p[i]) for i in range(len(g))])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(M.procrustes_align(p[0], g[0]), want[0], atol=1e-12)  # single (K, 3)


def test_reflection_blocking_alignment_matches_loop_reference(rng):
    g = _hands(rng)
    p = g + rng.normal(size=g.shape) * 0.01
    p[::2] *= np.array([-1.0, 1.0, 1.0])  # exercise the det R < 0 branch
    got = M.procrustes_align(p, g, allow_reflection=False)
    want = np.stack([_ref_umeyama(p[i], g[i]) for i in range(len(g))])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_both_alignments_agree_without_reflection(rng):
    g = _hands(rng)
    p = _similar(rng, g) + rng.normal(size=g.shape) * 0.003
    a = M.procrustes_align(p, g)
    b = M.procrustes_align(p, g, allow_reflection=False)
    assert np.abs(a - b).max() < 1e-7


def test_torch_tensors_are_accepted(rng):
    torch = pytest.importorskip("torch")
    g = _hands(rng)
    p = g + rng.normal(size=g.shape) * 0.01
    assert M.pa_mpjpe(torch.from_numpy(p).float(), torch.from_numpy(g)) == pytest.approx(
        M.pa_mpjpe(p.astype(np.float32), g), rel=1e-12
    )


def test_collapsed_prediction_lands_on_the_gt_centroid(rng):
    g = _hands(rng, s=2)
    p = np.zeros_like(g)
    for flag in (True, False):
        out = M.procrustes_align(p, g, allow_reflection=flag)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, np.broadcast_to(g.mean(1, keepdims=True), g.shape), atol=1e-12)


# ---- mean errors ----------------------------------------------------------------------------
def test_mpjpe_is_wrist_relative_by_default(rng):
    g = _hands(rng)
    shift = np.array([0.003, -0.004, 0.0])  # 5 mm
    p = g + shift
    assert M.mpjpe(p, g) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(p, g, root=None) == pytest.approx(5.0, rel=1e-9)
    np.testing.assert_allclose(M.mpjpe(p, g, root=None, reduce=False), np.full(len(g), 5.0), rtol=1e-9)


def test_mean_errors_match_loops(rng):
    g = _hands(rng, s=4)
    p = g + rng.normal(size=g.shape) * 0.01
    per_sample = [np.mean([math.dist(p[s, k], g[s, k]) for k in range(21)]) * 1000 for s in range(4)]
    np.testing.assert_allclose(M.mpjpe(p, g, root=None, reduce=False), per_sample, rtol=1e-12)
    assert M.mpvpe(p, g) == pytest.approx(np.mean(per_sample), rel=1e-12)
    rel = [
        np.mean([math.dist(p[s, k] - p[s, 0], g[s, k] - g[s, 0]) for k in range(21)]) * 1000 for s in range(4)
    ]
    assert M.mpjpe(p, g, root=0) == pytest.approx(np.mean(rel), rel=1e-12)
    pa = [np.mean(np.linalg.norm(_ref_official(g[s], p[s]) - g[s], axis=1)) * 1000 for s in range(4)]
    np.testing.assert_allclose(M.pa_mpjpe(p, g, reduce=False), pa, rtol=1e-9)
    np.testing.assert_allclose(M.point_errors(p, g).mean(1), per_sample, rtol=1e-12)


def test_bad_inputs_raise_clear_errors(rng):
    g = _hands(rng)
    with pytest.raises(ValueError, match="same shape"):
        M.mpjpe(g[:, :20], g)
    with pytest.raises(ValueError, match=r"\(S, K, 3\)"):
        M.pa_mpjpe(g[..., :2], g[..., :2])
    bad = g.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.pa_mpjpe(bad, g)
    with pytest.raises(ValueError, match="root"):
        M.mpjpe(g, g, root=21)


# ---- HO-3D scale + translation --------------------------------------------------------------
def test_scale_translation_removes_scale_and_translation(rng):
    g = _hands(rng)
    p = 3.0 * g + np.array([0.1, -0.2, 0.3])
    assert M.sc_tr_mpjpe(p, g) < 1e-9
    assert M.sc_tr_mpjpe(_similar(rng, g), g) > 1.0  # a rotation is not removed


def test_scale_translation_uses_wrist_to_middle_mcp(rng):
    g = _hands(rng, s=3)  # H order
    p = g.copy()
    p[:, 4] = g[:, 0] + 2.0 * (g[:, 4] - g[:, 0])  # bone 0 -> 4 twice as long, the rest exact
    # by hand: factor 1/2 about the wrist, so joint k != 4 lands at G0 + (Gk - G0)/2: error |Gk - G0|/2
    want = np.linalg.norm(g - g[:, :1], axis=-1) / 2
    want[:, 4] = 0.0
    want_pts = g[:, :1] + (g - g[:, :1]) / 2
    want_pts[:, 4] = g[:, 4]
    np.testing.assert_allclose(M.align_scale_translation(p, g), want_pts, atol=1e-12)
    assert M.sc_tr_mpjpe(p, g) == pytest.approx(want.mean() * 1000, rel=1e-12)
    # the same bone is (0, 9) in F order
    pf, gf = p[:, list(HO3D_TO_FREIHAND)], g[:, list(HO3D_TO_FREIHAND)]
    assert M.sc_tr_mpjpe(pf, gf, joint_order="freihand") == pytest.approx(M.sc_tr_mpjpe(p, g), rel=1e-12)
    # the pre-June-2021 bone (index 9 in H order) gives another number
    assert abs(M.sc_tr_mpjpe(p, g, bone=(0, 9)) - M.sc_tr_mpjpe(p, g)) > 1.0


def test_scale_translation_zero_bone_is_not_divided(rng):
    g = _hands(rng, s=2)
    p = np.zeros_like(g)
    out = M.align_scale_translation(p, g)
    np.testing.assert_allclose(out, np.broadcast_to(g[:, :1], g.shape), atol=0)


# ---- F-score --------------------------------------------------------------------------------
def test_fscore_tiny_sets_and_the_strict_boundary():
    gt = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    pred = np.array([[[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [5.0, 0.0, 0.0]]])
    # at 0.5: pred distances 0, 0.5 (not < 0.5), 4 -> recall 1/3; gt distances 0, 1 -> precision 1/2
    assert M.f_score(pred, gt, 0.5, align=False) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    # just above 0.5 the second predicted point counts: recall 2/3
    assert M.f_score(pred, gt, 0.5000001, align=False) == pytest.approx(4 / 7)
    assert M.f_score(pred, gt, 0.25, align=False, reduce=False)[0] == pytest.approx(2 * (1 / 3) * (1 / 2) / (5 / 6))


def test_fscore_zero_and_mean_over_samples():
    gt = np.zeros((2, 3, 3))
    gt[:, 1, 0], gt[:, 2, 1] = 0.1, 0.1
    pred = gt.copy()
    pred[1] += 1.0  # sample 1: every point far away
    assert M.f_score(pred, gt, 0.005, align=False) == pytest.approx(0.5)
    np.testing.assert_allclose(M.f_score(pred, gt, [0.005, 0.015], align=False), [0.5, 0.5])
    np.testing.assert_allclose(M.f_score(pred, gt, 0.005, align=False, reduce=False), [1.0, 0.0])


def test_fscore_aligns_on_vertices_by_default(rng):
    gv = _hands(rng, s=2, k=778)
    pv = _similar(rng, gv)
    assert M.f_score(pv, gv, 0.005) == pytest.approx(1.0)
    assert M.f_score(pv, gv, 0.005, align=False) < 0.5
    with pytest.raises(ValueError, match="metres"):
        M.f_score(pv, gv, 5.0)


def test_fscore_matches_brute_force(rng):
    gv = _hands(rng, s=2, k=120, spread=0.03)
    pv = gv + rng.normal(size=gv.shape) * 0.004
    pv = pv[:, rng.permutation(120)[:100]]  # other count and order: the F-score does not pair points
    for th in (0.005, 0.015):
        want = np.mean([_ref_fscore(gv[s], pv[s], th) for s in range(2)])
        assert M.f_score(pv, gv, th, align=False) == pytest.approx(want, rel=1e-12)
    d_ab, d_ba = M.nearest_neighbour_distances(pv, gv)
    full = np.linalg.norm(pv[:, :, None] - gv[:, None], axis=-1)
    np.testing.assert_allclose(d_ab, full.min(2), atol=1e-15)
    np.testing.assert_allclose(d_ba, full.min(1), atol=1e-15)


# ---- PCK / AUC ------------------------------------------------------------------------------
def test_auc_grid_is_100_points_on_0_to_50_mm(rng):
    g = _hands(rng, s=2)
    res = M.pck_auc(g, g, align=False)
    assert res.thresholds.shape == (100,) and res.pck.shape == (100,)
    assert res.thresholds[0] == 0.0 and res.thresholds[-1] == pytest.approx(50.0)
    np.testing.assert_allclose(np.diff(res.thresholds), 50 / 99)
    assert res.auc == 1.0  # an exactly zero error passes every threshold, 0 included (<=)
    # after an alignment the error is ~1e-9 m, not 0: it fails only the 0 mm threshold, as officially
    assert M.pck_auc(g, g).auc == pytest.approx(_ALIGNED_AUC)


def test_auc_of_a_constant_error_by_hand(rng):
    g = _hands(rng, s=3)
    d = rng.normal(size=g.shape)
    p = g + 0.010 * d / np.linalg.norm(d, axis=-1, keepdims=True)  # every error 10 mm
    auc, thr, pck = M.pck_auc(p, g, align=False)
    # 10 mm lies between grid points 19 and 20 (h = 50/99): PCK is 0 up to 19, 1 from 20 on, so
    # the trapezoid area is h * (0.5 + 79) and the AUC (0.5 + 79) / 99
    assert auc == pytest.approx(79.5 / 99)
    assert pck[19] == 0.0 and pck[20] == 1.0
    far = g + np.array([0.06, 0.0, 0.0])
    assert M.pck_auc(far, g, align=False).auc == 0.0
    half = g.copy()
    half[:, ::2] += np.array([0.0, 0.07, 0.0])  # 11 keypoints far, 10 exact
    assert M.pck_auc(half, g, align=False).auc == pytest.approx(10 / 21)


def test_pck_is_inclusive_at_the_threshold():
    grid = np.linspace(0.0, 0.05, 100)
    k = 37
    g = np.zeros((1, 2, 3))
    p = np.zeros((1, 2, 3))
    p[0, :, 0] = grid[k]  # error exactly the k-th threshold
    _, _, pck = M.pck_auc(p, g, align=False)
    assert pck[k] == 1.0 and pck[k - 1] == 0.0


def test_auc_matches_the_evalutil_loops(rng):
    g = _hands(rng, s=7)
    p = g + rng.normal(size=g.shape) * 0.012
    auc, thr, pck = M.pck_auc(p, g, align=False)
    want_auc, want_pck = _ref_auc(np.linalg.norm(p - g, axis=-1), np.linspace(0.0, 0.05, 100))
    assert auc == pytest.approx(want_auc, rel=1e-12)
    np.testing.assert_allclose(pck, want_pck, rtol=1e-12)
    al = M.procrustes_align(p, g)
    assert M.pck_auc(p, g).auc == pytest.approx(_ref_auc(np.linalg.norm(al - g, axis=-1), np.linspace(0, 0.05, 100))[0])
    rel = M.pck_auc(p, g, align=False, root=0)
    want_rel = _ref_auc(np.linalg.norm((p - p[:, :1]) - (g - g[:, :1]), axis=-1), np.linspace(0, 0.05, 100))[0]
    assert rel.auc == pytest.approx(want_rel, rel=1e-12)
    with pytest.raises(ValueError, match="align"):
        M.pck_auc(p, g, align="rigid")


# ---- whole protocols ------------------------------------------------------------------------
def test_evaluate_translated_copy(rng):
    gj = _hands(rng, s=3)
    gv = _hands(rng, s=3, k=778, spread=0.04)
    shift = np.array([0.0, 0.012, -0.016])  # 20 mm
    r = M.evaluate_mesh_and_joints(gj + shift, gj, gv + shift, gv)
    assert set(r) == set(M.OFFICIAL_SCORE_NAMES)
    assert r["mpjpe"] == pytest.approx(20.0) and r["mpvpe"] == pytest.approx(20.0)
    assert r["mpjpe_auc"] == pytest.approx(M.pck_auc(gj + shift, gj, align=False).auc)
    for key in ("pa_mpjpe", "pa_mpvpe", "sc_tr_mpjpe"):
        assert r[key] < 1e-4
    for key in ("pa_mpjpe_auc", "pa_mpvpe_auc", "sc_tr_mpjpe_auc"):
        assert r[key] >= _ALIGNED_AUC - 1e-12  # every threshold passes except perhaps 0
    for key in ("f5_aligned", "f15_aligned"):
        assert r[key] == pytest.approx(1.0)
    assert r["f5"] < r["f5_aligned"]
    assert r["f15"] == pytest.approx(M.f_score(gv + shift, gv, 0.015, align=False))


def test_evaluate_other_vertex_count_uses_the_keypoint_transform(rng):
    gj = _hands(rng, s=2)
    gv = _hands(rng, s=2, k=778, spread=0.04)
    pj = gj + rng.normal(size=gj.shape) * 0.005
    pv = gv[:, :500] + 0.01
    r = M.evaluate_mesh_and_joints(pj, gj, pv, gv)
    assert all(math.isnan(r[k]) for k in ("mpvpe", "mpvpe_auc", "pa_mpvpe", "pa_mpvpe_auc"))
    # the official align_by_trafo, written out per sample
    want = []
    for s in range(2):
        t1, t2 = gj[s].mean(0), pj[s].mean(0)
        a, b = gj[s] - t1, pj[s] - t2
        s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
        rot, sig = scipy.linalg.orthogonal_procrustes(a / s1, b / s2)
        v = (pv[s] - pv[s].mean(0)) @ rot.T * sig * s1 + (t1 - t2) + pv[s].mean(0)
        want.append(_dense_fscore(gv[s], v, 0.015))
    assert r["f15_aligned"] == pytest.approx(np.mean(want), rel=1e-12)
    joints_only = M.evaluate_mesh_and_joints(pj, gj)
    assert set(joints_only) == {k for k in M.OFFICIAL_SCORE_NAMES if k.startswith(("mpjpe", "pa_mpjpe", "sc_tr"))}


def test_dexycb_left_hands_are_unmirrored(rng):
    gj = _hands(rng, s=4)  # camera-frame joints, samples 1 and 3 are left hands
    is_left = np.array([False, True, False, True])
    mirror = np.where(is_left[:, None, None], np.array([-1.0, 1.0, 1.0]), 1.0)
    rel = (gj - gj[:, :1]) * mirror  # what the network predicts: wrist-relative, left hands mirrored
    pred = rel + rng.normal(size=(4, 1, 3))  # any translation
    r = M.evaluate_joints_dexycb(pred, gj, is_left)
    assert set(r) == {"mpjpe", "pa_mpjpe", "rr_auc", "toolkit_pa_mpjpe", "toolkit_pa_auc"}
    assert r["mpjpe"] < 1e-9 and r["pa_mpjpe"] < 1e-4 and r["toolkit_pa_mpjpe"] < 1e-4
    assert r["rr_auc"] >= _ALIGNED_AUC - 1e-12
    wrong = M.evaluate_joints_dexycb(pred, gj)  # not un-mirrored
    assert wrong["mpjpe"] > 5.0
    assert wrong["pa_mpjpe"] > 5.0  # the reflection-blocking fit cannot undo the mirror
    assert wrong["toolkit_pa_mpjpe"] < 1e-4  # the official fit can
    noisy = pred + rng.normal(size=pred.shape) * 0.004
    r = M.evaluate_joints_dexycb(noisy, gj, is_left)
    placed = M.unmirror_left_hands(noisy, is_left) + gj[:, :1]
    assert r["mpjpe"] == pytest.approx(M.mpjpe(placed, gj), rel=1e-12)
    assert r["pa_mpjpe"] == pytest.approx(M.pa_mpjpe(placed, gj, allow_reflection=False), rel=1e-12)

