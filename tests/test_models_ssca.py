"""The SSCA block: initialisation, gradients, the channel branch's SSM channel axis, the literal
reading of channel select, and agreement between scan backends."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from handssca.models import SSCABlock, build_attention, no_weight_decay_names
from handssca.models.ssca import ChannelSelect, CrossScanS6
from handssca.ssm import available_backends


def small_block(channel_select="code", width=5, height=4, channels=16, seed=0) -> SSCABlock:
    torch.manual_seed(seed)
    return SSCABlock(channels, height, width, d_state=4, expand=2, dt_rank=3,
                     channel_select=channel_select)


def test_initialisation_and_no_weight_decay_marks():
    block = build_attention("ssca")  # W = 32
    ch = block.ss2d.channel.s6
    sp = block.ss2d.spatial.s6
    assert ch.A_log.shape == (4 * 32, 16)  # W is the SSM channel axis of the channel branch
    assert sp.A_log.shape == (4 * 512, 16)
    assert ch.x_proj_weight.shape == (4, 16 + 2 * 16, 32)
    for s6 in (ch, sp):
        assert torch.allclose(s6.A_log, torch.log(torch.arange(1.0, 17.0)).expand_as(s6.A_log))
        assert torch.equal(s6.D, torch.ones_like(s6.D))
        dt = F.softplus(s6.dt_proj_bias)
        assert (dt >= 1e-4 * 0.999).all() and (dt <= 0.1 * 1.001).all()
        bound = s6.dt_rank ** -0.5
        assert s6.dt_proj_weight.abs().max() <= bound
        assert s6.A_log.dtype == s6.D.dtype == s6.dt_proj_bias.dtype == torch.float32
    names = set(no_weight_decay_names(block))
    assert names == {f"ss2d.{b}.s6.{p}" for b in ("spatial", "channel")
                     for p in ("A_log", "D", "dt_proj_bias")}


def test_gradients_reach_every_parameter_of_the_block():
    block = small_block()
    x = torch.randn(2, 16, 4, 5, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def _hand_written_channel_branch(branch: ChannelSelect, x: torch.Tensor) -> torch.Tensor:
    """The code's channel branch as plain loops: W is the SSM channel axis; each order walks
    the (C x H) plane; the token at (c, h) is the W-vector x[b, c, h, :]."""
    s6 = branch.s6
    b_, c_, h_, w_ = x.shape
    n, r = s6.d_state, s6.dt_rank
    A = -torch.exp(s6.A_log).view(4, w_, n)
    D = s6.D.view(4, w_)
    row = [(c, h) for c in range(c_) for h in range(h_)]
    col = [(c, h) for h in range(h_) for c in range(c_)]
    orders = [row, col, row[::-1], col[::-1]]
    out = torch.zeros_like(x)
    for b in range(b_):
        for k, order in enumerate(orders):
            state = torch.zeros(w_, n, dtype=x.dtype)
            for (c, h) in order:
                u = x[b, c, h, :]  # (W,)
                proj = s6.x_proj_weight[k] @ u  # (R + 2N,)
                dt_low, Bt, Ct = proj[:r], proj[r:r + n], proj[r + n:]
                delta = F.softplus(s6.dt_proj_weight[k] @ dt_low + s6.dt_proj_bias[k])  # (W,)
                state = torch.exp(delta[:, None] * A[k]) * state + delta[:, None] * Bt * u[:, None]
                out[b, c, h, :] += state @ Ct + D[k] * u
    return out


def test_channel_branch_scans_with_w_as_the_ssm_channel_axis():
    torch.manual_seed(0)
    branch = ChannelSelect(d_inner=3, width=4, d_state=2, dt_rank=2, mode="code",
                           scan_backend="reference").double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)  # (B, C, H, W)
    with torch.no_grad():
        got = branch(x)
        want = _hand_written_channel_branch(branch, x)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-10)
    with pytest.raises(ValueError, match="W = 4"):
        branch(torch.randn(1, 3, 5, 6, dtype=torch.float64))


def test_literal_channel_select_folds_w_into_the_batch():
    """The paper reading treats every column's H x C plane alike: permuting the columns
    permutes its output the same way. The code's reading, with per-column SSM weights, does not
    commute with that permutation."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4, 5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    paper = ChannelSelect(6, None, 4, 3, mode="paper")
    code = ChannelSelect(6, 5, 4, 3, mode="code")
    with torch.no_grad():
        yp, yp_perm = paper(x), paper(x[..., perm])
        yc, yc_perm = code(x), code(x[..., perm])
    assert torch.allclose(yp_perm, yp[..., perm], atol=1e-5)
    assert not torch.allclose(yc_perm, yc[..., perm], atol=1e-3)
    # the paper reading's weights do not depend on W: any width runs
    assert paper(torch.randn(1, 6, 4, 9)).shape == (1, 6, 4, 9)


def test_spatial_only_block_is_ssa():
    ssa = build_attention("ssa", height=4, width=5, channels=16, d_state=4, dt_rank=3)
    assert ssa.ss2d.channel is None and ssa.kind == "ssa"
    ssca = build_attention("ssca", height=4, width=5, channels=16, d_state=4, dt_rank=3)
    ssca.load_state_dict(ssa.state_dict(), strict=False)
    with torch.no_grad():
        ssca.ss2d.channel.s6.x_proj_weight.zero_()  # channel branch outputs D * x only
        ssca.ss2d.channel.s6.D.zero_()
        x = torch.randn(1, 16, 4, 5)
        assert torch.allclose(ssca(x), ssa(x), atol=1e-6)


@pytest.mark.parametrize("channel_select", ["code", "paper"])
def test_block_agrees_across_scan_backends(channel_select):
    block = small_block(channel_select)
    x = torch.randn(2, 16, 4, 5)
    backends = available_backends()
    assert "reference" in backends
    outs = {}
    with torch.no_grad():
        for name in [None] + backends:
            for m in block.modules():
                if isinstance(m, CrossScanS6):
                    m.scan_backend = name
            outs[name] = block(x)
    for name, y in outs.items():
        assert torch.allclose(y, outs["reference"], atol=1e-5, rtol=1e-4), name


def test_block_rejects_wrong_features():
    block = small_block()
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        block(torch.randn(1, 8, 4, 5))
    sa = build_attention("self_attention", channels=16, height=4, width=5)
    with pytest.raises(ValueError, match=r"\(B, 16, 4, 5\)"):
        sa(torch.randn(1, 16, 5, 5))
    with pytest.raises(ValueError, match="attention"):
        build_attention("mamba")


def test_self_attention_is_a_prenorm_vit_block():
    torch.manual_seed(0)
    sa = build_attention("self_attention", channels=16, height=3, width=4)
    x = torch.randn(2, 16, 3, 4)
    with torch.no_grad():
        t = x.flatten(2).transpose(1, 2) + sa.pos_embed
        blk = sa.block
        a = blk.norm1(t)
        t = t + blk.self_attn(a, a, a, need_weights=False)[0]
        t = t + blk.linear2(F.gelu(blk.linear1(blk.norm2(t))))
        want = t.transpose(1, 2).reshape(2, 16, 3, 4)
        assert torch.allclose(sa(x), want, atol=1e-5)
    assert math.isclose(blk.norm1.eps, 1e-6)


def _set_backend(block, name):
    for m in block.modules():
        if isinstance(m, CrossScanS6):
            m.scan_backend = name


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("channel_select", ["code", "paper"])
def test_fast_path_equals_the_reference_backend_on_the_whole_block(channel_select):
    # the SSCA block with the real state size and expansion on a small map, batch 2
    torch.manual_seed(0)
    block = SSCABlock(16, 4, 5, d_state=16, expand=2, dt_rank=4, channel_select=channel_select)
    x = torch.randn(2, 16, 4, 5)
    with torch.no_grad():
        fast = {}
        for name in ("chunked", "fused"):  # the grouped layout, no autograd
            _set_backend(block, name)
            fast[name] = block(x)
        _set_backend(block, "reference")
        ref = block(x)  # mamba-ssm's layout through the sequential reference scan
    for y in fast.values():
        assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last)
        assert _rel(y, ref) <= 1e-5
    # with autograd (in fp64, where sums of many terms keep their digits): values and the
    # gradients of the input and of every parameter
    block, x = block.double(), x.double()
    grads = {}
    for name in (None, "reference"):
        _set_backend(block, name)
        block.zero_grad()
        xg = x.clone().requires_grad_(True)
        y = block(xg)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        grads[name] = ({n: p.grad.clone() for n, p in block.named_parameters()}, xg.grad, y)
    assert _rel(grads[None][2], grads["reference"][2]) <= 1e-10
    assert _rel(grads[None][1], grads["reference"][1]) <= 1e-9
    for n, g in grads[None][0].items():
        assert _rel(g, grads["reference"][0][n]) <= 1e-9, n


def test_block_in_image_groups_equals_one_pass(monkeypatch):
    import handssca.models.ssca as ssca

    block = small_block()
    x = torch.randn(3, 16, 4, 5)
    with torch.no_grad():
        one = block(x)
        monkeypatch.setattr(ssca, "CPU_GROUP_ELEMS", 4 * 5 * 32)  # one image per group
        grouped = block(x)
    assert torch.allclose(grouped, one, atol=1e-6, rtol=1e-5)


def test_scan_plane_equals_the_channels_first_path():
    # CrossScanS6.scan_plane (grouped layout) and .forward (mamba-ssm's layout) on the same
    # weights and the same (default) scan: the data flow before and after, for both projection
    # forms (dt_proj folded into x_proj when d <= 2 dt_rank, else one wide x_proj)
    torch.manual_seed(1)
    for d, rank in ((6, 4), (24, 4)):
        s6 = CrossScanS6(d, d_state=8, dt_rank=rank)
        x = torch.randn(2, 5, 7, d)
        with torch.no_grad():
            plane = s6.scan_plane(x)
            seq = s6(x.permute(0, 3, 1, 2)).view(2, d, 5, 7).permute(0, 2, 3, 1)
        assert _rel(plane, seq) <= 1e-5, d
    with pytest.raises(ValueError, match="SSM channels"):
        s6.scan_plane(torch.randn(1, 5, 7, d + 1))
