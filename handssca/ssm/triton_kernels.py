"""The Triton kernels of :mod:`handssca.ssm.triton_scan` (forward and backward of the fused
four-order cross-scan; the equations and the index arithmetic are in that module's docstring).

This module imports Triton at its top, so it is imported only by
:func:`handssca.ssm.triton_scan._kernels`, on first use (Triton is optional and heavy). The
kernels' helpers are module-level functions because Triton resolves the functions a kernel calls
among its module's globals.
"""
import triton
import triton.language as tl


@triton.jit
def position(t, k, H, W):
    """Plane row and column (i, j) of step t of order k (see the module docstring)."""
    L = H * W
    col = k % 2                            # 0: row-major, 1: column-major
    s = t + (k // 2) * (L - 1 - 2 * t)     # k = 2, 3 reversed
    i = (1 - col) * (s // W) + col * (s % H)
    j = (1 - col) * (s % W) + col * (s // H)
    return i, j


@triton.jit
def load_step(xp, sx_h, sx_w, tp, st_h, st_w, bp, sb_h, sb_w, cp, sc_h, sc_w, i, j,
              mc, mn, bias, SOFTPLUS: tl.constexpr):
    """One step's inputs at plane position (i, j), in fp32: x (BLOCK,), the raw delta + bias
    and delta (after softplus when asked) (BLOCK,), B and C (BLOCK_N,). xp, tp, bp, cp point
    at the program's plane, order and channels (or states)."""
    x = tl.load(xp + i * sx_h + j * sx_w, mask=mc, other=0.0).to(tl.float32)
    raw = tl.load(tp + i * st_h + j * st_w, mask=mc, other=0.0).to(tl.float32) + bias
    dt = raw
    if SOFTPLUS:  # torch's softplus: linear above 20
        dt = tl.where(raw > 20.0, raw, tl.log(1.0 + tl.exp(raw)))
    Bt = tl.load(bp + i * sb_h + j * sb_w, mask=mn, other=0.0).to(tl.float32)
    Ct = tl.load(cp + i * sc_h + j * sc_w, mask=mn, other=0.0).to(tl.float32)
    return x, raw, dt, Bt, Ct


@triton.jit
def program_inputs(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, bias_ptr, n_ch,
                   sx_b, sx_c, st_b, st_k, st_c, sb_b, sb_k, sb_n, sc_b, sc_k, sc_n,
                   N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK: tl.constexpr):
    """What forward and backward programs share: the program's plane b, order k, channels cs
    (BLOCK,) and states ns (BLOCK_N,) with their masks; A (BLOCK, BLOCK_N), D and the delta
    bias (BLOCK,) of order k; pointers at the program's x, delta, B and C."""
    b = tl.program_id(0)                   # plane
    k = tl.program_id(1)                   # scan order, SCAN_ORDERS[k]
    cs = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)  # channels (BLOCK,)
    ns = tl.arange(0, BLOCK_N)             # state index (BLOCK_N,)
    mc = cs < n_ch
    mn = ns < N
    m2 = mc[:, None] & mn[None, :]
    # A (4, d, N), D and bias (4, d) contiguous; padded state entries get A = 0 and B = 0,
    # so they stay 0
    A = tl.load(a_ptr + (k * n_ch + cs)[:, None] * N + ns[None, :], mask=m2, other=0.0)
    Dk = tl.load(d_ptr + k * n_ch + cs, mask=mc, other=0.0)
    bias = tl.load(bias_ptr + k * n_ch + cs, mask=mc, other=0.0)
    xp = x_ptr + b * sx_b + cs * sx_c
    tp = dt_ptr + b * st_b + k * st_k + cs * st_c
    bp = b_ptr + b * sb_b + k * sb_k + ns * sb_n
    cp = c_ptr + b * sc_b + k * sc_k + ns * sc_n
    return b, k, cs, ns, mc, mn, A, Dk, bias, xp, tp, bp, cp


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
        SOFTPLUS: tl.constexpr):
    b, k, cs, ns, mc, mn, A, Dk, bias, xp, tp, bp, cp = program_inputs(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, bias_ptr, n_ch, sx_b, sx_c, st_b, st_k,
        st_c, sb_b, sb_k, sb_n, sc_b, sc_k, sc_n, N, BLOCK_N, BLOCK)
    op = out_ptr + b * so_b + cs * so_c
    h = tl.zeros((BLOCK, BLOCK_N), tl.float32)  # h_0 = 0, (BLOCK, N)
    for t in range(0, H * W):
        i, j = position(t, k, H, W)
        x, raw, dt, Bt, Ct = load_step(xp, sx_h, sx_w, tp, st_h, st_w, bp, sb_h, sb_w,
                                       cp, sc_h, sc_w, i, j, mc, mn, bias, SOFTPLUS)
        h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]  # Eq. 2-3
        y = tl.sum(h * Ct[None, :], axis=1) + Dk * x                       # Eq. 1
        # the merge: the four orders add into the same plane position
        tl.atomic_add(op + i * so_h + j * so_w, y, mask=mc)


@triton.jit
def cross_scan_bwd(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, bias_ptr, g_ptr,
        dx_ptr, ddt_ptr, da_ptr, db_ptr, dc_ptr, dd_ptr, dbias_ptr, ck_ptr, wk_ptr,
        n_ch, H, W,
        sx_b, sx_c, sx_h, sx_w,                # x (batch, d, H, W)
        st_b, st_k, st_c, st_h, st_w,          # delta (batch, 4, d, H, W)
        sb_b, sb_k, sb_n, sb_h, sb_w,          # B (batch, 4, N, H, W)
        sc_b, sc_k, sc_n, sc_h, sc_w,          # C (batch, 4, N, H, W)
        sg_b, sg_c, sg_h, sg_w,                # dout (batch, d, H, W)
        N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK: tl.constexpr,
        CHUNK: tl.constexpr, SOFTPLUS: tl.constexpr):
    # gradients, fp32, zeroed, contiguous: dx (batch, d, H, W) (the four orders add in),
    # ddelta (batch, 4, d, H, W), dB, dC (batch, 4, N, H, W) (channel blocks add in),
    # dA (4, d, N), dD, dbias (4, d) (planes add in). Scratch of this program: ck, the
    # state before each chunk of CHUNK steps; wk, the states of one chunk.
    b, k, cs, ns, mc, mn, A, Dk, bias, xp, tp, bp, cp = program_inputs(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, bias_ptr, n_ch, sx_b, sx_c, st_b, st_k,
        st_c, sb_b, sb_k, sb_n, sc_b, sc_k, sc_n, N, BLOCK_N, BLOCK)
    L = H * W
    n_chunks = tl.cdiv(L, CHUNK)
    prog = (b * 4 + k) * tl.num_programs(2) + tl.program_id(2)
    tile = tl.arange(0, BLOCK)[:, None] * BLOCK_N + ns[None, :]  # (BLOCK, BLOCK_N)
    ck = ck_ptr + prog * n_chunks * BLOCK * BLOCK_N + tile
    wk = wk_ptr + prog * CHUNK * BLOCK * BLOCK_N + tile
    # pass 1: the forward recurrence, keeping the state before each chunk
    h = tl.zeros((BLOCK, BLOCK_N), tl.float32)
    for c in range(0, n_chunks):
        tl.store(ck + c * BLOCK * BLOCK_N, h)
        for t in range(c * CHUNK, tl.minimum(c * CHUNK + CHUNK, L)):
            i, j = position(t, k, H, W)
            x, raw, dt, Bt, Ct = load_step(xp, sx_h, sx_w, tp, st_h, st_w, bp, sb_h, sb_w,
                                           cp, sc_h, sc_w, i, j, mc, mn, bias, SOFTPLUS)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]
    tl.debug_barrier()
    # pass 2, chunk by chunk from the last: recompute the chunk's states h_t into wk, then
    # the adjoint recurrence backwards, gh_t = dy_t C_t + exp(delta_{t+1} A) gh_{t+1}
    gh = tl.zeros((BLOCK, BLOCK_N), tl.float32)
    a_next = tl.zeros((BLOCK, BLOCK_N), tl.float32)
    dA = tl.zeros((BLOCK, BLOCK_N), tl.float32)
    dD = tl.zeros((BLOCK,), tl.float32)
    dbias = tl.zeros((BLOCK,), tl.float32)
    for cr in range(0, n_chunks):
        c = n_chunks - 1 - cr
        start = c * CHUNK
        end = tl.minimum(start + CHUNK, L)
        h = tl.load(ck + c * BLOCK * BLOCK_N)
        for t in range(start, end):
            i, j = position(t, k, H, W)
            x, raw, dt, Bt, Ct = load_step(xp, sx_h, sx_w, tp, st_h, st_w, bp, sb_h, sb_w,
                                           cp, sc_h, sc_w, i, j, mc, mn, bias, SOFTPLUS)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]
            tl.store(wk + (t - start) * BLOCK * BLOCK_N, h)
        tl.debug_barrier()
        for tr in range(0, end - start):
            t = end - 1 - tr
            i, j = position(t, k, H, W)
            x, raw, dt, Bt, Ct = load_step(xp, sx_h, sx_w, tp, st_h, st_w, bp, sb_h, sb_w,
                                           cp, sc_h, sc_w, i, j, mc, mn, bias, SOFTPLUS)
            dy = tl.load(g_ptr + b * sg_b + cs * sg_c + i * sg_h + j * sg_w,
                         mask=mc, other=0.0).to(tl.float32)                    # (BLOCK,)
            h_t = tl.load(wk + (t - start) * BLOCK * BLOCK_N)
            # h_{t-1}: the previous slot, or the chunk's checkpoint at its first step
            h_prev = tl.where(t > start,
                              tl.load(wk + tl.maximum(t - start - 1, 0) * BLOCK * BLOCK_N),
                              tl.load(ck + c * BLOCK * BLOCK_N))
            a_t = tl.exp(dt[:, None] * A)
            gh = a_next * gh + dy[:, None] * Ct[None, :]
            a_next = a_t
            gB = tl.sum(gh * Bt[None, :], axis=1)                              # (BLOCK,)
            gha = gh * h_prev * a_t           # the gradient reaching delta A
            ddt = tl.sum(gha * A, axis=1) + gB * x                             # (BLOCK,)
            dA += gha * dt[:, None]
            dD += dy * x
            pos = i * W + j
            tl.atomic_add(dx_ptr + (b * n_ch + cs) * L + pos, gB * dt + Dk * dy, mask=mc)
            tl.atomic_add(db_ptr + ((b * 4 + k) * N + ns) * L + pos,
                          tl.sum(gh * (dt * x)[:, None], axis=0), mask=mn)
            tl.atomic_add(dc_ptr + ((b * 4 + k) * N + ns) * L + pos,
                          tl.sum(h_t * dy[:, None], axis=0), mask=mn)
            if SOFTPLUS:  # d softplus(r) / dr = sigmoid(r), 1 above 20
                ddt = tl.where(raw > 20.0, ddt, ddt / (1.0 + tl.exp(-raw)))
            dbias += ddt
            tl.store(ddt_ptr + ((b * 4 + k) * n_ch + cs) * L + pos, ddt, mask=mc)
        tl.debug_barrier()  # the next chunk overwrites wk
    tl.atomic_add(da_ptr + (k * n_ch + cs)[:, None] * N + ns[None, :], dA,
                  mask=mc[:, None] & mn[None, :])
    tl.atomic_add(dd_ptr + k * n_ch + cs, dD, mask=mc)
    tl.atomic_add(dbias_ptr + k * n_ch + cs, dbias, mask=mc)
