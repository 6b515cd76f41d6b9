"""Benchmarks: ``python -m handssca bench WHAT``. Each prints its figures and writes them, with
the hardware they were measured on, to a JSON file (default ``_build/bench/WHAT.json``).

Speed and memory targets are measured here, never by timed tests.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import time
from pathlib import Path
from typing import Callable, Dict, List, Union

from handssca.utils import write_json_atomic  # noqa: F401  (re-exported for benchmarks)

#: what -> module defining ``add_arguments(parser)`` and ``run(args) -> int``
BENCHMARKS = {
    "scan": "handssca.bench.scan",
    "model": "handssca.bench.model",
    "synth": "handssca.bench.synth",
    "cost": "handssca.bench.cost",
    "gpu": "handssca.bench.gpu",
    "train": "handssca.bench.train",
}


def hardware_info() -> dict:
    """The machine a figure was measured on: CPU model, core count, torch version and threads, GPU."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device) -> None:
    """Wait for the work queued on ``device`` (CUDA), so that a clock read after it counts it;
    nothing on a CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: Dict[str, int],
                      warmup: Union[int, Dict[str, int]], device,
                      clock: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Seconds per call of each ``fns[key]()``, by ``clock`` (the wall clock, or
    ``time.process_time``): ``warmup`` (or ``warmup[key]``) untimed calls of each, then rounds
    that call every function still short of its ``repeats[key]`` once. Interleaving makes load
    from elsewhere on a shared machine fall on all functions alike, so their ratios stay
    meaningful. Runs in the caller's grad mode (the model benchmark wraps it in
    ``torch.inference_mode``)."""
    for key, fn in fns.items():
        for _ in range(warmup[key] if isinstance(warmup, dict) else warmup):
            fn()
    sync(device)
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(max(repeats.values())):
        for key, fn in fns.items():
            if len(times[key]) < repeats[key]:
                t0 = clock()
                fn()
                sync(device)
                times[key].append(clock() - t0)
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")


def run(args) -> int:
    module = importlib.import_module(BENCHMARKS[args.what])
    p = argparse.ArgumentParser(prog=f"python -m handssca bench {args.what}")
    module.add_arguments(p)
    return int(module.run(p.parse_args(args.rest)) or 0)
