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
"""
from __future__ import annotations

import torch

SCAN_ORDERS = ("row", "col", "row_rev", "col_rev")


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
