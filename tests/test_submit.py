"""Submission writers: round trips, conversions applied exactly once, count/order and frame refusals."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from handssca import submit as W
from handssca.hand.joints import FREIHAND_TO_HO3D

NAMES = ["AP10/0000", "AP10/0001", "MPM13/0420", "SM1/0007"]


@pytest.fixture
def hands():
    """(joints (4, 21, 3), verts (4, 778, 3)) in metres, OpenCV frame (z forward), F order."""
    rng = np.random.default_rng(7)
    joints = rng.normal(size=(4, 21, 3)) * 0.03 + np.array([0.02, -0.01, 0.55])
    verts = rng.normal(size=(4, 778, 3)) * 0.03 + np.array([0.02, -0.01, 0.55])
    return joints, verts


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


# ---- FreiHAND -------------------------------------------------------------------------------
def test_freihand_round_trip_is_exact(tmp_path, hands):
    joints, verts = hands
    path = W.write_freihand_pred(tmp_path / "pred.json", joints, verts, expected_count=4)
    with open(path) as fh:
        raw = json.load(fh)
    assert isinstance(raw, list) and len(raw) == 2 and len(raw[0]) == 4 and len(raw[1]) == 4
    assert np.shape(raw[0][0]) == (21, 3) and np.shape(raw[1][0]) == (778, 3)
    xyz, mesh = W.read_freihand_pred(path)
    np.testing.assert_array_equal(xyz, joints)  # no conversion for FreiHAND
    np.testing.assert_array_equal(mesh, verts)
    assert _no_temp_files(tmp_path)


def test_freihand_rounding_and_count_check(tmp_path, hands):
    joints, verts = hands
    path = W.write_freihand_pred(tmp_path / "pred.json", joints, verts, decimals=6)
    xyz, _ = W.read_freihand_pred(path)
    assert np.abs(xyz - joints).max() <= 0.5e-6 + 1e-15
    with pytest.raises(ValueError, match="expected 3960 samples"):
        W.write_freihand_pred(tmp_path / "full.json", joints, verts, expected_count=W.FREIHAND_EVAL_SIZE)
    assert not (tmp_path / "full.json").exists()


def test_freihand_refuses_bad_arrays_and_keeps_the_old_file(tmp_path, hands):
    joints, verts = hands
    path = W.write_freihand_pred(tmp_path / "pred.json", joints, verts)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"\(S, 21, 3\)"):
        W.write_freihand_pred(path, joints[:, :20], verts)
    with pytest.raises(ValueError, match="millimetres"):
        W.write_freihand_pred(path, joints * 1000, verts * 1000)
    with pytest.raises(ValueError, match="samples"):
        W.write_freihand_pred(path, joints, verts[:3])
    assert path.read_bytes() == before
    assert _no_temp_files(tmp_path)


# ---- HO-3D ----------------------------------------------------------------------------------
def test_ho3d_zip_holds_pred_json_at_top_level(tmp_path, hands):
    joints, verts = hands
    path = W.write_ho3d_pred(tmp_path / "pred.zip", joints, verts, NAMES, NAMES)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["pred.json"]
        raw = json.loads(zf.read("pred.json"))
    assert len(raw) == 2 and len(raw[0]) == len(NAMES)
    assert _no_temp_files(tmp_path)


def test_ho3d_flip_and_reorder_are_applied_exactly_once(tmp_path, hands):
    joints, verts = hands
    path = W.write_ho3d_pred(tmp_path / "pred.zip", joints, verts, NAMES, NAMES)
    xyz, mesh = W.read_ho3d_pred(path)
    # H joint 1 is the index MCP, F joint 5; H joint 13 the thumb CMC, F joint 1; y and z negated
    np.testing.assert_array_equal(xyz[:, 1], joints[:, 5] * [1, -1, -1])
    np.testing.assert_array_equal(xyz[:, 13], joints[:, 1] * [1, -1, -1])
    np.testing.assert_array_equal(xyz, joints[:, list(FREIHAND_TO_HO3D)] * [1, -1, -1])
    np.testing.assert_array_equal(mesh, verts * [1, -1, -1])  # vertex order unchanged
    assert np.all(xyz[..., 2] < 0)  # OpenGL: the hand lies along -z
    back_j, back_v = W.read_ho3d_pred(path, to_opencv_freihand=True)
    np.testing.assert_array_equal(back_j, joints)
    np.testing.assert_array_equal(back_v, verts)


def test_ho3d_refuses_already_flipped_input(tmp_path, hands):
    joints, verts = hands
    gl_j, gl_v = W.to_ho3d_submission_frame(joints, verts)  # a second flip would make all z > 0
    with pytest.raises(ValueError, match="z of sample 0 .*AP10/0000"):
        W.write_ho3d_pred(tmp_path / "pred.zip", gl_j, gl_v, NAMES, NAMES)
    bad_v = verts.copy()
    bad_v[2, :, 2] *= -1  # only sample 2's mesh is in the wrong frame
    with pytest.raises(ValueError, match="verts z of sample 2"):
        W.write_ho3d_pred(tmp_path / "pred.zip", joints, bad_v, NAMES, NAMES)
    assert not (tmp_path / "pred.zip").exists()
    assert _no_temp_files(tmp_path)


def test_ho3d_count_and_order_must_match_the_evaluation_list(tmp_path, hands):
    joints, verts = hands
    eval_txt = tmp_path / "evaluation.txt"
    eval_txt.write_text("\n".join(NAMES) + "\n")
    W.write_ho3d_pred(tmp_path / "ok.zip", joints, verts, NAMES, eval_txt)  # a path works
    with pytest.raises(ValueError, match="3 predictions but the evaluation list has 4"):
        W.write_ho3d_pred(tmp_path / "a.zip", joints[:3], verts[:3], NAMES[:3], eval_txt)
    swapped = [NAMES[0], NAMES[2], NAMES[1], NAMES[3]]
    with pytest.raises(ValueError, match=r"prediction 1 is for 'MPM13/0420' but evaluation.txt line 2"):
        W.write_ho3d_pred(tmp_path / "b.zip", joints, verts, swapped, eval_txt)
    with pytest.raises(ValueError, match="11524"):
        W.write_ho3d_pred(tmp_path / "c.zip", joints, verts, NAMES, eval_txt, version="v2")
    with pytest.raises(ValueError, match="one name per prediction"):
        W.write_ho3d_pred(tmp_path / "d.zip", joints, verts, NAMES[:3], NAMES[:3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.txt", "ok.zip"]


def test_ho3d_wrist_translation(tmp_path, hands):
    joints, verts = hands
    rel = joints - joints[:, :1]  # a wrist-relative prediction, as the network gives
    rel_v = verts - joints[:, :1]
    wrist = np.array([[0.01, 0.02, 0.5], [0.0, 0.0, 0.6], [-0.05, 0.03, 0.45], [0.1, -0.1, 0.7]])
    path = W.write_ho3d_pred(tmp_path / "pred.zip", rel, rel_v, NAMES, NAMES, wrist=wrist)
    back_j, back_v = W.read_ho3d_pred(path, to_opencv_freihand=True)
    np.testing.assert_allclose(back_j[:, 0], wrist, atol=1e-15)
    np.testing.assert_allclose(back_j - back_j[:, :1], rel, atol=1e-15)
    np.testing.assert_allclose(back_v - wrist[:, None], rel_v, atol=1e-15)


# ---- DexYCB ---------------------------------------------------------------------------------
def test_dexycb_lines_are_index_then_63_values_in_mm(tmp_path, hands):
    joints, _ = hands
    indices = [17, 3, 250000, 42]
    path = W.write_dexycb_results(tmp_path / "results.txt", indices, joints, expected_indices={3, 17, 42, 250000})
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    for line, idx, j in zip(lines, indices, joints):
        elems = line.split(",")
        assert len(elems) == 64 and int(elems[0]) == idx
        np.testing.assert_allclose(np.array(elems[1:], dtype=float).reshape(21, 3), j * 1000.0, rtol=0, atol=0)
    back_idx, back_j = W.read_dexycb_results(path)
    np.testing.assert_array_equal(back_idx, indices)
    np.testing.assert_allclose(back_j, joints, rtol=1e-15, atol=0)  # mm / 1000
    assert _no_temp_files(tmp_path)


def test_dexycb_index_checks(tmp_path, hands):
    joints, _ = hands
    with pytest.raises(ValueError, match="appears more than once"):
        W.write_dexycb_results(tmp_path / "r.txt", [1, 2, 2, 3], joints)
    with pytest.raises(ValueError, match="1 expected indices missing"):
        W.write_dexycb_results(tmp_path / "r.txt", [1, 2, 3, 4], joints, expected_indices=range(1, 6))
    with pytest.raises(ValueError, match="non-negative integers"):
        W.write_dexycb_results(tmp_path / "r.txt", [0.5, 1, 2, 3], joints)
    with pytest.raises(ValueError, match="4 sample indices"):
        W.write_dexycb_results(tmp_path / "r.txt", [1, 2], joints)
    assert not (tmp_path / "r.txt").exists()
