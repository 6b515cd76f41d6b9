"""Discretisation of the continuous state space model (Eq. 1-3) and the two views of an LTI SSM.

The paper's Eq. 1 is the continuous system

    h'(t) = A h(t) + B x(t),        y(t) = C h(t) + D x(t)                          (Eq. 1)

with state h in R^N. Sampling the input with a step Delta and holding it constant over each step
(zero-order hold, ZOH) gives the exact recurrence

    h_i = Abar h_{i-1} + Bbar x_i,  y_i = C h_i + D x_i                            (Eq. 2)
    Abar = exp(Delta A),
    Bbar = (Delta A)^{-1} (exp(Delta A) - I) Delta B = A^{-1} (exp(Delta A) - I) B.

The paper writes Bbar = (exp(Delta A) - I) A^{-1} B; A commutes with exp(Delta A), so this is the
same matrix. Mamba, and so the paper (Eq. 3), replaces Bbar by its first-order Taylor
approximation

    Bbar ~ Delta B                                                                 (Eq. 3)

and keeps Abar exact. The difference is O(Delta^2): Bbar_zoh = Delta B + Delta^2/2 A B + ...

Shapes, in the paper's letters: A (..., N, N) for a general A or (..., N) for a diagonal one;
B and C (..., N), one input and one output channel (each of Mamba's D channels is such a
single-input single-output system); Delta a scalar or a tensor of the leading shape (...).

For a *linear time-invariant* SSM (Abar, Bbar, C fixed over time, as in S4; Mamba's selective
scan is not LTI because Delta, B and C depend on the input) the recurrence unrolls into a causal
convolution with the kernel

    K = (C Bbar, C Abar Bbar, C Abar^2 Bbar, ..., C Abar^{L-1} Bbar),   y = K * x (+ D x).

:func:`run_recurrent` and :func:`run_convolutional` compute the two views; they agree to rounding.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

Tensor = torch.Tensor
Scalar = Union[float, Tensor]

__all__ = ["discretise", "zoh", "zoh_diagonal", "first_order", "ssm_kernel", "run_recurrent",
           "run_convolutional"]


def _delta(delta: Scalar, like: Tensor) -> Tensor:
    """Delta as a tensor of A's dtype; a tensor Delta must be real floating point."""
    if isinstance(delta, Tensor) and not torch.is_floating_point(delta):
        raise ValueError(f"delta must be a real floating-point tensor, got dtype {delta.dtype}")
    return torch.as_tensor(delta, dtype=like.dtype, device=like.device)


def _check_general(A: Tensor, B: Tensor, where: str) -> None:
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{where}: A must be square (..., N, N), got shape {tuple(A.shape)}")
    if B.dim() < 1 or B.shape[-1] != A.shape[-1]:
        raise ValueError(f"{where}: B must be (..., N) with N = {A.shape[-1]}, "
                         f"got shape {tuple(B.shape)}")


def _check_diagonal(A: Tensor, B: Tensor, where: str) -> None:
    if A.dim() < 1 or B.dim() < 1 or B.shape[-1] != A.shape[-1]:
        raise ValueError(f"{where}: A (its diagonal) and B must be (..., N) with the same N, "
                         f"got {tuple(A.shape)} and {tuple(B.shape)}")


def zoh(A: Tensor, B: Tensor, delta: Scalar) -> Tuple[Tensor, Tensor]:
    """Exact zero-order hold for a general A (Eq. 2), without inverting A.

    Uses the block-matrix identity

        exp(Delta [[A, B], [0, 0]]) = [[exp(Delta A), int_0^Delta exp(A s) ds B], [0, 1]]

    whose top-right block is A^{-1}(exp(Delta A) - I) B = Bbar, also when A is singular.

    Args:
        A: (..., N, N).
        B: (..., N), one input channel.
        delta: scalar or tensor of the leading shape (...).

    Returns:
        Abar (..., N, N) and Bbar (..., N).
    """
    _check_general(A, B, "zoh")
    n = A.shape[-1]
    d = _delta(delta, A)
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-1], d.shape)
    M = A.new_zeros(batch + (n + 1, n + 1))
    M[..., :n, :n] = A
    M[..., :n, n] = B
    E = torch.linalg.matrix_exp(M * d[..., None, None])
    return E[..., :n, :n], E[..., :n, n]


def zoh_diagonal(A: Tensor, B: Tensor, delta: Scalar) -> Tuple[Tensor, Tensor]:
    """Exact zero-order hold for a diagonal A, in closed form (Eq. 2 elementwise).

    Abar_n = exp(Delta a_n),  Bbar_n = (exp(Delta a_n) - 1) / a_n * B_n, which tends to
    Delta B_n as a_n -> 0 (evaluated as Delta * expm1(z)/z with z = Delta a_n, exact at z = 0).

    Args:
        A: (..., N) the diagonal of A.
        B: (..., N).
        delta: scalar or tensor of the leading shape (...).

    Returns:
        Abar (..., N) (the diagonal) and Bbar (..., N).
    """
    _check_diagonal(A, B, "zoh_diagonal")
    d = _delta(delta, A)[..., None]
    z = d * A
    safe = torch.where(z == 0, torch.ones_like(z), z)
    phi = torch.where(z == 0, torch.ones_like(z), torch.expm1(safe) / safe)  # (e^z - 1) / z
    return torch.exp(z), d * phi * B


def first_order(A: Tensor, B: Tensor, delta: Scalar, diagonal: bool = False
                ) -> Tuple[Tensor, Tensor]:
    """Mamba's discretisation (Eq. 3): Abar = exp(Delta A) exact, Bbar = Delta B.

    Args:
        A: (..., N, N), or its diagonal (..., N) with ``diagonal=True``.
        B: (..., N).
        delta: scalar or tensor of the leading shape (...).

    Returns:
        Abar (shaped like A) and Bbar = Delta B (..., N).
    """
    d = _delta(delta, A)
    if diagonal:
        _check_diagonal(A, B, "first_order")
        return torch.exp(d[..., None] * A), d[..., None] * B
    _check_general(A, B, "first_order")
    return torch.linalg.matrix_exp(A * d[..., None, None]), d[..., None] * B


def discretise(A: Tensor, B: Tensor, delta: Scalar, method: str = "zoh",
               diagonal: bool = False) -> Tuple[Tensor, Tensor]:
    """(Abar, Bbar) from (A, B, Delta): ``method`` is ``"zoh"`` (Eq. 2, exact) or
    ``"first_order"`` (Eq. 3, Bbar = Delta B); ``diagonal`` says A is given as its diagonal.
    Shapes as :func:`zoh` / :func:`zoh_diagonal`."""
    if method == "zoh":
        return zoh_diagonal(A, B, delta) if diagonal else zoh(A, B, delta)
    if method == "first_order":
        return first_order(A, B, delta, diagonal=diagonal)
    raise ValueError(f"unknown discretisation {method!r}; expected 'zoh' or 'first_order'")


def _check_lti(A_bar: Tensor, B_bar: Tensor, C: Tensor, where: str) -> bool:
    """Validate (Abar, Bbar, C) of a single-input single-output LTI SSM; return diagonal?"""
    n = B_bar.shape[-1] if B_bar.dim() else -1
    if C.dim() < 1 or C.shape[-1] != n:
        raise ValueError(f"{where}: B_bar and C must be (..., N) with the same N, got "
                         f"{tuple(B_bar.shape)} and {tuple(C.shape)}")
    if A_bar.dim() >= 2 and A_bar.shape[-2:] == (n, n):
        return False
    if A_bar.dim() >= 1 and A_bar.shape[-1] == n:
        return True
    raise ValueError(f"{where}: A_bar must be (..., N, N) or its diagonal (..., N) with N = {n}, "
                     f"got {tuple(A_bar.shape)}")


def ssm_kernel(A_bar: Tensor, B_bar: Tensor, C: Tensor, L: int) -> Tensor:
    """The convolution kernel of an LTI SSM: K_k = C Abar^k Bbar, k = 0 .. L-1.

    Args:
        A_bar: (..., N, N), or the diagonal (..., N).
        B_bar: (..., N).
        C: (..., N).
        L: kernel length.

    Returns:
        K: (..., L).
    """
    diagonal = _check_lti(A_bar, B_bar, C, "ssm_kernel")
    if L < 1:
        raise ValueError(f"ssm_kernel: L must be >= 1, got {L}")
    if diagonal:  # Abar^k Bbar elementwise: a cumulative product of Abar
        powers = torch.cumprod(
            torch.cat([torch.ones_like(A_bar).unsqueeze(-2),
                       A_bar.unsqueeze(-2).expand(*A_bar.shape[:-1], L - 1, A_bar.shape[-1])],
                      dim=-2), dim=-2)                                  # (..., L, N)
        return (powers * (B_bar * C).unsqueeze(-2)).sum(-1)
    v = B_bar.unsqueeze(-1)                                             # Abar^0 Bbar, (..., N, 1)
    ks = []
    for _ in range(L):
        ks.append((C.unsqueeze(-2) @ v)[..., 0, 0])
        v = A_bar @ v
    return torch.stack(ks, dim=-1)


def run_recurrent(A_bar: Tensor, B_bar: Tensor, C: Tensor, x: Tensor,
                  D: Optional[Tensor] = None, h0: Optional[Tensor] = None) -> Tensor:
    """The recurrent view (Eq. 2): h_i = Abar h_{i-1} + Bbar x_i, y_i = C h_i + D x_i.

    Args:
        A_bar: (..., N, N) or the diagonal (..., N).
        B_bar, C: (..., N).
        x: (..., L) a scalar input per step.
        D: optional skip, broadcasting against (...).
        h0: optional initial state (..., N); zero by default.

    Returns:
        y: (..., L).
    """
    diagonal = _check_lti(A_bar, B_bar, C, "run_recurrent")
    batch = torch.broadcast_shapes(x.shape[:-1], B_bar.shape[:-1], C.shape[:-1],
                                   A_bar.shape[:-1] if diagonal else A_bar.shape[:-2])
    h = x.new_zeros(batch + (B_bar.shape[-1],)) if h0 is None else h0
    ys = []
    for x_i in x.unbind(-1):
        h = (A_bar * h if diagonal else (A_bar @ h.unsqueeze(-1))[..., 0]) + B_bar * x_i[..., None]
        ys.append((C * h).sum(-1))
    y = torch.stack(ys, dim=-1)
    return y if D is None else y + D[..., None] * x


def run_convolutional(K: Tensor, x: Tensor, D: Optional[Tensor] = None) -> Tensor:
    """The convolutional view: y_i = sum_{j <= i} K_j x_{i-j} (+ D x_i), by FFT.

    Args:
        K: (..., L) the kernel of :func:`ssm_kernel`.
        x: (..., L) the input.
        D: optional skip, broadcasting against (...).

    Returns:
        y: (..., L), causal (y_i depends on x_0 .. x_i only).
    """
    if K.shape[-1] != x.shape[-1]:
        raise ValueError(f"run_convolutional: K and x must have the same length L, got "
                         f"{tuple(K.shape)} and {tuple(x.shape)}")
    L = x.shape[-1]
    n = 2 * L  # zero-padding to 2L turns the FFT's circular convolution into a linear one
    y = torch.fft.irfft(torch.fft.rfft(K, n=n) * torch.fft.rfft(x, n=n), n=n)[..., :L]
    return y if D is None else y + D[..., None] * x
