"""The selective scan (S6) of Eq. 2-3, with mamba-ssm's ``selective_scan_fn`` call signature.

Semantics (Mamba, Gu & Dao 2023, Algorithm 2; the paper's Eq. 2-3 with the first-order B-bar):

    delta' = softplus(delta + delta_bias)          (each optional)
    h_t    = exp(delta'_t A) * h_{t-1} + delta'_t B_t u_t      # A-bar exact (ZOH), B-bar Eq. 3
    y_t    = C_t . h_t + D u_t
    out    = y * SiLU(z)                           (when z is given)

Backends:

``reference``
    the recurrence, one step at a time, written from the equations. For teaching and as the
    test oracle. Slow: a Python loop over L.
``chunked``
    the same recurrence as a two-level chunked scan in pure PyTorch, with a backward that
    recomputes states block by block (:mod:`handssca.ssm.chunked_scan`): exact, memory bounded
    by a block, 10-20x faster than ``reference`` on a CPU; the pure-PyTorch path on any device.
    Its grouped entry point :func:`~handssca.ssm.chunked_scan.selective_scan_grouped` takes the
    layout the SSCA block produces without copies.
``fused``
    the recurrence and its backward as compiled C loops (:mod:`handssca.ssm.fused_scan`),
    built on first use with the machine's C compiler: several times faster than ``chunked``,
    forward and backward, with the same memory-bounded recomputing backward. The default off
    CUDA where it can be built, else ``chunked``.
``mamba``
    mamba-ssm's CUDA kernel; imported lazily, only when asked for or when the inputs are CUDA
    tensors and mamba-ssm is installed.

Beside them, for the SSCA block's four scan orders of a plane (not a backend of
:func:`selective_scan`: it takes the plane, not a sequence), the fused cross-scan kernel in
Triton (:mod:`handssca.ssm.triton_scan`), returned by :func:`cross_scan_kernel`. Off by
default until checked on a GPU; turned on with the environment flag

``HANDSSCA_TRITON_SCAN=1``  the SSCA block's automatic scan choice uses the Triton kernel for
                            CUDA tensors (Triton must be installed: the ``cuda`` extra); on the
                            CPU only under Triton's interpreter (``TRITON_INTERPRET=1``, slow,
                            for tests)
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F

from .chunked_scan import selective_scan_chunked, selective_scan_grouped
from .fused_scan import fused_available, selective_scan_fused, selective_scan_grouped_fused

Tensor = torch.Tensor

#: the environment flag that turns the fused Triton cross-scan kernel on ("1")
ENV_TRITON = "HANDSSCA_TRITON_SCAN"


def _check_inputs(u, delta, A, B, C, D, z, delta_bias):
    """Validate shapes against mamba-ssm's contract; raise ValueError naming what was expected."""
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, D, L), got shape {tuple(u.shape)}")
    b, d, l = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must be (batch, D, L) = {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be (D, N) with D = {d}, got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported: HandSSCA uses the real (S4D-real) A")
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.dim() == 3:
            if m.shape != (b, n, l):
                raise ValueError(f"{name} must be (batch, N, L) = {(b, n, l)}, got {tuple(m.shape)}")
        elif m.dim() == 4:
            g = m.shape[1]
            if m.shape[0] != b or m.shape[2:] != (n, l) or g == 0 or d % g:
                raise ValueError(
                    f"grouped {name} must be (batch, G, N, L) = ({b}, G, {n}, {l}) with G dividing "
                    f"D = {d}, got {tuple(m.shape)}")
        else:
            raise ValueError(
                f"{name} must be (batch, N, L) or (batch, G, N, L), got {tuple(m.shape)}")
    if D is not None and D.shape != (d,):
        raise ValueError(f"D must be (D,) = ({d},), got {tuple(D.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must be (batch, D, L) = {tuple(u.shape)}, got {tuple(z.shape)}")
    if delta_bias is not None and delta_bias.shape != (d,):
        raise ValueError(f"delta_bias must be (D,) = ({d},), got {tuple(delta_bias.shape)}")


def _compute_dtype(u: Tensor) -> torch.dtype:
    # mamba-ssm computes in fp32 whatever the input; we keep fp64 when given fp64 so the
    # equivalence tests can hold to 1e-10.
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _expand_groups(m: Tensor, d: int) -> Tensor:
    """(batch, N, L) -> (batch, 1, N, L); (batch, G, N, L) -> (batch, D, N, L) by repetition."""
    if m.dim() == 3:
        return m.unsqueeze(1)
    g = m.shape[1]
    return m.repeat_interleave(d // g, dim=1)


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                             delta_softplus=False, return_last_state=False):
    """The sequential recurrence of Eq. 2 with the B-bar of Eq. 3, one step at a time.

    Shapes: u, delta, z (batch, D, L); A (D, N); B, C (batch, N, L) or (batch, G, N, L);
    D, delta_bias (D,). Returns out (batch, D, L), and h_L (batch, D, N) when
    ``return_last_state``.
    """
    dtype_in = u.dtype
    cd = _compute_dtype(u)
    u, delta, A = u.to(cd), delta.to(cd), A.to(cd)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cd)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, l = u.shape
    Bx = _expand_groups(B.to(cd), d)  # (batch, 1 or D, N, L)
    Cx = _expand_groups(C.to(cd), d)
    h = u.new_zeros(b, d, A.shape[1])  # h_0 = 0, (batch, D, N)
    ys = []
    # unbind (not indexing in the loop): its backward is one stack, so the backward stays
    # linear in L; indexing a full-length tensor L times makes it quadratic.
    for u_t, dt_t, B_t, C_t in zip(u.unbind(-1), delta.unbind(-1), Bx.unbind(-1), Cx.unbind(-1)):
        A_bar = torch.exp(dt_t[:, :, None] * A)            # Eq. 2: A-bar = exp(Delta A)
        Bu_bar = dt_t[:, :, None] * B_t * u_t[:, :, None]  # Eq. 3: B-bar x = Delta B x
        h = A_bar * h + Bu_bar                             # h_i = A-bar h_{i-1} + B-bar x_i
        ys.append((h * C_t).sum(-1))                       # y_i = C h_i
    y = torch.stack(ys, dim=-1)  # (batch, D, L)
    if D is not None:
        y = y + D.to(cd)[:, None] * u                      # + D x_i
    if z is not None:
        y = y * F.silu(z.to(cd))
    y = y.to(dtype_in)
    return (y, h) if return_last_state else y


def _mamba_backend(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False):
    """mamba-ssm's ``selective_scan_fn`` (its CUDA kernel); same contract as the others."""
    if not u.is_cuda:
        raise ValueError("the 'mamba' scan backend runs on CUDA tensors only; "
                         f"got u on {u.device}")
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # ImportError, or its CUDA extension failing to load
        raise RuntimeError(
            "the 'mamba' scan backend needs mamba-ssm with its compiled CUDA kernels "
            "(pip install --no-build-isolation -e '.[cuda]' on a CUDA machine)") from exc
    return selective_scan_fn(u, delta, A, B.contiguous(), C.contiguous(), D, z, delta_bias,
                             delta_softplus, return_last_state)


_BACKENDS: Dict[str, Callable] = {
    "reference": selective_scan_reference,
    "chunked": selective_scan_chunked,
    "fused": selective_scan_fused,
    "mamba": _mamba_backend,
}
#: the backends that also take the grouped layout (G, batch, L, Dg) of the SSCA block
_GROUPED: Dict[str, Callable] = {
    "chunked": selective_scan_grouped,
    "fused": selective_scan_grouped_fused,
}
# The chunked and fused scans equal the reference (tests/test_ssm_scan.py,
# tests/test_ssm_fused.py) and are one and two orders of magnitude faster; the reference stays
# the oracle and the teaching version.


def _default_cpu() -> str:
    return "fused" if fused_available() else "chunked"


@functools.lru_cache(maxsize=None)
def _mamba_available() -> bool:
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
        return True
    except Exception:
        return False


def available_backends(device: Optional[torch.device] = None) -> list:
    """Names of the backends that can run here, or on ``device`` when given (``fused`` only on
    the CPU where its kernel builds; ``mamba`` only on CUDA with mamba-ssm installed; asking
    never imports mamba-ssm on a machine without CUDA)."""
    names = [k for k in _BACKENDS if k not in ("mamba", "fused")]
    on_cpu = device is None or torch.device(device).type == "cpu"
    if on_cpu and fused_available():
        names.append("fused")
    on_cuda = device is None or torch.device(device).type == "cuda"
    if on_cuda and torch.cuda.is_available() and _mamba_available():
        names.append("mamba")
    return names


def resolve_backend(backend: Optional[str], device) -> str:
    """The backend that :func:`selective_scan` uses with ``backend`` for tensors on ``device``:
    ``backend`` itself when named (checked), else ``mamba`` on CUDA when mamba-ssm is installed
    and otherwise ``fused`` where its kernel builds, else ``chunked`` (mamba-ssm is looked for
    on CUDA devices only; on CUDA without it, ``chunked``)."""
    if backend is None:
        kind = torch.device(device).type
        if kind == "cuda" and torch.cuda.is_available() and _mamba_available():
            return "mamba"
        return _default_cpu() if kind == "cpu" else "chunked"
    if backend not in _BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; expected one of {sorted(_BACKENDS)}")
    return backend


def grouped_scan(backend: Optional[str], device) -> Optional[Callable]:
    """The grouped-layout scan (:func:`~handssca.ssm.chunked_scan.selective_scan_grouped`'s
    contract: u, delta (G, batch, L, Dg), B, C (G, batch, L, N)) of the backend that
    :func:`resolve_backend` gives for ``backend`` on ``device``, or None when that backend takes
    mamba-ssm's layout only (``reference``, ``mamba``)."""
    return _GROUPED.get(resolve_backend(backend, device))


def cross_scan_kernel(backend: Optional[str], device) -> Optional[Callable]:
    """The fused four-order cross-scan kernel
    (:func:`~handssca.ssm.triton_scan.cross_scan_triton`: plane (batch, d, H, W), per-order
    delta (batch, 4, d, H, W), A (4, d, N), B, C (batch, 4, N, H, W) -> merged (batch, d, H, W))
    when it should replace cross-scan + :func:`selective_scan` + merge for tensors on
    ``device``, else None.

    It is used only when ``HANDSSCA_TRITON_SCAN=1``, ``backend`` is None (the automatic choice;
    a backend named explicitly is kept) and the tensors are on CUDA, or on the CPU under
    Triton's interpreter (``TRITON_INTERPRET=1``). With the flag set on CUDA and Triton missing,
    a RuntimeError says what to install.
    """
    if os.environ.get(ENV_TRITON) != "1" or backend is not None:
        return None
    kind = torch.device(device).type
    interpreted = kind == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
    if kind != "cuda" and not interpreted:
        return None
    from . import triton_scan  # deferred: it imports Triton on first use only

    if not triton_scan.triton_available():
        raise RuntimeError(
            f"{ENV_TRITON}=1 asks for the Triton cross-scan kernel, but Triton is not installed: "
            "pip install -e '.[cuda]' (or pip install triton), or unset the flag")
    return triton_scan.cross_scan_triton


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend: Optional[str] = None):
    """Selective scan with mamba-ssm's ``selective_scan_fn`` signature (Eq. 2-3; Mamba Alg. 2).

    Args:
        u: (batch, D, L) input x.
        delta: (batch, D, L) step sizes Delta (before bias and softplus).
        A: (D, N) real state matrix (diagonal per channel).
        B, C: (batch, N, L) or grouped (batch, G, N, L), selective projections.
        D: optional (D,) skip.
        z: optional (batch, D, L) gate; the output is multiplied by SiLU(z).
        delta_bias: optional (D,) added to delta.
        delta_softplus: apply softplus to delta (+ bias).
        return_last_state: also return h_L, (batch, D, N).
        backend: ``None`` (automatic: ``mamba`` on CUDA when installed, ``fused`` on a CPU
            where it builds, else ``chunked``), or one of :func:`available_backends`.

    Returns:
        out (batch, D, L) in u's dtype; with ``return_last_state``, (out, h_L).
    """
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    backend = resolve_backend(backend, u.device)
    return _BACKENDS[backend](u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                              return_last_state)
