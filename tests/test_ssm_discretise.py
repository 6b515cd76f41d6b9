"""Discretisation (Eq. 1-3) and the recurrent/convolutional views of an LTI SSM."""
from __future__ import annotations

import math

import pytest
import torch

from handssca.ssm.discretise import (discretise, first_order, run_convolutional, run_recurrent,
                                     ssm_kernel, zoh, zoh_diagonal)

F64 = torch.float64


def stable_system(n=5, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(*batch, n, n, generator=g, dtype=F64) - 3 * torch.eye(n, dtype=F64)
    B = torch.randn(*batch, n, generator=g, dtype=F64)
    C = torch.randn(*batch, n, generator=g, dtype=F64)
    return A, B, C


def test_zoh_matches_matrix_exponential_and_the_paper_formula():
    A, B, _ = stable_system()
    for delta in (0.01, 0.3, 2.0):
        A_bar, B_bar = zoh(A, B, delta)
        expm = torch.linalg.matrix_exp(delta * A)
        eye = torch.eye(5, dtype=F64)
        assert torch.allclose(A_bar, expm, rtol=1e-12, atol=1e-14)
        # Eq. 2 as the paper writes it, (exp(Delta A) - I) A^-1 B, and in Mamba's order
        paper = (expm - eye) @ torch.linalg.solve(A, B)
        mamba = torch.linalg.solve(delta * A, (expm - eye) @ (delta * B))
        assert torch.allclose(B_bar, paper, rtol=1e-10, atol=1e-13)
        assert torch.allclose(B_bar, mamba, rtol=1e-10, atol=1e-13)


def test_zoh_with_singular_A_and_batched_delta():
    # A = 0: h' = B x, so Bbar = Delta B exactly (the block-matrix form never inverts A)
    B = torch.randn(3, dtype=F64)
    A_bar, B_bar = zoh(torch.zeros(3, 3, dtype=F64), B, 0.7)
    assert torch.allclose(A_bar, torch.eye(3, dtype=F64)) and torch.allclose(B_bar, 0.7 * B)
    # one Delta per channel (Mamba's D channels): a batch of systems
    A, B, _ = stable_system(n=4, batch=(6,))
    delta = torch.linspace(0.01, 1.0, 6, dtype=F64)
    A_bar, B_bar = zoh(A, B, delta)
    assert A_bar.shape == (6, 4, 4) and B_bar.shape == (6, 4)
    for i in range(6):
        a_i, b_i = zoh(A[i], B[i], delta[i].item())
        assert torch.allclose(A_bar[i], a_i) and torch.allclose(B_bar[i], b_i)


def test_zoh_diagonal_closed_form_equals_the_general_zoh():
    a = torch.tensor([-2.0, -0.5, 0.0, -1e-9, -7.0], dtype=F64)  # includes a_n = 0
    B = torch.randn(5, dtype=F64)
    for delta in (0.05, 1.3):
        d_bar, b_bar = zoh_diagonal(a, B, delta)
        A_bar, B_bar = zoh(torch.diag(a), B, delta)
        assert torch.allclose(d_bar, A_bar.diagonal(), rtol=1e-13)
        assert torch.allclose(b_bar, B_bar, rtol=1e-12, atol=1e-15)
    assert discretise(a, B, 0.1, diagonal=True)[1].shape == (5,)


@pytest.mark.parametrize("diagonal", [False, True])
def test_first_order_error_shrinks_like_delta_squared(diagonal):
    # Bbar_zoh - Delta B = Delta^2/2 A B + O(Delta^3) (Eq. 3 is first order); Abar stays exact
    A, B, _ = stable_system(n=4, seed=1)
    if diagonal:
        A = -torch.rand(4, dtype=F64) - 0.5
    errs, deltas = [], [0.1 / 2 ** k for k in range(5)]
    for delta in deltas:
        A_zoh, B_zoh = discretise(A, B, delta, "zoh", diagonal)
        A_fo, B_fo = discretise(A, B, delta, "first_order", diagonal)
        assert torch.allclose(A_fo, A_zoh, rtol=1e-12, atol=1e-14)
        errs.append((B_zoh - B_fo).norm().item())
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errs, errs[1:])]
    assert all(1.9 < p < 2.1 for p in orders), orders
    lead = ((A * B if diagonal else A @ B) / 2).norm().item()  # the Delta^2 coefficient
    assert abs(errs[-1] / deltas[-1] ** 2 - lead) < 0.05 * lead


@pytest.mark.parametrize("diagonal", [False, True])
def test_recurrent_and_convolutional_views_agree(diagonal):
    A, B, C = stable_system(n=6, seed=2)
    if diagonal:
        A = -torch.rand(6, dtype=F64) * 3
    A_bar, B_bar = discretise(A, B, 0.1, "zoh", diagonal)
    x = torch.randn(3, 200, dtype=F64)
    D = torch.tensor(0.7, dtype=F64)
    K = ssm_kernel(A_bar, B_bar, C, 200)
    assert K.shape == (200,)
    # the first taps by hand: C Bbar, C Abar Bbar
    assert torch.allclose(K[0], C @ B_bar)
    assert torch.allclose(K[1], C @ (A_bar * B_bar if diagonal else A_bar @ B_bar))
    y_rec = run_recurrent(A_bar, B_bar, C, x, D=D)
    y_conv = run_convolutional(K, x, D=D)
    assert torch.allclose(y_rec, y_conv, rtol=1e-10, atol=1e-12)
    # causality: changing a late input leaves earlier outputs alone
    x2 = x.clone()
    x2[:, 150] += 1.0
    y1, y2 = run_convolutional(K, x), run_convolutional(K, x2)
    assert torch.allclose(y2[:, :150], y1[:, :150], rtol=0, atol=1e-12)
    assert not torch.allclose(y2[:, 150], y1[:, 150])


def test_bad_inputs_raise():
    A, B, C = stable_system(n=3)
    with pytest.raises(ValueError, match="square"):
        zoh(torch.zeros(3, 4, dtype=F64), B, 0.1)
    with pytest.raises(ValueError, match="B must be"):
        zoh(A, torch.zeros(4, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="same N"):
        zoh_diagonal(torch.zeros(3, dtype=F64), torch.zeros(2, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="unknown discretisation"):
        discretise(A, B, 0.1, method="bilinear")
    with pytest.raises(ValueError, match="same N"):
        ssm_kernel(A, B, torch.zeros(2, dtype=F64), 5)
    with pytest.raises(ValueError, match="same length"):
        run_convolutional(torch.zeros(5, dtype=F64), torch.zeros(6, dtype=F64))
    with pytest.raises(ValueError, match="real"):
        first_order(A, B, torch.tensor(1))
