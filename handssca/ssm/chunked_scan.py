"""The selective scan of Eq. 2-3 in pure PyTorch, chunked: the fast backend off the GPU.

Same semantics as :func:`handssca.ssm.scan.selective_scan_reference` (Mamba, Algorithm 2):

    h_t = Abar_t * h_{t-1} + x_t,   Abar_t = exp(Delta_t A),   x_t = Delta_t B_t u_t   (Eq. 2, 3)
    y_t = C_t . h_t

for every channel d and state index n independently (A is diagonal, so the recurrence is
elementwise over (D, N)). The decay Abar depends on (d, n, t) jointly, so, unlike Mamba-2's
scalar decay, the scan has no matrix-multiply form; the work is elementwise, and the point of
this module is to do it in a few hundred large tensor operations instead of ~10 L small ones.

Two entry points share one core:

* :func:`selective_scan_grouped` takes the *grouped layout* the SSCA block produces without
  copies: u, Delta (G, batch, L, Dg), B, C (G, batch, L, N) -- G groups (the four scan orders),
  each with Dg channels and its own B and C, the sequence before the channels. Any strides.
* :func:`selective_scan_chunked` has mamba-ssm's signature, (batch, D, L); it transposes its
  inputs once to the grouped layout and back.

The algorithm, over the time axis only (everything else is vectorised):

1. **Blocks.** The sequence is cut into blocks of Lb steps, chosen so that one block's
   (Lb, G, batch, N, Dg) tensors hold about ``block_elems`` numbers. Blocks run one after
   another, each from the true last state of the block before it. No (batch, D, L, N) tensor is
   ever formed: memory is bounded by the block.
2. **Sub-chunks inside a block.** A block is nc sub-chunks of T steps. First every sub-chunk is
   scanned at once from a zero state (T steps, each one fused multiply-add ``torch.addcmul``
   over all sub-chunks), which gives each sub-chunk's local end state e_c.
3. **Carries.** The true start state of each sub-chunk follows from the short recurrence
   H_{c+1} = P_c H_c + e_c with P_c = exp(A * sum of Delta over sub-chunk c) (nc steps).
4. **Sub-chunks again**, each from its true start state, writing the states h_t in place; then
   y_t = C_t . h_t over the block, one batched matrix product.

Steps 2-3 are skipped when one time step already fills a large operation (nc = 1: the spatial
branch, batch x 4 x 512 x 16 numbers per step). A sequence whose length is not a multiple of T
ends with a shorter block of one sub-chunk (no padding, no copy). Every operation multiplies by
decays in (0, 1] (for A <= 0, which Mamba's A = -exp(A_log) guarantees) and adds: there is no
division by a running product, no exp of a positive cumulative sum and no log-space sum, so the
scan is as stable as the sequential loop at any L (16384 in the channel branch) and any Delta.
It is exact: the same products and sums as the loop, grouped differently.

Without gradients (``torch.no_grad()``, or no input requiring one) the scan runs as a plain
function: nothing is saved. With gradients it is a custom :class:`torch.autograd.Function` whose
backward keeps one state per block, not one per step. Going through the blocks backwards, it
recomputes each block's states from its saved start state and runs the adjoint recurrence
(lambda_t = dLoss/dh_t)

    lambda_t = Abar_{t+1} * lambda_{t+1} + C_t dy_t

by the same two-level scheme reversed, then forms

    dx_t = lambda_t,   d(Delta A)_t = lambda_t Abar_t h_{t-1},
    dB_t = sum_d lambda_t (Delta_t u_t),   dC_t = sum_d h_t dy_t.

Layout inside: work tensors are time-major with the state index before the channel,
(Lb, G, batch, N, Dg), so that one step's state is contiguous and every sum over N or over the
channels of a group is a batched matrix(-vector) product (a (1 x N) by (N x Dg) product per step
and group for y_t: about three times faster than a product followed by a sum). Work tensors are
allocated once per call and reused by every block (a fresh multi-megabyte tensor costs page
faults that, on small machines, outweigh its arithmetic).
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: default numbers in one block tensor (Lb x batch x D x N), per device type: on a CPU 2^20
#: float32 = 4 MiB, so that a block's few working tensors stay near the caches; on a GPU far
#: more, so that few kernels are launched.
DEFAULT_BLOCK_ELEMS = {"cpu": 1 << 20, "cuda": 1 << 26}
#: numbers one step-slice operation (nc x batch x D x N) should touch, per device type, so that
#: the Python loop's per-operation cost stays small against the arithmetic: on a GPU at least
#: this many; on a CPU as many as fit below PyTorch's parallel grain (32768 numbers), so that the
#: loop's thousands of small operations run on one thread, without an OpenMP barrier each (on a
#: shared machine a barrier waits for whichever thread was descheduled, which made the loop up to
#: ten times slower).
SLICE_ELEMS = {"cpu": (1 << 15) - 1, "cuda": 1 << 20}

_LOG2E = 1.0 / math.log(2.0)


def plan_chunks(L: int, per_step: int, block_elems: Optional[int] = None,
                chunk_len: Optional[int] = None, device_type: str = "cpu") -> Tuple[int, int]:
    """Choose the sub-chunk length T and the number of sub-chunks per block nc.

    A block is Lb = T * nc steps with about ``block_elems`` numbers per (Lb, batch, D, N)
    tensor. nc sets the size of the step slices (nc, batch, D, N) that the loop's operations
    touch (:data:`SLICE_ELEMS`): on a CPU the largest count whose slices stay below
    PyTorch's parallel grain, on a GPU the smallest whose slices reach 2^20 numbers. nc = 1
    when one step alone is that large (the spatial branch: batch x 4 x 512 x 16 numbers), and
    then the two-level scheme is skipped.

    Args:
        L: sequence length.
        per_step: numbers in one time step of the state, batch * D * N.
        block_elems: target numbers in one block tensor (default :data:`DEFAULT_BLOCK_ELEMS`).
        chunk_len: force T (for tests and benchmarks); nc then follows from ``block_elems``.
        device_type: ``"cpu"``, ``"cuda"``, ...: picks the defaults (CPU ones for others).

    Returns:
        (T, nc). The Python loop runs about 2T + nc times per block (T when nc = 1).
    """
    kind = device_type if device_type in DEFAULT_BLOCK_ELEMS else "cpu"
    block_elems = DEFAULT_BLOCK_ELEMS[kind] if block_elems is None else int(block_elems)
    if block_elems < 1 or per_step < 1 or L < 1:
        raise ValueError(f"plan_chunks needs positive sizes, got L={L}, per_step={per_step}, "
                         f"block_elems={block_elems}")
    lb = max(1, min(L, block_elems // per_step))
    if chunk_len is not None:
        if int(chunk_len) < 1:
            raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
        t = int(chunk_len)
        return t, max(1, -(-lb // t))
    if kind == "cpu":
        nc = max(1, min(lb, SLICE_ELEMS[kind] // per_step))
    else:
        nc = max(1, min(lb, -(-SLICE_ELEMS[kind] // per_step)))
    return max(1, lb // nc), nc


def block_pieces(L: int, T: int, nc: int) -> List[Tuple[int, int, int]]:
    """The blocks of a length-L scan as (start, end, T_k): steps start..end in sub-chunks of
    T_k steps. Full blocks have nc sub-chunks of T; the rest of the sequence ends in at most two
    shorter pieces, whole sub-chunks of T and then one sub-chunk of the last L mod T steps."""
    pieces = []
    for s in range(0, L, T * nc):
        e = min(s + T * nc, L)
        full = (e - s) // T * T
        if full:
            pieces.append((s, s + full, T))
        if s + full < e:
            pieces.append((s + full, e, e - s - full))
    return pieces


class _Workspace:
    """Buffers of one call, reused by every block (the first block is the largest)."""

    def __init__(self, like: Tensor):
        self.dtype, self.device, self.bufs = like.dtype, like.device, {}

    def __call__(self, name: str, shape) -> Tensor:
        numel = math.prod(shape)
        buf = self.bufs.get(name)
        if buf is None or buf.numel() < numel:
            buf = self.bufs[name] = torch.empty(numel, dtype=self.dtype, device=self.device)
        return buf[:numel].view(shape)


def _time_major(x: Tensor) -> Tensor:
    """(..., L) -> (L, ...) contiguous, through a 2D transpose (PyTorch copies a transposed 2D
    matrix in cache-friendly tiles; a general permute copy is several times slower)."""
    L = x.shape[-1]
    return x.reshape(-1, L).t().contiguous().view((L,) + tuple(x.shape[:-1]))


def _channels_inner(x: Tensor) -> Tensor:
    """A grouped tensor (G, b, L, k) whose memory runs fastest along k, the channels (the
    layout the block views need); x itself when it does, else a time-major copy (L, G, b, k)
    in memory, made by a 2D transpose when x runs fastest along L (mamba-ssm's layout)."""
    if x.stride(3) == 1 or x.shape[3] == 1:
        return x
    g, b, L, k = x.shape
    order = sorted(range(4), key=lambda i: -x.stride(i))
    if order[-1] == 2 and x.permute(order).is_contiguous():
        rest = [i for i in order if i != 2]
        tm = x.permute(order).reshape(-1, L).t().contiguous()  # (L, product of the rest)
        return tm.view([L] + [x.shape[i] for i in rest]).permute(
            [rest.index(i) + 1 if i != 2 else 0 for i in range(4)])
    return x.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)


def _tm(x: Tensor, s: int, e: int) -> Tensor:
    """Steps s..e of a grouped tensor (G, b, L, k) as a time-major view (e - s, G, b, k)."""
    return x[:, :, s:e].permute(2, 0, 1, 3)


def _block_states(dt: Tensor, du: Tensor, A2: Tensor, Bb: Tensor, h0: Tensor, T: int,
                  ws: _Workspace):
    """States of one block, by the two-level scheme of the module docstring.

    Layout: time-major, one step's state (G, b, N, Dg) contiguous; the block's Lb = nc*T steps
    viewed as (nc, T): step t of all sub-chunks, ``[:, t]``, is nc contiguous runs, and
    sub-chunk c's start state ``H[c]`` is one.

    Args:
        dt, du: (Lb, G, b, Dg) the block's Delta and Delta*u (views, any strides).
        A2: (G, 1, N, Dg) the state matrix A times log2(e): exp(Delta A) = exp2(Delta A2),
            which PyTorch evaluates about three times faster than exp, to within a few ulp.
        Bb: (Lb, G, b, N) the block's B.
        h0: (G, b, N, Dg) state before the block.
        T: sub-chunk length; Lb is a multiple of it.
        ws: the call's workspace; the returned tensors live in it until the next block.

    Returns:
        a: (Lb, G, b, N, Dg) the decays Abar = exp(Delta A);
        h: (Lb, G, b, N, Dg) the states h_t;
        H: (nc, G, b, N, Dg) the state before each sub-chunk;
        P: (nc, G, b, N, Dg) each sub-chunk's total decay (None when nc = 1).
    """
    lb = dt.shape[0]
    nc = lb // T
    state = tuple(h0.shape)
    a = torch.mul(dt.unsqueeze(-2), A2, out=ws("a", (lb,) + state))   # Delta A log2(e)
    a.exp2_()                                                           # Eq. 2: Abar
    x = torch.mul(du.unsqueeze(-2), Bb.unsqueeze(-1), out=ws("x", (lb,) + state))  # Eq. 3
    a_t = a.view((nc, T) + state).unbind(1)                             # step t: (nc, ...)
    x_t = x.view((nc, T) + state).unbind(1)
    if nc == 1:  # one sub-chunk: it starts from h0, there are no carries to find
        H, P = h0.unsqueeze(0), None
    else:
        # (2) every sub-chunk from a zero state: its local end state e
        e = ws("e", (nc,) + state)
        e.copy_(x_t[0])
        for t in range(1, T):
            torch.addcmul(x_t[t], a_t[t], e, out=e)
        # (3) the carries between sub-chunks; P_c = prod_t Abar_t = exp(A sum_t Delta_t)
        dsum = dt.unflatten(0, (nc, T)).sum(1).unsqueeze(-2)
        P = torch.mul(dsum, A2, out=ws("P", e.shape)).exp2_()
        H = ws("H", e.shape)
        H[0].copy_(h0)
        for c in range(1, nc):
            torch.addcmul(e[c - 1], P[c - 1], H[c - 1], out=H[c])
    # (4) every sub-chunk again from its true start state; x becomes h in place
    torch.addcmul(x_t[0], a_t[0], H, out=x_t[0])
    for t in range(1, T):
        torch.addcmul(x_t[t], a_t[t], x_t[t - 1], out=x_t[t])
    return a, x, H, P


def _bmm_into(dst: Tensor, m1: Tensor, m2: Tensor, ws: _Workspace, name: str) -> None:
    """dst (any strides) = bmm(m1, m2), viewed to dst's shape: straight into dst when it is
    contiguous, else through a workspace buffer."""
    shape = (m1.shape[0], m1.shape[1], m2.shape[2])
    if dst.is_contiguous():
        torch.bmm(m1, m2, out=dst.view(shape))
    else:
        dst.copy_(torch.bmm(m1, m2, out=ws(name, shape)).view(dst.shape))


def _scan_forward(dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, T: int, nc: int,
                  keep_starts: bool, delta_bias: Optional[Tensor] = None,
                  delta_softplus: bool = False, D: Optional[Tensor] = None):
    """y and the last state, block after block (no autograd). Shapes as :class:`_ChunkedScan`.

    Without gradients, the bias and softplus of Delta and the skip D u (each optional;
    delta_bias, D (G, Dg)) are applied here block by block, while the block is in the caches;
    with gradients, the caller applies them (PyTorch differentiates them).

    Returns y (G, b, L, Dg) (a view of a time-major (L, G, b, Dg) tensor), h_last
    (G, b, N, Dg), and the list of each block's start state when ``keep_starts`` (for the
    backward), else an empty list.
    """
    g, b, L, dg = dt.shape
    n = A.shape[1]
    # time-major y: each block's y_t = C_t . h_t lands in place, one contiguous run per block
    y = dt.new_empty(L, g, b, dg).permute(1, 2, 0, 3)
    A2 = (A * _LOG2E).unsqueeze(1)
    bias = None if delta_bias is None else delta_bias.view(g, 1, dg)
    skip = None if D is None else D.view(g, 1, dg)
    h = dt.new_zeros(g, b, n, dg)
    starts = []
    ws = _Workspace(dt)
    for s, e, t in block_pieces(L, T, nc):
        if keep_starts:
            starts.append(h)
        dtb, ub = _tm(dt, s, e), _tm(u, s, e)
        if bias is not None:
            dtb = torch.add(dtb, bias, out=ws("dt", dtb.shape))
        if delta_softplus:
            dtb = F.softplus(dtb)
        dub = torch.mul(dtb, ub, out=ws("du", dtb.shape))
        _, hs, _, _ = _block_states(dtb, dub, A2, _tm(B, s, e), h, t, ws)
        h = hs[-1].clone()
        # y_t = C_t . h_t (Eq. 2, C-bar = C): per step and group, (1 x N) @ (N x Dg)
        x = (e - s) * g * b
        yb = _tm(y, s, e)
        _bmm_into(yb, _tm(C, s, e).reshape(x, 1, n), hs.view(x, n, dg), ws, "y")
        if skip is not None:
            yb.addcmul_(ub, skip)                          # + D x_i (Eq. 1)
    return y, h, starts


class _ChunkedScan(torch.autograd.Function):
    """Core scan y_t = C_t . h_t; see the module docstring.

    Inputs: dt, u (G, b, L, Dg) with Delta already biased and soft-plussed; A (G, N, Dg)
    contiguous; B, C (G, b, L, N); any strides otherwise. Outputs: y (G, b, L, Dg) and h_last
    (G, b, N, Dg).
    """

    @staticmethod
    def forward(ctx, dt, u, A, B, C, T: int, nc: int):
        y, h, starts = _scan_forward(dt, u, A, B, C, T, nc, keep_starts=True)
        ctx.save_for_backward(dt, u, A, B, C, torch.stack(starts))
        ctx.T, ctx.nc = T, nc
        ctx.set_materialize_grads(False)
        return y, h

    @staticmethod
    def backward(ctx, gy, gh_last):
        dt, u, A, B, C, starts = ctx.saved_tensors
        T, nc = ctx.T, ctx.nc
        if gy is not None:
            gy = _channels_inner(gy)
        g, b, L, dg = dt.shape
        n = A.shape[1]
        need_A, need_B, need_C = ctx.needs_input_grad[2:5]
        g_dt, g_u = torch.empty_like(dt), torch.empty_like(u)
        gA = torch.zeros_like(A) if need_A else None
        gB = B.new_empty(g, b, L, n) if need_B else None
        gC = (C.new_empty if gy is not None else C.new_zeros)(g, b, L, n) if need_C else None
        ws = _Workspace(dt)
        A1 = A.unsqueeze(1)
        A2 = A1 * _LOG2E
        # dLoss/dh at the end of the current block, from the steps after it
        carry = gh_last.clone() if gh_last is not None else dt.new_zeros(g, b, n, dg)
        pieces = block_pieces(L, T, nc)
        for k in range(len(pieces) - 1, -1, -1):
            s, e, t = pieces[k]
            dtb, ub, Bb, Cb = (_tm(v, s, e) for v in (dt, u, B, C))
            lb = e - s
            x = lb * g * b
            dub = torch.mul(dtb, ub, out=ws("du", dtb.shape))
            h0 = starts[k]
            a, hs, H, P = _block_states(dtb, dub, A2, Bb, h0, t, ws)
            state = tuple(h0.shape)
            tmp = ws("tmp", hs.shape)
            lam = ws("lam", hs.shape)
            # q_t = C_t dy_t, the adjoint's input; it becomes lambda in place
            if gy is not None:
                gyb = _tm(gy, s, e)
                torch.mul(gyb.unsqueeze(-2), Cb.unsqueeze(-1), out=lam)
                if need_C:  # dC_t = sum_d h_t dy_t, as (1 x Dg) @ (Dg x N) per step and group
                    _bmm_into(_tm(gC, s, e), gyb.reshape(x, 1, dg),
                              hs.view(x, n, dg).transpose(1, 2), ws, "gBC")
            else:
                lam.zero_()
            ncb = lb // t
            a_t = a.view((ncb, t) + state).unbind(1)
            lam_t = lam.view((ncb, t) + state).unbind(1)
            if ncb == 1:
                Gc = carry
            else:
                # reverse (2): each sub-chunk from a zero adjoint; m = Abar_first * mu_first
                m = ws("m", H.shape)
                m.copy_(lam_t[t - 1])
                for i in range(t - 2, -1, -1):
                    torch.addcmul(lam_t[i], a_t[i + 1], m, out=m)
                m.mul_(a_t[0])
                # reverse (3): G_c = dLoss/dh at the end of sub-chunk c from later sub-chunks
                Gc = ws("G", H.shape)
                Gc[ncb - 1].copy_(carry)
                for c in range(ncb - 1, 0, -1):
                    torch.addcmul(m[c], P[c], Gc[c], out=Gc[c - 1])
            # reverse (4): lambda_t, in place
            lam_t[t - 1].add_(Gc)
            for i in range(t - 2, -1, -1):
                torch.addcmul(lam_t[i], a_t[i + 1], lam_t[i + 1], out=lam_t[i])
            carry = a[0] * lam[0]
            # dx_t = lambda_t, with x_t = (Delta u)_t B_t
            if need_B:  # dB_t = sum_d lambda_t (Delta u)_t
                _bmm_into(_tm(gB, s, e), dub.view(x, 1, dg), lam.view(x, n, dg).transpose(1, 2),
                          ws, "gBC")
            g_du = torch.bmm(Bb.reshape(x, 1, n), lam.view(x, n, dg),
                             out=ws("gdu", (x, 1, dg))).view(dtb.shape)
            # d(Delta A)_t = lambda_t Abar_t h_{t-1}, in place in a
            gdA = a.mul_(lam)
            gdA[1:].mul_(hs[:-1])
            gdA[0].mul_(h0)
            if need_A:
                gA += torch.mul(gdA, dtb.unsqueeze(-2), out=tmp).sum((0, 2))
            g_dtb = torch.sum(torch.mul(gdA, A1, out=tmp), dim=-2, out=ws("gdt", dtb.shape))
            g_dtb.addcmul_(g_du, ub)  # + u dLoss/d(Delta u)
            _tm(g_dt, s, e).copy_(g_dtb)
            _tm(g_u, s, e).copy_(torch.mul(g_du, dtb, out=dub))
        return g_dt, g_u, gA, gB, gC, None, None


def _eager_only(fn):
    """``fn``, run eagerly even inside ``torch.compile``: the compiler leaves the call out of its
    graph instead of unrolling the scan's Python loops (thousands of steps) into it. Outside a
    compilation it is a plain call (the compiler is not imported)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.compiler.is_compiling():
            return torch.compiler.disable(fn)(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _check_grouped(u, delta, A, B, C, D, delta_bias) -> None:
    """Validate the grouped layout; raise ValueError naming what was expected."""
    if u.dim() != 4:
        raise ValueError(f"selective_scan_grouped: u must be (G, batch, L, Dg), "
                         f"got shape {tuple(u.shape)}")
    g, b, L, dg = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"selective_scan_grouped: delta must be (G, batch, L, Dg) = "
                         f"{tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 3 or A.shape[:2] != (g, dg):
        raise ValueError(f"selective_scan_grouped: A must be (G, Dg, N) with G, Dg = {g}, {dg}, "
                         f"got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported: HandSSCA uses the real (S4D-real) A")
    n = A.shape[2]
    for name, m in (("B", B), ("C", C)):
        if m.shape != (g, b, L, n):
            raise ValueError(f"selective_scan_grouped: {name} must be (G, batch, L, N) = "
                             f"{(g, b, L, n)}, got {tuple(m.shape)}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (g, dg):
            raise ValueError(f"selective_scan_grouped: {name} must be (G, Dg) = {(g, dg)}, "
                             f"got {tuple(v.shape)}")


@_eager_only
def selective_scan_grouped(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                           return_last_state=False, *, block_elems: Optional[int] = None,
                           chunk_len: Optional[int] = None):
    """The selective scan (Eq. 2-3; Mamba Alg. 2) of G groups of channels, each group with its
    own B and C, in the grouped layout (the sequence before the channels).

    Per group g, channel d of the group and step t (A-bar exact, B-bar of Eq. 3):

        Delta = softplus(delta + delta_bias)          (each optional)
        h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t,   y_t = C_t . h_t + D u_t

    The SSCA block scans its four orders as the four groups: u (4, batch, H*W, 512) spatially,
    (4, batch, 512*H, W) in the channel branch.

    Args:
        u, delta: (G, batch, L, Dg), any strides.
        A: (G, Dg, N) real, <= 0 (as Mamba's A = -exp(A_log)).
        B, C: (G, batch, L, N), any strides.
        D, delta_bias: optional (G, Dg).
        delta_softplus: apply softplus to delta (+ bias).
        return_last_state: also return h_L, (G, batch, Dg, N).
        block_elems, chunk_len: override :func:`plan_chunks` (tests, benchmarks).

    Returns:
        y (G, batch, L, Dg) in u's dtype (computed in float64 for float64 input, else float32,
        as the reference); with ``return_last_state``, (y, h_L). Differentiable in every tensor
        input; without gradients nothing is saved.
    """
    _check_grouped(u, delta, A, B, C, D, delta_bias)
    dtype_in = u.dtype
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (v.to(cd) for v in (u, delta, A, B, C))
    g, b, L, dg = u.shape
    n = A.shape[2]
    D = None if D is None else D.to(cd)
    delta_bias = None if delta_bias is None else delta_bias.to(cd)
    T, nc = plan_chunks(L, g * b * dg * n, block_elems, chunk_len, u.device.type)
    At = A.transpose(1, 2).contiguous()  # (G, N, Dg): the state index before the channel
    if _needs_grad(u, delta, At, B, C, *(v for v in (D, delta_bias) if v is not None)):
        if delta_bias is not None:
            delta = delta + delta_bias.view(g, 1, 1, dg)
        if delta_softplus:
            delta = F.softplus(delta)
        y, h = _ChunkedScan.apply(delta, u, At, B, C, T, nc)
        if D is not None:
            y = torch.addcmul(y, u, D.view(g, 1, 1, dg))   # + D x_i (Eq. 1)
    else:  # inference: a plain function, nothing saved for a backward
        y, h, _ = _scan_forward(delta, u, At, B, C, T, nc, False, delta_bias, delta_softplus, D)
    y = y.to(dtype_in)
    return (y, h.transpose(-1, -2)) if return_last_state else y


def _groups_common(mB: Tensor, mC: Tensor, d: int) -> Tuple[Tensor, Tensor]:
    """Bring B and C to (b, G, N, L) with the same G (the lcm of theirs; it divides D)."""
    mB = mB.unsqueeze(1) if mB.dim() == 3 else mB
    mC = mC.unsqueeze(1) if mC.dim() == 3 else mC
    gb, gc = mB.shape[1], mC.shape[1]
    g = gb * gc // math.gcd(gb, gc)
    if gb != g:
        mB = mB.repeat_interleave(g // gb, dim=1)
    if gc != g:
        mC = mC.repeat_interleave(g // gc, dim=1)
    return mB, mC


def mamba_layout(grouped_scan, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                 delta_softplus=False, return_last_state=False, **kwargs):
    """Run ``grouped_scan`` (a scan in the grouped layout, :func:`selective_scan_grouped`'s
    contract) on inputs in mamba-ssm's layout: u, delta, z (batch, D, L); A (D, N); B, C
    (batch, N, L) or (batch, G, N, L); D, delta_bias (D,). Returns out (batch, D, L) in u's
    dtype, and h_L (batch, D, N) when ``return_last_state``; ``kwargs`` go to ``grouped_scan``.

    The inputs are copied once to the grouped layout (time-major in memory, by 2D transposes)
    and the output back; the gate y * SiLU(z) is applied here.
    """
    dtype_in = u.dtype
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A = u.to(cd), delta.to(cd), A.to(cd)
    b, d, l = u.shape
    n = A.shape[1]
    mB, mC = _groups_common(B.to(cd), C.to(cd), d)
    g = mB.shape[1]
    dg = d // g

    def grouped(x: Tensor, k: int) -> Tensor:  # (b, g*k, L) -> (G, b, L, k), time-major memory
        return _time_major(x).view(l, b, g, k).permute(2, 1, 0, 3)

    y, h = grouped_scan(
        grouped(u, dg), grouped(delta, dg), A.reshape(g, dg, n),
        grouped(mB.reshape(b, g * n, l), n), grouped(mC.reshape(b, g * n, l), n),
        None if D is None else D.to(cd).reshape(g, dg),
        None if delta_bias is None else delta_bias.to(cd).reshape(g, dg),
        delta_softplus, True, **kwargs)
    # back to (b, D, L) by one 2D transpose of the (L, b, G, Dg) order
    y = y.permute(2, 1, 0, 3).reshape(l, b * d).t().contiguous().view(b, d, l)
    if z is not None:
        y = y * F.silu(z.to(cd))
    y = y.to(dtype_in)
    return (y, h.permute(1, 0, 2, 3).reshape(b, d, n)) if return_last_state else y


@_eager_only
def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                           delta_softplus=False, return_last_state=False, *,
                           block_elems: Optional[int] = None, chunk_len: Optional[int] = None):
    """The selective scan (Eq. 2-3; Mamba Alg. 2) by the chunked algorithm of this module.

    Shapes as :func:`handssca.ssm.selective_scan`: u, delta, z (batch, D, L); A (D, N);
    B, C (batch, N, L) or (batch, G, N, L); D, delta_bias (D,). Returns out (batch, D, L) in u's
    dtype, and h_L (batch, D, N) when ``return_last_state``. Computes in float64 for float64
    input and in float32 otherwise, like the reference. Differentiable in every tensor input.

    :func:`mamba_layout` copies the inputs once to the grouped layout and the output back;
    :func:`selective_scan_grouped` does the rest. ``block_elems`` and ``chunk_len`` override
    :func:`plan_chunks` (tests, benchmarks).
    """
    return mamba_layout(selective_scan_grouped, u, delta, A, B, C, D, z, delta_bias,
                        delta_softplus, return_last_state, block_elems=block_elems,
                        chunk_len=chunk_len)
