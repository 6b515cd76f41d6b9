"""``python -m handssca evaluate``: a trained run on a dataset's test split, official protocol.

Writes ``metrics.json`` (every metric, the two constants that ignore the image: the mean pose and
the mean articulation, provenance) and the official
submission file into ``<run>/eval/<dataset>-<split>-<which>/`` (or ``--out``).

Under ``torchrun --nproc_per_node=N -m handssca evaluate ...`` each process predicts its share
of the split and rank 0 writes the same files as one process would.
"""
from __future__ import annotations

import argparse
import sys

from .profiles import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluate command's options."""
    parser.add_argument("--checkpoint", required=True,
                        help="a run folder, or a checkpoint JSON / safetensors file")
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help="the dataset (default: the one the run was trained on)")
    parser.add_argument("--data-root", default=None,
                        help="the dataset folder (default: the run's data)")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"),
                        help="test: the official split (default); val: the run's held-out rows; "
                             "train: a whole training split (e.g. of other synthetic data)")
    parser.add_argument("--which", default="last", choices=("last", "best"),
                        help="the last epoch (default) or the best validation epoch")
    parser.add_argument("--out", default=None,
                        help="output folder (default <run>/eval/<dataset>-<split>-<which>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace metrics.json and the submission file in --out")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    parser.add_argument("--no-constants", "--no-baseline", dest="no_constants",
                        action="store_true",
                        help="skip the two constants (the mean-pose and the mean-articulation "
                             "hand, which ignore the image) scored beside the network")


def _fmt(metrics: dict) -> str:
    keys = ("pa_mpjpe", "pa_mpvpe", "mpjpe", "f5_aligned", "f15_aligned", "sc_tr_mpjpe")
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)


def run(args) -> int:
    """Evaluate; print the main numbers. Returns the exit status."""
    from .distributed import shutdown
    from .evaluation import constants_line, evaluate

    if args.batch_size < 1:
        print(f"error: --batch-size must be at least 1, got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        rep = evaluate(args.checkpoint, args.dataset, args.data_root, split=args.split,
                       out=args.out, which=args.which, device=args.device,
                       batch_size=args.batch_size, baseline=not args.no_constants,
                       overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        shutdown()  # leave torchrun's process group, if any (nothing in one process)
    if rep is None:  # under torchrun, a rank other than 0: rank 0 reports
        return 0
    print(f"{rep['dataset']} {rep['split']} ({rep['data']} data, {rep['n_samples']} samples)")
    if rep["metrics"] is not None:
        print(f"  model:     {_fmt(rep['metrics'])}  (mm; F-scores as fractions)")
        for key, label in (("baseline", "mean-pose constant"),
                           ("baseline_mean_articulation", "mean-articulation constant")):
            if (rep.get(key) or {}).get("metrics"):
                print(f"  {label}: {_fmt(rep[key]['metrics'])}")
        print(f"  {constants_line(rep)}")
    else:
        print(f"  {rep['note']}")
    print(f"wrote {rep['out']}/metrics.json" + (f" and {rep['submission']}" if rep["submission"] else ""))
    return 0
