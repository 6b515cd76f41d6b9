"""The fused (compiled) selective scan equals the sequential reference (Eq. 2-3), values and
gradients; it builds once and fails over clearly."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from handssca.ssm import fused_scan, selective_scan, selective_scan_grouped
from handssca.ssm.fused_scan import (KernelBuildError, build_kernel, selective_scan_fused,
                                     selective_scan_grouped_fused)
from handssca.ssm.scan import selective_scan_reference
from support import assert_close_rel, grouped_by_reference, grouped_inputs


def strided_bc(inp):
    """B and C as views into one (G, b, L, 2N) tensor (as the SSCA block's projection gives)."""
    bc = torch.cat([inp["B"], inp["C"]], dim=-1)
    n = inp["B"].shape[-1]
    return dict(inp, B=bc[..., :n], C=bc[..., n:])


# Dg = 70 is one full channel tile (64) and a ragged one; Dg = 3 a lone short tile; N = 16 is
# HandSSCA's state size, N = 5 an odd one; L = 1 a single step.
SHAPES = [dict(g=3, b=2, L=29, dg=70, n=16), dict(g=2, b=1, L=41, dg=3, n=5),
          dict(g=1, b=3, L=1, dg=8, n=16)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
@pytest.mark.parametrize("optional", [True, False], ids=["D+bias+softplus", "bare"])
def test_fused_grouped_equals_reference_fp64(shape, optional):
    inp = strided_bc(grouped_inputs(**shape))
    if not optional:
        inp = dict(inp, D=None, delta_bias=None)
        inp["delta"] = inp["delta"].abs()  # Delta > 0 without the softplus
    flags = dict(delta_softplus=optional, return_last_state=True)
    with torch.no_grad():
        y, h = selective_scan_grouped_fused(*inp.values(), **flags)
        y0, h0 = grouped_by_reference(inp, **flags)
    assert y.dtype == torch.float64 and y.shape == y0.shape and h.shape == h0.shape
    assert_close_rel(y, y0, 1e-12, "out")
    assert_close_rel(h, h0, 1e-12, "last state")


def test_fused_fp32_at_ssca_channel_length_and_threads():
    # the channel branch's sequence length (16384 steps), fp32 against the fp64 reference; the
    # work split over 1 or 3 threads gives the same bits
    inp = strided_bc(grouped_inputs(g=2, b=1, L=16384, dg=32, n=16, dtype=torch.float32))
    with torch.no_grad():
        y1 = selective_scan_grouped_fused(*inp.values(), delta_softplus=True, threads=1)
        y3 = selective_scan_grouped_fused(*inp.values(), delta_softplus=True, threads=3)
        y0, _ = grouped_by_reference({k: v.double() for k, v in inp.items()},
                                     delta_softplus=True)
    assert y1.dtype == torch.float32
    assert torch.equal(y1, y3)
    assert_close_rel(y1.double(), y0, 1e-5, "fp32 out")


def test_fused_extreme_steps_stay_finite():
    # Delta A down to about -700 per step (exp underflows): the decay is floored at 2^-126, the
    # old state is forgotten, nothing overflows
    inp = grouped_inputs(g=1, b=1, L=60, dg=5, n=4, dtype=torch.float32)
    inp["delta"] = torch.linspace(-20.0, 30.0, 60).view(1, 1, 60, 1).expand(1, 1, 60, 5)
    inp["A"] = -torch.full((1, 5, 4), 25.0)
    with torch.no_grad():
        y = selective_scan_grouped_fused(*inp.values(), delta_softplus=True)
        y0, _ = grouped_by_reference({k: v.double() for k, v in inp.items()},
                                     delta_softplus=True)
    assert torch.isfinite(y).all()
    assert_close_rel(y.double(), y0, 1e-5, "out")


def test_fused_mamba_signature_equals_reference_with_gate():
    g = torch.Generator().manual_seed(3)
    b, d, L, n = 2, 8, 33, 16
    u, z = torch.randn(b, d, L, generator=g), torch.randn(b, d, L, generator=g)
    delta = torch.randn(b, d, L, generator=g) * 0.5 - 1
    A = -(torch.rand(d, n, generator=g) + 0.1)
    for B in (torch.randn(b, n, L, generator=g), torch.randn(b, 4, n, L, generator=g)):
        C = torch.randn(B.shape, generator=g)
        args = (u, delta, A, B, C, torch.randn(d, generator=g), z, torch.randn(d, generator=g))
        y, h = selective_scan(*args, delta_softplus=True, return_last_state=True,
                              backend="fused")
        y0, h0 = selective_scan_reference(*(a.double() for a in args), delta_softplus=True,
                                          return_last_state=True)
        assert_close_rel(y.double(), y0, 1e-5, "out")
        assert_close_rel(h.double(), h0, 1e-5, "last state")


def _values_and_grads(fn, inp, **flags):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items() if v is not None}
    y, h = fn({k: leaves.get(k) for k in inp}, **flags)
    gen = torch.Generator().manual_seed(1)
    wy, wh = (torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in (y, h))
    grads = torch.autograd.grad((y * wy).sum() + (h * wh).sum(), list(leaves.values()))
    return y.detach(), h.detach(), dict(zip(leaves, grads))


def _fused(inp, **flags):
    return selective_scan_grouped_fused(*inp.values(), **flags)


# L = 70: two full 32-step chunks of saved states and a ragged one
GRAD_SHAPES = [dict(g=3, b=2, L=70, dg=70, n=16), dict(g=2, b=1, L=41, dg=3, n=5),
               dict(g=1, b=2, L=1, dg=4, n=3)]


@pytest.mark.parametrize("shape", GRAD_SHAPES,
                         ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
@pytest.mark.parametrize("optional", [True, False], ids=["D+bias+softplus", "bare"])
def test_fused_gradients_equal_reference_fp64(shape, optional):
    inp = strided_bc(grouped_inputs(**shape))
    if not optional:
        inp = dict(inp, D=None, delta_bias=None)
        inp["delta"] = inp["delta"].abs()
    flags = dict(delta_softplus=optional, return_last_state=True)
    y, h, grads = _values_and_grads(_fused, inp, **flags)
    y0, h0, grads0 = _values_and_grads(grouped_by_reference, inp, **flags)
    assert_close_rel(y, y0, 1e-12, "out")
    assert_close_rel(h, h0, 1e-12, "last state")
    assert set(grads) == set(grads0)
    for k, g0 in grads0.items():
        assert grads[k].shape == g0.shape and grads[k].dtype == g0.dtype, k
        if g0.abs().max() > 0:
            assert_close_rel(grads[k], g0, 1e-10, f"grad {k}")
        else:  # dA at L = 1: h_0 = 0, so no gradient reaches A
            assert grads[k].abs().max() == 0, k


def test_fused_fp32_gradients_match_chunked_and_come_back_in_bf16():
    inp = grouped_inputs(g=2, b=2, L=300, dg=40, n=16, dtype=torch.float32)
    flags = dict(delta_softplus=True, return_last_state=True)
    y, h, grads = _values_and_grads(_fused, inp, **flags)
    y0, h0, grads0 = _values_and_grads(
        lambda i, **f: selective_scan_grouped(*i.values(), **f), inp, **flags)
    assert_close_rel(y, y0, 1e-5, "out")
    for k in grads0:
        assert_close_rel(grads[k], grads0[k], 1e-4, f"grad {k}")
    # 16-bit inputs (autocast): computed in fp32, gradients returned in the inputs' dtypes
    low = {k: (v.bfloat16() if k in ("u", "delta", "B", "C") else v) for k, v in inp.items()}
    _, _, g16 = _values_and_grads(_fused, low, **flags)
    assert g16["u"].dtype == torch.bfloat16 and g16["A"].dtype == torch.float32


def test_fused_backward_keeps_one_state_per_chunk():
    # what autograd holds for the backward: the inputs and the states before every 32nd step,
    # never a (G, b, L, Dg, N) tensor of every step's state
    g, b, L, dg, n = 2, 1, 256, 8, 16
    inp = grouped_inputs(g=g, b=b, L=L, dg=dg, n=n, dtype=torch.float32)
    saved = []
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t,
                                                  lambda t: t):
        y = selective_scan_grouped_fused(*leaves.values(), delta_softplus=True)
    y.sum().backward()
    assert all(v.grad is not None for v in leaves.values())
    # the largest inputs: u, delta (G, b, L, Dg) and B, C (G, b, L, N)
    assert max(saved) <= g * b * L * max(dg, n), f"a saved tensor has {max(saved)} numbers"
    assert g * b * (L // 32) * n * dg in saved  # the chunk-start states
    assert sum(saved) < g * b * L * dg * n


def test_fused_rejects_bad_input_with_names():
    inp = grouped_inputs(g=2, b=1, L=10, dg=4, n=3, dtype=torch.float32)
    with pytest.raises(ValueError, match="B must be"):
        selective_scan_grouped_fused(*dict(inp, B=inp["B"][:, :, :5]).values())
    with pytest.raises(ValueError, match="A must be"):
        selective_scan_grouped_fused(*dict(inp, A=inp["A"][:1]).values())


def test_build_is_cached_and_atomic(tmp_path):
    lib = build_kernel(tmp_path)
    stamp = lib.stat().st_mtime_ns
    assert build_kernel(tmp_path) == lib and lib.stat().st_mtime_ns == stamp  # reused
    # no temporary build folder or object file is left beside the library and its digest
    assert sorted(p.name for p in tmp_path.iterdir()) == [lib.name, lib.name + ".sha256"]


def test_build_without_compiler_names_it(tmp_path):
    with pytest.raises(KernelBuildError, match="no C compiler.*no-such-cc"):
        build_kernel(tmp_path, compiler="no-such-cc")
    bad = tmp_path / "cc-that-fails"
    bad.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo fake 1.0; exit 0; fi\n"
                   "echo 'error: broken compiler' >&2\nexit 1\n")
    bad.chmod(0o755)
    with pytest.raises(KernelBuildError, match="broken compiler"):
        build_kernel(tmp_path / "cache", compiler=str(bad))


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, **env))


def test_without_compiler_the_default_is_chunked_with_one_warning(tmp_path):
    res = _python("""
        import warnings, torch
        warnings.simplefilter("always")
        from handssca.ssm import available_backends, resolve_backend, selective_scan
        with warnings.catch_warnings(record=True) as caught:
            assert resolve_backend(None, "cpu") == "chunked"
            assert "fused" not in available_backends("cpu")
            u = torch.randn(1, 4, 8); B = torch.randn(1, 2, 3, 8)
            selective_scan(u, u.abs(), -torch.rand(4, 3), B, B)
        assert len(caught) == 1 and "no-such-cc" in str(caught[0].message), caught
        try:
            selective_scan(u, u.abs(), -torch.rand(4, 3), B, B, backend="fused")
        except RuntimeError as exc:
            assert "chunked" in str(exc)
        else:
            raise AssertionError("an explicit fused call must fail")
        print("ok")
    """, CC="no-such-cc", HANDSSCA_KERNEL_DIR=str(tmp_path))
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    res = _python("""
        from handssca.ssm import resolve_backend
        assert resolve_backend(None, "cpu") == "chunked"
        print("ok")
    """, HANDSSCA_FUSED_SCAN="0")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_loading_the_kernel_keeps_subnormal_numbers():
    # -ffast-math at link time would switch the whole process to flush-to-zero (crtfastmath.o);
    # the build links without it
    assert fused_scan.load_kernel() is not None
    tiny = torch.tensor([1e-39]) * 1.0
    assert tiny.item() > 0
