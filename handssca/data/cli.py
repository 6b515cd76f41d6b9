"""``python -m handssca data ACTION``: data tools.

``data synth --style {freihand,ho3d,dexycb} --out DIR --n N --seed S`` renders synthetic occluded
hands and writes them in the on-disk format of that dataset (:mod:`handssca.data.synth`).
"""
from __future__ import annotations

import argparse
import sys

STYLES = ("freihand", "ho3d", "dexycb")
#: what Ctrl-C leaves: finished samples are kept and the same command completes the folder
INTERRUPTED = "the samples written so far are kept; the same command resumes the dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``data`` command's actions and options."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("synth", help="render synthetic occluded hands in a dataset's on-disk format",
                       description="Render synthetic occluded hands and write them in the exact on-disk "
                                   "format of FreiHAND, HO3D or DexYCB (see handssca.data.synth).")
    p.add_argument("--style", required=True, choices=STYLES, help="which dataset's format")
    p.add_argument("--out", required=True, help="the dataset folder (new, empty, or this same dataset to resume)")
    p.add_argument("--n", type=int, required=True,
                   help="freihand: training samples (x4 images); ho3d: frames; dexycb: colour images")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    p.add_argument("--version", choices=("v2", "v3"), default="v2",
                   help="ho3d only: v2 (PNG frames, default) or v3 (JPEG frames)")
    p.add_argument("--n-eval", type=int, default=None,
                   help="freihand only: evaluation samples (default n x 3960 / 32560, at least 1)")
    p.add_argument("--frames-per-sequence", type=int, default=None,
                   help="ho3d only: mean frames per sequence (default 50)")
    p.add_argument("--toolkit-layout", action="store_true",
                   help="dexycb only: the layout the official toolkit reads (10 subjects x 100 sequences, "
                        "8 cameras; --n a multiple of 8, at least 8000)")
    p.add_argument("--hand", choices=("auto", "mano", "procedural"), default="auto",
                   help="hand model: the real MANO when installed (auto, default), or force one")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a synthetic dataset of other arguments found in --out (only "
                        "the files the generator wrote; refused when the folder holds others)")


def run(args) -> int:
    """Run ``data synth``; returns 0, or 2 with a message on stderr for a refused folder or bad arguments."""
    from handssca.data.synth import generate

    if args.action != "synth":  # pragma: no cover - argparse restricts the choices
        raise ValueError(f"data: unknown action {args.action!r}")
    if args.style != "ho3d" and args.version != "v2":
        print("note: --version applies to --style ho3d only; ignored", file=sys.stderr)
    if args.style != "freihand" and args.n_eval is not None:
        print("note: --n-eval applies to --style freihand only; ignored", file=sys.stderr)
    if args.style != "ho3d" and args.frames_per_sequence is not None:
        print("note: --frames-per-sequence applies to --style ho3d only; ignored", file=sys.stderr)
    if args.style != "dexycb" and args.toolkit_layout:
        print("note: --toolkit-layout applies to --style dexycb only; ignored", file=sys.stderr)
    try:
        res = generate(args.style, args.out, args.n, args.seed, version=args.version,
                       n_eval=args.n_eval if args.style == "freihand" else None,
                       frames_per_sequence=(args.frames_per_sequence if args.style == "ho3d"
                                            else None),
                       toolkit_layout=args.toolkit_layout and args.style == "dexycb", overwrite=args.overwrite,
                       hand=None if args.hand == "auto" else args.hand)
    except (FileExistsError, NotADirectoryError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    info = res.info
    occ = info.get("occlusion", {})
    if res.generated == 0:
        print(f"{res.out}: already complete ({res.units} samples, {args.style}, seed {args.seed}); nothing to do")
    else:
        resumed = res.units - res.generated
        print(f"wrote {args.style} dataset to {res.out}: {res.units} samples"
              + (f" ({resumed} already there, resumed)" if resumed else "")
              + f", {res.images} images in {res.seconds:.1f} s ({res.renders / max(res.seconds, 1e-9):.1f} renders/s); "
              f"hand model: {info['hand_model']['kind']}")
    print(f"counts: {info.get('counts')}")
    if occ.get("count"):
        print(f"hand occlusion: mean {occ['mean']:.2f}, median {occ['median']:.2f} "
              f"(p25 {occ['p25']:.2f}, p75 {occ['p75']:.2f}) over {occ['count']} images")
    return 0
