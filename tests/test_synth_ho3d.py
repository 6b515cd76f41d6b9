"""Synthetic HO3D: layout and lists, the pickles' keys/shapes/dtypes, the OpenGL frame, absolute
poses (flat_hand_mean=True), the H joint order and HO3D's fingertips, depth packing,
segmentation, object poses, smooth sequences, evaluation frames and their released ground truth,
grasps and visibility, v3, determinism."""
import hashlib
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handssca.data.synth import generate, read_info
from handssca.hand import HandLayer, load_hand_model
from handssca.hand.joints import FINGERTIP_VERTICES, FREIHAND_TO_HO3D

N = 8
GL = np.diag([1.0, -1.0, -1.0])
DEPTH_SCALE = 0.00012498664727900177


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("ho3d") / "HO3D_v2"
    generate("ho3d", out, N, seed=5, show_progress=False)
    return out


@pytest.fixture(scope="module")
def layer(root):
    kind = read_info(root)["hand_model"]["kind"]
    return HandLayer(load_hand_model(kind=kind), fingertips="ho3d").double()


def _frames(root, split):
    return [line.strip() for line in (root / f"{split}.txt").read_text().splitlines()]


def _meta(root, split, name):
    seq, fid = name.split("/")
    with open(root / split / seq / "meta" / f"{fid}.pkl", "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _depth(root, split, name):
    seq, fid = name.split("/")
    img = cv2.imread(str(root / split / seq / "depth" / f"{fid}.png")).astype(np.float64)
    return (img[:, :, 2] + 256 * img[:, :, 1]) * DEPTH_SCALE  # HO3D's read_depth_img


def _seg(root, split, name):
    seq, fid = name.split("/")
    return cv2.imread(str(root / split / seq / "seg" / f"{fid}.png"))


def _project_gl(points, K):
    p = np.asarray(points, np.float64).reshape(-1, 3) @ GL.T @ np.asarray(K, np.float64).T
    return p[:, :2] / p[:, 2:]


def _mano(layer, meta):
    """MANO from a train pickle: absolute articulation -> offsets, OpenGL frame."""
    pose = np.asarray(meta["handPose"], np.float64).copy()
    pose[3:] -= layer.hands_mean.numpy()
    return layer(torch.tensor(pose[None]), torch.tensor(np.asarray(meta["handBeta"], np.float64)[None]),
                 torch.tensor(np.asarray(meta["handTrans"], np.float64)[None]))


def test_layout_and_lists(root):
    train, evaluation = _frames(root, "train"), _frames(root, "evaluation")
    assert len(train) + len(evaluation) == N and train and evaluation
    assert {n.split("/")[0] for n in train}.isdisjoint({n.split("/")[0] for n in evaluation})
    expected = {"train.txt", "evaluation.txt", "synth_info.json", "synth_files.txt", "evaluation_xyz.json",
                "evaluation_verts.json"}
    for split, names in (("train", train), ("evaluation", evaluation)):
        assert names == sorted(names)
        for name in names:
            seq, fid = name.split("/")
            assert len(fid) == 4 and fid.isdigit()
            expected |= {f"{split}/{seq}/rgb/{fid}.png", f"{split}/{seq}/depth/{fid}.png",
                         f"{split}/{seq}/seg/{fid}.png", f"{split}/{seq}/meta/{fid}.pkl"}
    objs = {_meta(root, s, n)["objName"] for s, ns in (("train", train), ("evaluation", evaluation)) for n in ns}
    expected |= {f"models/{o}/textured_simple.obj" for o in objs}
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == expected
    img = cv2.imread(str(root / "train" / train[0].replace("/", "/rgb/") ) + ".png")
    assert img.shape == (480, 640, 3)


def test_train_pickles_keys_shapes_dtypes_and_opengl_frame(root):
    for name in _frames(root, "train"):
        m = _meta(root, "train", name)
        shapes = {"handPose": (48,), "handBeta": (10,), "handTrans": (3,), "handJoints3D": (21, 3), "camMat": (3, 3),
                  "objRot": (3,), "objTrans": (3,), "objCorners3DRest": (8, 3), "objCorners3D": (8, 3)}
        for k, s in shapes.items():
            assert isinstance(m[k], np.ndarray) and m[k].shape == s and m[k].dtype == np.float32, k
        assert isinstance(m["objName"], str) and isinstance(m["objLabel"], int)
        assert np.all(m["handJoints3D"][:, 2] < 0) and m["objTrans"][2] < 0     # OpenGL: in front is -z
        assert 0.3 < -m["handJoints3D"][:, 2].mean() < 1.0                       # metres
        R = cv2.Rodrigues(m["objRot"].astype(np.float64))[0]
        assert np.allclose(m["objCorners3DRest"] @ R.T + m["objTrans"], m["objCorners3D"], atol=1e-5)


def test_absolute_pose_and_h_order_with_ho3d_fingertips(root, layer):
    tips = list(FINGERTIP_VERTICES["ho3d"])
    for name in _frames(root, "train"):
        m = _meta(root, "train", name)
        out = _mano(layer, m)
        h = out["joints"][0].numpy()[list(FREIHAND_TO_HO3D)]
        assert np.abs(h - m["handJoints3D"]).max() < 2e-5, name
        # H order: MANO's 16 joints first, then the tips T, I, M, R, P at HO3D's vertices
        assert np.abs(out["joints16"][0].numpy() - m["handJoints3D"][:16]).max() < 2e-5
        assert np.abs(out["vertices"][0].numpy()[tips] - m["handJoints3D"][16:]).max() < 2e-5
        # read as offsets (flat_hand_mean=False) the pose gives another hand
        as64 = {k: torch.tensor(m[k][None].astype(np.float64)) for k in ("handPose", "handBeta", "handTrans")}
        wrong = layer(as64["handPose"], as64["handBeta"], as64["handTrans"])
        assert np.abs(wrong["joints"][0].numpy()[list(FREIHAND_TO_HO3D)] - m["handJoints3D"]).max() > 0.005


def test_projections_depth_and_segmentation_agree(root, layer):
    for name in _frames(root, "train"):
        m = _meta(root, "train", name)
        seg = _seg(root, "train", name)
        assert set(np.unique(seg[..., :2])) <= {0, 255} and seg[..., 2].max() == 0
        hand, obj = seg[..., 0] > 0, seg[..., 1] > 0
        assert hand.any() and not (hand & obj).any()
        uv = np.round(_project_gl(m["handJoints3D"], m["camMat"])).astype(int)
        assert ((uv >= 0) & (uv < [640, 480])).all()
        either = cv2.dilate((hand | obj).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert either[uv[:, 1], uv[:, 0]].mean() >= 0.9, name   # on the hand, or on the object hiding it
        depth = _depth(root, "train", name)
        verts = _mano(layer, m)["vertices"][0].numpy()
        z = -verts[:, 2]
        d = depth[hand]
        assert d.min() > z.min() - 0.005 and d.max() < z.max() + 0.005     # the hand's own depths
        behind = depth[~cv2.dilate((hand | obj).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)]
        assert np.all((behind == 0) | (behind > z.max())) and behind.max() > z.max()   # a wall behind
        corners = _project_gl(m["objCorners3D"], m["camMat"])
        if obj.any():
            ys, xs = np.nonzero(obj)
            assert corners[:, 0].min() - 2 <= xs.min() and xs.max() <= corners[:, 0].max() + 2


def test_sequences_move_smoothly_and_keep_their_setup(root):
    names = _frames(root, "train")
    by_seq = {}
    for n in names:
        by_seq.setdefault(n.split("/")[0], []).append(n)
    for seq, frames in by_seq.items():
        metas = [_meta(root, "train", n) for n in frames]
        for a, b in zip(metas, metas[1:]):
            assert np.array_equal(a["handBeta"], b["handBeta"]) and np.array_equal(a["camMat"], b["camMat"])
            assert a["objName"] == b["objName"]
            assert np.abs(a["handJoints3D"] - b["handJoints3D"]).max() < 0.03   # metres per frame
            assert np.abs(a["handJoints3D"] - b["handJoints3D"]).max() > 0.0


def test_evaluation_frames_carry_only_root_and_box(root):
    for name in _frames(root, "evaluation"):
        m = _meta(root, "evaluation", name)
        assert "handPose" not in m and "handBeta" not in m and "handTrans" not in m
        assert m["handJoints3D"].shape == (3,) and m["handJoints3D"][2] < 0
        box = m["handBoundingBox"]
        assert box.shape == (4,) and box[0] < box[2] and box[1] < box[3]
        assert 0 <= box[0] and box[2] <= 639 and 0 <= box[1] and box[3] <= 479
        u, v = _project_gl(m["handJoints3D"], m["camMat"])[0]
        assert box[0] - 1 <= u <= box[2] + 1 and box[1] - 1 <= v <= box[3] + 1
        hand = _seg(root, "evaluation", name)[..., 0] > 0
        ys, xs = np.nonzero(hand)
        if len(xs):
            assert box[0] - 1 <= xs.min() and xs.max() <= box[2] + 1


def test_evaluation_ground_truth_rows_are_the_posed_meshes(root):
    names = _frames(root, "evaluation")
    xyz = np.asarray(json.loads((root / "evaluation_xyz.json").read_text()))
    verts = np.asarray(json.loads((root / "evaluation_verts.json").read_text()))
    assert xyz.shape == (len(names), 21, 3) and verts.shape == (len(names), 778, 3)
    tips = list(FINGERTIP_VERTICES["ho3d"])
    for k, name in enumerate(names):
        m = _meta(root, "evaluation", name)
        # row k is line k of evaluation.txt: its wrist is that frame's given wrist
        assert np.abs(xyz[k, 0] - m["handJoints3D"]).max() < 1e-6, name
        # H order (the tips last, HO3D's vertices), OpenGL frame (in front is -z)
        assert np.abs(verts[k][tips] - xyz[k, 16:]).max() < 1e-7 and np.all(verts[k][:, 2] < 0)
        # the mesh that was drawn: it gives the frame's box, covers its hand pixels, and its
        # depths are the hand's in the depth image
        uv = _project_gl(verts[k], m["camMat"])
        box = np.clip([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()], 0, [639, 479, 639, 479])
        assert np.abs(box - m["handBoundingBox"]).max() < 1e-2, name
        hand = _seg(root, "evaluation", name)[..., 0] > 0
        drawn = np.zeros((480, 640), np.uint8)
        cv2.fillPoly(drawn, [cv2.convexHull(np.round(uv).astype(np.int32))], 1)
        assert hand.any() and (hand & ~cv2.dilate(drawn, np.ones((5, 5), np.uint8)).astype(bool)).sum() == 0
        d = _depth(root, "evaluation", name)[hand]
        assert d.min() > -verts[k][:, 2].max() - 0.005 and d.max() < -verts[k][:, 2].min() + 0.005


def test_evaluation_split_is_scored_with_the_released_ground_truth(root):
    from handssca.engine import mean_pose_baseline
    from handssca.hand.joints import HO3D_TO_FREIHAND
    from handssca.metrics import pa_mpjpe

    out = mean_pose_baseline("ho3d", root, split="test", verbose=False)
    names = _frames(root, "evaluation")
    assert out["n_samples"] == len(names) and out["metrics"] is not None
    assert out["mean_articulation"] is not None
    # the same number from the files alone: the constant against the released joints (OpenCV, F)
    gt = np.asarray(json.loads((root / "evaluation_xyz.json").read_text()))[:, list(HO3D_TO_FREIHAND)] @ GL
    mean = np.broadcast_to(np.asarray(out["mean"]["joints"]), gt.shape)
    assert out["metrics"]["pa_mpjpe"] == pytest.approx(pa_mpjpe(mean, gt), rel=1e-6)


def test_occlusion_is_recorded_and_substantial(root):
    info = read_info(root)
    occ = np.array([s["occlusion"] for s in info["samples"].values()])
    assert len(occ) == N and np.all((occ >= 0) & (occ <= 1))
    assert occ.mean() > 0.1
    assert info["occlusion"]["count"] == N


def test_v3_writes_jpeg_and_same_seed_same_bytes(root, tmp_path):
    v3 = tmp_path / "v3"
    generate("ho3d", v3, 2, seed=5, version="v3", show_progress=False)
    assert sorted(p.name for p in v3.glob("*/*/rgb/*")) == ["0000.jpg", "0000.jpg"]
    again = tmp_path / "again"
    generate("ho3d", again, N, seed=5, show_progress=False)

    def digest(r: Path):
        return {str(p.relative_to(r)): hashlib.sha1(p.read_bytes()).hexdigest() for p in r.rglob("*") if p.is_file()}
    assert digest(again) == digest(root)
