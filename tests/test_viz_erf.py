"""The gradient ERF (handssca.viz.erf): known windows, what the attention blocks can reach,
batch independence, the scalar summaries, and clear errors."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from handssca.models import build_attention
from handssca.viz.erf import (ERF, effective_receptive_field, erf_area, erf_radius, erf_summary,
                              erf_table, location_centre)


def _conv_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(4, 4, 2, stride=2))


@pytest.mark.parametrize("net, size, window", [
    # a 4 x 4 patchify conv: output (r, c) sees input rows/cols [4r, 4r + 4)
    (lambda: nn.Conv2d(3, 4, 4, stride=4), 32, (16, 20)),
    # 3 x 3 conv then a 2 x 2 stride-2 conv: output (r, c) sees rows/cols [2r - 1, 2r + 3)
    (_conv_net, 16, (7, 11)),
])
def test_erf_is_zero_outside_the_window_the_output_sees(net, size, window):
    torch.manual_seed(1)
    e = effective_receptive_field(net(), torch.randn(3, 3, size, size))
    lo, hi = window
    inside = np.zeros((size, size), bool)
    inside[lo:hi, lo:hi] = True
    assert e.map.shape == (size, size)
    assert np.all(e.map[~inside] == 0.0)
    assert np.all(e.map[inside] > 0.0)
    assert e.map.sum() == pytest.approx(1.0)
    assert e.feature_size == (8, 8) and e.location == (4, 4)
    assert e.centre == location_centre(e.location, e.feature_size, size)


def test_what_each_attention_block_can_reach_on_a_patch_local_backbone():
    # each location of F sees one 8 x 8 patch; the ERF of H shows what the block adds
    S, C, g = 64, 8, 8
    x = torch.randn(2, 3, S, S)
    for kind in ("none", "self_attention", "ssa", "ssca"):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, C, 8, stride=8), build_attention(kind, C, g, g))
        e = effective_receptive_field(net, x)
        patches = e.map.reshape(g, 8, g, 8).sum((1, 3))
        r0, c0 = e.location
        if kind == "none":  # H = F: only the centre patch
            assert patches[r0, c0] == pytest.approx(1.0)
            assert np.count_nonzero(patches) == 1
        else:  # global mixing (attention) or the four scan orders reach every patch
            assert np.all(patches > 0.0), kind
            assert patches[r0, c0] < 1.0 - 1e-3, kind


def test_images_do_not_interact_and_training_flags_are_restored():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                        nn.Conv2d(4, 4, 3, padding=1))
    with torch.no_grad():  # running statistics unlike a fresh batch's, so train mode would differ
        net[1].running_mean.fill_(0.3)
        net[1].running_var.fill_(2.0)
    net.train()
    x = torch.randn(4, 3, 16, 16)
    one = effective_receptive_field(net, x, batch_size=1)
    four = effective_receptive_field(net, x, batch_size=4)
    np.testing.assert_allclose(one.map, four.map, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(one.per_image, four.per_image, rtol=1e-5, atol=1e-12)
    assert net.training and net[1].training


class _FakeHandSSCA(nn.Module):
    """A module with the HandSSCA attributes the ERF reads: config.input_size, backbone,
    attention (H is the attention's output)."""

    def __init__(self, size=32):
        super().__init__()
        self.config = SimpleNamespace(input_size=size)
        self.backbone = nn.Conv2d(3, 4, 8, stride=8)
        self.attention = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(4, 1, 3, padding=1)  # after H: must not be measured

    def forward(self, x):
        return self.head(self.attention(self.backbone(x)))


def test_a_handssca_network_is_measured_at_h():
    m = _FakeHandSSCA()
    e = effective_receptive_field(m, torch.randn(2, 3, 32, 32))
    # H's centre (2, 2) sees the 8 x 8 patch [16, 24); the head after H would widen it
    assert np.count_nonzero(e.map) == 64
    assert e.map[16:24, 16:24].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [torch.randn(2, 3, 16, 16), torch.randn(3, 32, 32),
                                 torch.randn(2, 1, 32, 32),
                                 torch.zeros(2, 3, 32, 32, dtype=torch.int64),
                                 np.zeros((2, 3, 32, 32), np.float32)])
def test_bad_images_raise_naming_the_expected_shape(bad):
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        effective_receptive_field(_FakeHandSSCA(32), bad)


def test_a_location_outside_the_map_raises():
    with pytest.raises(ValueError, match="outside the 4 x 4"):
        effective_receptive_field(_FakeHandSSCA(32), torch.randn(1, 3, 32, 32), location=(4, 0))


def test_radius_and_area_on_maps_with_known_answers():
    S = 33
    c = ((S - 1) / 2, (S - 1) / 2)
    delta = np.zeros((S, S))
    delta[16, 16] = 5.0
    assert erf_radius(delta, c, 0.5) == 0.0
    assert erf_area(delta, 0.9) == pytest.approx(1 / S ** 2)
    uniform = np.ones((S, S))
    assert erf_area(uniform, 0.5) == pytest.approx(np.ceil(0.5 * S * S) / S ** 2)
    yy, xx = np.indices((S, S))
    d = np.hypot(xx - c[0], yy - c[1])
    disc = (d <= 10).astype(float)
    assert erf_radius(disc, c, 1.0) <= 10.0
    # half the disc's pixels lie within about 10 / sqrt(2)
    assert erf_radius(disc, c, 0.5) == pytest.approx(10 / np.sqrt(2), abs=0.75)
    assert np.isnan(erf_radius(np.zeros((S, S)), c, 0.5))
    with pytest.raises(ValueError, match="fraction"):
        erf_area(uniform, 1.5)
    with pytest.raises(ValueError, match=r"\(S, S\)"):
        erf_radius(np.ones(5), c, 0.5)


def test_summary_and_table():
    torch.manual_seed(0)
    e = effective_receptive_field(nn.Conv2d(3, 4, 4, stride=4), torch.randn(3, 3, 32, 32))
    s = erf_summary(e, (0.5, 0.9))
    assert set(s) >= {"r50", "r90", "r50_rel", "r50_sd", "area50", "area90", "n_images"}
    assert s["r50"] <= s["r90"] <= np.hypot(2.5, 2.5) + 1e-9  # within the 4 x 4 window
    assert s["area50"] <= s["area90"] <= 16 / 32 ** 2 + 1e-12
    t = erf_table({("none", "init"): s}, ["none", "ssca"], ["init", "trained"], caption="x")
    md = t.to_markdown()
    assert "not run" in md and f"{s['r50']:.1f}" in md
    with pytest.raises(ValueError, match="ERF"):
        erf_summary(np.ones((4, 4)))
    assert isinstance(e, ERF) and e.n_images == 3 and e.per_image.shape == (3, 32, 32)
