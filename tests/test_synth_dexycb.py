"""Synthetic DexYCB: layout, meta and calibration files, labels' shapes and dtypes, pose_m through
the PCA and manopth's translation convention, joint_2d, left hands, invalid frames, the s0 split,
extrinsics, object poses, depth, determinism."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from handssca.data.synth import generate, read_info
from handssca.hand import HandLayer, load_hand_model

N = 24  # 10 sequences; the 3-frame ones start with an invalid frame
SERIALS = ["836212060125", "839512060362", "840412060917", "841412060263", "932122060857", "932122060861",
           "932122061900", "932122062010"]
YCB = {1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
       5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
       9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
       13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
       18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("dexycb") / "DexYCB"
    generate("dexycb", out, N, seed=7, show_progress=False)
    return out


@pytest.fixture(scope="module")
def layers(root):
    kind = read_info(root)["hand_model"]["kind"]
    return {side: HandLayer(load_hand_model(kind=kind, is_rhand=(side == "right")), fingertips="manopth").double()
            for side in ("right", "left")}


def _yaml(p):
    return yaml.safe_load(Path(p).read_text())


def _sequences(root):
    """(subject, sequence dir, trial index i) in the toolkit's order (sorted names)."""
    out = []
    for subject in sorted(p.name for p in root.iterdir() if p.is_dir() and "-subject-" in p.name):
        for i, seq in enumerate(sorted(p.name for p in (root / subject).iterdir())):
            out.append((subject, root / subject / seq, i))
    return out


def _frames(root):
    """Every image: (sequence dir, meta, serial, frame, labels)."""
    for _, seq, _ in _sequences(root):
        meta = _yaml(seq / "meta.yml")
        for serial in meta["serials"]:
            for f in range(meta["num_frames"]):
                yield seq, meta, serial, f, dict(np.load(seq / serial / f"labels_{f:06d}.npz"))


def _K(root, serial):
    c = _yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml")["color"]
    return np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1.0]])


def _betas(root, meta):
    return np.array(_yaml(root / "calibration" / f"mano_{meta['mano_calib'][0]}" / "mano.yml")["betas"], np.float64)


def _mano(layer, pose_m, betas):
    """manopth's convention: 3 global + 45 PCA coefficients (flat_hand_mean=False), then t added to
    the whole posed mesh."""
    p = np.asarray(pose_m, np.float64)[0]
    art = p[3:48] @ layer.hands_components.numpy()
    return layer(torch.tensor(np.r_[p[:3], art][None]), torch.tensor(betas[None]), torch.tensor(p[48:51][None]))


def test_layout_meta_and_calibration(root):
    subjects = {p.name for p in root.iterdir() if p.is_dir() and "-subject-" in p.name}
    assert subjects <= {"20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
                        "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
                        "20201015-subject-09", "20201022-subject-10"}
    count = 0
    for subject, seq, _ in _sequences(root):
        meta = _yaml(seq / "meta.yml")
        assert set(meta) == {"serials", "num_frames", "ycb_ids", "ycb_grasp_ind", "mano_sides", "mano_calib",
                             "extrinsics"}
        assert meta["serials"] == [s for s in SERIALS if s in meta["serials"]] and "840412060917" in meta["serials"]
        assert seq.name.startswith(subject.split("-")[0] + "_") and len(seq.name) == 15
        assert meta["mano_sides"] in (["right"], ["left"]) and meta["mano_calib"] == [subject]
        assert meta["ycb_ids"] == sorted(meta["ycb_ids"]) and 0 <= meta["ycb_grasp_ind"] < len(meta["ycb_ids"])
        assert isinstance(meta["extrinsics"], str)
        assert (root / "calibration" / f"extrinsics_{meta['extrinsics']}" / "extrinsics.yml").exists()
        betas = _yaml(root / "calibration" / f"mano_{subject}" / "mano.yml")["betas"]
        assert len(betas) == 10
        assert {p.name for p in seq.iterdir() if p.is_dir()} == set(meta["serials"])
        for serial in meta["serials"]:
            names = {p.name for p in (seq / serial).iterdir()}
            f = range(meta["num_frames"])
            assert names == {f"color_{i:06d}.jpg" for i in f} | {f"aligned_depth_to_color_{i:06d}.png" for i in f} \
                | {f"labels_{i:06d}.npz" for i in f}
            count += meta["num_frames"]
    assert count == N
    for serial in SERIALS:
        intr = _yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml")
        assert set(intr["color"]) == {"fx", "fy", "ppx", "ppy"} and 500 < intr["color"]["fx"] < 700
    for name in YCB.values():
        lines = (root / "models" / name / "textured_simple.obj").read_text().splitlines()
        v = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("v ")])
        faces = np.array([[int(x) for x in line.split()[1:]] for line in lines if line.startswith("f ")])
        assert len(v) >= 8 and faces.min() == 1 and faces.max() == len(v)        # 1-based
        assert 0.005 < np.ptp(v, axis=0).max() < 0.3                             # metres
    assert not any(p.name.endswith(".tmp") or p.name.startswith(".") for p in root.rglob("*"))


def test_labels_shapes_dtypes_and_units(root):
    for seq, meta, serial, f, lab in _frames(root):
        assert set(lab) == {"seg", "pose_y", "pose_m", "joint_3d", "joint_2d"}
        k = len(meta["ycb_ids"])
        assert lab["seg"].shape == (480, 640) and lab["seg"].dtype == np.uint8
        assert lab["pose_y"].shape == (k, 3, 4) and lab["pose_y"].dtype == np.float32
        assert lab["pose_m"].shape == (1, 51) and lab["pose_m"].dtype == np.float32
        assert lab["joint_3d"].shape == (1, 21, 3) and lab["joint_3d"].dtype == np.float32
        assert lab["joint_2d"].shape == (1, 21, 2) and lab["joint_2d"].dtype == np.float32
        assert set(np.unique(lab["seg"])) <= {0, 255, *meta["ycb_ids"]}
        img = cv2.imread(str(seq / serial / f"color_{f:06d}.jpg"))
        depth = cv2.imread(str(seq / serial / f"aligned_depth_to_color_{f:06d}.png"), cv2.IMREAD_ANYDEPTH)
        assert img.shape == (480, 640, 3) and depth.shape == (480, 640) and depth.dtype == np.uint16
        if np.all(lab["joint_3d"] == -1):
            continue
        j = lab["joint_3d"][0]
        assert np.all(j[:, 2] > 0.2) and np.all(j[:, 2] < 2.0)                       # metres, OpenCV
        hand = lab["seg"] == 255
        if hand.any():
            d = depth[hand] / 1000.0                                                  # millimetres
            assert d.min() > j[:, 2].min() - 0.05 and d.max() < j[:, 2].max() + 0.05


def test_pose_m_reproduces_joint_3d_and_joint_2d_projects_it(root, layers):
    checked = 0
    for seq, meta, serial, f, lab in _frames(root):
        if np.all(lab["pose_m"] == 0):
            continue
        side = meta["mano_sides"][0]
        out = _mano(layers[side], lab["pose_m"], _betas(root, meta))
        j = lab["joint_3d"][0].astype(np.float64)
        assert np.abs(out["joints"][0].numpy() - j).max() < 1e-3                       # within 1 mm
        # the translation is not the wrist: reading it so moves the hand by J0
        as_wrist = out["joints"][0].numpy() - out["joints"][0, 0].numpy() + lab["pose_m"][0, 48:51]
        assert np.abs(as_wrist - j).max() > 0.005
        uv = j @ _K(root, serial).T
        assert np.abs(uv[:, :2] / uv[:, 2:] - lab["joint_2d"][0]).max() < 1e-2
        hand_or_obj = cv2.dilate((lab["seg"] > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        px = np.round(lab["joint_2d"][0]).astype(int)
        inside = (px >= 0).all(1) & (px < [640, 480]).all(1)
        assert hand_or_obj[px[inside, 1], px[inside, 0]].mean() >= 0.9
        checked += 1
    assert checked > 0


def _chirality(j):
    """+1 for a left hand, -1 for a right hand: the sign of det[fingers, across, palmar] with the
    palmar side found from where the (flexed) fingertips point."""
    fingers = j[9] - j[0]
    across = j[5] - j[17]
    n = np.cross(fingers, across)
    n /= np.linalg.norm(n)
    tips = (j[[8, 12, 16, 20]] - j[[5, 9, 13, 17]]) @ n
    palmar = n * np.sign(tips.mean())
    return np.sign(np.linalg.det(np.stack([fingers, across, palmar])))


def test_left_sequences_hold_left_hands(root, layers):
    sides = {"left": 0, "right": 0}
    for seq, meta, serial, f, lab in _frames(root):
        if np.all(lab["pose_m"] == 0):
            continue
        side = meta["mano_sides"][0]
        j = lab["joint_3d"][0].astype(np.float64)
        assert _chirality(j) == (1 if side == "left" else -1), (seq.name, side)
        other = "right" if side == "left" else "left"
        assert np.abs(_mano(layers[other], lab["pose_m"], _betas(root, meta))["joints"][0].numpy() - j).max() > 0.01
        sides[side] += 1
    assert sides["left"] > 0 and sides["right"] > 0


def test_invalid_frames_and_the_s0_split(root):
    invalid = [(seq, lab) for seq, meta, serial, f, lab in _frames(root)
               if np.all(lab["joint_3d"] == -1)]
    assert invalid
    for seq, lab in invalid:
        assert np.all(lab["pose_m"] == 0) and np.all(lab["joint_2d"] == -1) and not np.any(lab["seg"] == 255)
    parts = {"train": 0, "val": 0, "test": 0}
    subjects = sorted(p.name for p in root.iterdir() if p.is_dir() and "-subject-" in p.name)
    for subject, seq, i in _sequences(root):
        s = int(subject.split("-")[-1]) - 1
        meta = _yaml(seq / "meta.yml")
        part = "train" if i % 5 != 4 else ("val" if s in (0, 1) else "test")
        parts[part] += meta["num_frames"] * len(meta["serials"])
    assert all(v > 0 for v in parts.values()), parts
    assert sum(parts.values()) == N and len(subjects) >= 2


def test_extrinsics_and_object_poses_agree_with_the_images(root):
    for subject, seq, _ in _sequences(root):
        meta = _yaml(seq / "meta.yml")
        extr = _yaml(root / "calibration" / f"extrinsics_{meta['extrinsics']}" / "extrinsics.yml")
        T = {s: np.array(v, np.float64).reshape(3, 4) for s, v in extr["extrinsics"].items()}
        assert extr["master"] == "840412060917" and np.allclose(T["840412060917"], np.eye(3, 4), atol=1e-7)
        for f in range(meta["num_frames"]):
            labs = {s: np.load(seq / s / f"labels_{f:06d}.npz") for s in meta["serials"]}
            world = {}
            for s, lab in labs.items():
                K = _K(root, s)
                for o, oid in enumerate(meta["ycb_ids"]):
                    P = lab["pose_y"][o].astype(np.float64)
                    world.setdefault(oid, []).append(T[s][:, :3] @ P[:, 3] + T[s][:, 3])
                    mask = lab["seg"] == oid
                    if mask.sum() < 20:
                        continue
                    v = np.array([[float(x) for x in line.split()[1:]] for line in
                                  (root / "models" / YCB[oid] / "textured_simple.obj").read_text().splitlines()
                                  if line.startswith("v ")])
                    uv = (v @ P[:, :3].T + P[:, 3]) @ K.T
                    uv = uv[:, :2] / uv[:, 2:]
                    ys, xs = np.nonzero(mask)
                    assert uv[:, 0].min() - 2 <= xs.min() and xs.max() <= uv[:, 0].max() + 2
                    assert uv[:, 1].min() - 2 <= ys.min() and ys.max() <= uv[:, 1].max() + 2
                if not np.all(lab["joint_3d"] == -1):
                    j = lab["joint_3d"][0].astype(np.float64)
                    world.setdefault("hand", []).append(j @ T[s][:, :3].T + T[s][:, 3])
            for key, xs in world.items():   # every camera sees the same world
                assert all(np.abs(x - xs[0]).max() < 1e-4 for x in xs), (seq.name, key)


def test_occlusion_recorded_per_image(root):
    info = read_info(root)
    assert info["complete"] and info["counts"]["images"] == N
    occ = [s["occlusion"] for s in info["samples"].values()]
    assert len(occ) == N and sum(o is None for o in occ) == info["counts"]["invalid_images"] > 0
    known = np.array([o for o in occ if o is not None])
    assert np.all((known >= 0) & (known <= 1)) and known.mean() > 0.1
    for key in info["samples"]:
        assert (root / key).exists() and key.endswith(".jpg") and "/color_" in key


def test_same_seed_same_bytes(root, tmp_path):
    again = tmp_path / "again"
    generate("dexycb", again, N, seed=7, show_progress=False)

    def digest(r: Path):
        return {str(p.relative_to(r)): hashlib.sha1(p.read_bytes()).hexdigest() for p in r.rglob("*") if p.is_file()}
    assert digest(again) == digest(root)
