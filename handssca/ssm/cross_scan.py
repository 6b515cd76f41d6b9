"""The four scan orders over a 2D plane (VMamba's cross-scan) and their merge.

Section 3.3, "Space select": rows and columns are unfolded and scanned in four directions.
Orders, as sequences over an (H, W) plane stored row-major:

====  ==================  ==========================================
k     name                visiting order
====  ==================  ==========================================
0     ``row``             row-major: (0,0), (0,1), ... (0,W-1), (1,0) ...
1     ``col``             column-major: (0,0), (1,0), ... (H-1,0), (0,1) ...
2     ``row_rev``         order 0 reversed
3     ``col_rev``         order 1 reversed
====  ==================  ==========================================

The paper words the four directions as corners ("top-left to bottom-right" ...); the code it
builds on (VMamba) uses exactly the orders above, and so do we.

Two layouts: :func:`cross_scan` / :func:`cross_merge` take channels-first planes (B, D, H, W) and
give (B, 4, D, L), the layout of mamba-ssm's scan; :func:`cross_scan_planes` /
:func:`cross_merge_planes` take channels-last planes (B, H, W, D) and give the grouped layout
(4, B, L, D) of :func:`handssca.ssm.chunked_scan.selective_scan_grouped`, where every order is
built by copying whole D-vectors (no transposed copy of the plane).
"""
from __future__ import annotations

import torch

SCAN_ORDERS = ("row", "col", "row_rev", "col_rev")


def _check_plane(x: torch.Tensor, where: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{where} expects a channels-last plane (B, H, W, D), "
                         f"got shape {tuple(x.shape)}")


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """Unfold a 2D plane into the four scan sequences.

    Args:
        x: (B, D, H, W), the plane with D channels.

    Returns:
        (B, 4, D, L) with L = H*W; sequence k follows ``SCAN_ORDERS[k]``.
    """
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects (B, D, H, W), got shape {tuple(x.shape)}")
    b, d, h, w = x.shape
    row = x.reshape(b, d, h * w)
    col = x.transpose(2, 3).reshape(b, d, h * w)
    seqs = torch.stack([row, col], dim=1)  # (B, 2, D, L)
    return torch.cat([seqs, seqs.flip(-1)], dim=1)  # (B, 4, D, L)


def cross_merge(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Map the four scanned sequences back to row-major order and sum them (the merge).

    Args:
        y: (B, 4, D, L), sequence k in the order ``SCAN_ORDERS[k]``, L = h*w.
        h, w: the plane's height and width.

    Returns:
        (B, D, L) in row-major order: sum over k of the inverse permutation of y[:, k].
    """
    if y.dim() != 4 or y.shape[1] != 4 or y.shape[-1] != h * w:
        raise ValueError(
            f"cross_merge expects (B, 4, D, {h}*{w}={h * w}), got shape {tuple(y.shape)}")
    b, _, d, l = y.shape
    y = y[:, 0:2] + y[:, 2:4].flip(-1)  # undo the reversals: (B, 2, D, L)
    row = y[:, 0]
    col = y[:, 1].reshape(b, d, w, h).transpose(2, 3).reshape(b, d, l)
    return row + col


def cross_scan_planes(x: torch.Tensor) -> torch.Tensor:
    """The four scan sequences of channels-last planes, in the grouped layout.

    Args:
        x: (B, H, W, D), D channels at each of the H x W positions; or (B, H, W, 4, D), a
            plane per order (order k of ``x[..., k, :]``). Any strides.

    Returns:
        (4, B, L, D) contiguous with L = H*W; ``[k]`` follows ``SCAN_ORDERS[k]``:
        ``cross_scan_planes(x)`` equals ``cross_scan(x.permute(0, 3, 1, 2)).permute(1, 0, 3, 2)``.
    """
    per_order = x.dim() == 5
    if per_order and x.shape[3] != 4:
        raise ValueError(f"cross_scan_planes expects (B, H, W, D) or (B, H, W, 4, D), "
                         f"got shape {tuple(x.shape)}")
    if not per_order:
        _check_plane(x, "cross_scan_planes")
    b, h, w = x.shape[:3]
    d = x.shape[-1]
    L = h * w
    src = [x[..., k, :] for k in range(4)] if per_order else [x] * 4
    xs = x.new_empty(4, b, L, d)
    xs[0].view(b, h, w, d).copy_(src[0])                  # row-major
    xs[1].view(b, w, h, d).copy_(src[1].transpose(1, 2))  # column-major
    if per_order:                                         # both reversed
        xs[2].view(b, h, w, d).copy_(src[2].flip(1, 2))
        xs[3].view(b, w, h, d).copy_(src[3].transpose(1, 2).flip(1, 2))
    elif torch.is_grad_enabled() and x.requires_grad:
        xs[2].copy_(xs[0].flip(1))
        xs[3].copy_(xs[1].flip(1))
    else:  # the same, without the flipped temporary (out= has no autograd)
        rev = torch.arange(L - 1, -1, -1, device=x.device)
        torch.index_select(xs[0], 1, rev, out=xs[2])
        torch.index_select(xs[1], 1, rev, out=xs[3])
    return xs


def cross_merge_planes(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Map the four scanned sequences (grouped layout) back to the plane and sum them.

    Args:
        y: (4, B, L, D), sequence k in the order ``SCAN_ORDERS[k]``, L = h*w.
        h, w: the plane's height and width.

    Returns:
        (B, h, w, D): the sum over k of the inverse permutation of y[k] (the transpose of
        :func:`cross_scan_planes`).
    """
    if y.dim() != 4 or y.shape[0] != 4 or y.shape[2] != h * w:
        raise ValueError(f"cross_merge_planes expects (4, B, {h}*{w}={h * w}, D), "
                         f"got shape {tuple(y.shape)}")
    b, d = y.shape[1], y.shape[3]
    row = y[0] + y[2].flip(1)                             # (B, L, D), row-major
    col = y[1] + y[3].flip(1)                             # column-major
    return row.view(b, h, w, d) + col.view(b, w, h, d).transpose(1, 2)
