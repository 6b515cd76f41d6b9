"""``python -m handssca import hands3c SNAPSHOT.pth.tar --out RUN [--dataset ...]``.

Turns the authors' released weights into a run folder that ``evaluate`` and ``predict`` accept
(:func:`~.imports.import_run`); the source file's name and SHA-256 are kept in its provenance.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import read_json
from .imports import DATASET_INPUT_SIZE, FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The import command's options."""
    parser.add_argument("format", choices=FORMATS,
                        help="the weights' format: hands3c, the authors' snapshot_*.pth.tar")
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="the weights file")
    parser.add_argument("--out", required=True, help="the run folder to write")
    parser.add_argument("--dataset", default=None, choices=tuple(DATASET_INPUT_SIZE),
                        help="the dataset the weights were trained on; FreiHAND means input size "
                             "224, HO3D and DexYCB 256 (default: freihand for a 224 file, ho3d "
                             "for a 256 one)")


def run(args) -> int:
    """Import; print the run folder and the next command. Returns the exit status."""
    from .imports import import_run

    try:
        out = import_run(args.snapshot, args.out, args.dataset, fmt=args.format)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dataset = read_json(out / "run.json")["config"]["dataset"]
    print(f"run: {out} ({args.format} weights for {dataset})")
    print(f"next: python -m handssca evaluate --checkpoint {out} --data-root "
          f"<your {dataset} folder>")
    return 0
