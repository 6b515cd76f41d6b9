"""``python -m handssca bench synth``: how fast the synthetic data generator writes each style.

For each style, a small warm-up dataset is generated first (loading the hand model, creating
the renderers), then a timed one of ``--n`` samples into a temporary folder (removed
afterwards). It prints samples, renders and colour images per second and the seconds per stage
(posing, rendering, composing, encoding, writing), and writes them with the hardware to
``--out`` (default ``_build/bench/synth.json``). Target: at least 5 images per second per style
(an image = one rendered view; FreiHAND's four versions of a sample count once).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from ..utils import build_dir, git_commit
from . import hardware_info, write_json_atomic

TARGET_RENDERS_PER_S = 5.0
STYLES = ("freihand", "ho3d", "dexycb")
WARMUP_N = {"freihand": 4, "ho3d": 4, "dexycb": 10}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    parser.add_argument("--styles", nargs="+", choices=STYLES, default=list(STYLES), help="styles to time")
    parser.add_argument("--n", type=int, default=60,
                        help="samples per style (freihand: training samples; ho3d: frames; dexycb: images)")
    parser.add_argument("--ho3d-version", choices=("v2", "v3"), default="v2", help="HO3D version (default v2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output file (default: _build/bench/synth.json)")


def run(args) -> int:
    """Time each style, print the table, write the JSON."""
    from ..data.synth import generate
    if args.n < 10:
        raise ValueError(f"bench synth: --n must be at least 10, got {args.n}")
    results = {}
    hand_kind = None
    tmp = tempfile.mkdtemp(prefix="handssca-bench-synth-")
    try:
        for style in args.styles:
            opts = {"version": args.ho3d_version} if style == "ho3d" else {}
            t0 = time.perf_counter()
            generate(style, f"{tmp}/{style}-warmup", WARMUP_N[style], args.seed + 1, show_progress=False, **opts)
            warm = time.perf_counter() - t0
            res = generate(style, f"{tmp}/{style}", args.n, args.seed, show_progress=False, **opts)
            hand_kind = res.info["hand_model"]["kind"]
            shutil.rmtree(f"{tmp}/{style}", ignore_errors=True)
            shutil.rmtree(f"{tmp}/{style}-warmup", ignore_errors=True)
            s = res.seconds
            results[style] = {
                "samples": res.units, "renders": res.renders, "image_files": res.images, "seconds": s,
                "samples_per_s": res.units / s, "renders_per_s": res.renders / s, "image_files_per_s": res.images / s,
                "stage_seconds": res.timings,
                "stage_share": {k: v / s for k, v in res.timings.items()},
                "warmup_seconds": warm, "occlusion_median": res.info["occlusion"].get("median"),
                "options": res.info["options"],
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    met = {st: r["renders_per_s"] >= TARGET_RENDERS_PER_S for st, r in results.items()}
    hw = hardware_info()
    print(f"bench synth: n = {args.n} per style, seed {args.seed}, hand model {hand_kind}, "
          f"{hw['cpu_count']} CPUs ({hw['cpu']}); after a warm-up run per style")
    stages = ("pose", "render", "compose", "encode", "write", "other")
    print(f"{'style':<10}{'images/s':>9}{'files/s':>9}{'s':>7}  " + "".join(f"{k:>9}" for k in stages))
    for st, r in results.items():
        share = "".join(f"{100 * r['stage_share'].get(k, 0.0):>8.0f}%" for k in stages)
        print(f"{st:<10}{r['renders_per_s']:>9.2f}{r['image_files_per_s']:>9.2f}{r['seconds']:>7.1f}  {share}")
    print("images/s: rendered views per second (the target); files/s: colour image files (FreiHAND: 4 per "
          "sample); stage columns: share of the wall time")
    for st, ok in met.items():
        print(f"{st}: {results[st]['renders_per_s']:.2f} images/s (target >= {TARGET_RENDERS_PER_S}: "
              f"{'met' if ok else 'NOT met'})")
    payload = {"benchmark": "synth", "n": args.n, "seed": args.seed, "hand_model": hand_kind,
               "results": results, "target_images_per_s": TARGET_RENDERS_PER_S, "targets_met": met,
               "hardware": hw, "commit": git_commit()}
    path = write_json_atomic(args.out or (build_dir() / "bench" / "synth.json"), payload)
    print(f"wrote {path}")
    return 0
