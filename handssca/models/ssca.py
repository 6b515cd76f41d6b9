"""The SSCA block (the authors call it S3C) and the attention variants of the paper's Table 6.

Section 3.3 of the paper: the feature map F (B, C=256, H, W) is turned into the hand features H
by one pre-norm residual block, in channels-last layout::

    H = F + DropPath(SS2D(LayerNorm(F)))          LayerNorm eps 1e-6

SS2D (d_model 256, expand 2 -> d_inner 512, N = 16, dt_rank 16, d_conv 3):

1. ``in_proj`` Linear 256 -> 1024 (no bias), split into x and the gate z (512 each);
2. x: depthwise 3x3 conv (bias) + SiLU;
3. spatial branch ("space select", :class:`SpatialSelect`): the four scan orders over the
   H x W plane, one selective scan (S6) per order, merged back and summed;
4. channel branch ("channel select", :class:`ChannelSelect`): the same four orders over the
   (512 x H) plane with the image width W as the SSM channel axis (the authors' code), or the
   literal reading of the paper (``channel_select="paper"``, see :class:`ChannelSelect`);
5. LayerNorm(512) of the sum, times SiLU(z), ``out_proj`` Linear 512 -> 256 (no bias), dropout.

Variants (:func:`build_attention`):

============================  =================================================================
``none``                      identity: the FPN baseline (H = F)
``self_attention``            a pre-norm ViT encoder block over the H*W tokens (our definition;
                              the paper does not define its baseline), see :class:`SelfAttention`
``ssa``                       the SSCA block without the channel branch (spatial scans only)
``ssca``                      spatial + channel branches (the paper's block)
============================  =================================================================

Parameters at 256 x 256 input (W = 32): SSCA 578,304 (channel branch 10,496), SSA 567,808;
at 224 (W = 28) SSCA 576,992. The paper's Table 6 gives SSA 0.57M and SSCA 0.58M.

Initialisation follows Mamba/VMamba: A_log = log(1..N) per channel (S4D-real), D = 1,
dt_proj weights uniform in +-dt_rank^-0.5, dt_proj bias = softplus^-1(dt) with dt log-uniform in
[1e-3, 1e-1] floored at 1e-4. A_log, D and the dt bias are used in fp32 and are marked
``_no_weight_decay = True`` (see :func:`no_weight_decay_names`).
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ssm import (cross_merge, cross_merge_planes, cross_scan, cross_scan_kernel,
                   cross_scan_planes, grouped_scan, selective_scan)

Tensor = torch.Tensor

ATTENTION_KINDS = ("none", "self_attention", "ssa", "ssca")
CHANNEL_SELECT_MODES = ("code", "paper")
#: the number of scan orders (row, col and both reversed; :data:`handssca.ssm.SCAN_ORDERS`)
K = 4
#: on a CPU, the SSCA block runs over a batch in groups of images whose (H*W, d_inner) maps
#: hold about this many numbers (one image at 256 x 256): the tensors of a group then stay
#: near the caches (a batch of 8 in one pass ran about 1.3 times slower per image)
CPU_GROUP_ELEMS = 1 << 19


def _mark_no_weight_decay(p: nn.Parameter) -> nn.Parameter:
    p._no_weight_decay = True
    return p


def _at_least_fp32(t: Tensor) -> Tensor:
    return t if t.dtype == torch.float64 else t.float()


def _swap_last_two(x: Tensor) -> Tensor:
    """(b, M, K) -> (b, K, M) contiguous; on a CPU by one 2D transposed copy per b: PyTorch
    copies a transposed 2D matrix in cache-friendly tiles, several times faster than a 3D
    permute copy."""
    if x.device.type != "cpu":
        return x.transpose(1, 2).contiguous()
    b, m, k = x.shape
    out = x.new_empty(b, k, m)
    for i in range(b):
        out[i].copy_(x[i].t())
    return out


def _channels_last(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C) contiguous (a view when x is channels-last in memory)."""
    y = x.permute(0, 2, 3, 1)
    if y.is_contiguous():
        return y
    b, c, h, w = x.shape
    return _swap_last_two(x.reshape(b, c, h * w)).view(b, h, w, c)


def _channels_first(x: Tensor) -> Tensor:
    """(B, C, H, W) -> the same, contiguous (a transposed copy when x is channels-last)."""
    if x.is_contiguous():
        return x
    b, c, h, w = x.shape
    return _swap_last_two(x.permute(0, 2, 3, 1).reshape(b, h * w, c)).view(b, c, h, w)


def no_weight_decay_names(module: nn.Module) -> List[str]:
    """Names of the parameters marked ``_no_weight_decay`` (A_log, D, dt bias, position
    embeddings): the optimiser puts them in a group with weight decay 0, as Mamba/VMamba do."""
    return [n for n, p in module.named_parameters() if getattr(p, "_no_weight_decay", False)]


class DropPath(nn.Module):
    """Stochastic depth per sample (rate 0 in the authors' configuration: identity)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class CrossScanS6(nn.Module):
    """Four-order selective scan (S6) over a 2D plane with ``d`` SSM channels (Eq. 1-3).

    One grouped scan call for the four orders. :meth:`forward` takes channels-first planes and
    calls :func:`handssca.ssm.selective_scan` in mamba-ssm's layout: u (B, 4d, L), B and C
    (B, 4, N, L), A (4d, N), D and delta_bias (4d,), softplus on delta. :meth:`scan_plane`,
    which the SSCA block calls, takes channels-last planes and, with the package's chunked or
    fused scan, works in the grouped layout (4, B, L, d) from start to end: the orders are built
    by copying whole d-vectors, the projections of the four orders are computed together (one
    batched product with dt_proj folded into x_proj when d <= 2 dt_rank, else one wide x_proj
    product and one batched dt_proj), and no transposed copy of a sequence is made (with other
    backends it goes through :meth:`forward`). Both give the same numbers up to rounding. With
    ``HANDSSCA_TRITON_SCAN=1`` on CUDA it calls the fused Triton kernel instead, which reads the
    orders from the plane and writes their merge (:func:`handssca.ssm.cross_scan_kernel`).

    Per order k: x_proj (d -> dt_rank + 2N, no bias), dt_proj (dt_rank -> d, its bias is the
    scan's delta_bias), A_log (d, N), D (d). Stored stacked as ``x_proj_weight`` (4, R+2N, d),
    ``dt_proj_weight`` (4, d, R), ``dt_proj_bias`` (4, d), ``A_log`` (4d, N), ``D`` (4d,).
    """

    def __init__(self, d: int, d_state: int = 16, dt_rank: int = 16, dt_min: float = 1e-3,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, scan_backend=None):
        super().__init__()
        self.d, self.d_state, self.dt_rank = d, d_state, dt_rank
        self.scan_backend = scan_backend
        # x_proj: nn.Linear's default initialisation, U(+-1/sqrt(fan_in))
        bound = 1.0 / math.sqrt(d)
        self.x_proj_weight = nn.Parameter(
            torch.empty(K, dt_rank + 2 * d_state, d).uniform_(-bound, bound))
        # dt_proj weight: U(+-dt_rank^-0.5) (Mamba's "random" dt init, dt_scale 1)
        std = dt_rank ** -0.5
        self.dt_proj_weight = nn.Parameter(torch.empty(K, d, dt_rank).uniform_(-std, std))
        # dt_proj bias: inverse softplus of dt ~ log-uniform [dt_min, dt_max], floored
        dt = torch.exp(torch.rand(K, d) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        inv_dt = dt + torch.log(-torch.expm1(-dt))
        self.dt_proj_bias = _mark_no_weight_decay(nn.Parameter(inv_dt))
        # S4D-real: A = -(1..N) per channel, stored as its log
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(K * d, 1)
        self.A_log = _mark_no_weight_decay(nn.Parameter(torch.log(A)))
        self.D = _mark_no_weight_decay(nn.Parameter(torch.ones(K * d)))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, d, P, Q), a plane P x Q with d channels -> (B, d, P*Q) in row-major order."""
        b, d, p, q = x.shape
        if d != self.d:
            raise ValueError(f"expected {self.d} SSM channels, got input of shape {tuple(x.shape)}")
        L = p * q
        xs = cross_scan(x)  # (B, 4, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight)
        # A_log, D and the dt bias are used in fp32 (or fp64) whatever the module's dtype (Mamba)
        A = -torch.exp(_at_least_fp32(self.A_log))
        y = selective_scan(
            xs.reshape(b, K * d, L), dts.reshape(b, K * d, L), A,
            Bs.contiguous(), Cs.contiguous(), _at_least_fp32(self.D),
            delta_bias=_at_least_fp32(self.dt_proj_bias).reshape(-1), delta_softplus=True,
            backend=self.scan_backend)
        return cross_merge(y.reshape(b, K, d, L).to(x.dtype), p, q)

    def scan_plane(self, x: Tensor) -> Tensor:
        """x (B, P, Q, d), a channels-last plane P x Q with d channels -> (B, P, Q, d).

        The same function as :meth:`forward` (up to the layout); on the package's chunked and
        fused scans it runs in the grouped layout (see the class docstring), else it calls
        :meth:`forward`.
        """
        b, p, q, d = x.shape
        if d != self.d:
            raise ValueError(f"expected {self.d} SSM channels last, got input of shape "
                             f"{tuple(x.shape)}")
        kernel = cross_scan_kernel(self.scan_backend, x.device)  # HANDSSCA_TRITON_SCAN=1
        if kernel is not None:
            return self._scan_plane_kernel(x, kernel)
        scan = grouped_scan(self.scan_backend, x.device)
        if scan is None:  # a backend in mamba-ssm's layout only
            return self.forward(x.permute(0, 3, 1, 2)).view(b, d, p, q).permute(0, 2, 3, 1)
        L, R, N = p * q, self.dt_rank, self.d_state
        xs = cross_scan_planes(x)  # (4, B, L, d)
        # the selective Delta, B and C (Eq. 1) of the four orders at once; B and C (and Delta)
        # stay strided views of the products' outputs
        if d <= 2 * R:
            # few channels (the channel branch: d = W = 32 = 2R): dt_proj folded into x_proj,
            # one (d + 2N) x d matrix per order, the same multiply-adds as the two low-rank
            # products in one batched product
            w = torch.cat([self.dt_proj_weight @ self.x_proj_weight[:, :R],
                           self.x_proj_weight[:, R:]], dim=1)
            proj = torch.bmm(xs.view(K, b * L, d), w.transpose(1, 2))  # (4, B*L, d + 2N)
            dts, Bs, Cs = torch.split(proj, [d, N, N], dim=2)
        else:
            # many channels (the spatial branch): x_proj of all four orders as one matrix
            # product on the plane in its own order (a wider product runs faster), then its
            # small outputs put in each order's order, then dt_proj
            x_dbl = x.reshape(b * L, d) @ self.x_proj_weight.reshape(K * (R + 2 * N), d).t()
            x_dbl = cross_scan_planes(x_dbl.view(b, p, q, K, R + 2 * N))  # (4, B, L, R + 2N)
            dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=3)
            dts = torch.bmm(dts.reshape(K, b * L, R), self.dt_proj_weight.transpose(1, 2))
        # A_log, D and the dt bias are used in fp32 (or fp64) whatever the module's dtype (Mamba)
        A = -torch.exp(_at_least_fp32(self.A_log)).view(K, d, N)
        y = scan(
            xs.view(K, b, L, d), dts.view(K, b, L, d), A, Bs.view(K, b, L, N),
            Cs.view(K, b, L, N), _at_least_fp32(self.D).view(K, d),
            delta_bias=_at_least_fp32(self.dt_proj_bias), delta_softplus=True)
        return cross_merge_planes(y.to(x.dtype), p, q)

    def _scan_plane_kernel(self, x: Tensor, kernel) -> Tensor:
        """:meth:`scan_plane` with the fused cross-scan kernel
        (:func:`handssca.ssm.cross_scan_kernel`): the projections of the four orders are computed
        on the plane in its own order (they are position-wise), and the kernel reads the orders
        and writes their merge itself. x (B, P, Q, d) -> (B, P, Q, d)."""
        b, p, q, d = x.shape
        R, N = self.dt_rank, self.d_state
        x_dbl = x.reshape(b * p * q, d) @ self.x_proj_weight.reshape(K * (R + 2 * N), d).t()
        dts, Bs, Cs = torch.split(x_dbl.view(b, p, q, K, R + 2 * N), [R, N, N], dim=4)
        dts = torch.einsum("bpqkr,kdr->bkdpq", dts, self.dt_proj_weight)  # (B, 4, d, P, Q)
        A = -torch.exp(_at_least_fp32(self.A_log)).view(K, d, N)
        y = kernel(x.permute(0, 3, 1, 2), dts, A, Bs.permute(0, 3, 4, 1, 2),
                   Cs.permute(0, 3, 4, 1, 2), _at_least_fp32(self.D).view(K, d),
                   _at_least_fp32(self.dt_proj_bias), delta_softplus=True)
        return y.permute(0, 2, 3, 1)  # (B, P, Q, d), a view of the kernel's output


class SpatialSelect(nn.Module):
    """The paper's "space select": S6 over the four scan orders of the H x W plane.

    d_inner SSM channels, L = H * W.

    x (B, d_inner, H, W) -> (B, d_inner, H, W). 167,936 parameters for d_inner 512.
    """

    def __init__(self, d_inner: int, d_state: int, dt_rank: int, scan_backend=None):
        super().__init__()
        self.s6 = CrossScanS6(d_inner, d_state, dt_rank, scan_backend=scan_backend)

    def forward(self, x: Tensor) -> Tensor:
        return self.s6.scan_plane(_channels_last(x)).permute(0, 3, 1, 2)


class ChannelSelect(nn.Module):
    """The paper's "channel select": S6 over the four scan orders of the (d_inner x H) plane.

    x (B, d_inner, H, W) -> (B, d_inner, H, W).

    ``mode="code"`` (default, the authors' code): x is permuted to (B, W, d_inner, H), so the
    image width W is the SSM channel axis and the scanned plane is d_inner x H (L = 512 H =
    16384 at H = 32). x_proj is W -> dt_rank + 2N, dt_proj dt_rank -> W, A_log (4W, N), D (4W):
    the weights are sized by W, which ties them to the input size (W = 32 at 256, 28 at 224).
    10,496 parameters at W = 32, 9,184 at W = 28.

    ``mode="paper"`` (our literal reading of Section 3.3, "We perform scan expansion and scan
    fusion on the H x C plane ... scanned from four directions ... fed into the S6 block"): the
    plane is the H x C plane itself, and every image column w is its own such plane, so W is
    folded into the batch: (B, C, H, W) -> (B*W, 1, C, H). Each element of the plane is one
    token, a scalar, so the S6 block has one SSM channel (d = 1), and dt_rank = ceil(1/16) = 1
    by Mamba's rule. Nothing depends on W, so one set of weights serves every input size. Per
    order x_proj 1 -> 1 + 2N, dt_proj 1 -> 1 with bias, A_log (1, N), D (1): 4 x 52 = 208
    parameters. The scanned sequences (B*W sequences of length C*H) hold as many elements as the
    code's (W channels of length C*H), but B and C are computed per column, so the scan reads
    2 x 4 x N floats per feature element (the code's: 2 x 4 x N per C*H position).
    """

    def __init__(self, d_inner: int, width: Optional[int], d_state: int, dt_rank: int,
                 mode: str = "code", scan_backend=None):
        super().__init__()
        if mode not in CHANNEL_SELECT_MODES:
            raise ValueError(f"channel_select must be one of {CHANNEL_SELECT_MODES}, got {mode!r}")
        self.mode, self.d_inner, self.width = mode, d_inner, width
        if mode == "code":
            if not width or width < 1:
                raise ValueError(
                    f"the code's channel branch needs the feature width W, got {width!r}")
            self.s6 = CrossScanS6(width, d_state, dt_rank, scan_backend=scan_backend)
        else:
            self.s6 = CrossScanS6(1, d_state, 1, scan_backend=scan_backend)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if self.mode == "code":
            if w != self.width:
                raise ValueError(f"the channel branch was built for feature width W = {self.width} "
                                 f"(its SSM channel axis); got features of shape {tuple(x.shape)}")
            # x as the channels-last plane (B, C, H | W): the C x H plane with W channels
            return self.s6.scan_plane(_channels_first(x))
        planes = x.permute(0, 3, 1, 2).reshape(b * w, c, h, 1)  # W folded into the batch
        y = self.s6.scan_plane(planes)  # (B*W, C, H, 1)
        return y.reshape(b, w, c, h).permute(0, 2, 3, 1)


class SS2D(nn.Module):
    """The 2D selective-scan operator of the SSCA block, channels-last.

    x (B, H, W, d_model) -> (B, H, W, d_model). ``channel_select`` None gives SSA (spatial only).
    """

    def __init__(self, d_model: int = 256, d_state: int = 16, expand: int = 2,
                 dt_rank: Optional[int] = None, d_conv: int = 3,
                 channel_select: Optional[str] = "code", width: Optional[int] = None,
                 dropout: float = 0.0, scan_backend=None):
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        self.d_model, self.d_inner, self.d_state, self.dt_rank = d_model, d_inner, d_state, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=True)
        self.spatial = SpatialSelect(d_inner, d_state, dt_rank, scan_backend)
        self.channel = None
        if channel_select is not None:
            self.channel = ChannelSelect(d_inner, width, d_state, dt_rank, channel_select,
                                         scan_backend)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)  # (B, H, W, d_inner) each
        # the depthwise conv on channels-last memory (several times faster there on a CPU);
        # x is (B, d_inner, H, W) with the channels last in memory
        x = F.silu(self.conv2d(x.contiguous().permute(0, 3, 1, 2)))
        y = _channels_last(self.spatial(x))  # (B, H, W, d_inner)
        if self.channel is not None:
            # the two branches run in parallel and are summed (channels-last, both contiguous)
            y = y + _channels_last(self.channel(x))
        y = self.out_norm(y)
        return self.dropout(self.out_proj(y * F.silu(z)))


class SSCABlock(nn.Module):
    """The SSCA (or SSA) block: H = F + DropPath(SS2D(LayerNorm(F))) (Section 3.3, Fig. 3).

    Takes and returns maps indexed channels-first, F (B, C, H, W) -> H (B, C, H, W); the block
    itself works channels-last, as VMamba's, and H is channels-last in memory
    (``H.is_contiguous(memory_format=torch.channels_last)``).
    """

    def __init__(self, channels: int = 256, height: Optional[int] = None,
                 width: Optional[int] = None, d_state: int = 16, expand: int = 2,
                 dt_rank: Optional[int] = None, d_conv: int = 3,
                 channel_select: Optional[str] = "code", drop_path: float = 0.0,
                 scan_backend=None):
        super().__init__()
        self.kind = "ssa" if channel_select is None else "ssca"
        self.channels, self.height, self.width = channels, height, width
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.ss2d = SS2D(channels, d_state, expand, dt_rank, d_conv, channel_select, width,
                         scan_backend=scan_backend)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected features of shape (B, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")
        x = _channels_last(x)
        b, h, w, _ = x.shape
        group = max(1, CPU_GROUP_ELEMS // (h * w * self.ss2d.d_inner))
        if x.device.type == "cpu" and b > group:
            # images in groups: each group's tensors stay near the caches (the block is
            # per image: the same numbers)
            x = torch.cat([self._residual(x[i:i + group]) for i in range(0, b, group)])
        else:
            x = self._residual(x)
        # H keeps the channels-last memory it was computed in (no transposed copy); the convs
        # of the heads that read it then run channels-last too, which is faster on a CPU
        return x.permute(0, 3, 1, 2)

    def _residual(self, x: Tensor) -> Tensor:
        """x (B, H, W, C) channels-last -> x + DropPath(SS2D(LayerNorm(x)))."""
        return x + self.drop_path(self.ss2d(self.norm(x)))


class SelfAttention(nn.Module):
    """The Self-Attention baseline of Table 6, as this project defines it (the paper does not).

    One pre-norm ViT encoder block over the H*W tokens of F (d = C = 256, 8 heads, MLP ratio 4,
    GELU, LayerNorm eps 1e-6, no dropout) with a learned position embedding (H*W, C) added to
    the tokens first (ViT, Dosovitskiy et al. 2021)::

        T = tokens(F) + E_pos;  T = T + MHA(LN(T));  H = T + MLP(LN(T))

    1,051,904 parameters at 32 x 32 (789,760 in the block, 262,144 in E_pos); 990,464 at
    28 x 28. The paper's Table 6 reports 4.6M for its (undefined) Self-Attention module.
    F (B, C, H, W) -> H (B, C, H, W).
    """

    kind = "self_attention"

    def __init__(self, channels: int = 256, height: int = 32, width: int = 32, heads: int = 8,
                 mlp_ratio: int = 4):
        super().__init__()
        self.channels, self.height, self.width = channels, height, width
        self.pos_embed = _mark_no_weight_decay(
            nn.Parameter(torch.zeros(1, height * width, channels)))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.block = nn.TransformerEncoderLayer(
            channels, heads, dim_feedforward=mlp_ratio * channels, dropout=0.0,
            activation="gelu", layer_norm_eps=1e-6, batch_first=True, norm_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if (c, h, w) != (self.channels, self.height, self.width):
            raise ValueError(f"expected features of shape (B, {self.channels}, {self.height}, "
                             f"{self.width}), got {tuple(x.shape)}")
        t = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B, H*W, C)
        t = self.block(t)
        return t.transpose(1, 2).reshape(b, c, h, w)


class Identity(nn.Identity):
    """The FPN baseline: no attention, H = F."""

    kind = "none"


def build_attention(kind: str = "ssca", channels: int = 256, height: int = 32, width: int = 32,
                    channel_select: str = "code", d_state: int = 16, expand: int = 2,
                    dt_rank: Optional[int] = 16, d_conv: int = 3, drop_path: float = 0.0,
                    scan_backend=None) -> nn.Module:
    """The attention module between F and H (Table 6's variants): ``none``,
    ``self_attention``, ``ssa`` or ``ssca``. F (B, C, H, W) -> H (B, C, H, W)."""
    if kind == "none":
        return Identity()
    if kind == "self_attention":
        return SelfAttention(channels, height, width)
    if kind in ("ssa", "ssca"):
        return SSCABlock(channels, height, width, d_state, expand, dt_rank, d_conv,
                         channel_select if kind == "ssca" else None, drop_path, scan_backend)
    raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")


def set_scan_backend(module: nn.Module, backend: Optional[str]) -> None:
    """Select the selective-scan backend (None: automatic) of every S6 inside ``module``."""
    for m in module.modules():
        if isinstance(m, CrossScanS6):
            m.scan_backend = backend
