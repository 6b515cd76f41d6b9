"""``python -m handssca bench cost``: time and memory of the attention modules as the feature
map grows (the book's "cost versus size" chapter).

For each grid side G (feature map 256 x G x G, L = G^2 tokens) and each module (self-attention,
SSA, SSCA built for that size), the forward time (the minimum over repeats, robust to load from
elsewhere on a shared machine) and the peak tensor memory of one forward (CPU: ``torch.profiler``
memory events, the running sum of allocations and frees; CUDA: ``max_memory_allocated``). A
straight-line fit of log cost against log L gives the growth exponent: about 2 for attention's
L x L score matrix at large L, about 1 for the linear-time scans.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from typing import Dict, List, Sequence

import numpy as np
import torch

from handssca.bench import hardware_info, write_json_atomic
from handssca.models.ssca import build_attention

KINDS = ("self_attention", "ssa", "ssca")


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Silence file descriptor 2 (the profiler library logs start/stop lines there, which a
    notebook would show), restoring it afterwards."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _peak_bytes(fn, device) -> int:
    from handssca.bench.scan import _peak_bytes as peak  # one measuring method for all benches
    with _quiet_stderr_fd():
        return peak(fn, device)


def measure_cost(grids: Sequence[int] = (8, 16, 24, 32, 48), kinds: Sequence[str] = KINDS,
                 repeats: int = 3, device: str = "cpu", memory: bool = True,
                 progress=None) -> List[Dict]:
    """Forward time and peak memory of each attention module at each grid side.

    Returns:
        rows {"kind", "grid", "L", "seconds", "peak_bytes", "params"}: seconds is the minimum
        over ``repeats`` timed forwards (after one warm-up), L = grid^2.
    """
    rows = []
    items = [(k, g) for g in grids for k in kinds]
    it = progress(items) if progress else items
    for kind, g in it:
        torch.manual_seed(0)
        mod = build_attention(kind, channels=256, height=g, width=g).to(device).eval()
        x = torch.randn(1, 256, g, g, device=device)
        with torch.inference_mode():
            mod(x)  # warm-up
            ts = []
            for _ in range(repeats):
                if device != "cpu":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                mod(x)
                if device != "cpu":
                    torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
            peak = _peak_bytes(lambda: mod(x), device) if memory else None
        rows.append({"kind": kind, "grid": g, "L": g * g, "seconds": min(ts), "peak_bytes": peak,
                     "params": sum(p.numel() for p in mod.parameters())})
    return rows


def fit_slopes(rows: List[Dict], key: str = "seconds", min_L: int = 0) -> Dict[str, float]:
    """Least-squares slope of log(key) against log(L) per module, over rows with L >= min_L."""
    out = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        pts = [(r["L"], r[key]) for r in rows if r["kind"] == kind and r["L"] >= min_L
               and r[key] is not None and r[key] > 0]
        if len(pts) >= 2:
            L, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[kind] = float(np.polyfit(L, y, 1)[0])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grids", default="8,16,24,32,48,64", help="grid sides G, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--out", default="_build/bench/cost.json")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    grids = [int(g) for g in args.grids.split(",")]
    rows = measure_cost(grids, repeats=args.repeats, device=args.device, memory=not args.no_memory)
    slopes_t = fit_slopes(rows, "seconds", min_L=grids[len(grids) // 2] ** 2)
    slopes_m = fit_slopes(rows, "peak_bytes", min_L=grids[len(grids) // 2] ** 2)
    print(f"{'module':<16} {'G':>4} {'L':>6} {'forward ms':>11} {'peak MiB':>9}")
    for r in rows:
        mem = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
        print(f"{r['kind']:<16} {r['grid']:>4} {r['L']:>6} {r['seconds'] * 1e3:>11.2f} {mem:>9}")
    print("growth exponents (slope of log cost vs log L over the larger half of the sizes):")
    for k in slopes_t:
        print(f"  {k:<16} time {slopes_t[k]:.2f}   memory {slopes_m.get(k, float('nan')):.2f}")
    write_json_atomic(args.out, {"rows": rows, "slopes_time": slopes_t, "slopes_memory": slopes_m,
                                 "hardware": hardware_info()})
    print(f"written {args.out}")
    return 0
