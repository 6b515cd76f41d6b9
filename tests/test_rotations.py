"""Rotation representations: round trips, the identity and the half turn, orthonormality, gradients."""
import math

import pytest
import torch

from handssca.hand.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion,
                                     matrix_to_rot6d, quaternion_to_axis_angle, rot6d_to_matrix)

DTYPES = [torch.float32, torch.float64]


def _random_axis_angle(n, dtype, lo=0.0, hi=math.pi, seed=0):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = lo + (hi - lo) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return (axis * angle).to(dtype)


def _rodrigues_reference(aa):
    """Matrix exponential of the skew matrix, independent of the code under test."""
    x, y, z = aa.double().unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(aa.shape[:-1] + (3, 3))
    return torch.linalg.matrix_exp(K)


def _tol(dtype):
    return 1e-5 if dtype == torch.float32 else 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis_angle_to_matrix_matches_matrix_exponential(dtype):
    aa = _random_axis_angle(500, dtype, 0.0, 3.0)
    R = axis_angle_to_matrix(aa)
    assert R.dtype == dtype and R.shape == (500, 3, 3)
    torch.testing.assert_close(R.double(), _rodrigues_reference(aa), atol=_tol(dtype), rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrices_are_orthonormal_with_det_one(dtype):
    aa = _random_axis_angle(500, dtype, 0.0, 6.0)
    R = axis_angle_to_matrix(aa).double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=10 * _tol(dtype), rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(500, dtype=torch.float64),
                               atol=10 * _tol(dtype), rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lo,hi", [(0.0, 1e-7), (1e-7, 1e-3), (0.1, 3.0)])
def test_axis_angle_round_trip(dtype, lo, hi):
    aa = _random_axis_angle(300, dtype, lo, hi)
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    atol = 2e-6 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(back, aa, atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_near_pi_gives_the_same_rotation(dtype):
    # at a half turn, aa and -aa are the same rotation: compare matrices, and the angle
    aa = _random_axis_angle(300, dtype, math.pi - 1e-3, math.pi)
    R = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(R)
    atol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(axis_angle_to_matrix(back), R, atol=atol, rtol=0)
    torch.testing.assert_close(back.norm(dim=-1), aa.norm(dim=-1), atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_identity_and_exact_half_turns(dtype):
    I = torch.eye(3, dtype=dtype)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3, dtype=dtype)), I)
    assert torch.all(matrix_to_axis_angle(I) == 0)
    for k in range(3):  # a half turn about each coordinate axis
        aa = torch.zeros(3, dtype=dtype)
        aa[k] = math.pi
        R = axis_angle_to_matrix(aa)
        back = matrix_to_axis_angle(R)
        torch.testing.assert_close(back.abs(), aa, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quaternion_is_unit_with_nonnegative_w_and_round_trips(dtype):
    aa = _random_axis_angle(300, dtype, 0.0, math.pi)
    q = matrix_to_quaternion(axis_angle_to_matrix(aa))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(300, dtype=dtype), atol=_tol(dtype), rtol=0)
    assert torch.all(q[:, 0] >= 0)
    # the quaternion of a rotation by angle t about n is (cos t/2, sin t/2 n)
    half = aa.norm(dim=-1, keepdim=True) / 2
    n = aa / aa.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(q, torch.cat([half.cos(), half.sin() * n], -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(quaternion_to_axis_angle(-q), quaternion_to_axis_angle(q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rot6d_round_trip_and_gram_schmidt(dtype):
    R = axis_angle_to_matrix(_random_axis_angle(200, dtype, 0.0, math.pi))
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=_tol(dtype), rtol=0)
    # any 6 numbers (with independent columns) give a rotation, and b1 is parallel to a1
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64).to(dtype)
    M = rot6d_to_matrix(x).double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(M)
    torch.testing.assert_close(M.transpose(-1, -2) @ M, eye, atol=10 * _tol(dtype), rtol=0)
    torch.testing.assert_close(torch.linalg.det(M), torch.ones(200, dtype=torch.float64),
                               atol=10 * _tol(dtype), rtol=0)
    # the authors' layout: a1 = x[0:3] (so b1 is parallel to it), a2 = x[3:6] (b2 in their plane)
    a1, a2 = x[..., 0:3].double(), x[..., 3:6].double()
    torch.testing.assert_close(M[..., 0], a1 / a1.norm(dim=-1, keepdim=True), atol=10 * _tol(dtype), rtol=0)
    normal = torch.cross(a1, a2, dim=-1)
    assert float((M[..., 1] * normal).sum(-1).abs().max()) < 1e-3 * float(normal.norm(dim=-1).min()) + 1e-6
    assert bool(((M[..., 1] * a2).sum(-1) > 0).all())


def test_rot6d_layouts_are_one_permutation_apart():
    """A head laid out as a row-major (3, 2) matrix gives the same rotations as ours once each
    joint's six outputs are permuted (the importer of released weights relies on it)."""
    from handssca.hand.rotations import ROT6D_ROWS_FROM_ROW_MAJOR

    x_row_major = torch.randn(50, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = x_row_major.reshape(50, 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    expected = torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)
    ours = rot6d_to_matrix(x_row_major[:, list(ROT6D_ROWS_FROM_ROW_MAJOR)])
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)
    assert not torch.allclose(rot6d_to_matrix(x_row_major), expected, atol=1e-3)


def test_batch_dimensions_are_kept():
    aa = _random_axis_angle(24, torch.float32).reshape(2, 3, 4, 3)
    R = axis_angle_to_matrix(aa)
    assert R.shape == (2, 3, 4, 3, 3)
    assert matrix_to_axis_angle(R).shape == (2, 3, 4, 3)
    assert matrix_to_quaternion(R).shape == (2, 3, 4, 4)
    assert matrix_to_rot6d(R).shape == (2, 3, 4, 6)
    assert rot6d_to_matrix(matrix_to_rot6d(R)).shape == (2, 3, 4, 3, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.0, 1e-12, 1e-9, 1e-5, 1.0, math.pi - 1e-4, math.pi])
def test_gradients_are_finite(dtype, scale):
    base = _random_axis_angle(16, torch.float64, 1.0, 1.0, seed=3)  # unit axes
    aa = (base * scale).to(dtype).requires_grad_(True)
    R = axis_angle_to_matrix(aa)
    (R * torch.arange(9, dtype=dtype).reshape(3, 3)).sum().backward()
    assert torch.isfinite(aa.grad).all()

    R2 = axis_angle_to_matrix((base * scale).to(dtype)).detach().requires_grad_(True)
    matrix_to_axis_angle(R2).pow(2).sum().backward()
    assert torch.isfinite(R2.grad).all()

    x = matrix_to_rot6d(axis_angle_to_matrix((base * scale).to(dtype))).detach().requires_grad_(True)
    rot6d_to_matrix(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradient_of_axis_angle_to_matrix_is_correct():
    aa = _random_axis_angle(4, torch.float64, 0.2, 3.0, seed=5).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    small = (_random_axis_angle(4, torch.float64, 1e-6, 1e-5, seed=6)).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (small,), eps=1e-8)
