"""The four scan orders over a plane (Section 3.3, "Space select") and their merge."""
from __future__ import annotations

import pytest
import torch

from handssca.ssm import SCAN_ORDERS, cross_merge, cross_merge_planes, cross_scan, cross_scan_planes


def index_plane(h, w):
    """(1, 1, h, w) plane whose value is the row-major position."""
    return torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)


def test_the_four_orders_on_a_2x3_grid():
    # positions, row-major:  0 1 2
    #                        3 4 5
    seqs = cross_scan(index_plane(2, 3))[0, :, 0].long().tolist()
    expected = {
        "row": [0, 1, 2, 3, 4, 5],
        "col": [0, 3, 1, 4, 2, 5],
        "row_rev": [5, 4, 3, 2, 1, 0],
        "col_rev": [5, 2, 4, 1, 3, 0],
    }
    assert SCAN_ORDERS == tuple(expected)
    for k, name in enumerate(SCAN_ORDERS):
        assert seqs[k] == expected[name], name


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5), (4, 4), (7, 2)])
def test_each_order_is_a_bijection_and_merge_inverts_it(h, w):
    seqs = cross_scan(index_plane(h, w))[0, :, 0]          # (4, L)
    for k in range(4):
        assert torch.equal(seqs[k].sort().values, torch.arange(h * w, dtype=torch.float64))
    # merging one order alone is that order's inverse permutation
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    ys = cross_scan(x)
    for k in range(4):
        only_k = torch.zeros_like(ys)
        only_k[:, k] = ys[:, k]
        assert torch.equal(cross_merge(only_k, h, w), x.reshape(2, 3, h * w))


def test_merge_of_scan_is_four_times_the_input():
    x = torch.randn(2, 5, 6, 9)
    assert torch.equal(cross_merge(cross_scan(x), 6, 9), 4 * x.reshape(2, 5, 54))


def test_cross_merge_is_the_adjoint_of_cross_scan():
    # <scan(x), y> = <x, merge(y)>: the merge is what backpropagation through the scan computes
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 4, 3, 20, dtype=torch.float64)
    (cross_scan(x) * y).sum().backward()
    assert torch.allclose(x.grad.reshape(2, 3, 20), cross_merge(y, 4, 5), atol=1e-12)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(B, D, H, W\)"):
        cross_scan(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="cross_merge expects"):
        cross_merge(torch.zeros(2, 3, 5, 12), 3, 4)
    with pytest.raises(ValueError, match="cross_merge expects"):
        cross_merge(torch.zeros(2, 4, 5, 11), 3, 4)


def test_planes_layout_equals_the_channels_first_orders():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7)  # (B, H, W, D), channels last
    ref = cross_scan(x.permute(0, 3, 1, 2))  # (B, 4, D, L)
    xs = cross_scan_planes(x)
    assert xs.shape == (4, 2, 30, 7) and xs.is_contiguous()
    assert torch.equal(xs, ref.permute(1, 0, 3, 2))
    # strided input (a channels-first tensor seen channels-last) gives the same
    strided = x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    assert torch.equal(cross_scan_planes(strided), xs)
    # one plane per order: order k of plane k
    per = torch.randn(2, 5, 6, 4, 3)
    got = cross_scan_planes(per)
    for k in range(4):
        assert torch.equal(got[k], cross_scan_planes(per[..., k, :])[k])
    y = torch.randn(4, 2, 30, 7)
    assert torch.allclose(cross_merge_planes(y, 5, 6),
                          cross_merge(y.permute(1, 0, 3, 2), 5, 6).view(2, 7, 5, 6)
                          .permute(0, 2, 3, 1), atol=1e-6)


def test_planes_merge_is_the_adjoint_and_gradients_flow():
    torch.manual_seed(1)
    x = torch.randn(1, 4, 3, 5, requires_grad=True)
    y = torch.randn(4, 1, 12, 5)
    (cross_scan_planes(x) * y).sum().backward()
    assert torch.allclose(x.grad, cross_merge_planes(y, 4, 3), atol=1e-6)
    with torch.no_grad():  # the path without autograd builds the same sequences
        assert torch.equal(cross_scan_planes(x), cross_scan_planes(x.detach().clone()))
    with pytest.raises(ValueError, match="channels-last plane"):
        cross_scan_planes(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="cross_merge_planes"):
        cross_merge_planes(torch.zeros(4, 1, 11, 5), 4, 3)
