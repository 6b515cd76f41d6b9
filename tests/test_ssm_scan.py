"""The chunked selective scan equals the sequential reference (Eq. 2-3), values and gradients."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from handssca.ssm import (available_backends, resolve_backend, selective_scan,
                          selective_scan_grouped)
from handssca.ssm.chunked_scan import block_pieces, plan_chunks, selective_scan_chunked
from handssca.ssm.scan import selective_scan_reference
from support import (MAMBA_IMPORT_SPY, assert_close_rel, grouped_by_reference,
                     grouped_inputs)

F64 = torch.float64


def make_inputs(b=2, d=6, l=37, n=4, groups=(None, None), dtype=F64, seed=0, delta_scale=0.5,
                delta_shift=-1.0):
    """Random scan inputs. ``groups``: (G of B, G of C), None for the (batch, N, L) layout."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def bc(gr):
        return r(b, n, l) if gr is None else r(b, gr, n, l)

    return dict(
        u=r(b, d, l),
        delta=r(b, d, l) * delta_scale + delta_shift,
        A=-(torch.rand(d, n, generator=g, dtype=dtype) * 2 + 0.05),
        B=bc(groups[0]), C=bc(groups[1]),
        D=r(d), z=r(b, d, l), delta_bias=r(d) * 0.3,
    )


def run_both(inp, fast_kwargs, **flags):
    """Outputs and gradients (w.r.t. every tensor input) of the reference and the chunked scan."""
    results = []
    for fn, kw in ((selective_scan_reference, {}), (selective_scan_chunked, fast_kwargs)):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items() if v is not None}
        args = {k: leaves.get(k) for k in inp}
        out = fn(args["u"], args["delta"], args["A"], args["B"], args["C"], args["D"], args["z"],
                 args["delta_bias"], **flags, **kw)
        y, h = out if flags.get("return_last_state") else (out, None)
        gen = torch.Generator().manual_seed(123)
        loss = (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum()
        if h is not None:
            loss = loss + (h * torch.randn(h.shape, generator=gen, dtype=h.dtype)).sum()
        grads = torch.autograd.grad(loss, list(leaves.values()))
        results.append((y.detach(), None if h is None else h.detach(),
                        dict(zip(leaves, grads))))
    return results


# (fast kwargs, description): several blocks with one sub-chunk each; several blocks of several
# sub-chunks with a shorter last block; padding of L to a multiple of T; the default plan.
PLANS = [
    (dict(block_elems=2 * 6 * 4 * 5, chunk_len=5), "nc=1, 8 blocks, padded"),
    (dict(block_elems=2 * 6 * 4 * 12, chunk_len=3), "nc=4, short last block"),
    (dict(block_elems=2 * 6 * 4 * 64, chunk_len=4), "one block, nc=10, padded"),
    (dict(), "default plan"),
]


@pytest.mark.parametrize("plan", PLANS, ids=[p[1] for p in PLANS])
def test_chunked_equals_reference_all_options_fp64(plan):
    inp = make_inputs(groups=(2, 3))
    (y0, h0, g0), (y1, h1, g1) = run_both(inp, plan[0], delta_softplus=True,
                                          return_last_state=True)
    assert_close_rel(y1, y0, 1e-12, "out")
    assert_close_rel(h1, h0, 1e-12, "last state")
    assert set(g0) == set(g1) == {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"}
    for k in g0:
        assert_close_rel(g1[k], g0[k], 1e-10, f"grad {k}")


@pytest.mark.parametrize("groups", [(None, None), (1, 1), (2, 2), (None, 6), (3, None)],
                         ids=["BC-3d", "G=1", "G=2", "B-3d,C-G=6", "B-G=3,C-3d"])
@pytest.mark.parametrize("optional", ["none", "D", "z", "bias", "softplus", "all"])
def test_chunked_equals_reference_option_grid_fp64(groups, optional):
    inp = make_inputs(l=23, groups=groups, seed=hash((groups, optional)) % 1000)
    keep = {"none": (), "D": ("D",), "z": ("z",), "bias": ("delta_bias",), "softplus": (),
            "all": ("D", "z", "delta_bias")}[optional]
    for k in ("D", "z", "delta_bias"):
        if k not in keep:
            inp[k] = None
    if optional not in ("softplus", "all"):
        inp["delta"] = inp["delta"].abs() * 0.3  # keep Delta > 0 without the softplus
    flags = dict(delta_softplus=optional in ("softplus", "all"),
                 return_last_state=optional == "all")
    (y0, h0, g0), (y1, h1, g1) = run_both(inp, dict(block_elems=2 * 6 * 4 * 8, chunk_len=4),
                                          **flags)
    assert_close_rel(y1, y0, 1e-12, "out")
    if h0 is not None:
        assert_close_rel(h1, h0, 1e-12, "last state")
    for k in g0:
        assert_close_rel(g1[k], g0[k], 1e-10, f"grad {k}")


def test_chunked_gradcheck_fp64():
    inp = make_inputs(b=1, d=4, l=9, n=2, groups=(2, None), seed=7)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    tensors = [inp[k].clone().requires_grad_(True) for k in names]

    def f(*args):
        y, h = selective_scan_chunked(*args, delta_softplus=True, return_last_state=True,
                                      block_elems=1 * 4 * 2 * 4, chunk_len=2)
        return y, h

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_chunked_fp32_matches_reference_at_ssca_channel_length():
    # the channel branch's L = 16384 (H x C = 32 x 512), with a small batch x D to stay cheap
    inp = make_inputs(b=1, d=4, l=16384, n=8, groups=(2, 2), dtype=torch.float32, seed=3,
                      delta_shift=-2.0)
    inp["z"] = None
    (y0, h0, g0), (y1, h1, g1) = run_both(inp, {}, delta_softplus=True, return_last_state=True)
    assert torch.isfinite(y1).all()
    assert_close_rel(y1, y0, 1e-5, "out")
    assert_close_rel(h1, h0, 1e-5, "last state")
    for k in g0:
        assert_close_rel(g1[k], g0[k], 1e-5, f"grad {k}")


def test_chunked_stable_for_extreme_steps():
    # Delta A from -1e-6 to about -700 per step: the chunked scan multiplies decays in (0, 1]
    # only, so it stays finite and equal to the loop (a log-space or divided form would not)
    inp = make_inputs(b=1, d=4, l=300, n=4, groups=(None, None), seed=5)
    inp["delta"] = torch.exp(torch.randn(1, 4, 300, dtype=F64) * 4)  # 1e-6 .. 1e5
    inp["A"] = -torch.logspace(-3, 1, 16, dtype=F64).view(4, 4)
    for k in ("z", "D", "delta_bias"):
        inp[k] = None
    (y0, _, g0), (y1, _, g1) = run_both(inp, dict(block_elems=4 * 4 * 60, chunk_len=6))
    assert torch.isfinite(y1).all() and all(torch.isfinite(g).all() for g in g1.values())
    assert_close_rel(y1, y0, 1e-12, "out")
    for k in g0:
        assert_close_rel(g1[k], g0[k], 1e-10, f"grad {k}")


def test_chunked_keeps_no_full_state_for_backward():
    # what autograd saves must be far smaller than the (batch, D, L, N) state sequence
    b, d, l, n = 2, 32, 256, 16
    inp = make_inputs(b=b, d=d, l=l, n=n, groups=(2, 2), dtype=torch.float32)
    leaves = {k: v.requires_grad_(True) for k, v in inp.items()}
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = selective_scan_chunked(*leaves.values(), delta_softplus=True,
                                   block_elems=b * d * n * 32)
    y.sum().backward()
    # the largest saved tensors are (batch, D, L) or (batch, G, N, L) = (2, 2, 16, 256) inputs
    assert saved and max(saved) <= b * l * max(d, 2 * n), f"a saved tensor has {max(saved)}"
    assert sum(saved) < b * d * l * n, f"{sum(saved)} numbers saved in all"


def test_dispatcher_defaults_to_fused_on_cpu_and_validates():
    inp = make_inputs(groups=(2, 2), dtype=torch.float32)
    args = [inp[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    # this project's machines have a C compiler, so the fused kernel builds and is the default
    assert {"reference", "chunked", "fused"} <= set(available_backends("cpu"))
    assert "mamba" not in available_backends("cpu")
    assert "fused" not in available_backends("cuda")
    assert resolve_backend(None, "cpu") == "fused"
    assert resolve_backend(None, "cuda") != "fused"
    y_default = selective_scan(*args, delta_softplus=True)
    y_fused = selective_scan(*args, delta_softplus=True, backend="fused")
    assert torch.equal(y_default, y_fused)
    with pytest.raises(ValueError, match="unknown scan backend"):
        selective_scan(*args, backend="nope")
    with pytest.raises(ValueError, match="CUDA tensors only"):
        selective_scan(*args, backend="mamba")


def test_cpu_scan_never_imports_mamba_ssm():
    # a finder placed first on sys.meta_path records every attempt to import mamba_ssm
    code = MAMBA_IMPORT_SPY + textwrap.dedent("""
        import torch
        import handssca.ssm as ssm
        u = torch.randn(1, 4, 8); B = torch.randn(1, 2, 3, 8)
        ssm.selective_scan(u, u.abs(), -torch.rand(4, 3), B, B)
        ssm.available_backends("cpu")
        assert not attempts, attempts
        assert "mamba_ssm" not in sys.modules
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("bad, match", [
    (dict(u=torch.zeros(2, 6)), "u must be"),
    (dict(delta=torch.zeros(2, 6, 5)), "delta must be"),
    (dict(A=torch.zeros(5, 4)), "A must be"),
    (dict(B=torch.zeros(2, 5, 37)), "B must be"),
    (dict(C=torch.zeros(2, 4, 4, 37)), "grouped C"),
    (dict(D=torch.zeros(5)), "D must be"),
    (dict(z=torch.zeros(2, 6, 36)), "z must be"),
    (dict(delta_bias=torch.zeros(6, 1)), "delta_bias must be"),
])
def test_bad_shapes_raise_clear_errors(bad, match):
    inp = make_inputs(dtype=torch.float32)
    inp.update(bad)
    with pytest.raises(ValueError, match=match):
        selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                       inp["delta_bias"])


def test_plan_chunks():
    # the spatial branch: one step of batch x 4*512 x 16 numbers fills a slice, nc = 1
    assert plan_chunks(1024, 1 * 2048 * 16)[1] == 1
    # the channel branch at batch 1 (4*32 x 16 numbers a step): slices as large as stay below
    # PyTorch's parallel grain, 32768 numbers
    T, nc = plan_chunks(16384, 4 * 32 * 16)
    assert nc * 4 * 32 * 16 < 32768 <= (nc + 1) * 4 * 32 * 16 and T * nc <= (1 << 20) // 2048
    for device_type in ("cpu", "cuda"):
        for L, per_step in [(1024, 2048 * 16), (16384, 128 * 16), (16384, 32 * 128 * 16),
                            (7, 3), (1, 1), (100, 10 ** 9)]:
            T, nc = plan_chunks(L, per_step, device_type=device_type)
            assert T >= 1 and nc >= 1 and T * nc <= L, (L, per_step, T, nc)
    # a GPU gets longer blocks: fewer kernel launches
    assert math.prod(plan_chunks(16384, 32 * 128 * 16, device_type="cuda")) > \
        math.prod(plan_chunks(16384, 32 * 128 * 16))
    assert plan_chunks(100, 10, block_elems=200, chunk_len=5) == (5, 4)
    with pytest.raises(ValueError, match="chunk_len"):
        plan_chunks(100, 10, chunk_len=0)
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(0, 10)


def test_block_pieces_cover_the_sequence_in_whole_sub_chunks():
    for L, T, nc in [(100, 7, 3), (21, 7, 3), (5, 7, 3), (64, 4, 4), (1, 1, 1)]:
        pieces = block_pieces(L, T, nc)
        assert pieces[0][0] == 0 and pieces[-1][1] == L
        for (s0, e0, _), (s1, _, _) in zip(pieces, pieces[1:]):
            assert e0 == s1
        for s0, e0, t in pieces:
            assert 1 <= t <= T and (e0 - s0) % t == 0 and e0 - s0 <= T * nc
            assert t == T or (e0 - s0) == t  # a shorter sub-chunk is a piece of its own


@pytest.mark.parametrize("plan", [dict(block_elems=3 * 2 * 4 * 5 * 6, chunk_len=4), dict()],
                         ids=["nc>1, ragged end", "default plan"])
def test_grouped_scan_equals_reference_values_and_gradients_fp64(plan):
    inp = grouped_inputs()
    flags = dict(delta_softplus=True, return_last_state=True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    y, h = selective_scan_grouped(*leaves.values(), **flags, **plan)
    ref = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    y0, h0 = grouped_by_reference(ref, **flags)
    assert_close_rel(y, y0, 1e-12, "out")
    assert_close_rel(h, h0, 1e-12, "last state")
    gen = torch.Generator().manual_seed(1)
    wy, wh = (torch.randn(t.shape, generator=gen, dtype=F64) for t in (y0, h0))
    g1 = torch.autograd.grad((y * wy).sum() + (h * wh).sum(), list(leaves.values()))
    g0 = torch.autograd.grad((y0 * wy).sum() + (h0 * wh).sum(), list(ref.values()))
    for k, a, b in zip(leaves, g1, g0):
        assert_close_rel(a, b, 1e-10, f"grad {k}")
    # without gradients: the inference path (bias, softplus and D applied block by block)
    with torch.no_grad():
        y2, h2 = selective_scan_grouped(*inp.values(), **flags, **plan)
    assert_close_rel(y2, y0, 1e-12, "out, no_grad")
    assert_close_rel(h2, h0, 1e-12, "last state, no_grad")


def test_grouped_scan_fp32_matches_reference_at_the_ssca_lengths():
    # both SSCA lengths (spatial L = 1024, channel L = 16384) with few channels, to stay cheap
    for L, dg in ((1024, 16), (16384, 2)):
        inp = grouped_inputs(g=4, b=1, L=L, dg=dg, n=16, dtype=torch.float32, seed=L)
        inp["delta"] = inp["delta"] - 1.0
        with torch.no_grad():
            y = selective_scan_grouped(*inp.values(), delta_softplus=True)
            y0, _ = grouped_by_reference(inp, delta_softplus=True)
        assert torch.isfinite(y).all()
        assert_close_rel(y, y0, 1e-5, f"out at L = {L}")


def test_grouped_scan_takes_strided_views_and_saves_nothing_without_gradients():
    inp = grouped_inputs(g=4, b=2, L=40, dg=6, n=3, dtype=torch.float32, seed=2)
    # B and C as strided views of one projection output, as the SSCA block passes them
    proj = torch.randn(4, 2, 40, 3 + 2 * 3)
    inp["B"], inp["C"] = proj[..., 3:6], proj[..., 6:9]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        with torch.no_grad():
            y = selective_scan_grouped(*inp.values(), delta_softplus=True)
    assert saved == []
    y0, _ = grouped_by_reference({k: v.double() for k, v in inp.items()}, delta_softplus=True)
    assert_close_rel(y.double(), y0, 1e-5, "out")


def test_grouped_scan_rejects_bad_shapes():
    inp = grouped_inputs(dtype=torch.float32)
    for key, bad, match in [("u", torch.zeros(3, 2, 29), "u must be"),
                            ("A", torch.zeros(3, 5, 5), "A must be"),
                            ("B", torch.zeros(3, 2, 29, 4), "B must be"),
                            ("D", torch.zeros(12), "D must be")]:
        args = dict(inp, **{key: bad})
        with pytest.raises(ValueError, match=match):
            selective_scan_grouped(*args.values())


def test_scan_is_left_out_of_compiled_graphs():
    # under torch.compile the chunked scan runs eagerly (a graph break), its loops unrolled nowhere
    import torch._dynamo

    inp = grouped_inputs(g=2, b=1, L=50, dg=3, n=4, dtype=torch.float32)

    def f(u):
        return selective_scan_grouped(u * 2, *list(inp.values())[1:], delta_softplus=True).sum()

    explained = torch._dynamo.explain(f)(inp["u"])
    assert explained.graph_break_count >= 1
    assert max(len(g.graph.nodes) for g in explained.graphs) < 20
    assert torch.allclose(torch.compile(f, backend="eager")(inp["u"]), f(inp["u"]))
