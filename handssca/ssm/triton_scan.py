"""The four-order cross-scan of Section 3.3 as one Triton kernel: scan orders read, merge written.

The SSCA block scans a plane in four orders (:mod:`handssca.ssm.cross_scan`: row-major,
column-major and both reversed), runs the selective scan (S6, Eq. 2-3) on each, and sums the four
results back in the plane's order. Done as three steps (cross-scan copy, scan, merge) the four
copies of the input and of the four outputs go through memory. This kernel reads the plane
directly, each order's position by index arithmetic, and adds each order's output into the
plane, so neither the copies nor the merge ever touch memory.

Per order k, channel c, plane position p(k, t) of step t (L = H W steps):

    delta_t = softplus(delta[k, c, p] + delta_bias[k, c])            (softplus when asked)
    h_t     = exp(delta_t A[k, c]) * h_{t-1} + delta_t B[k, :, p] x[c, p]    (Eq. 2, B-bar Eq. 3)
    y_t     = C[k, :, p] . h_t + D[k, c] x[c, p]                              (Eq. 1)
    out[c, p(k, t)] += y_t                                                     (the merge)

with h_0 = 0 and h_t of size N (the state size). Step t of order k visits, with s = t for
k = 0, 1 and s = L - 1 - t for the reversed k = 2, 3: row-major (i, j) = (s // W, s % W) for
k = 0, 2, column-major (i, j) = (s % H, s // H) for k = 1, 3. The projections delta, B and C
are therefore given in the plane's layout, one set per order, (batch, 4, ., H, W): they are
computed position by position (Eq. 1's selective B, C and Delta), so the SSCA block can compute
them on the plane without ever building the orders.

Backward: not a Triton kernel. :class:`CrossScanTriton`'s backward recomputes the same function
with the package's pure-PyTorch chunked scan (cross-scan, scan, merge; its memory-bounded
recomputing backward, :mod:`handssca.ssm.chunked_scan`) under autograd. It is exact, but pays
the memory traffic this kernel saves in the forward; a reverse-scan kernel would remove it.

Triton is imported on first use, never at import time: it is an optional dependency (the
``dev`` and ``cuda`` extras), it takes about a second to import, and in production it runs on
CUDA only (without a GPU, Triton's interpreter, ``TRITON_INTERPRET=1`` set before Triton is
imported, runs the kernel on CPU tensors, slowly: the tests use it).

The package uses this kernel only when asked: see :func:`handssca.ssm.scan.cross_scan_kernel`
and its environment flag ``HANDSSCA_TRITON_SCAN``.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch

from .cross_scan import cross_merge

Tensor = torch.Tensor

#: channels per Triton program (each program scans BLOCK_D channels of one order of one plane)
BLOCK_D = 32


def triton_available() -> bool:
    """True when Triton can be imported (it is never imported by importing this module)."""
    try:
        _kernel()
        return True
    except ImportError:
        return False


@functools.lru_cache(maxsize=None)
def _kernel():
    """The jitted forward kernel, built on first use (Triton is imported here: see the module
    docstring for why it is deferred)."""
    import triton
    import triton.language as tl

    @triton.jit
    def cross_scan_fwd(
            x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, bias_ptr, out_ptr,
            n_ch, H, W,
            sx_b, sx_c, sx_h, sx_w,                # x (batch, d, H, W)
            st_b, st_k, st_c, st_h, st_w,          # delta (batch, 4, d, H, W)
            sb_b, sb_k, sb_n, sb_h, sb_w,          # B (batch, 4, N, H, W)
            sc_b, sc_k, sc_n, sc_h, sc_w,          # C (batch, 4, N, H, W)
            so_b, so_c, so_h, so_w,                # out (batch, d, H, W), fp32, zeroed
            N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK: tl.constexpr,
            SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr):
        b = tl.program_id(0)                   # plane
        k = tl.program_id(1)                   # scan order, SCAN_ORDERS[k]
        cs = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)  # channels (BLOCK,)
        ns = tl.arange(0, BLOCK_N)             # state index (BLOCK_N,)
        mc = cs < n_ch
        mn = ns < N
        m2 = mc[:, None] & mn[None, :]
        # A (4, d, N) contiguous; padded state entries get A = 0 and B = 0, so they stay 0
        A = tl.load(a_ptr + (k * n_ch + cs)[:, None] * N + ns[None, :], mask=m2, other=0.0)
        Dk = tl.zeros((BLOCK,), tl.float32)
        if HAS_D:
            Dk = tl.load(d_ptr + k * n_ch + cs, mask=mc, other=0.0)
        bias = tl.zeros((BLOCK,), tl.float32)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + k * n_ch + cs, mask=mc, other=0.0)
        col = k % 2                            # 0: row-major, 1: column-major
        rev = k // 2                           # 1: reversed
        L = H * W
        h = tl.zeros((BLOCK, BLOCK_N), tl.float32)  # h_0 = 0, (BLOCK, N)
        for t in range(0, L):
            s = t + rev * (L - 1 - 2 * t)      # position along the (unreversed) order
            i = (1 - col) * (s // W) + col * (s % H)
            j = (1 - col) * (s % W) + col * (s // H)
            x = tl.load(x_ptr + b * sx_b + cs * sx_c + i * sx_h + j * sx_w,
                        mask=mc, other=0.0).to(tl.float32)                      # (BLOCK,)
            dt = tl.load(dt_ptr + b * st_b + k * st_k + cs * st_c + i * st_h + j * st_w,
                         mask=mc, other=0.0).to(tl.float32) + bias              # (BLOCK,)
            if SOFTPLUS:  # torch's softplus: linear above 20
                dt = tl.where(dt > 20.0, dt, tl.log(1.0 + tl.exp(dt)))
            Bt = tl.load(b_ptr + b * sb_b + k * sb_k + ns * sb_n + i * sb_h + j * sb_w,
                         mask=mn, other=0.0).to(tl.float32)                     # (BLOCK_N,)
            Ct = tl.load(c_ptr + b * sc_b + k * sc_k + ns * sc_n + i * sc_h + j * sc_w,
                         mask=mn, other=0.0).to(tl.float32)                     # (BLOCK_N,)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]  # Eq. 2-3
            y = tl.sum(h * Ct[None, :], axis=1) + Dk * x                       # Eq. 1
            # the merge: the four orders add into the same plane position
            tl.atomic_add(out_ptr + b * so_b + cs * so_c + i * so_h + j * so_w, y, mask=mc)

    return triton, cross_scan_fwd


def _check(x, delta, A, B, C, D, delta_bias) -> None:
    """Shapes of :func:`cross_scan_triton`; a ValueError names the argument and what it needs."""
    if x.dim() != 4:
        raise ValueError(f"x must be a plane (batch, d, H, W), got shape {tuple(x.shape)}")
    b, d, h, w = x.shape
    if delta.shape != (b, 4, d, h, w):
        raise ValueError(f"delta must be (batch, 4, d, H, W) = {(b, 4, d, h, w)}, "
                         f"got {tuple(delta.shape)}")
    if A.dim() != 3 or A.shape[:2] != (4, d):
        raise ValueError(f"A must be (4, d, N) with d = {d}, got {tuple(A.shape)}")
    n = A.shape[2]
    for name, m in (("B", B), ("C", C)):
        if m.shape != (b, 4, n, h, w):
            raise ValueError(f"{name} must be (batch, 4, N, H, W) = {(b, 4, n, h, w)}, "
                             f"got {tuple(m.shape)}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (4, d):
            raise ValueError(f"{name} must be (4, d) = (4, {d}), got {tuple(v.shape)}")


def order_sequences(t: Tensor) -> Tensor:
    """(batch, 4, c, H, W), one plane per scan order -> (batch, 4, c, L): sequence k is plane k
    in the order ``SCAN_ORDERS[k]`` (what :func:`~handssca.ssm.cross_scan.cross_scan` does to one
    plane, applied to each order's own plane)."""
    b, _, c, h, w = t.shape
    row = t[:, 0].reshape(b, c, h * w)
    col = t[:, 1].transpose(2, 3).reshape(b, c, h * w)
    row_rev = t[:, 2].reshape(b, c, h * w).flip(-1)
    col_rev = t[:, 3].transpose(2, 3).reshape(b, c, h * w).flip(-1)
    return torch.stack([row, col, row_rev, col_rev], dim=1)


def cross_scan_composite(x, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                         backend: Optional[str] = "chunked") -> Tensor:
    """The function the kernel computes, as cross-scan, selective scan and merge in PyTorch.

    Arguments as :func:`cross_scan_triton`; ``backend`` is the scan backend
    (:func:`handssca.ssm.selective_scan`). Returns (batch, d, H, W) in x's dtype. The test oracle
    (with ``backend="reference"``) and the kernel's backward (``"chunked"``).
    """
    from .scan import selective_scan  # scan imports this module for its dispatch

    b, d, h, w = x.shape
    n, L = A.shape[2], h * w
    xs = order_sequences(x.unsqueeze(1).expand(b, 4, d, h, w))           # (batch, 4, d, L)
    y = selective_scan(
        xs.reshape(b, 4 * d, L), order_sequences(delta).reshape(b, 4 * d, L),
        A.reshape(4 * d, n), order_sequences(B), order_sequences(C),     # B, C grouped by order
        None if D is None else D.reshape(4 * d), None,
        None if delta_bias is None else delta_bias.reshape(4 * d), delta_softplus,
        backend=backend)
    return cross_merge(y.reshape(b, 4, d, L), h, w).reshape(b, d, h, w).to(x.dtype)


def _forward(x, delta, A, B, C, D, delta_bias, delta_softplus) -> Tensor:
    """Launch the kernel: one program per (plane, order, BLOCK_D channels)."""
    triton, kernel = _kernel()
    b, d, h, w = x.shape
    n = A.shape[2]
    # fp32 accumulation of the four orders (atomic adds), then x's dtype; the four additions
    # into one position come in any order, so results may differ in the last bit between runs.
    # The output keeps x's memory layout (a channels-last x gives a channels-last output).
    out = torch.zeros_like(x, dtype=torch.float32)
    A = A.float().contiguous()
    Dv = (D if D is not None else A.new_zeros(4, d)).float().contiguous()
    bias = (delta_bias if delta_bias is not None else A.new_zeros(4, d)).float().contiguous()
    # at most BLOCK_D channels a program, fewer when the plane has fewer (the channel branch of
    # the paper's reading scans d = 1 channel: no idle lanes)
    block = min(BLOCK_D, triton.next_power_of_2(d))
    grid = (b, 4, triton.cdiv(d, block))
    kernel[grid](x, delta, A, B, C, Dv, bias, out, d, h, w,
                 *x.stride(), *delta.stride(), *B.stride(), *C.stride(), *out.stride(),
                 N=n, BLOCK_N=triton.next_power_of_2(n), BLOCK=block,
                 SOFTPLUS=bool(delta_softplus), HAS_D=D is not None,
                 HAS_BIAS=delta_bias is not None)
    return out.to(x.dtype)


class CrossScanTriton(torch.autograd.Function):
    """Forward: the Triton kernel. Backward: autograd through :func:`cross_scan_composite` with
    the chunked scan (recomputation; see the module docstring)."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, delta_bias, delta_softplus):
        ctx.save_for_backward(x, delta, A, B, C, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return _forward(x, delta, A, B, C, D, delta_bias, delta_softplus)

    @staticmethod
    def backward(ctx, gout):
        saved = ctx.saved_tensors
        inputs = [None if t is None else t.detach().requires_grad_(need)
                  for t, need in zip(saved, ctx.needs_input_grad)]
        with torch.enable_grad():
            out = cross_scan_composite(*inputs, delta_softplus=ctx.delta_softplus,
                                       backend="chunked")
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, gout)) if wanted else iter(())
        return (*[next(grads) if t is not None and t.requires_grad else None for t in inputs],
                None)


def cross_scan_triton(x, delta, A, B, C, D=None, delta_bias=None,
                      delta_softplus: bool = True) -> Tensor:
    """The four-order selective scan of a plane and its merge, in one Triton kernel.

    Args:
        x: (batch, d, H, W), the plane (any strides: a channels-last view is read in place).
        delta: (batch, 4, d, H, W), each order's step sizes Delta in the plane's layout
            (before bias and softplus).
        A: (4, d, N), each order's real diagonal state matrix.
        B, C: (batch, 4, N, H, W), each order's selective projections in the plane's layout.
        D: optional (4, d) skip; delta_bias: optional (4, d) added to delta.
        delta_softplus: apply softplus to delta (+ bias), as the SSCA block does.

    Returns:
        (batch, d, H, W) in x's dtype and memory layout: the sum over the four orders of each order's scan output,
        at the plane position it came from; the same as :func:`cross_scan_composite`.
    """
    _check(x, delta, A, B, C, D, delta_bias)
    return CrossScanTriton.apply(x, delta, A, B, C, D, delta_bias, delta_softplus)
