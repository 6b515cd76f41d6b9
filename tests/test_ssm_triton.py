"""The fused Triton cross-scan kernel (:mod:`handssca.ssm.triton_scan`), run on CPU tensors by
Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before Triton is imported, and a pytest process may already
have imported it, so every test that runs the kernel does so in a fresh Python process with the
variable set, and reads back what it measured as JSON.

Tolerance: the kernel computes in fp32 and is compared with the sequential reference in fp64;
the fp32 result is held to 1e-5 of the largest value of each output or gradient, or of 1 where
that is smaller (the fused scan's tests use the same relative bound). On these short sequences
(L = 12 and 20) the rounding of fp32 (6e-8 relative) over a dozen steps and a sum of four orders
stays near 1e-7 of the terms summed, so 1e-5 leaves two orders of magnitude of margin, while any
wrong index, order or term gives errors of the order of the values themselves. The floor of 1:
the inputs are of order 1, so a gradient that is a sum over positions (D's, with one channel)
can come out much smaller than its terms while its rounding stays that of the terms.

Without Triton these tests skip, unless ``HANDSSCA_REQUIRE_TRITON=1`` (set by ``.ci/run``) makes
its absence a failure.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from handssca.ssm import cross_scan_kernel
from handssca.ssm.triton_scan import cross_scan_triton

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5


def require_triton() -> None:
    """Skip without Triton, or fail when ``HANDSSCA_REQUIRE_TRITON=1`` says it must be there."""
    if importlib.util.find_spec("triton") is None:
        if os.environ.get("HANDSSCA_REQUIRE_TRITON") == "1":
            pytest.fail("HANDSSCA_REQUIRE_TRITON=1 but Triton is not installed "
                        "(pip install -e '.[dev]' on Linux x86-64)")
        pytest.skip("Triton is not installed")


def run_interpreted(body: str, **env) -> dict:
    """Run ``body`` in a new Python process under Triton's interpreter; it must print one JSON
    line last. Returns that JSON."""
    code = "import json, torch\ntorch.manual_seed(0)\n" + textwrap.dedent(body)
    full_env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(ROOT), **env}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=full_env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


# The kernels against cross-scan + reference scan + merge (fp64), values and every gradient
# (the backward kernel across chunk boundaries);
# one case with D, delta_bias, softplus and a state size that is no power of two, one with
# strided inputs (a channels-last plane, permuted projections) and none of the optional terms;
# one with a single channel (the channel branch of the paper's reading).
KERNEL_CASES = """
from handssca.ssm import triton_scan
from handssca.ssm.triton_scan import cross_scan_composite, cross_scan_triton

triton_scan.BWD_CHUNK = 5  # the backward's chunks: L = 12 = 5 + 5 + 2, L = 20 = 4 x 5

def case(b, d, h, w, n, optional, strided):
    x = torch.randn(b, h, w, d).permute(0, 3, 1, 2) if strided else torch.randn(b, d, h, w)
    delta = 0.5 * torch.randn(b, 4, d, h, w)
    A = -torch.rand(4, d, n) - 0.5
    B, C = torch.randn(b, 4, n, h, w), torch.randn(b, 4, n, h, w)
    if strided:
        delta = 0.5 * torch.randn(b, h, w, 4, d).permute(0, 3, 4, 1, 2)
        B, C = (torch.randn(b, h, w, 4, n).permute(0, 3, 4, 1, 2) for _ in range(2))
    D, bias = (torch.randn(4, d), 0.3 * torch.randn(4, d)) if optional else (None, None)
    ins = [x, delta, A, B, C, D, bias]
    mine = [None if t is None else t.detach().requires_grad_(True) for t in ins]
    ref = [None if t is None else t.detach().double().requires_grad_(True) for t in ins]
    y = cross_scan_triton(*mine, delta_softplus=optional)
    y_ref = cross_scan_composite(*ref, delta_softplus=optional, backend="reference")
    g = torch.randn(b, d, h, w)
    y.backward(g)
    y_ref.backward(g.double())
    rel = lambda a, r: ((a.double() - r).abs().max() / r.abs().max().clamp(min=1.0)).item()
    err = {"out": rel(y, y_ref)}
    for name, a, r in zip("x delta A B C D bias".split(), mine, ref):
        if a is not None:
            err["grad_" + name] = rel(a.grad, r.grad)
    return {"errors": err, "dtype": str(y.dtype), "shape": list(y.shape),
            "channels_last": y.stride(1) == 1}

def bf16_case(b=1, d=4, h=3, w=4, n=4):
    # bf16 features and projections, fp32 A, D and bias (as the SSCA block under autocast)
    ins = [torch.randn(b, d, h, w), 0.5 * torch.randn(b, 4, d, h, w), -torch.rand(4, d, n) - 0.5,
           torch.randn(b, 4, n, h, w), torch.randn(b, 4, n, h, w), torch.randn(4, d),
           0.3 * torch.randn(4, d)]
    mine = [(t.bfloat16() if i in (0, 1, 3, 4) else t).requires_grad_(True)
            for i, t in enumerate(ins)]
    ref = [t.detach().double().requires_grad_(True) for t in mine]
    y = cross_scan_triton(*mine)
    y_ref = cross_scan_composite(*ref, backend="reference")
    g = torch.randn(b, d, h, w)
    y.backward(g.bfloat16())
    y_ref.backward(g.bfloat16().double())
    rel = lambda a, r: ((a.double() - r).abs().max() / r.abs().max().clamp(min=1.0)).item()
    err = {"out": rel(y, y_ref)}
    for name, a, r in zip("x delta A B C D bias".split(), mine, ref):
        err["grad_" + name] = rel(a.grad, r.grad)
    return {"errors": err, "dtypes": [str(t.dtype) for t in [y] + [a.grad for a in mine]]}

out = {"full": case(2, 5, 3, 4, 6, True, False), "strided": case(1, 4, 5, 4, 4, False, True),
       "one_channel": case(1, 1, 4, 3, 4, True, False), "bf16": bf16_case()}
print(json.dumps(out))
"""


@pytest.mark.slow  # Triton's interpreter: 4-10 s
def test_kernel_matches_cross_scan_reference_scan_and_merge():
    require_triton()
    res = run_interpreted(KERNEL_CASES)
    assert res["full"]["shape"] == [2, 5, 3, 4] and res["full"]["dtype"] == "torch.float32"
    assert res["strided"]["channels_last"]  # the output keeps x's layout
    for case in ("full", "strided", "one_channel"):
        errs = res[case]["errors"]
        expected = {"out", "grad_x", "grad_delta", "grad_A", "grad_B", "grad_C"}
        assert expected <= set(errs), errs
        assert max(errs.values()) < TOL, (case, errs)
    # bf16 inputs: fp32 inside, the output and the gradients rounded to their inputs' bf16
    # (half a unit in the last place of bf16's 8-bit significand: at most 2^-8 of the value,
    # plus the fp32 bound); fp32 parameters keep fp32 gradients
    bf16 = res["bf16"]
    assert bf16["dtypes"] == ["torch.bfloat16"] * 3 + ["torch.float32"] + [
        "torch.bfloat16"] * 2 + ["torch.float32"] * 2, bf16["dtypes"]
    assert max(bf16["errors"].values()) < 2 ** -8 + TOL, bf16["errors"]


# The SSCA block's four-order scan through the dispatch: with the flag, scan_plane calls the
# kernel (counted) and gives the default path's values and parameter gradients; without it, the
# kernel is not called. Both SSCA branches: d <= 2 dt_rank (channel) and d > 2 dt_rank (spatial).
BLOCK_CASES = """
import os
from handssca.models.ssca import CrossScanS6
from handssca.ssm import triton_scan

calls = []
kernel = triton_scan.cross_scan_triton
def counted(*a, **k):
    calls.append(1)
    return kernel(*a, **k)
triton_scan.cross_scan_triton = counted

def run(d, rank, flag):
    os.environ["HANDSSCA_TRITON_SCAN"] = flag
    torch.manual_seed(1)
    m = CrossScanS6(d, d_state=4, dt_rank=rank)
    x = torch.randn(2, 3, 5, d, requires_grad=True)
    y = m.scan_plane(x)
    y.backward(torch.randn_like(y))
    return y.detach(), [x.grad] + [p.grad for p in m.parameters()]

out = {}
for d, rank in ((4, 2), (8, 2)):
    y0, g0 = run(d, rank, "0")
    before = len(calls)
    y1, g1 = run(d, rank, "1")
    scale = lambda t: t.abs().max().item()
    out[f"d{d}"] = {"calls_without_flag": before, "calls_with_flag": len(calls) - before,
                    "out": (y1 - y0).abs().max().item() / scale(y0),
                    "grads": max((a - b).abs().max().item() / scale(b) for a, b in zip(g1, g0))}
    calls.clear()
print(json.dumps(out))
"""


@pytest.mark.slow  # Triton's interpreter: 4-10 s
def test_ssca_block_uses_the_kernel_only_behind_the_flag():
    require_triton()
    res = run_interpreted(BLOCK_CASES)
    for case, r in res.items():
        assert r["calls_without_flag"] == 0 and r["calls_with_flag"] == 1, (case, r)
        assert r["out"] < TOL and r["grads"] < TOL, (case, r)


def test_dispatch_is_off_without_the_flag_or_off_cuda(monkeypatch):
    monkeypatch.delenv("HANDSSCA_TRITON_SCAN", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert cross_scan_kernel(None, "cpu") is None and cross_scan_kernel(None, "cuda") is None
    monkeypatch.setenv("HANDSSCA_TRITON_SCAN", "1")
    assert cross_scan_kernel(None, "cpu") is None       # CPU tensors: no Triton in production
    assert cross_scan_kernel("chunked", "cuda") is None  # a backend named explicitly is kept


def test_flag_on_cuda_without_triton_says_what_to_install(monkeypatch):
    from handssca.ssm import triton_scan

    monkeypatch.setenv("HANDSSCA_TRITON_SCAN", "1")
    monkeypatch.setattr(triton_scan, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"HANDSSCA_TRITON_SCAN=1.*pip install"):
        cross_scan_kernel(None, "cuda")


@pytest.mark.parametrize("which, shape, expected", [
    ("x", (2, 4, 3), "x must be a plane"),
    ("delta", (2, 4, 4, 5, 3), r"delta must be \(batch, 4, d, H, W\) = \(2, 4, 4, 3, 5\)"),
    ("A", (4, 4), r"A must be \(4, d, N\)"),
    ("C", (2, 4, 6, 3, 5), r"C must be \(batch, 4, N, H, W\)"),
    ("D", (16,), r"D must be \(4, d\) = \(4, 4\)"),
])
def test_bad_shapes_are_named(which, shape, expected):
    args = dict(x=torch.zeros(2, 4, 3, 5), delta=torch.zeros(2, 4, 4, 3, 5),
                A=torch.zeros(4, 4, 2), B=torch.zeros(2, 4, 2, 3, 5), C=torch.zeros(2, 4, 2, 3, 5),
                D=torch.zeros(4, 4))
    args[which] = torch.zeros(shape)
    with pytest.raises(ValueError, match=expected):
        cross_scan_triton(**args)


# ``bench gpu``'s scan timings with the fused kernel beside the chunked scan, on the CPU.
BENCH_CASE = """
from handssca.bench import gpu
rows = gpu.time_scans(["chunked", "triton"], ["spatial"], 1, ["float32"], torch.device("cpu"),
                      repeats=1, warmup=0, shape_table={"spatial": (8, 12, 4)},
                      plane_table={"spatial": (2, 3, 4)})
print(json.dumps(rows))
"""


@pytest.mark.slow  # Triton's interpreter: 4-10 s
def test_bench_gpu_times_the_kernel_beside_the_scans():
    require_triton()
    rows = run_interpreted(BENCH_CASE)
    assert [(r["backend"], r["cross_scan_merge"]) for r in rows] == [
        ("chunked", False), ("triton", True)]
    chunked, fused = rows
    assert fused["fwd_ms"] > 0 and fused["fwd_bwd_ms"] > 0
    # the fused kernel reads one plane instead of four orders and writes one merged plane
    assert fused["fwd_bytes"] < chunked["fwd_bytes"]
    assert fused["fwd_bwd_bytes"] < chunked["fwd_bwd_bytes"]


def test_triton_is_never_imported_unless_the_kernel_is_used():
    require_triton()  # installed, so that its absence from sys.modules means something
    code = textwrap.dedent("""
        import os, sys
        os.environ["HANDSSCA_TRITON_SCAN"] = "1"
        import torch
        import handssca.ssm, handssca.models, handssca.bench.gpu
        from handssca.models.ssca import CrossScanS6
        m = CrossScanS6(4, d_state=4, dt_rank=2)
        m.scan_plane(torch.randn(1, 3, 3, 4))  # CPU tensors: the package's own scan
        assert "triton" not in sys.modules, "triton was imported"
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
