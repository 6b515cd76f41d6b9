"""``python -m handssca bench train``: the time of one training step of a profile's network, per
selective-scan backend.

What the book's training chapters spend their time on: one whole step (forward under the
profile's autocast, the loss of Eq. 4, backward, Adam) of the SSCA network as a profile builds
it (default: the quick profile, batch 32 at 128 x 128 with its light backbone), on a fixed
random batch. Each backend gets its own copy of the same initial network and optimiser; steps
are timed in interleaved rounds after warm-up, so that other load on a shared machine weighs on
every backend alike. Printed and written to ``--out`` (default ``_build/bench/train.json``):
the minimum and median step time per backend, images per second from the minimum, and each
backend's time relative to ``chunked``.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from ..utils import build_dir, git_commit
from . import hardware_info, interleaved_times, write_json_atomic


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help="profile whose training section builds "
                                                      "the network and the batch (default quick)")
    p.add_argument("--attention", default="ssca", help="attention variant (default ssca)")
    p.add_argument("--backends", default=None,
                   help="comma-separated scan backends (default: chunked and fused where it "
                        "builds)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per backend (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per backend (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the profile's cpu_threads)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time (default); cpu: this process's CPU time (use with "
                        "one thread)")
    p.add_argument("--out", default=None, help="JSON output (default _build/bench/train.json)")


def run(args) -> int:
    from ..engine.factory import network_config
    from ..models import build_model
    from ..engine.profiles import resolve_profile
    from ..ssm import available_backends
    from .gpu import synthetic_batch, training_step_fn

    prof = resolve_profile(args.profile)
    cfg = prof.section("train", "common")
    threads = args.threads or int(cfg.get("cpu_threads") or 0) or None
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cpu")
    usable = available_backends("cpu")
    backends = ([b.strip() for b in args.backends.split(",") if b.strip()] if args.backends
                else [b for b in ("chunked", "fused") if b in usable])
    missing = [b for b in backends if b not in usable]
    if missing or not backends:
        print(f"bench train: backends {missing or backends} cannot run here; available: "
              f"{usable}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.warmup < 0:
        raise ValueError(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats}, "
                         f"{args.warmup}")
    size = int(cfg["input_size"])
    batch = args.batch or int(cfg["batch_size"])
    amp, channels_last = cfg.get("amp", "none"), bool(cfg.get("channels_last", False))
    torch.manual_seed(0)
    base = build_model(**network_config(cfg, args.attention, size))
    data = synthetic_batch(batch, size, device, channels_last)
    def checked(name: str, step):
        def run() -> None:
            loss = step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"bench train: the {name} step gave loss {loss}")
        return run

    steps = {}
    for name in backends:
        model = copy.deepcopy(base)
        model.set_scan_backend(name)
        steps[name] = checked(name, training_step_fn(model, data, device, amp, channels_last))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = interleaved_times(steps, {name: args.repeats for name in backends}, args.warmup,
                              device, clock)

    hw = hardware_info()
    print(f"bench train: profile {args.profile}, {args.attention}, batch {batch} at {size} x "
          f"{size}, amp {amp}, channels-last {channels_last}, {hw['torch_threads']} torch "
          f"threads, {'process CPU' if args.clock == 'cpu' else 'wall-clock'} time, "
          f"{args.warmup} warm-up + {args.repeats} interleaved steps per backend")
    print(f"{'scan backend':<14}{'min ms':>9}{'median ms':>11}{'images/s':>10}{'/ chunked':>11}")
    rows = []
    ref = min(times["chunked"]) if "chunked" in times else None
    for name in backends:
        t = times[name]
        row = {"backend": name, "min_s": min(t), "median_s": statistics.median(t),
               "times_s": t, "images_per_s": batch / min(t),
               "over_chunked": None if ref is None else min(t) / ref}
        rows.append(row)
        rel = "-" if row["over_chunked"] is None else f"{row['over_chunked']:.2f}"
        print(f"{name:<14}{row['min_s'] * 1e3:>9.0f}{row['median_s'] * 1e3:>11.0f}"
              f"{row['images_per_s']:>10.1f}{rel:>11}")
    out = args.out or str(build_dir() / "bench" / "train.json")
    write_json_atomic(out, {"benchmark": "train", "profile": args.profile,
                            "attention": args.attention, "batch": batch, "input_size": size,
                            "amp": amp, "channels_last": channels_last, "clock": args.clock,
                            "warmup": args.warmup, "repeats": args.repeats, "results": rows,
                            "hardware": hw, "commit": git_commit()})
    print(f"wrote {out}")
    return 0
