"""Synthetic FreiHAND v2: layout, annotation shapes and units, the 61-value MANO convention
(offsets from the mean pose, uv_root and weak-perspective scale), fingertips, masks, versions,
determinism."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handssca.data.synth import generate, read_info
from handssca.hand import HandLayer, load_hand_model
from handssca.hand.joints import FINGERTIP_VERTICES

N, N_EVAL = 5, 2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("fh") / "FreiHAND_pub_v2"
    generate("freihand", out, N, seed=3, n_eval=N_EVAL, show_progress=False)
    return out


@pytest.fixture(scope="module")
def ann(root):
    return {(split, f): json.loads((root / f"{split}_{f}.json").read_text())
            for split in ("training", "evaluation") for f in ("K", "mano", "xyz", "verts", "scale")}


@pytest.fixture(scope="module")
def layer(root):
    kind = read_info(root)["hand_model"]["kind"]
    return HandLayer(load_hand_model(kind=kind), fingertips="freihand").double()


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_file_by_file(root):
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    expected = {f"training/rgb/{i:08d}.jpg" for i in range(4 * N)}
    expected |= {f"training/mask/{i:08d}.jpg" for i in range(N)}
    expected |= {f"evaluation/rgb/{i:08d}.jpg" for i in range(N_EVAL)}
    expected |= {f"{s}_{f}.json" for s in ("training", "evaluation") for f in ("K", "mano", "xyz", "verts", "scale")}
    expected |= {"synth_info.json", "synth_files.txt"}
    assert files == expected  # nothing else: no temporary files, no resume records
    for rel in sorted(files):
        if rel.endswith(".jpg"):
            img = cv2.imread(str(root / rel), cv2.IMREAD_UNCHANGED)
            assert img.dtype == np.uint8
            assert img.shape == ((224, 224) if "/mask/" in rel else (224, 224, 3)), rel


def test_annotation_shapes_and_units(ann):
    for split, n in (("training", N), ("evaluation", N_EVAL)):
        K, mano, xyz = (np.array(ann[split, f]) for f in ("K", "mano", "xyz"))
        verts, scale = np.array(ann[split, "verts"]), np.array(ann[split, "scale"])
        assert K.shape == (n, 3, 3) and mano.shape == (n, 1, 61) and xyz.shape == (n, 21, 3)
        assert verts.shape == (n, 778, 3) and scale.shape == (n,)
        assert np.allclose(K[:, 2], [0, 0, 1]) and np.all(K[:, 0, 0] > 100)
        assert np.all(xyz[..., 2] > 0.1) and np.all(verts[..., 2] > 0.1)    # metres, in front of the camera
        span = np.ptp(verts, axis=1).max(1)
        assert np.all((span > 0.1) & (span < 0.3))                            # a hand, in metres
        assert np.allclose(scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=1), atol=1e-7)


def test_uv_root_and_scale_recover_keypoint_9_and_mano_rebuilds_the_mesh(ann, layer):
    for split in ("training", "evaluation"):
        for K, mano, xyz, verts in zip(*(ann[split, f] for f in ("K", "mano", "xyz", "verts"))):
            K, m, xyz, verts = np.array(K), np.array(mano[0]), np.array(xyz), np.array(verts)
            pose, shape, uv, s = m[:48], m[48:58], m[58:60], m[60]
            f = 0.5 * (K[0, 0] + K[1, 1])
            root = np.array([(uv[0] - K[0, 2]) / s, (uv[1] - K[1, 2]) / s, f / s])   # FreiHAND's recover_root
            assert np.abs(root - xyz[9]).max() < 1e-6
            out = layer(torch.tensor(pose[None]), torch.tensor(shape[None]))
            shift = root - out["joints"][0, 9].numpy()
            assert np.abs(out["vertices"][0].numpy() + shift - verts).max() < 2e-5
            assert np.abs(out["joints"][0].numpy() + shift - xyz).max() < 2e-5
            # the articulation is an offset from the mean pose: read as absolute, the hand is wrong
            mean = layer.hands_mean.numpy()
            wrong = layer(torch.tensor(np.r_[pose[:3], pose[3:] - mean][None]), torch.tensor(shape[None]))
            assert np.abs(wrong["joints"][0].numpy() - wrong["joints"][0, 9].numpy() + root - xyz).max() > 0.005


def test_fingertips_follow_freihands_vertices(ann):
    tips = list(FINGERTIP_VERTICES["freihand"])
    for xyz, verts in zip(ann["training", "xyz"], ann["training", "verts"]):
        xyz, verts = np.array(xyz), np.array(verts)
        assert np.abs(xyz[[4, 8, 12, 16, 20]] - verts[tips]).max() < 1e-7


def test_projected_joints_land_on_the_hand_mask(root, ann):
    info = read_info(root)
    for i, (K, xyz) in enumerate(zip(ann["training", "K"], ann["training", "xyz"])):
        mask = cv2.imread(str(root / f"training/mask/{i:08d}.jpg"), cv2.IMREAD_GRAYSCALE) > 127
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        uv = np.array(xyz) @ np.array(K).T
        uv = np.round(uv[:, :2] / uv[:, 2:]).astype(int)
        inside = (uv >= 0).all(1) & (uv < 224).all(1)
        hits = mask[uv[inside, 1], uv[inside, 0]].mean()
        occ = info["samples"][f"training/rgb/{i:08d}.jpg"]["occlusion"]
        assert hits >= (0.95 if occ == 0 else 0.5), (i, hits, occ)
        assert inside.mean() > 0.8


def test_four_versions_share_the_sample_gs_is_green(root):
    for i in range(N):
        mask = cv2.imread(str(root / f"training/mask/{i:08d}.jpg"), cv2.IMREAD_GRAYSCALE) > 127
        bg = ~cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        gs = cv2.imread(str(root / f"training/rgb/{i:08d}.jpg"))[..., ::-1].astype(int)  # RGB
        hom = cv2.imread(str(root / f"training/rgb/{i + N:08d}.jpg"))[..., ::-1].astype(int)
        # a held object (not in the mask) looks the same in every version; the backgrounds differ
        scene = bg & (np.abs(hom - gs).max(-1) > 30)
        assert scene.sum() > 0.5 * bg.sum()
        assert np.mean(gs[scene][:, 1] > gs[scene][:, 0] + 40) > 0.95      # green screen behind the hand
        for k in (1, 2, 3):
            other = cv2.imread(str(root / f"training/rgb/{i + N * k:08d}.jpg"))[..., ::-1].astype(int)
            assert np.abs(other[bg] - gs[bg]).mean() > 10                   # another background
            assert np.abs(other[mask] - gs[mask]).mean() < np.abs(other[bg] - gs[bg]).mean()


def test_synth_info_records_occlusion_per_image(root):
    info = read_info(root)
    assert info["complete"] and info["style"] == "freihand" and info["seed"] == 3 and info["n"] == N
    assert info["hand_model"]["kind"] in ("mano", "procedural")
    keys = {f"training/rgb/{i:08d}.jpg" for i in range(N)} | {f"evaluation/rgb/{i:08d}.jpg" for i in range(N_EVAL)}
    assert set(info["samples"]) == keys
    for s in info["samples"].values():
        assert 0.0 <= s["occlusion"] <= 1.0 and 0 <= s["visible_px"] <= s["hand_px"] and s["hand_px"] > 100


def test_same_seed_same_bytes_other_seed_other_data(root, tmp_path):
    again = tmp_path / "again"
    generate("freihand", again, N, seed=3, n_eval=N_EVAL, show_progress=False)
    assert _digest(again) == _digest(root)
    other = tmp_path / "other"
    generate("freihand", other, 2, seed=4, n_eval=0, show_progress=False)
    a = json.loads((root / "training_xyz.json").read_text())[:2]
    b = json.loads((other / "training_xyz.json").read_text())
    assert not np.allclose(a, b)
    assert (root / "training/rgb/00000000.jpg").read_bytes() != (other / "training/rgb/00000000.jpg").read_bytes()
