"""``python -m handssca predict IMAGE... --checkpoint RUN --out DIR``: hands from images.

Writes per image the mesh (OBJ and PLY), the 21 joints and MANO parameters (JSON, frame and units
stated) and an overlay PNG. Without ``--bbox`` the whole image is the crop (and the output says
so); ``--left`` mirrors the image, predicts a right hand and mirrors the result back.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The predict command's options."""
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--checkpoint", required=True,
                        help="a run folder, or a checkpoint JSON / safetensors file")
    parser.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), default=None,
                        help="the hand's box in pixels (default: the whole image)")
    parser.add_argument("--left", action="store_true", help="the hands are left hands")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--which", default="last", choices=("last", "best"), help="which checkpoint")
    parser.add_argument("--focal", type=float, default=None,
                        help="the camera's focal length in pixels (default: max(W, H), assumed)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--no-overlay", action="store_true", help="skip the rendered overlay PNG")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files of the same names in --out")


def run(args) -> int:
    """Predict; print the files written. Returns the exit status."""
    from .prediction import predict

    try:
        results = predict(args.images, args.checkpoint, args.out, bbox=args.bbox, left=args.left,
                          which=args.which, device=args.device, focal=args.focal,
                          overlay=not args.no_overlay, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r['image']}: " + ", ".join(r["files"].values()))
    return 0
