"""``python -m handssca bench scan``: time and peak memory of the selective-scan backends on the
two SSCA shapes.

The shapes are those the SSCA block (Section 3.3, Fig. 3) scans, 4 scan orders each, N = 16:

* spatial: the 32 x 32 plane, L = H*W = 1024, over 512 channels: u (batch, 4*512, 1024),
  B and C grouped (batch, 4, 16, 1024);
* channel: the H x C plane, L = 32 * 512 = 16384, over W = 32 channels: u (batch, 4*32, 16384),
  B and C grouped (batch, 4, 16, 16384).

Inputs follow Mamba's initialisation (A = -(1..N), Delta = softplus(delta + delta_bias) in about
[0.001, 0.1], D = 1) and the call VMamba's SS2D makes (D, delta_bias, delta_softplus, no z).
Forward is timed under ``torch.no_grad()``; forward+backward computes the gradients of every
input. Each figure is the median of the repeats after warm-up runs; the backends' repeats are
interleaved, so that they share whatever else the machine is doing at the time.

Peak memory. On CUDA: ``torch.cuda.max_memory_allocated`` above the memory held before the call.
On the CPU, where PyTorch keeps no such counter: one extra run under ``torch.profiler`` with
``profile_memory=True``, which reports every tensor allocation and free with its size and time;
the peak is the maximum of their running sum, i.e. the most tensor memory the call held at once
beyond its inputs (Python objects and the allocator's own overhead are not counted).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from . import hardware_info, interleaved_times, write_json_atomic
from ..ssm.scan import _BACKENDS, available_backends, selective_scan

SHAPES = {
    # name: (D = scan orders x channels, L, G = scan orders)
    "spatial": (4 * 512, 1024, 4),
    "channel": (4 * 32, 16384, 4),
}
N_STATE = 16

MEMORY_METHOD_CPU = (
    "peak of the running sum of tensor allocations and frees reported by torch.profiler "
    "(profile_memory=True) during one extra call, beyond the inputs")
MEMORY_METHOD_CUDA = "torch.cuda.max_memory_allocated during one extra call, beyond the inputs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats (2, reference 1) and batch 1 only")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    p.add_argument("--reference-repeats", type=int, default=None,
                   help="timed repeats of the slow reference backend (default: 3, or "
                        "--repeats when smaller)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16",
                                                          "float16"])
    p.add_argument("--backends", default=None,
                   help="comma-separated backends (default: CPU reference,chunked,fused; "
                        "CUDA mamba,chunked)")
    p.add_argument("--batch", default=None,
                   help="comma-separated batch sizes (default: 1,2 on CPU, 32 on CUDA)")
    p.add_argument("--shapes", default="spatial,channel", help="comma-separated: spatial,channel")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time (default); cpu: this process's CPU time, which other "
                        "load on a shared machine does not inflate (use with --threads 1: with "
                        "more threads it adds theirs up)")
    p.add_argument("--out", default="_build/bench/scan.json", help="JSON output path")


def make_inputs(batch: int, d: int, l: int, g: int, device, dtype, requires_grad: bool,
                seed: int = 0) -> dict:
    """Scan inputs of one SSCA shape (see the module docstring). u, delta, B and C in ``dtype``;
    the parameters A, D and delta_bias in float32 when ``dtype`` is a 16-bit type, as the SSCA
    block keeps them (and as mamba-ssm's kernel requires)."""
    gen = torch.Generator().manual_seed(seed)
    pdtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device, dtype)

    dt_init = torch.exp(torch.rand(d, generator=gen) * (math.log(0.1) - math.log(1e-3))
                        + math.log(1e-3))
    inp = dict(
        u=r(batch, d, l),
        delta=r(batch, d, l, scale=0.1),
        A=-torch.arange(1, N_STATE + 1, dtype=torch.float32).repeat(d, 1).to(device, pdtype),
        B=r(batch, g, N_STATE, l), C=r(batch, g, N_STATE, l),
        D=torch.ones(d).to(device, pdtype),
        delta_bias=(dt_init + torch.log(-torch.expm1(-dt_init))).to(device, pdtype),  # softplus^-1
    )
    if requires_grad:
        for v in inp.values():
            v.requires_grad_(True)
    return inp


def _call(backend: str, inp: dict):
    return selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], None,
                          inp["delta_bias"], delta_softplus=True, backend=backend)


def _forward(backend, inp):
    with torch.no_grad():
        return _call(backend, inp)


def _forward_backward(backend, inp, gy):
    for v in inp.values():
        v.grad = None
    _call(backend, inp).backward(gy)


def _peak_bytes(fn, device) -> int:
    """Most tensor memory ``fn`` holds at once beyond what existed before (see module doc)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def _fmt(x, spec, suffix=""):
    return "-" if x is None else format(x, spec) + suffix


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        print("bench scan: --device cuda asked for, but CUDA is not available", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    repeats = args.repeats or (2 if args.quick else 5)
    ref_repeats = args.reference_repeats or (1 if args.quick else min(repeats, 3))
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        backends = ["mamba", "chunked"] if on_cuda else ["reference", "chunked", "fused"]
    usable = available_backends(device)
    unknown = [b for b in backends if b not in _BACKENDS]
    if unknown:
        print(f"bench scan: unknown backends {unknown}; known: {sorted(_BACKENDS)}",
              file=sys.stderr)
        return 2
    skipped = [b for b in backends if b not in usable]
    backends = [b for b in backends if b in usable]
    if args.batch:
        batches = [int(x) for x in args.batch.split(",")]
    else:
        batches = [32] if on_cuda else ([1] if args.quick else [1, 2])
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    bad = [s for s in shapes if s not in SHAPES]
    if bad:
        print(f"bench scan: unknown shapes {bad}; known: {sorted(SHAPES)}", file=sys.stderr)
        return 2
    if not backends:
        print(f"bench scan: none of {skipped} can run on {device} here (mamba needs CUDA and "
              f"mamba-ssm); available: {usable}", file=sys.stderr)
        return 2

    if args.clock == "cpu" and on_cuda:
        print("bench scan: --clock cpu measures CPU time; on CUDA use the wall clock",
              file=sys.stderr)
        return 2
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    hw = hardware_info()
    method = MEMORY_METHOD_CUDA if on_cuda else MEMORY_METHOD_CPU
    print(f"selective scan benchmark on {hw.get('gpu') if on_cuda else hw['cpu']} "
          f"({hw['cpu_count']} CPUs, torch {hw['torch']}, {torch.get_num_threads()} threads), "
          f"{device}, {args.dtype}")
    print(f"median of {repeats} runs (reference: {ref_repeats}) after {args.warmup} warm-up, "
          f"{'wall-clock' if args.clock == 'wall' else 'process CPU'} time; forward under "
          f"no_grad, forward+backward with all input gradients")
    if not args.no_memory:
        print(f"peak memory: {method}")
    if skipped:
        print(f"not available here, skipped: {', '.join(skipped)}")
    header = (f"{'shape':8} {'batch':>5} {'backend':10} {'fwd ms':>9} {'fwd+bwd ms':>11} "
              f"{'fwd MiB':>8} {'f+b MiB':>8} {'speed-up fwd':>12} {'f+b':>6}")
    print(header)
    print("-" * len(header))

    rows = []
    mib = (lambda x: None if x is None else x / 2 ** 20)
    for shape in shapes:
        d, l, g = SHAPES[shape]
        for batch in batches:
            reps = {b: (ref_repeats if b == "reference" else repeats) for b in backends}
            inp = make_inputs(batch, d, l, g, device, dtype, requires_grad=False)
            inp_g = make_inputs(batch, d, l, g, device, dtype, requires_grad=True)
            gy = torch.randn(batch, d, l, generator=torch.Generator().manual_seed(1)) \
                .to(device, dtype)
            fwd = {b: (lambda b=b: _forward(b, inp)) for b in backends}
            fb = {b: (lambda b=b: _forward_backward(b, inp_g, gy)) for b in backends}
            t_fwd = interleaved_times(fwd, reps, args.warmup, device, clock)
            t_fb = interleaved_times(fb, reps, args.warmup, device, clock)
            base = None
            for backend in backends:
                m_fwd = None if args.no_memory else _peak_bytes(fwd[backend], device)
                m_fb = None if args.no_memory else _peak_bytes(fb[backend], device)
                row = dict(shape=shape, batch=batch, D=d, L=l, G=g, N=N_STATE, backend=backend,
                           repeats=reps[backend], fwd_s=statistics.median(t_fwd[backend]),
                           fwd_bwd_s=statistics.median(t_fb[backend]),
                           fwd_times_s=t_fwd[backend], fwd_bwd_times_s=t_fb[backend],
                           fwd_peak_bytes=m_fwd, fwd_bwd_peak_bytes=m_fb)
                if backend == "reference":
                    base = row
                if base is not None:
                    row["speedup_fwd"] = base["fwd_s"] / row["fwd_s"]
                    row["speedup_fwd_bwd"] = base["fwd_bwd_s"] / row["fwd_bwd_s"]
                rows.append(row)
                print(f"{shape:8} {batch:>5} {backend:10} {row['fwd_s'] * 1e3:>9.1f} "
                      f"{row['fwd_bwd_s'] * 1e3:>11.1f} "
                      f"{_fmt(mib(m_fwd), '.1f'):>8} {_fmt(mib(m_fb), '.1f'):>8} "
                      f"{_fmt(row.get('speedup_fwd'), '.1f', 'x'):>12} "
                      f"{_fmt(row.get('speedup_fwd_bwd'), '.1f', 'x'):>6}", flush=True)
            del inp, inp_g, gy, fwd, fb
    if any("speedup_fwd" in r for r in rows):
        print("speed-up: reference time / backend time, same shape and batch")
    payload = dict(benchmark="scan", hardware=hw, device=device, dtype=args.dtype,
                   threads=torch.get_num_threads(), clock=args.clock, repeats=repeats,
                   reference_repeats=ref_repeats, warmup=args.warmup,
                   memory_method=None if args.no_memory else method,
                   shapes={k: dict(D=v[0], L=v[1], G=v[2], N=N_STATE) for k, v in SHAPES.items()},
                   results=rows)
    out = write_json_atomic(Path(args.out), payload)
    print(f"written: {out}")
    return 0
