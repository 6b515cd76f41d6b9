"""``python -m handssca train``: train HandSSCA (or a Table 6 variant) on a dataset.

Without ``--data-root`` the run uses synthetic data of the dataset's style (generated on first
use into ``data/synth/``) and says so; every result it writes is labelled ``data: synthetic``.

Under ``torchrun --nproc_per_node=N -m handssca train ...`` the run is data-parallel over N
processes (:mod:`.distributed`): ``--batch-size`` (or the profile's batch) is the global batch.
"""
from __future__ import annotations

import argparse
import math
import sys

from ..errors import DiskFullError
from .distributed import world_from_env
from .profiles import DATASETS, available_profiles

ATTENTIONS = ("none", "self_attention", "ssa", "ssca")
#: what Ctrl-C leaves: every completed epoch is checkpointed, and --resume continues from the last
INTERRUPTED = ("the run resumes from its last checkpoint (the last completed epoch) with the same "
               "command and --resume")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train command's options."""
    parser.add_argument("--dataset", required=True, choices=DATASETS,
                        help="the dataset (and the style of synthetic data without --data-root)")
    parser.add_argument("--data-root", default=None,
                        help="the dataset folder in its official layout; leave out for synthetic data")
    parser.add_argument("--profile", default="quick",
                        help=f"one of {available_profiles()} or a YAML file (default: quick)")
    parser.add_argument("--attention", default="ssca", choices=ATTENTIONS,
                        help="the block between F and H (Table 6; default ssca, the paper's)")
    parser.add_argument("--out", default=None,
                        help="run folder (default runs/<dataset>-<data>-<attention>-<profile>-seed<S>-<config hash>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an unfinished run in --out from its last checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    parser.add_argument("--lr", type=float, default=None, help="override the profile's learning rate")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--compile", action="store_true", default=None,
                        help="torch.compile the network (GPU)")
    parser.add_argument("--imagenet-weights", default=None, metavar="FILE",
                        help="torchvision's ImageNet resnet50 state dict file to start the "
                             "ResNet-50 from, as the paper does (overrides the profile's "
                             "imagenet_weights; not for a light backbone)")
    parser.add_argument("--sync-bn", action="store_true",
                        help="under torchrun, BatchNorm statistics over the global batch "
                             "(SyncBatchNorm, CUDA only; default: each process's own batch, as "
                             "the authors' per-GPU training)")


def overrides_from(args) -> dict:
    """The profile overrides given on the command line."""
    over = {}
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        over["epochs"] = args.epochs
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        over["batch_size"] = args.batch_size
    if args.lr is not None:
        # inf and nan are floats to argparse; either one makes the first step diverge
        if not (math.isfinite(args.lr) and args.lr > 0):
            raise ValueError(f"--lr must be a positive finite number (e.g. 1e-4), got {args.lr}")
        over["optimizer"] = {"lr": args.lr}
    if getattr(args, "imagenet_weights", None) is not None:
        over["imagenet_weights"] = args.imagenet_weights
    return over


def run(args) -> int:
    """Train; print the run folder and the final metrics. Returns the exit status."""
    from .distributed import shutdown
    from .trainer import train

    try:
        return _train_and_report(args, train)
    finally:
        shutdown()  # leave torchrun's process group, if any (nothing in one process)


def _train_and_report(args, train) -> int:
    """:func:`run`'s body: train, then print the summary."""
    try:
        over = overrides_from(args)
        summary = train(args.dataset, args.data_root, profile=args.profile, attention=args.attention,
                        out=args.out, seed=args.seed, resume=args.resume, device=args.device,
                        overrides=over or None, compile=args.compile, num_workers=args.num_workers,
                        sync_bn=args.sync_bn)
    except DiskFullError as e:
        # the completed epochs are checkpointed: say how to continue once there is room
        print(f"error: {e}, with --resume to continue from the last checkpoint", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not world_from_env().is_main:  # rank 0 reports for the job
        return 0
    final = summary.get("final") or {}
    print(f"run: {summary['run']} ({summary['status']}{', reused' if summary.get('reused') else ''}; "
          f"data: {summary['data']})")
    if final:
        msg = f"epoch {final['epoch']}: loss {final['loss']:.4g}"
        if "val_pa_mpjpe" in final:
            msg += f", validation PA-MPJPE {final['val_pa_mpjpe']:.2f} mm"
        print(msg)
    return 0
