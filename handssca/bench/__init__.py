"""Benchmarks: ``python -m handssca bench WHAT``. Each prints its figures and writes them, with
the hardware they were measured on, to a JSON file (default ``_build/bench/WHAT.json``).

Speed and memory targets are measured here, never by timed tests.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from pathlib import Path

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")


def run(args) -> int:
    module = importlib.import_module(BENCHMARKS[args.what])
    p = argparse.ArgumentParser(prog=f"python -m handssca bench {args.what}")
    module.add_arguments(p)
    return int(module.run(p.parse_args(args.rest)) or 0)
