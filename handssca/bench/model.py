"""``python -m handssca bench model``: forward times of the network and of its parts.

Measures, under ``torch.inference_mode`` and after warm-up, the median of several runs of:

- the trunk: ResNet-50 + reduced FPN, image I -> F, one 256 x 256 image;
- the attention blocks on F (1 x 256 x 32 x 32): SSCA, SSA, Self-Attention;
- the whole network (SSCA), one image, and images per second at batch 1 and 8.

The figures are taken in interleaved rounds (each forward once per round), so that other work on
a shared machine weighs on all figures alike. Each ratio to the trunk is given two ways: the
ratio of the minimum times (the best estimate of the unloaded machine: load only ever adds time;
the targets are judged on it) and the median of the per-round ratios. ``--threads 1`` steadies
the figures where the cores are shared, and ``--clock cpu`` (this process's CPU time) leaves out
the time the process waited for a core.

Targets it reports against: the SSCA block's forward no slower than the trunk's
(SSCA/trunk <= 1), and the whole network at most 1.5 x the trunk (whole/trunk <= 1.5).
Figures and the hardware go to ``--out`` (default ``_build/bench/model.json``).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Dict, List

import torch

from ..utils import build_dir, git_commit
from . import hardware_info, interleaved_times, write_json_atomic

TARGETS = {"ssca_over_trunk": 1.0, "whole_over_trunk": 1.5}


def _summary(ts: List[float]) -> Dict:
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
            "runs": len(ts)}


def _paired_ratio(a: List[float], b: List[float]) -> float:
    """Median over rounds of a[r] / b[r] (both measured in the same round)."""
    return statistics.median(x / y for x, y in zip(a, b))


def _min_ratio(a: List[float], b: List[float]) -> float:
    """min(a) / min(b): the ratio of the least-disturbed runs."""
    return min(a) / min(b)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="JSON output file (default: _build/bench/model.json)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs (1 warm-up, 3 timed; batch 8 with 2 timed)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs per figure")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--scan-backend", default=None,
                        help="selective-scan backend (default: automatic)")
    parser.add_argument("--input-size", type=int, default=256, help="input side S (default 256)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's own choice); 1 gives steadier "
                             "figures on a machine shared with other work")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time (default); cpu: this process's CPU time, which "
                             "leaves out waits for a core on a shared machine (use with --threads "
                             "1: with more threads it adds theirs up)")


def run(args) -> int:
    from ..hand import load_hand_model
    from ..models import build_attention, build_model
    from ..ssm import resolve_backend

    device = torch.device(args.device)
    if args.clock == "cpu" and device.type == "cuda":
        raise ValueError("--clock cpu measures CPU time; on CUDA use the wall clock")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 10)
    repeats8 = max(2, repeats // 3) if args.quick else max(3, repeats // 2)
    s = args.input_size
    torch.manual_seed(0)
    hand_model = load_hand_model()
    model = build_model("ssca", s, hand_model=hand_model,
                        scan_backend=args.scan_backend).to(device).eval()
    cfg = model.config
    x1 = torch.randn(1, 3, s, s, device=device)
    x8 = torch.randn(8, 3, s, s, device=device)
    with torch.inference_mode():
        feats = model.backbone(x1)

    blocks = {"ssca": model.attention}
    for kind in ("ssa", "self_attention"):
        blocks[kind] = build_attention(kind, cfg.C, cfg.H, cfg.W, cfg.channel_select, cfg.N,
                                       cfg.expand, cfg.dt_rank, cfg.d_conv,
                                       scan_backend=args.scan_backend).to(device).eval()
    fns = {"trunk": lambda: model.backbone(x1)}
    for kind, block in blocks.items():
        fns[f"block_{kind}"] = lambda b=block: b(feats)
    fns["whole_b1"] = lambda: model(x1)
    fns["whole_b8"] = lambda: model(x8)
    counts = {k: (repeats8 if k == "whole_b8" else repeats) for k in fns}
    warmups = {k: (min(warmup, 1) if k == "whole_b8" else warmup) for k in fns}
    with torch.inference_mode():
        times = interleaved_times(fns, counts, warmups, device, clock)
    results = {k: _summary(v) for k, v in times.items()}

    per8 = [t / 8 for t in times["whole_b8"]]
    ratios, ratios_median = {}, {}
    for name, fn in (("ratios", _min_ratio), ("median", _paired_ratio)):
        r = ratios if name == "ratios" else ratios_median
        for k in blocks:
            r[f"{k}_over_trunk"] = fn(times[f"block_{k}"], times["trunk"])
        r["whole_over_trunk"] = fn(times["whole_b1"], times["trunk"])
        r["whole_b8_per_image_over_trunk"] = fn(per8, times["trunk"])
    throughput = {"images_per_s_b1": 1.0 / results["whole_b1"]["min_s"],
                  "images_per_s_b8": 8.0 / results["whole_b8"]["min_s"],
                  "images_per_s_b1_median": 1.0 / results["whole_b1"]["median_s"],
                  "images_per_s_b8_median": 8.0 / results["whole_b8"]["median_s"]}
    met = {k: ratios[k] <= v for k, v in TARGETS.items()}

    hw = hardware_info()
    backend = resolve_backend(args.scan_backend, device)
    print(f"bench model: input {s} x {s}, device {device}, scan backend {backend}"
          f"{'' if args.scan_backend else ' (automatic)'}, torch threads {hw['torch_threads']}, "
          f"{'process CPU' if args.clock == 'cpu' else 'wall-clock'} time, "
          f"{warmup} warm-up + {repeats} interleaved rounds (batch 8: {repeats8}); "
          "'/ trunk': min time / min trunk time ('median': median of per-round ratios)")
    print(f"{'forward':<34}{'median ms':>11}{'min ms':>9}{'/ trunk':>9}{'median':>8}")
    labels = [("trunk", "ResNet-50 + FPN (I -> F)"), ("block_ssca", "SSCA block (F -> H)"),
              ("block_ssa", "SSA block"), ("block_self_attention", "Self-Attention block"),
              ("whole_b1", "whole network, batch 1"), ("whole_b8", "whole network, batch 8")]
    def ratio_of(r: dict) -> dict:
        return {"trunk": 1.0, "block_ssca": r["ssca_over_trunk"],
                "block_ssa": r["ssa_over_trunk"],
                "block_self_attention": r["self_attention_over_trunk"],
                "whole_b1": r["whole_over_trunk"],
                "whole_b8": 8 * r["whole_b8_per_image_over_trunk"]}

    rmin, rmed = ratio_of(ratios), ratio_of(ratios_median)
    for key, label in labels:
        r = results[key]
        print(f"{label:<34}{r['median_s'] * 1e3:>11.1f}{r['min_s'] * 1e3:>9.1f}"
              f"{rmin[key]:>9.2f}{rmed[key]:>8.2f}")
    print(f"images/s (from the minimum times): batch 1 {throughput['images_per_s_b1']:.2f}, "
          f"batch 8 {throughput['images_per_s_b8']:.2f}")
    print(f"SSCA block / trunk = {ratios['ssca_over_trunk']:.2f} (target <= "
          f"{TARGETS['ssca_over_trunk']}: {'met' if met['ssca_over_trunk'] else 'NOT met'}); "
          f"whole / trunk = {ratios['whole_over_trunk']:.2f} (target <= "
          f"{TARGETS['whole_over_trunk']}: {'met' if met['whole_over_trunk'] else 'NOT met'})")
    payload = {"benchmark": "model", "input_size": s, "device": str(device),
               "scan_backend": backend, "scan_backend_asked": args.scan_backend,
               "warmup": warmup, "repeats": repeats,
               "repeats_batch8": repeats8, "quick": bool(args.quick), "clock": args.clock,
               "times": results, "ratios": ratios, "ratios_median": ratios_median,
               "ratio_method": "min time / min trunk time; ratios_median: median of per-round "
                               "ratios", "throughput": throughput, "targets": TARGETS,
               "targets_met": met, "hand_model": getattr(hand_model, "kind", None),
               "hardware": hw, "commit": git_commit()}
    out = args.out or (build_dir() / "bench" / "model.json")
    path = write_json_atomic(out, payload)
    print(f"wrote {path}")
    return 0
