"""The state space model of the paper's Section 3.3, from Eq. 1-3 to the selective scan.

This subpackage depends on torch only.

Glossary (variable name -> paper symbol):

======================  ======================================================================
``u``                   the input sequence x(t) / x_i of Eq. 1-2, laid out (batch, D, L)
``delta``               the step size Delta of Eq. 2-3, one per channel and step: (batch, D, L)
``A``                   the state matrix A (diagonal, real): (D, N)
``B``, ``C``            the input and output projections B, C, selective: (batch, N, L) or
                        grouped (batch, G, N, L)
``D``                   the skip term D of Eq. 1: (D,)
``z``                   Mamba's gate: y * SiLU(z) when given, (batch, D, L)
``N``                   the state size (d_state, 16 in HandSSCA)
``D`` (as a size)       the number of independent channels scanned (d_inner = 512 spatially,
                        W = 32 in the channel branch)
``L``                   the sequence length (H*W = 1024 spatially; 512*H = 16384 in the channel
                        branch)
======================  ======================================================================

Modules: :mod:`~handssca.ssm.discretise` (Eq. 1-3: zero-order hold, the first-order B-bar, the
recurrent and convolutional views of an LTI SSM), :mod:`~handssca.ssm.scan` (the selective scan
and its backends), :mod:`~handssca.ssm.chunked_scan` (the fast pure-PyTorch backend),
:mod:`~handssca.ssm.fused_scan` (compiled loops, forward and backward: the CPU default),
:mod:`~handssca.ssm.cross_scan` (the four scan orders over a plane, in mamba-ssm's layout and in the
grouped layout of :func:`~handssca.ssm.chunked_scan.selective_scan_grouped`),
:mod:`~handssca.ssm.triton_scan` (the four orders, scan and merge as one Triton kernel for CUDA,
behind the flag ``HANDSSCA_TRITON_SCAN=1``; Triton imported on first use only).
"""
from .scan import (selective_scan, available_backends, resolve_backend, grouped_scan,
                   cross_scan_kernel)
from .chunked_scan import selective_scan_grouped
from .fused_scan import selective_scan_grouped_fused, fused_available
from .cross_scan import cross_scan, cross_merge, cross_scan_planes, cross_merge_planes, SCAN_ORDERS
from .discretise import (discretise, zoh, zoh_diagonal, first_order, ssm_kernel, run_recurrent,
                         run_convolutional)

__all__ = ["selective_scan", "available_backends", "resolve_backend", "grouped_scan",
           "cross_scan_kernel",
           "selective_scan_grouped", "selective_scan_grouped_fused", "fused_available",
           "cross_scan", "cross_merge", "cross_scan_planes", "cross_merge_planes", "SCAN_ORDERS",
           "discretise", "zoh", "zoh_diagonal", "first_order", "ssm_kernel", "run_recurrent",
           "run_convolutional"]
