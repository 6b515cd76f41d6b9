"""The FreiHAND, HO3D and DexYCB loaders on synthetic folders written in the official layouts."""
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from handssca.data import (IMAGENET_MEAN, IMAGENET_STD, DatasetLayoutError, DexYCB, FreiHAND, HO3D,
                           TooManySkippedError, project, unmirror)
from handssca.data import files as F
from handssca.data.geometry import mirror_uv
from handssca.data.ho3d import ho3d_to_opencv, opencv_to_ho3d
from handssca.hand import HandLayer, load_hand_model

S = 96  # crop size used throughout (small: fast)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The data cache in a temporary folder, and big-file caching on for every JSON file."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HANDSSCA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    mp.setattr(F, "CACHE_MIN_BYTES", 0)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def roots(tmp_path_factory, env):
    from handssca.data.synth import generate
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for style, n in (("freihand", 3), ("ho3d", 4), ("dexycb", 12)):
        generate(style, base / style, n=n, seed=0, hand="procedural", show_progress=False)
        out[style] = base / style
    return out


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def digests(roots):
    return {k: _tree_digest(v) for k, v in roots.items()}


@pytest.fixture(scope="module")
def datasets(roots, digests):
    return {
        "freihand/train": FreiHAND(roots["freihand"], "train", input_size=S),
        "freihand/test": FreiHAND(roots["freihand"], "test", input_size=S),
        "ho3d/train": HO3D(roots["ho3d"], "train", input_size=S),
        "ho3d/test": HO3D(roots["ho3d"], "evaluation", input_size=S),
        "dexycb/train": DexYCB(roots["dexycb"], "s0", "train", input_size=S),
        "dexycb/test": DexYCB(roots["dexycb"], "s0", "test", input_size=S),
    }


@pytest.fixture(scope="module")
def right_layers():
    model = load_hand_model(kind="procedural")
    return {t: HandLayer(model, fingertips=t).double() for t in ("freihand", "ho3d", "manopth")}


def _items(ds, augment, limit=6):
    n = len(ds)
    idx = sorted(set(np.linspace(0, n - 1, min(n, limit)).round().astype(int).tolist()))
    if isinstance(ds, DexYCB):  # make sure left hands are among them
        left = [i for i in range(n) if ds.side(i) == "left"]
        idx = sorted(set(idx + left[:2]))
    for i in idx:
        yield ds.get(i, rng=100 + i, augment=augment)


EXPECTED = {"image": (torch.float32, (3, S, S)), "joints2d": (torch.float32, (21, 2)),
            "joints3d": (torch.float32, (21, 3)), "vertices": (torch.float32, (778, 3)),
            "pose": (torch.float32, (48,)), "shape": (torch.float32, (10,)), "root": (torch.float32, (3,)),
            "K": (torch.float32, (3, 3)), "bbox": (torch.float32, (4,)), "occlusion": (torch.float32, ()),
            "index": (torch.int64, ())}


@pytest.mark.parametrize("name", ["freihand/train", "freihand/test", "ho3d/train", "ho3d/test", "dexycb/train",
                                  "dexycb/test"])
def test_samples_follow_the_contract_and_collate(datasets, name):
    ds = datasets[name]
    assert len(ds) > 0
    s = ds[0]
    assert set(s) == set(EXPECTED) | {"is_left", "has_3d", "sample_id"}
    for k, (dtype, shape) in EXPECTED.items():
        assert s[k].dtype == dtype and tuple(s[k].shape) == shape, k
    assert isinstance(s["is_left"], bool) and isinstance(s["has_3d"], bool) and isinstance(s["sample_id"], str)
    assert s["has_3d"] == (name != "ho3d/test")
    # every style's synthetic data knows its occlusion
    assert 0.0 <= float(s["occlusion"]) <= 1.0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape[0] == min(2, len(ds)) and batch["index"].dtype == torch.int64
    if s["has_3d"]:
        assert torch.allclose(s["joints3d"][0], torch.zeros(3))


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augmented"])
@pytest.mark.parametrize("name", ["freihand/train", "freihand/test", "ho3d/train", "dexycb/train", "dexycb/test"])
def test_projected_3d_joints_land_on_the_2d_joints(datasets, name, augment):
    ds = datasets[name]
    for s, tr in _items(ds, augment):
        M = np.diag([-1.0, 1, 1]) if s["is_left"] else np.eye(3)
        absolute = s["joints3d"].double().numpy() + tr.rotation @ M @ s["root"].double().numpy()
        uv = project(absolute, s["K"].double().numpy())
        err = np.abs(uv - s["joints2d"].double().numpy() * S).max()
        assert err < 0.5, (s["sample_id"], err)


@pytest.mark.parametrize("name", ["freihand/train", "ho3d/train", "dexycb/train", "dexycb/test"])
def test_mano_parameters_reproduce_the_vertices(datasets, right_layers, name):
    ds = datasets[name]
    layer = right_layers[ds.fingertips]
    lefts = 0
    for s, _ in _items(ds, augment=True):
        out = layer(s["pose"][None].double(), s["shape"][None].double())
        wrist = out["joints"][0, 0]
        v_err = (out["vertices"][0] - wrist - s["vertices"].double()).norm(dim=-1).max().item()
        j_err = (out["joints"][0] - wrist - s["joints3d"].double()).norm(dim=-1).max().item()
        assert v_err < 1e-3 and j_err < 1e-3, (s["sample_id"], v_err, j_err)
        lefts += s["is_left"]
    if name.startswith("dexycb"):
        assert lefts > 0, "the synthetic DexYCB split holds no left hand to test"


def test_ho3d_conversions_round_trip_exactly(datasets):
    ds = datasets["ho3d/train"]
    meta = ds.meta(0)
    cv = ho3d_to_opencv(meta["handPose"], meta["handTrans"], meta["handBeta"], meta["handJoints3D"], ds.layer)
    back = opencv_to_ho3d(cv["pose"], cv["transl"], cv["shape"], cv["joints3d"], ds.layer)
    assert np.array_equal(back["handJoints3D"], np.asarray(meta["handJoints3D"], np.float64))
    assert np.allclose(back["handPose"], meta["handPose"], atol=1e-9)
    assert np.allclose(back["handTrans"], meta["handTrans"], atol=1e-12)
    # the converted parameters describe the same hand: the OpenGL mesh flipped
    v_cv = ds.mesh(cv["pose"], cv["shape"], cv["transl"])
    from handssca.hand import absolute_to_offset
    pose_gl = absolute_to_offset(np.asarray(meta["handPose"], np.float64)[None], ds.layer)
    v_gl = ds.layer(torch.tensor(pose_gl), torch.tensor(np.asarray(meta["handBeta"], np.float64)[None]),
                    torch.tensor(np.asarray(meta["handTrans"], np.float64)[None]))["vertices"][0].detach().numpy()
    assert np.allclose(v_cv, v_gl * [1, -1, -1], atol=1e-9)


def test_dexycb_left_hands_round_trip_to_the_label_file(datasets):
    ds = datasets["dexycb/test"]
    for s, tr in _items(ds, augment=False):
        label = F.load_npz(ds.paths(int(s["index"]))[1], ("joint_3d", "joint_2d"))
        j = unmirror(s["joints3d"].double().numpy()[None], [s["is_left"]])[0] + s["root"].double().numpy()
        assert np.abs(j - label["joint_3d"].reshape(21, 3)).max() < 1e-6
        # the crop's 2D joints go back to the label's 2D joints through the crop transform
        uv = s["joints2d"].double().numpy() * S
        A = np.vstack([tr.affine, [0, 0, 1]])
        back = (np.linalg.inv(A) @ np.c_[uv, np.ones(21)].T).T[:, :2]
        if s["is_left"]:
            back = mirror_uv(back, 640)
        assert np.abs(back - label["joint_2d"].reshape(21, 2)).max() < 1e-3


def test_freihand_root_recovery_and_index_arithmetic(datasets):
    from handssca.data.freihand import mano_root
    ds = datasets["freihand/train"]
    N = ds.N
    assert len(ds) == 4 * N and N == 3
    assert [ds.sample_id(i) for i in (0, N, 2 * N + 1, 4 * N - 1)] == \
        [f"{0:08d}", f"{N:08d}", f"{2 * N + 1:08d}", f"{4 * N - 1:08d}"]
    root9 = mano_root(np.asarray(ds.mano), np.asarray(ds.K))
    assert np.abs(root9 - np.asarray(ds.xyz)[:, 9]).max() < 1e-5
    mesh = ds.mano_mesh(1)
    assert np.abs(mesh["vertices"] - np.asarray(ds.verts[1])).max() < 1e-5
    # the four versions of a sample share their annotation
    a, b = ds.get(1, augment=False)[0], ds.get(1 + 3 * N, augment=False)[0]
    assert torch.equal(a["joints3d"], b["joints3d"]) and not torch.equal(a["image"], b["image"])


def test_evaluation_helpers_give_back_the_ground_truth(datasets, tmp_path):
    from handssca.submit import read_dexycb_results, read_freihand_pred, read_ho3d_pred
    # FreiHAND: root-relative predictions + the ground-truth wrist = the official arrays
    ds = datasets["freihand/test"]
    ss = [ds.get(i)[0] for i in range(len(ds))][::-1]  # any order
    idx = [s["index"] for s in ss]
    J = torch.stack([s["joints3d"] for s in ss])
    V = torch.stack([s["vertices"] for s in ss])
    ds.write_submission(tmp_path / "pred.json", idx, J, V)
    xyz, verts = read_freihand_pred(tmp_path / "pred.json")
    assert np.abs(xyz - np.asarray(ds.xyz)).max() < 1e-6 and np.abs(verts - np.asarray(ds.verts)).max() < 1e-6
    # HO3D: the wrist of the eval meta, then OpenGL frame and H order in pred.zip
    ds = datasets["ho3d/test"]
    n = len(ds)
    rel = np.random.default_rng(0).normal(0, 0.03, (n, 21, 3))
    rel[:, 0] = 0
    ds.write_submission(tmp_path / "pred.zip", np.arange(n), rel, np.zeros((n, 778, 3)))
    gl, _ = read_ho3d_pred(tmp_path / "pred.zip")
    for i in range(n):
        wrist_gl = np.asarray(ds.meta(i)["handJoints3D"], np.float64).reshape(3)
        assert np.allclose(gl[i, 0], wrist_gl, atol=1e-7)
    cv, _ = read_ho3d_pred(tmp_path / "pred.zip", to_opencv_freihand=True)
    assert np.allclose(cv - cv[:, :1], rel, atol=1e-7)
    # DexYCB: un-mirrored, wrist added, toolkit indices, millimetres in the file
    ds = datasets["dexycb/test"]
    ss = [ds.get(i)[0] for i in range(len(ds))]
    J = torch.stack([s["joints3d"] for s in ss])
    out = ds.to_protocol([s["index"] for s in ss], J)
    ds.write_submission(tmp_path / "res.txt", [s["index"] for s in ss], J)
    ind, joints = read_dexycb_results(tmp_path / "res.txt")
    assert np.array_equal(ind, ds.toolkit_index) and np.allclose(joints, out["joints"], atol=1e-9)
    for i in range(len(ds)):
        label = F.load_npz(ds.paths(i)[1], ("joint_3d",))["joint_3d"].reshape(21, 3)
        assert np.abs(out["joints"][i] - label).max() < 1e-6


def test_dexycb_splits_follow_the_toolkit(datasets, roots):
    from handssca.data.dexycb import split_selection
    for ds in (datasets["dexycb/train"], datasets["dexycb/test"]):
        subj, cams, rule = split_selection("s0", ds.split)
        for seq in ds.sequences:
            subject, name = seq.split("/")
            names = sorted(p.name for p in (roots["dexycb"] / subject).iterdir() if p.is_dir())
            assert rule(names.index(name))
    train, test = set(datasets["dexycb/train"].sequences), set(datasets["dexycb/test"].sequences)
    assert not train & test
    # the toolkit index counts every frame of every camera, labelled or not
    ti = datasets["dexycb/test"].toolkit_index
    assert np.all(np.diff(ti) > 0)


def test_missing_paths_are_named(roots, tmp_path):
    with pytest.raises(DatasetLayoutError, match=str(tmp_path / "nowhere")):
        FreiHAND(tmp_path / "nowhere", "train")
    fh = tmp_path / "fh"
    shutil.copytree(roots["freihand"], fh)
    (fh / "training_xyz.json").unlink()
    with pytest.raises(DatasetLayoutError, match=r"training_xyz\.json not found\. Expected the official layout"):
        FreiHAND(fh, "train")
    ho = tmp_path / "ho"
    shutil.copytree(roots["ho3d"], ho)
    first = (ho / "train.txt").read_text().split()[0]
    (ho / "train" / first.split("/")[0] / "meta" / (first.split("/")[1] + ".pkl")).unlink()
    with pytest.raises(DatasetLayoutError, match=rf"{first.split('/')[1]}\.pkl not found"):
        HO3D(ho, "train")
    dy = tmp_path / "dy"
    shutil.copytree(roots["dexycb"], dy)
    shutil.rmtree(dy / "calibration" / "intrinsics")
    with pytest.raises(DatasetLayoutError, match=r"calibration/intrinsics not found"):
        DexYCB(dy, "s0", "train", cache_dir=False)


def test_corrupt_files_are_counted_warned_and_stop_the_run(roots, tmp_path):
    fh = tmp_path / "fh"
    shutil.copytree(roots["freihand"], fh)
    (fh / "training" / "rgb" / f"{1:08d}.jpg").write_bytes(b"not a jpeg")
    ds = FreiHAND(fh, "train", input_size=S, max_skip=0.5)
    with pytest.warns(RuntimeWarning, match="skipped corrupt sample 00000001"):
        s = ds[1]
    assert ds.skipped == 1 and int(s["index"]) == 2  # the next readable sample took its place
    strict = FreiHAND(fh, "train", input_size=S)  # default: 1 % of 3 samples -> no skip allowed
    with pytest.raises(TooManySkippedError, match="1 of 3"), pytest.warns(RuntimeWarning):
        strict[1]
    # at test time the sample keeps its place, with a black image
    (fh / "evaluation" / "rgb" / f"{0:08d}.jpg").write_bytes(b"")
    ev = FreiHAND(fh, "test", input_size=S, max_skip=1.0)
    with pytest.warns(RuntimeWarning):
        s = ev[0]
    assert int(s["index"]) == 0 and ev.skipped == 1
    black = torch.tensor([-m / d for m, d in zip(IMAGENET_MEAN, IMAGENET_STD)])[:, None, None]
    assert torch.allclose(s["image"], black.expand_as(s["image"]))
    # a malformed annotation entry is counted when the dataset is built
    xyz = json.loads((fh / "training_xyz.json").read_text())
    xyz[2] = [[0.0, 0.0]]
    (fh / "training_xyz.json").write_text(json.dumps(xyz))
    with pytest.warns(RuntimeWarning, match="00000002"):
        ds = FreiHAND(fh, "train", input_size=S, max_skip=0.5)
    assert ds.skipped == 1 and len(ds) == 4 * 2
    # a corrupt HO3D pickle
    ho = tmp_path / "ho"
    shutil.copytree(roots["ho3d"], ho)
    names = (ho / "train.txt").read_text().split()
    seq, fid = names[-1].split("/")
    (ho / "train" / seq / "meta" / f"{fid}.pkl").write_bytes(b"\x80\x02garbage")
    ds = HO3D(ho, "train", input_size=S, max_skip=1.0)
    with pytest.warns(RuntimeWarning, match="unreadable pickle"):
        s = ds[len(ds) - 1]
    assert int(s["index"]) == 0 and ds.skipped == 1


def test_nothing_is_written_into_the_dataset_folders(datasets, roots, digests, tmp_path):
    for ds in datasets.values():
        for i in range(len(ds)):
            ds[i]
    assert {k: _tree_digest(v) for k, v in roots.items()} == digests
    assert not list(roots["freihand"].glob("**/*.npy"))


def test_occlusion_is_unknown_without_synth_info(roots, tmp_path):
    ho = tmp_path / "ho"
    shutil.copytree(roots["ho3d"], ho)
    (ho / F.SYNTH_INFO).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = HO3D(ho, "train", input_size=S, hand_model=load_hand_model(kind="procedural"))[0]
    assert torch.isnan(s["occlusion"])
