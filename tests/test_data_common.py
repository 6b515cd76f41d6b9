"""What the three datasets share: crops, augmentation, mirroring, images, the sample chain and the
corrupt-sample counter (handssca.data.geometry, .augmentation, .images, .sample, .errors)."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from handssca.data.augmentation import Augmentation, sample_augmentation
from handssca.data.dataset import HandDataset
from handssca.data.errors import DatasetLayoutError, SkipCounter, TooManySkippedError, require_paths
from handssca.data.geometry import (apply_affine, crop_transform, mirror_box, mirror_camera, mirror_points, mirror_pose,
                                     mirror_uv, project, rotation_z, square_box, unmirror)
from handssca.data.images import denormalise_image, normalise_image
from handssca.data.sample import RawSample, choose_box, make_sample


def _points(n=21, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-0.08, 0.08, (n, 2)), rng.uniform(0.35, 0.6, n)] + [0.03, -0.02, 0.0]


K0 = np.array([[610.0, 0.0, 300.0], [0.0, 590.0, 250.0], [0.0, 0.0, 1.0]])


def test_augmentation_statistics_match_handoccnet():
    rng = np.random.default_rng(1)
    draws = [sample_augmentation(rng) for _ in range(20000)]
    s = np.array([d.scale for d in draws])
    r = np.array([d.rot_deg for d in draws])
    c = np.array([d.color for d in draws])
    assert s.min() >= 0.75 - 1e-12 and s.max() <= 1.25 + 1e-12
    assert abs(s.mean() - 1.0) < 0.01
    # 0.25 * clip(N, -1, 1): the clipped normal's std is about 0.6979
    assert abs(s.std() - 0.25 * 0.6979) < 0.01
    assert np.abs(r).max() <= 60.0 + 1e-9
    assert abs(np.mean(r != 0) - 0.6) < 0.015
    assert abs(np.mean(np.abs(r[r != 0]) > 30) - 2 * (1 - 0.8413)) < 0.02  # P(|N| > 1)
    assert c.min() >= 0.8 and c.max() <= 1.2 and abs(c.mean() - 1.0) < 0.005
    assert abs(np.corrcoef(c[:, 0], c[:, 1])[0, 1]) < 0.05  # one factor per channel


@pytest.mark.parametrize("rot", [0.0, 37.0, -55.0])
@pytest.mark.parametrize("mirrored", [False, True])
def test_crop_rotation_agrees_in_2d_and_3d(rot, mirrored):
    """K_crop projects the rotated 3D joints exactly onto the warped 2D joints, off-centre too."""
    X = _points()
    raw = RawSample(image_path="", image_size=(640, 480), K=K0, joints3d=X, vertices=np.tile(X[:1], (778, 1)),
                      pose=np.r_[0.3, -0.2, 0.1, np.zeros(45)], shape=np.zeros(10), root=X[0], is_left=mirrored)
    box = choose_box(raw, "joints")
    aug = Augmentation(scale=1.1, rot_deg=rot, color=(1.0, 1.0, 1.0))
    sample, tr = make_sample(raw, None, index=0, input_size=128, box=box, aug=aug)
    M = np.diag([-1.0, 1, 1]) if mirrored else np.eye(3)
    absolute = sample["joints3d"].double().numpy() + tr.rotation @ M @ X[0]
    uv = project(absolute, sample["K"].double().numpy())
    assert np.abs(uv - sample["joints2d"].numpy() * 128).max() < 1e-3
    # the 2D joints turned by r about the box centre: angles between joints are preserved
    uv0 = project(X @ M.T, mirror_camera(K0, 640) if mirrored else K0)
    d0, d1 = uv0[9] - uv0[0], uv[9] - uv[0]
    ang = np.degrees(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0]))
    assert abs((ang - rot + 180) % 360 - 180) < 0.5
    # the MANO global rotation turned by the same R_z
    from scipy.spatial.transform import Rotation
    R0 = Rotation.from_rotvec(mirror_pose(raw.pose)[:3] if mirrored else raw.pose[:3]).as_matrix()
    R1 = Rotation.from_rotvec(sample["pose"][:3].double().numpy()).as_matrix()
    assert np.allclose(R1, rotation_z(rot) @ R0, atol=1e-6)


def test_crop_transform_maps_box_edges_to_crop_edges():
    A = crop_transform([10.0, 20.0, 110.0, 120.0], 50)
    # box edges 10 and 110 are the pixel coordinates 9.5 and 109.5; the crop's edges are -0.5 and 49.5
    assert np.allclose(apply_affine(A, [[9.5, 19.5], [109.5, 119.5]]), [[-0.5, -0.5], [49.5, 49.5]])
    whole = crop_transform([0, 0, 224, 224], 224)
    assert np.allclose(whole, [[1, 0, 0], [0, 1, 0]])


def test_mirroring_twice_is_the_identity():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 21, 3))
    pose = rng.normal(size=(5, 48))
    assert np.array_equal(mirror_points(mirror_points(X)), X)
    assert np.array_equal(mirror_pose(mirror_pose(pose)), pose)
    assert np.allclose(mirror_camera(mirror_camera(K0, 640), 640), K0)
    assert np.allclose(mirror_uv(mirror_uv(X[0, :, :2], 640), 640), X[0, :, :2])
    assert np.allclose(mirror_box(mirror_box([1, 2, 30, 40], 640), 640), [1, 2, 30, 40])
    left = np.array([True, False, True, False, True])
    once = unmirror(X, left)
    assert np.array_equal(once[1], X[1]) and np.array_equal(once[0], X[0] * [-1, 1, 1])
    assert np.array_equal(unmirror(once, left), X)
    t = torch.tensor(X)
    assert torch.equal(unmirror(unmirror(t, left), left), t)
    assert torch.equal(mirror_pose(mirror_pose(torch.tensor(pose))), torch.tensor(pose))


def test_mirrored_camera_projects_mirrored_points_onto_the_flipped_image():
    X = _points()
    uv = project(X, K0)
    assert np.allclose(project(mirror_points(X), mirror_camera(K0, 640)), mirror_uv(uv, 640))


def test_mirrored_pose_is_the_mirrored_hand():
    from handssca.hand import HandLayer, load_hand_model
    right = HandLayer(load_hand_model(kind="procedural")).double()
    left = HandLayer(load_hand_model(kind="procedural", is_rhand=False)).double()
    rng = np.random.default_rng(4)
    pose = torch.tensor(np.r_[rng.normal(0, 0.8, 3), rng.normal(0, 0.3, 45)])[None]
    beta = torch.tensor(rng.normal(0, 0.5, (1, 10)))
    v_left = left(pose, beta)["vertices"]
    v_right = right(mirror_pose(pose), beta)["vertices"]
    assert torch.allclose(mirror_points(v_left), v_right, atol=1e-9)


def test_colour_factor_and_normalisation():
    img = np.full((4, 4, 3), 200, np.uint8)
    x = normalise_image(img, (1.2, 1.0, 0.8))
    back = denormalise_image(x)
    assert np.allclose(back[0, 0], [min(200 / 255 * 1.2, 1.0), 200 / 255, 200 / 255 * 0.8], atol=1e-6)


def test_degenerate_box_falls_back_to_the_whole_image():
    uv = np.full((21, 2), 100.0)  # every joint at one pixel
    raw = RawSample(image_path="", image_size=(640, 480), K=K0, joints2d=uv)
    assert np.allclose(choose_box(raw, "joints"), square_box([0, 0, 640, 480]))


def test_skip_counter_warns_counts_once_and_stops_past_the_share():
    counter = SkipCounter("X", 100, max_fraction=0.02)
    with pytest.warns(RuntimeWarning, match="skipped corrupt sample a"):
        counter.record(3, "a", "broken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counter.record(3, "a", "broken")  # the same sample again: not a new skip, no warning
    assert counter.count == 1
    with pytest.warns(RuntimeWarning):
        counter.record(4, "b", "broken")
    with pytest.raises(TooManySkippedError, match="3 of 100"), pytest.warns(RuntimeWarning):
        counter.record(5, "c", "broken")


def test_skip_counter_is_shared_with_worker_processes():
    import multiprocessing as mp
    counter = SkipCounter("X", 10, max_fraction=1.0)
    ctx = mp.get_context("fork")
    p = ctx.Process(target=_record_in_child, args=(counter,))
    p.start()
    p.join(30)
    assert p.exitcode == 0 and counter.count == 1
    import pickle
    copy = pickle.loads(pickle.dumps(counter))  # outside process start: a detached copy
    assert copy.count == 1


def _record_in_child(counter):
    warnings.simplefilter("ignore")
    counter.record(7, "z", "broken")


def test_require_paths_names_the_first_missing_path(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"b not found\. Expected the official layout:\n  LAYOUT"):
        require_paths([tmp_path / "a", tmp_path / "b", tmp_path / "c"], "X", "  LAYOUT")


def test_importing_handssca_data_imports_neither_models_nor_pyrender():
    code = ("import sys, handssca.data, handssca.data.dataset, handssca.data.freihand, handssca.data.ho3d, "
            "handssca.data.dexycb; bad = [m for m in sys.modules if m.startswith('handssca.models') or "
            "m.startswith('pyrender')]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


class _FourSamples(HandDataset):
    """A dataset of four samples that reads no file (only its length and name are used)."""
    name = "four"

    def __len__(self):
        return 4


def test_ordered_predictions_sort_by_index_and_name_missing_and_repeated_samples():
    ds = _FourSamples()
    order = np.array([2, 0, 3, 1])
    joints = np.arange(4 * 21 * 3, dtype=np.float32).reshape(4, 21, 3)
    vertices = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    idx, j, v = ds.ordered_predictions(torch.from_numpy(order), torch.from_numpy(joints), vertices)
    assert idx.tolist() == [0, 1, 2, 3] and j.dtype == np.float64
    assert np.array_equal(j[order], joints) and np.array_equal(v[order], vertices)
    with pytest.raises(ValueError, match=r"four: .* 1 missing \(first \[1\]\), duplicated \[2\]"):
        ds.ordered_predictions([2, 0, 3, 2], joints, vertices)
    with pytest.raises(ValueError, match=r"four: expected joints \(B, 21, 3\) .* got \(4, 20, 3\)"):
        ds.ordered_predictions(order, joints[:, :20], vertices)
