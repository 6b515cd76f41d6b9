"""Attention maps (handssca.viz.attention): channel norms, upsampling, keypoint maps, the Fig. 5
regions from segmentation and mesh, the region contrast, the choice of occluded images."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from handssca.data.geometry import crop_transform
from handssca.viz.attention import (REGIONS, amodal_hand_mask, channel_norm, feature_maps,
                                    keypoint_map, region_contrast, region_masks, region_table,
                                    segmentation_path, select_occluded, upsample, visible_masks)


def test_channel_norm_and_what_the_block_adds():
    torch.manual_seed(0)
    f = torch.randn(2, 5, 4, 4)
    np.testing.assert_allclose(channel_norm(f), torch.linalg.vector_norm(f, dim=1).numpy(),
                               rtol=1e-6)
    m = feature_maps({"features": f, "attended": f})  # the baseline: H = F
    assert np.all(m["added"] == 0.0) and m["H"].shape == (2, 4, 4)
    m = feature_maps({"features": f, "attended": f + 2.0})
    np.testing.assert_allclose(m["added"], np.full((2, 4, 4), 2.0 * np.sqrt(5)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        channel_norm(np.zeros((5, 4, 4)))


def test_upsample_keeps_locations_over_their_pixels():
    S, h = 64, 8
    m = np.zeros((h, h))
    m[2, 5] = 1.0
    u = upsample(m, S)
    assert u.shape == (S, S)
    yy, xx = np.indices((S, S))
    # location (2, 5) covers pixels [16, 24) x [40, 48): centre (43.5, 19.5)
    assert (u * xx).sum() / u.sum() == pytest.approx(5.5 * 8 - 0.5, abs=0.3)
    assert (u * yy).sum() / u.sum() == pytest.approx(2.5 * 8 - 0.5, abs=0.3)
    np.testing.assert_allclose(upsample(np.full((3, h, h), 2.0), S), 2.0)
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        upsample(np.zeros(4), S)


def test_keypoint_map_shows_every_joint_at_full_strength():
    probs = torch.zeros(1, 21, 8, 8)
    for j in range(21):  # joint j peaks at its own location, with very different heights
        probs[0, j, j // 8 % 8, j % 8] = 10.0 ** (-j / 5)
    k = keypoint_map(probs, 8)
    assert k.shape == (1, 8, 8) and k.max() == pytest.approx(1.0)
    for j in range(21):
        assert k[0, j // 8 % 8, j % 8] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(B, 21, h, w\)"):
        keypoint_map(torch.zeros(1, 20, 8, 8), 8)


def test_regions_are_disjoint_cover_the_crop_and_mean_what_they_say():
    S = 32
    hand = np.zeros((S, S), bool)
    obj = np.zeros((S, S), bool)
    amodal = np.zeros((S, S), bool)
    hand[8:24, 4:16] = True  # the visible hand, left
    obj[8:24, 16:28] = True  # the object in front, right
    amodal[8:24, 4:24] = True  # the whole hand reaches behind the object to column 24
    m = region_masks(hand, obj, amodal, edge_px=2)
    assert list(m) == list(REGIONS)
    total = sum(v.astype(int) for v in m.values())
    assert np.all(total == 1)
    edge_cols = np.flatnonzero(m["interaction_edge"].any(0))
    assert edge_cols.min() == 14 and edge_cols.max() == 17  # 2 px either side of the contact
    assert m["occluded_hand"][8:24, 18:24].all() and not m["occluded_hand"][:, 24:].any()
    assert not m["visible_hand"][:, 14:].any() and m["visible_hand"][8:24, 4:14].all()
    assert m["object"][8:24, 24:28].all() and m["background"][0].all()
    # a one-pixel sliver along the outline is not an occluded region
    sliver = amodal.copy()
    sliver[7, 4:16] = True
    assert not region_masks(hand, obj, sliver, 2)["occluded_hand"][7].any()
    with pytest.raises(ValueError, match="edge_px"):
        region_masks(hand, obj, amodal, 0)


def test_region_contrast():
    S = 16
    a = np.ones((S, S))
    a[:4] = 3.0  # a quarter of the crop at three times the rest: mean 1.5
    masks = {"top": np.zeros((S, S), bool), "rest": np.ones((S, S), bool),
             "none": np.zeros((S, S), bool)}
    masks["top"][:4] = True
    masks["rest"][:4] = False
    c = region_contrast(a, masks)
    assert c["top"] == pytest.approx(2.0) and c["rest"] == pytest.approx(1 / 1.5)
    assert np.isnan(c["none"])
    with pytest.raises(ValueError, match="non-negative"):
        region_contrast(-a, masks)
    table = region_table({"ssca": {k: np.array([1.0, 2.0]) for k in REGIONS}}, caption="c")
    assert "1.50 ± 0.71 (2)" in table.to_markdown()


class _Sequences:
    """A dataset stand-in: sample ids SEQ/FID and occlusion fractions."""

    def __init__(self, occ, seq_len):
        self.occlusion = np.asarray(occ, dtype=float)
        self.seq_len = seq_len

    def __len__(self):
        return len(self.occlusion)

    def sample_id(self, i):
        return f"S{i // self.seq_len}/{i % self.seq_len:04d}"


def test_select_occluded_takes_the_most_occluded_of_each_sequence_in_turn():
    occ = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.5, 0.6, 0.7, 0.1, 0.4])  # S0: rows 0-4, S1: 5-9
    ds = _Sequences(occ, 5)
    rows = list(range(10))
    assert select_occluded(ds, rows, 2, min_gap=1) == [1, 7]
    assert select_occluded(ds, rows, 4, min_gap=1) == [1, 7, 2, 6]
    # with a gap of 2 rows, row 2 (next to row 1) and row 6 (next to 7) wait their turn
    assert select_occluded(ds, rows, 4, min_gap=2) == [1, 7, 4, 5]
    assert sorted(select_occluded(ds, rows, 20, min_gap=3)) == rows  # asks for more: all
    unknown = _Sequences(np.full(10, np.nan), 5)
    assert select_occluded(unknown, rows, 3) == [0, 4, 9]  # no occlusion known: spread out
    with pytest.raises(ValueError, match="positive"):
        select_occluded(ds, rows, 0)


def test_visible_masks_read_the_segmentation_through_the_crop(tmp_path):
    W, H = 64, 48
    for folder in ("rgb", "seg"):
        (tmp_path / "SEQ" / folder).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "SEQ" / "rgb" / "0000.png"), np.zeros((H, W, 3), np.uint8))
    seg = np.zeros((H, W, 3), np.uint8)  # OpenCV's BGR: blue = hand, green = object
    seg[10:20, 8:24, 0] = 255
    seg[10:20, 24:40, 1] = 255
    cv2.imwrite(str(tmp_path / "SEQ" / "seg" / "0000.png"), seg)
    ds = SimpleNamespace(paths=lambda i: (tmp_path / "SEQ" / "rgb" / "0000.png", None))
    seg_file = segmentation_path(tmp_path / "SEQ" / "rgb" / "0000.png")
    assert seg_file == tmp_path / "SEQ" / "seg" / "0000.png"
    box = np.array([0.0, 0.0, 64.0, 64.0])  # a 64 px square box onto a 32 px crop: half size
    tr = SimpleNamespace(affine=crop_transform(box, 32), mirrored=False)
    hand, obj = visible_masks(ds, 0, tr, 32)
    assert hand[5:10, 4:12].all() and hand.sum() == 5 * 8
    assert obj[5:10, 12:20].all() and obj.sum() == 5 * 8
    mirrored = SimpleNamespace(affine=crop_transform(box, 32), mirrored=True)
    hand_m, _ = visible_masks(ds, 0, mirrored, 32)
    assert hand_m[5:10, 20:28].all() and hand_m.sum() == 5 * 8  # columns 64 - 24 .. 64 - 8
    no_seg = SimpleNamespace(paths=lambda i: (tmp_path / "OTHER" / "rgb" / "0000.png", None))
    assert visible_masks(no_seg, 0, tr, 32) is None


def test_amodal_mask_covers_the_projected_mesh():
    S = 64
    # a box 4 cm wide, 0.5 m in front of the camera, its wrist (vertex 0) given as the root
    corners = np.array([[x, y, z] for x in (-0.02, 0.02) for y in (-0.02, 0.02)
                        for z in (0.48, 0.52)])
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    K = np.array([[400.0, 0, 31.5], [0, 400.0, 31.5], [0, 0, 1]])
    root = corners[0]
    sample = {"image": torch.zeros(3, S, S), "vertices": torch.tensor(corners - root),
              "root": torch.tensor(root), "is_left": False, "K": torch.tensor(K)}
    mask = amodal_hand_mask(sample, SimpleNamespace(rotation=np.eye(3)), faces)
    uv = corners @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    ys, xs = np.nonzero(mask)
    # the silhouette's extent is the projected box's (the near face, 0.48 m: +-16.7 px)
    assert xs.min() == pytest.approx(uv[:, 0].min(), abs=1.0)
    assert xs.max() == pytest.approx(uv[:, 0].max(), abs=1.0)
    assert ys.min() == pytest.approx(uv[:, 1].min(), abs=1.0)
    assert ys.max() == pytest.approx(uv[:, 1].max(), abs=1.0)
