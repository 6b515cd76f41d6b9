"""Synthetic hands that vary as real ones do: conditioned pose draws, grasps that differ by object
and sequence, left and right hands in every DexYCB split, no sequence hidden whole, and the
statistics the data chapter reports."""
from collections import defaultdict

import numpy as np
import pytest
import torch

from handssca.data import DexYCB, HO3D
from handssca.data.stats import (constant_errors, hand_annotations, mean_articulation_hand, plain_spread,
                                 style_statistics)
from handssca.data.synth import generate, read_info
from handssca.data.synth.common import Timer
from handssca.data.synth.ho3d import HO3DWriter
from handssca.data.synth.scene import HandPoser, grasp_centres, key_rotations, palm_turned_away
from handssca.hand import HandLayer, load_hand_model
from handssca.hand.pose_space import sample_angles, sample_articulation


@pytest.fixture(scope="module")
def ho3d_root(tmp_path_factory):
    # seed 0, 40 frames in sequences of 8: the set whose evaluation sequence used to be hidden whole
    out = tmp_path_factory.mktemp("grasps") / "HO3D_v2"
    generate("ho3d", out, 40, seed=0, frames_per_sequence=8, show_progress=False)
    return out


@pytest.fixture(scope="module")
def dexycb_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("grasps") / "DexYCB"
    generate("dexycb", out, 40, seed=0, show_progress=False)
    return out


def _by_sequence(root, depth: int) -> dict:
    """Per sequence folder (the first ``depth`` parts of an image's path), its images' occlusions."""
    out = defaultdict(list)
    for key, rec in read_info(root)["samples"].items():
        if rec["occlusion"] is not None:
            out["/".join(key.split("/")[:depth])].append(rec["occlusion"])
    return out


def test_plain_draws_are_unchanged_and_centres_move_the_hand():
    a, b = sample_angles(64, np.random.default_rng(3)), sample_angles(64, np.random.default_rng(3), None, None)
    assert all(np.array_equal(a[p][k], b[p][k]) for p in a for k in a[p])
    closed = sample_angles(500, np.random.default_rng(0), closure=0.8)
    opened = sample_angles(500, np.random.default_rng(0), closure=0.2)
    for finger in ("index", "middle", "ring", "pinky"):   # PIP = 100 c + noise, c about g
        assert closed[finger]["pip"].mean() - opened[finger]["pip"].mean() > 45
    fanned = sample_angles(500, np.random.default_rng(0), closure=0.2, spread=2.0)
    together = sample_angles(500, np.random.default_rng(0), closure=0.2, spread=-2.0)
    assert fanned["index"]["abd"].mean() > 10 > -10 > together["index"]["abd"].mean()
    with pytest.raises(ValueError, match="closure must be a finite number or an array of 4"):
        sample_angles(4, np.random.default_rng(0), closure=np.zeros(3))


def test_grasps_follow_the_object_and_vary_like_the_plain_distribution():
    rng = np.random.default_rng(0)
    thin = np.mean([grasp_centres(rng, 17)[0] for _ in range(200)])      # scissors, 1.2 cm
    thick = np.mean([grasp_centres(rng, 11)[0] for _ in range(200)])     # pitcher, 14 cm
    assert thin - thick > 0.4
    # the generator's own sequences: 100 grasps of HO3D's objects, two keyframes each
    w = HO3DWriter("unused", 600, 0, HandPoser(), Timer(), frames_per_sequence=6)
    model = load_hand_model(kind=w.poser.kind)
    seqs = [w.sequence(q) for q in range(len(w.sequences))]
    arts = np.array([a for seq in seqs for a in seq["arts"]])
    shapes = np.array([seq["shape"] for seq in seqs for _ in seq["arts"]])
    plain = plain_spread()
    moving = plain > 0.01
    ratio = arts.std(0)[moving] / plain[moving]
    assert 0.75 < ratio.min() and ratio.max() < 1.3 and 0.85 < np.median(ratio) < 1.15
    layer = HandLayer(model).double()
    offsets = arts - w.poser.hands_mean[True]
    with torch.no_grad():
        j = layer(torch.tensor(np.c_[np.zeros((len(arts), 3)), offsets]), torch.tensor(shapes))["joints"].numpy()
    err = constant_errors({"articulation": offsets, "shape": shapes, "joints": j - j[:, :1]}, model)
    assert 10.0 < err.mean() < 15.0                                   # the blend towards one pose gave 5-7 mm
    assert mean_articulation_hand(offsets.mean(0), shapes.mean(0), model)["joints"][0] == pytest.approx(0.0)


def test_a_held_object_never_faces_the_camera_with_the_palm():
    rng = np.random.default_rng(1)
    palm, to_cam = np.array([0.0, -1.0, 0.0]), [np.array([0.0, 0.0, -1.0])] * 6
    for _ in range(50):
        rots = key_rotations(rng, palm, to_cam)
        assert all(palm_turned_away(R, palm, to_cam[0]) for R in rots)
        assert all(np.allclose(R @ R.T, np.eye(3)) for R in rots)


def test_no_sequence_is_hidden_whole(ho3d_root, dexycb_root):
    for root, depth in ((ho3d_root, 2), (dexycb_root, 2)):
        seqs = _by_sequence(root, depth)
        assert len(seqs) >= 5
        for seq, occ in seqs.items():
            assert min(occ) <= 0.95, (root.name, seq, occ)


def test_dexycb_splits_hold_left_and_right_hands(dexycb_root):
    counts = read_info(dexycb_root)["counts"]
    assert counts["sequences"] == 20 and counts["left_sequences"] == 10      # one sequence in two
    for split in ("train", "val", "test"):
        ds = DexYCB(dexycb_root, "s0", split, cache_dir=False)
        assert {ds.side(i) for i in range(len(ds))} == {"left", "right"}, split
        assert counts["s0_sides"][split] == ["left", "right"]


def test_statistics_of_a_synthetic_set(ho3d_root):
    ds = HO3D(ho3d_root, "train")
    stats = style_statistics(ds)
    ann = hand_annotations(ds)
    assert stats["n"] == len(ds) == len(ann["index"]) == 32
    assert stats["spread"].shape == (45,) and np.all(stats["spread"] >= 0)
    assert stats["occlusion"].shape == (32,) and np.all((stats["occlusion"] >= 0) & (stats["occlusion"] <= 1))
    assert stats["constant_errors"].shape == (32,) and stats["constant_pa_mpjpe"] == pytest.approx(
        stats["constant_errors"].mean())
    # four grasps already spread the hands beyond the old one-pose blend (5-7 mm)
    assert stats["constant_pa_mpjpe"] > 7.0
    # a constant that is one of the samples scores 0 on that sample
    one = {k: v[:1] for k, v in ann.items()}
    assert constant_errors(one, load_hand_model(kind=read_info(ho3d_root)["hand_model"]["kind"]),
                           ds.fingertips)[0] < 1e-3   # mm; the pickles hold float32
    assert np.allclose(plain_spread(512, 0), sample_articulation(512, np.random.default_rng(0)).std(0))


def test_the_chapter_table_and_figure_say_what_they_show(ho3d_root):
    import matplotlib
    matplotlib.use("Agg")
    from handssca.viz.data import plot_articulation_spread, variety_table
    stats = style_statistics(HO3D(ho3d_root, "train"))
    plain = plain_spread(512, 0)
    table = variety_table({"HO-3D": ("synthetic", stats)}, plain)
    assert table.caption.startswith("SYNTHETIC data") and table.rows[0][:3] == ["HO-3D", "SYNTHETIC", "32"]
    assert float(table.rows[0][3]) == pytest.approx(stats["constant_pa_mpjpe"], abs=0.05)
    real = variety_table({"HO-3D": ("real", {**stats, "occlusion": np.full(3, np.nan)})}, plain)
    assert not real.caption.startswith("SYNTHETIC") and real.rows[0][5] == "unknown"
    fig = plot_articulation_spread({"HO-3D (synthetic)": stats["spread"]}, plain)
    ax = fig.axes[0]
    assert len(ax.patches) == 45 and np.allclose(ax.lines[0].get_ydata(), stats["spread"])
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"plain pose distribution", "HO-3D (synthetic)"}
