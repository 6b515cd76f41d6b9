"""FreiHAND's unaligned AUC as its official script computes it: the ground truth read as Python's
``json`` reads it (float64), so that the wrist the predictions are put on is the ground truth's to
the last bit (book/datasets_and_metrics.md, sections FreiHAND and
Mean errors, PCK and AUC)."""
import json

import numpy as np
import pytest

from handssca.data import FreiHAND
from handssca.data.synth import generate
from handssca.engine.datasets import DataSource
from handssca.engine.evaluation import ground_truth
from handssca.metrics import evaluate_mesh_and_joints
from handssca.submit import read_freihand_pred


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("fh-auc") / "FreiHAND_pub_v2"
    generate("freihand", out, 2, seed=11, n_eval=6, show_progress=False)
    return out


def _official_auc(gt: np.ndarray, pred: np.ndarray) -> float:
    """The scripts' EvalUtil, written from book/datasets_and_metrics.md, section Mean errors, PCK
    and AUC: per keypoint, PCK(t) = share of
    samples with error <= t over t = linspace(0, 0.05, 100) m, its trapezoid integral divided by
    that of 1, then the mean over keypoints."""
    t = np.linspace(0.0, 0.05, 100)
    err = np.linalg.norm(pred - gt, axis=-1)                      # (S, K)
    aucs = []
    for k in range(err.shape[1]):
        pck = np.array([np.mean(err[:, k] <= x) for x in t])
        aucs.append(np.trapezoid(pck, t) / np.trapezoid(np.ones_like(t), t))
    return float(np.mean(aucs))


def test_unaligned_auc_matches_the_official_reading(root, tmp_path):
    ds = FreiHAND(root, "test")
    n = len(ds)
    gt_j = np.asarray(json.loads((root / "evaluation_xyz.json").read_text()))     # float64, as eval.py
    gt_v = np.asarray(json.loads((root / "evaluation_verts.json").read_text()))
    rng = np.random.default_rng(0)
    joints = gt_j - gt_j[:, :1] + rng.normal(0, 0.004, gt_j.shape)                # root-relative + noise
    verts = gt_v - gt_j[:, :1] + rng.normal(0, 0.004, gt_v.shape)
    joints -= joints[:, :1]
    path = ds.write_submission(tmp_path / "pred.json", np.arange(n), joints, verts)
    pred_j, pred_v = read_freihand_pred(path)
    # the predicted wrist is the ground truth's wrist exactly: 0 error, which the 0 mm threshold counts
    assert np.array_equal(pred_j[:, 0], gt_j[:, 0])
    official = _official_auc(gt_j, pred_j)
    # the engine's ground truth for the split is the JSON read in float64, row for row
    res = {"index": np.arange(n), "has_3d": np.ones(n, bool)}
    gt = ground_truth(DataSource("freihand", root, "synthetic"), res, ds)
    assert gt["joints"].dtype == np.float64
    assert np.array_equal(gt["joints"], gt_j) and np.array_equal(gt["vertices"], gt_v)
    ours = evaluate_mesh_and_joints(pred_j, gt["joints"], pred_v, gt["vertices"])
    assert ours["mpjpe_auc"] == pytest.approx(official, abs=1e-12)
    # read in float32 (as before), the wrist the predictions were put on misses the official one
    as32 = gt_j.astype(np.float32).astype(np.float64)
    assert not np.array_equal(as32[:, 0], gt_j[:, 0])
    shifted = pred_j - pred_j[:, :1] + as32[:, :1]
    assert official - _official_auc(gt_j, shifted) == pytest.approx(0.5 / 99 / 21, rel=1e-6)
