"""The four-order cross-scan of Section 3.3 as one Triton kernel: scan orders read, merge written.

The SSCA block scans a plane in four orders (:mod:`handssca.ssm.cross_scan`: row-major,
column-major and both reversed), runs the selective scan (S6, Eq. 2-3) on each, and sums the four
results back in the plane's order. Done as three steps (cross-scan copy, scan, merge) the four
copies of the input and of the four outputs go through memory. This kernel reads the plane
directly, each order's position by index arithmetic, and adds each order's output into the
plane, so neither the copies nor the merge ever touch memory.

Per order k, channel c, plane position p(k, t) of step t (L = H W steps)::

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

Backward: a Triton kernel too, the adjoint recurrence run backwards per order and channel
block (dy_t = dout[c, p(k, t)], the merge's gradient, read where the order visits)::

    g_t        = dy_t C_t + exp(delta_{t+1} A) g_{t+1}                   (adjoint of h_t, N)
    dC_t      += sum_c dy_t h_t            dB_t += sum_c g_t delta_t x_t
    ddelta_t   = sum_n g_t h_{t-1} exp(delta_t A) A + (g_t . B_t) x_t  (times sigmoid of the raw
                                                                      delta with softplus)
    dA        += g_t h_{t-1} exp(delta_t A) delta_t
    dx[c, p]  += (g_t . B_t) delta_t + D dy_t       dD += dy_t x_t     dbias += ddelta_t

It needs h_{t-1} and h_t in reverse order: a first pass keeps the state before every chunk of
:data:`BWD_CHUNK` steps, then each chunk, from the last, is recomputed from its state into a
scratch buffer and run backwards (memory: L / BWD_CHUNK + BWD_CHUNK states per program, not L).
The gradients shared between programs (dx between orders, dB and dC between channel blocks, dA,
dD and dbias between planes) are added atomically in fp32.

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
from .scan import selective_scan

Tensor = torch.Tensor

#: channels per Triton program (each program scans BLOCK_D channels of one order of one plane)
BLOCK_D = 32
#: steps per chunk of the backward: the state before each chunk is kept, a chunk's states are
#: recomputed (scratch per program: L / BWD_CHUNK + BWD_CHUNK states of BLOCK_D x N)
BWD_CHUNK = 64


def triton_available() -> bool:
    """True when Triton can be imported (it is never imported by importing this module)."""
    try:
        _kernels()
        return True
    except ImportError:
        return False


@functools.lru_cache(maxsize=None)
def _kernels():
    """(triton, forward kernel, backward kernel), imported on first use from
    :mod:`handssca.ssm.triton_kernels` (Triton is imported there: see the module docstring for
    why it is deferred)."""
    import triton

    from . import triton_kernels

    return triton, triton_kernels.cross_scan_fwd, triton_kernels.cross_scan_bwd


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
                         backend: Optional[str] = "reference") -> Tensor:
    """The function the kernel computes, as cross-scan, selective scan and merge in PyTorch.

    Arguments as :func:`cross_scan_triton`; ``backend`` is the scan backend
    (:func:`handssca.ssm.selective_scan`). Returns (batch, d, H, W) in x's dtype. The kernels'
    test oracle (with ``backend="reference"``).
    """
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


def _params(x, A, D, delta_bias):
    """The kernels' small inputs: A (4, d, N), D and delta_bias (4, d) as contiguous fp32
    (zeros for a missing D or bias), the channels per program and the padded state size."""
    triton = _kernels()[0]
    d = x.shape[1]
    A = A.float().contiguous()
    Dv = (D if D is not None else A.new_zeros(4, d)).float().contiguous()
    bias = (delta_bias if delta_bias is not None else A.new_zeros(4, d)).float().contiguous()
    # at most BLOCK_D channels a program, fewer when the plane has fewer (the channel branch of
    # the paper's reading scans d = 1 channel: no idle lanes)
    block = min(BLOCK_D, triton.next_power_of_2(d))
    return A, Dv, bias, block, triton.next_power_of_2(A.shape[2])


def _forward(x, delta, A, B, C, D, delta_bias, delta_softplus) -> Tensor:
    """Launch the forward kernel: one program per (plane, order, channel block)."""
    triton, kernel, _ = _kernels()
    b, d = x.shape[:2]
    A, Dv, bias, block, bn = _params(x, A, D, delta_bias)
    # fp32 accumulation of the four orders (atomic adds), then x's dtype; the four additions
    # into one position come in any order, so results may differ in the last bit between runs.
    # The output keeps x's memory layout (a channels-last x gives a channels-last output).
    out = torch.zeros_like(x, dtype=torch.float32)
    kernel[(b, 4, triton.cdiv(d, block))](
        x, delta, A, B, C, Dv, bias, out, d, x.shape[2], x.shape[3],
        *x.stride(), *delta.stride(), *B.stride(), *C.stride(), *out.stride(),
        N=A.shape[2], BLOCK_N=bn, BLOCK=block, SOFTPLUS=bool(delta_softplus))
    return out.to(x.dtype)


def _backward(saved, gout, delta_softplus) -> tuple:
    """Launch the backward kernel; the gradients of (x, delta, A, B, C, D, delta_bias), each in
    its input's dtype (None for a missing D or bias)."""
    x, delta, A0, B, C, D, delta_bias = saved
    triton, _, kernel = _kernels()
    b, d, h, w = x.shape
    n, L = A0.shape[2], h * w
    A, Dv, bias, block, bn = _params(x, A0, D, delta_bias)
    programs = b * 4 * triton.cdiv(d, block)
    chunk = min(BWD_CHUNK, L)
    f32 = dict(device=x.device, dtype=torch.float32)
    dx, ddt = torch.zeros(b, d, h, w, **f32), torch.zeros(b, 4, d, h, w, **f32)
    dB, dC = torch.zeros(b, 4, n, h, w, **f32), torch.zeros(b, 4, n, h, w, **f32)
    dA, dD, dbias = torch.zeros(4, d, n, **f32), torch.zeros(4, d, **f32), torch.zeros(4, d, **f32)
    ck = torch.empty(programs, triton.cdiv(L, chunk), block, bn, **f32)  # states before chunks
    wk = torch.empty(programs, chunk, block, bn, **f32)                  # one chunk's states
    kernel[(b, 4, triton.cdiv(d, block))](
        x, delta, A, B, C, Dv, bias, gout, dx, ddt, dA, dB, dC, dD, dbias, ck, wk, d, h, w,
        *x.stride(), *delta.stride(), *B.stride(), *C.stride(), *gout.stride(),
        N=n, BLOCK_N=bn, BLOCK=block, CHUNK=chunk, SOFTPLUS=bool(delta_softplus))
    return (dx.to(x.dtype), ddt.to(delta.dtype), dA.to(A0.dtype), dB.to(B.dtype),
            dC.to(C.dtype), None if D is None else dD.to(D.dtype),
            None if delta_bias is None else dbias.to(delta_bias.dtype))


class CrossScanTriton(torch.autograd.Function):
    """Forward and backward: the Triton kernels (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, delta_bias, delta_softplus):
        """The merged output (B, d, H, W) in fp32; saves the inputs for the backward."""
        ctx.save_for_backward(x, delta, A, B, C, D, delta_bias)
        ctx.delta_softplus = delta_softplus
        return _forward(x, delta, A, B, C, D, delta_bias, delta_softplus)

    @staticmethod
    def backward(ctx, gout):
        """The gradients of x, delta, A, B, C, D and the delta bias from the output's (the
        adjoint recurrence of the module docstring)."""
        grads = _backward(ctx.saved_tensors, gout, ctx.delta_softplus)
        return (*[g if need else None for g, need in zip(grads, ctx.needs_input_grad)], None)


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
        (batch, d, H, W) in x's dtype and memory layout: the sum over the four orders of each
        order's scan output at the plane position it came from; the same as
        :func:`cross_scan_composite`. Differentiable: the backward is the Triton kernel of the
        adjoint recurrence (module docstring).
    """
    _check(x, delta, A, B, C, D, delta_bias)
    return CrossScanTriton.apply(x, delta, A, B, C, D, delta_bias, delta_softplus)
