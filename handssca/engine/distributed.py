"""Data-parallel training and evaluation under ``torchrun`` (``torch.distributed``).

``torchrun --nproc_per_node=N -m handssca train ...`` starts N processes and gives each RANK,
WORLD_SIZE and LOCAL_RANK (several nodes: torchrun's rendezvous sets the same variables). Each
process reads them (:func:`world_from_env`), joins the process group (NCCL on CUDA, gloo on the
CPU) and trains a replica wrapped in ``torch.nn.parallel.DistributedDataParallel``, which
averages the gradients of every step across the ranks. Without those variables nothing here
runs: training stays one process, exactly as without torchrun.

- Data: rank r takes positions r, r + W, ... of the epoch's (seed, epoch) permutation
  (:class:`RankSampler`), so an epoch's data still depend on (seed, epoch) alone, and a step's
  W per-rank batches together are the single-process run's batch of that step.
- Batch: the profile's batch is the global one; each rank loads batch / W
  (:func:`per_rank_batch`).
- BatchNorm: per-rank statistics, as the authors' per-GPU training, unless ``--sync-bn``
  (:func:`convert_sync_bn`, CUDA only: ``torch.nn.SyncBatchNorm`` has no CPU kernel).
- Files: rank 0 alone writes run records, logs, TensorBoard and checkpoints (of the unwrapped
  module: no ``module.`` prefix, so a run may resume at another world size).
- Failure: a rank that dies makes the others' next collective fail (gloo: the connection is
  closed; NCCL: the watchdog) or torchrun stop them (SIGTERM); :func:`collective_guard` turns
  either into one line naming the rank and world size and saying how to resume.

Fault injection, for the tests: ``HANDSSCA_FAULT_EXIT_RANK_AT_STEP="r:s"`` makes rank r exit
(status 3, no clean-up, like a crashed process) just before its optimiser step s (1-based,
counted over the whole run).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

from .datasets import EpochSampler

#: the fault-injection variable ("rank:step")
FAULT_ENV = "HANDSSCA_FAULT_EXIT_RANK_AT_STEP"
#: the process group's timeout in seconds (overridable for a slow shared file system)
TIMEOUT_ENV = "HANDSSCA_DIST_TIMEOUT_S"
#: 5 minutes, not torch's 10 (NCCL) or 30 (gloo): a healthy rank waits for another only while
#: rank 0 validates and writes a checkpoint at the end of an epoch (seconds on the quick
#: profile, about a minute for the paper profile's validation rows on one GPU), so a rank that
#: hangs (a dead node that closed no connection) fails the job within minutes instead of
#: holding every GPU for half an hour. A dead process is noticed at once, whatever this is.
DEFAULT_TIMEOUT_S = 300
#: the timeout of the one wait that may be long: the other ranks wait while rank 0 generates
#: synthetic data on its first use (minutes for the paper profile's counts); torch's gloo default
SETUP_TIMEOUT_S = 1800
#: the exit status of an injected fault
FAULT_EXIT_STATUS = 3
RESUME_HINT = ("the run resumes from its last checkpoint (the last completed epoch) with the "
               "same command and --resume, at any number of processes")


@dataclass(frozen=True)
class World:
    """This process's place among torchrun's: ``rank`` of ``size``, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and logs."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """More than one process."""
        return self.size > 1

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.size}"


SINGLE = World()
#: the process group of the training's collectives (the short timeout); the default group, of
#: the long one, serves only :func:`main_first`
_GROUP = None


class RankFailedError(RuntimeError):
    """A collective operation failed: another rank died or stopped answering."""


def _env_int(environ, name: str) -> int:
    text = environ[name]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a whole number (torchrun sets it; unset "
                         f"RANK, WORLD_SIZE and LOCAL_RANK to train in one process)") from None


def world_from_env(environ=None) -> World:
    """The world torchrun describes in RANK, WORLD_SIZE, LOCAL_RANK; :data:`SINGLE` without
    them (or with WORLD_SIZE=1)."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ or "RANK" not in environ:
        return SINGLE
    size, rank = _env_int(environ, "WORLD_SIZE"), _env_int(environ, "RANK")
    local = _env_int(environ, "LOCAL_RANK") if "LOCAL_RANK" in environ else rank
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank}, WORLD_SIZE={size}: expected 0 <= RANK < WORLD_SIZE")
    return SINGLE if size == 1 else World(rank, size, local)


def timeout_s(environ=None) -> int:
    """The process group's timeout (:data:`DEFAULT_TIMEOUT_S`, or ``HANDSSCA_DIST_TIMEOUT_S``)."""
    environ = os.environ if environ is None else environ
    text = environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def setup(device: torch.device, world: Optional[World] = None):
    """Join torchrun's process group (once) and return ``(world, device)``: on CUDA the device
    becomes ``cuda:LOCAL_RANK`` (one GPU per process); one process returns them unchanged."""
    world = world_from_env() if world is None else world
    if not world.parallel:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    global _GROUP
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=SETUP_TIMEOUT_S))
        _GROUP = dist.new_group(backend=backend, timeout=timedelta(seconds=timeout_s()))
    return world, device


def main_first(fn, world: World):
    """``fn()`` on rank 0, then on the others once rank 0 is done (its result on each rank):
    for what writes shared files the first time, e.g. synthetic data, which two processes must
    not generate into one folder at once. The wait has the long setup timeout."""
    if not world.parallel:
        return fn()
    if world.is_main:
        result = fn()
        dist.barrier()
        return result
    dist.barrier()
    return fn()


def shutdown() -> None:
    """Leave the process group (a no-op in one process)."""
    global _GROUP
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _GROUP = None


def per_rank_batch(batch: int, world: World) -> int:
    """The batch each rank loads: the global ``batch`` / W.

    Raises:
        ValueError: ``batch`` is not a multiple of the world size (both named)."""
    if batch % world.size:
        raise ValueError(f"the batch size {batch} (the global batch, over all processes) is not "
                         f"divisible by the world size {world.size}: choose a batch size that "
                         f"is a multiple of {world.size} (--batch-size) or another number of "
                         f"processes")
    return batch // world.size


class RankSampler(EpochSampler):
    """This rank's share of :class:`~.datasets.EpochSampler`'s (seed, epoch) permutation:
    positions r, r + W, r + 2W, ... of its first ``n - n mod W`` entries.

    Every rank gets ``n // W`` samples, so all ranks take the same number of steps (DDP needs
    it); with per-rank batch b, step k's W batches are positions kWb .. (k+1)Wb - 1, the
    single-process batch of step k at batch Wb."""

    def __init__(self, n: int, seed: int, world: World):
        super().__init__(n, seed)
        self.world = world

    def __len__(self) -> int:
        return self.n // self.world.size

    def __iter__(self) -> Iterator:
        full = list(super().__iter__())
        even = len(full) - len(full) % self.world.size
        return iter(full[self.world.rank:even:self.world.size])


def convert_sync_bn(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """BatchNorm over the global batch (``torch.nn.SyncBatchNorm``); parameter and buffer names
    are unchanged, so the checkpoints load into the plain network.

    Raises:
        ValueError: on the CPU, where SyncBatchNorm has no kernel."""
    check_sync_bn(device)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def check_sync_bn(device: torch.device) -> None:
    """Refuse ``--sync-bn`` off CUDA (ValueError saying what to do)."""
    if device.type != "cuda":
        raise ValueError(f"--sync-bn needs CUDA: torch.nn.SyncBatchNorm runs on GPUs only, and "
                         f"this run is on {device.type}; leave --sync-bn out (each process then "
                         f"normalises with its own batch's statistics, as the authors' per-GPU "
                         f"training)")


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` (it broadcasts rank 0's weights at once);
    ``model`` itself in one process."""
    if not world.parallel:
        return model
    ids = [device.index] if device.type == "cuda" else None
    # DDP warns when a gradient's strides differ from its bucket's: the depthwise convolutions'
    # weights, (C, 1, k, k), get gradients whose strides differ only along the size-1 axis,
    # the same memory layout; nothing is copied or slowed
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, process_group=_GROUP)


def share(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (pickled); ``value`` itself in one process."""
    if not world.parallel:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_GROUP)
    return box[0]


def all_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (in place; unchanged in one process)."""
    if world.parallel:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=_GROUP)
    return tensor


def rank_share(n: int, world: World) -> range:
    """The dataset positions this rank predicts: r, r + W, ... < n (every position on exactly
    one rank; the first n mod W ranks take one more)."""
    return range(world.rank, n, world.size)


def merge_in_order(parts, n: int) -> Dict[str, np.ndarray]:
    """The ranks' predictions (dicts of arrays with an "index" field) as one dict sorted by the
    dataset index.

    Raises:
        RuntimeError: the indices are not 0 .. n-1 once each (a duplicate or a missing one)."""
    parts = [p for p in parts if p is not None and len(p["index"])]
    if not parts:
        raise RuntimeError(f"no rank predicted any of the {n} samples")
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(res["index"], kind="stable")
    res = {k: v[order] for k, v in res.items()}
    if not np.array_equal(res["index"], np.arange(n)):
        raise RuntimeError(f"the ranks predicted {len(order)} samples, not each of the {n} "
                           f"once")
    return res


def gather_in_order(part: Dict[str, np.ndarray], world: World, n: int
                    ) -> Optional[Dict[str, np.ndarray]]:
    """Every rank's predictions merged on rank 0 in dataset order (:func:`merge_in_order`);
    None on the other ranks; ``part`` itself in one process."""
    if not world.parallel:
        return part
    parts = [None] * world.size if world.is_main else None
    dist.gather_object(part, parts, dst=0, group=_GROUP)
    return merge_in_order(parts, n) if world.is_main else None


def maybe_inject_fault(world: World, step: int, environ=None) -> None:
    """Exit at once (status 3, no clean-up) when ``HANDSSCA_FAULT_EXIT_RANK_AT_STEP`` is
    "<this rank>:<step>" (the tests' stand-in for a crashed process)."""
    environ = os.environ if environ is None else environ
    text = environ.get(FAULT_ENV)
    if not text:
        return
    try:
        rank, at = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"{FAULT_ENV}={text!r}: expected 'rank:step', e.g. '1:3'") from None
    if rank == world.rank and at == step:
        print(f"[train] {world}: exiting before step {step} ({FAULT_ENV}={text})",
              file=sys.stderr, flush=True)
        os._exit(FAULT_EXIT_STATUS)


def _is_collective_failure(err: BaseException) -> bool:
    """Whether an error came from the process group (a peer gone, a timeout)."""
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return any(w in text for w in ("gloo", "nccl", "connection", "timed out", "timeout",
                                   "peer", "process group"))


class _Stopped(Exception):
    """Raised in a rank by SIGTERM (torchrun stopping the survivors of a failed rank)."""


def _on_sigterm(signum, frame):
    raise _Stopped()


def _cause(err: BaseException) -> str:
    """The first sentence of an error, without gloo's source location."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0][:120]


@contextlib.contextmanager
def collective_guard(world: World, what: str = "training"):
    """Turn a failed collective, or torchrun's SIGTERM after another rank died, into one
    :class:`RankFailedError` naming this rank and the world size and saying how to resume.
    A no-op in one process (and off the main thread, where no signal handler can be set)."""
    if not world.parallel or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except _Stopped:
        # from here the process only reports and exits: a second SIGTERM must not cut the line
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise RankFailedError(
            f"{world}: {what} stopped: torchrun ended this process because another of the "
            f"{world.size} failed; {RESUME_HINT}") from None
    except RuntimeError as err:
        if isinstance(err, RankFailedError) or not _is_collective_failure(err):
            signal.signal(signal.SIGTERM, old)
            raise
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise RankFailedError(
            f"{world}: {what} failed in a collective operation: another of the {world.size} "
            f"processes died or stopped answering ({_cause(err)}; timeout {timeout_s()} s); "
            f"{RESUME_HINT}") from None
    signal.signal(signal.SIGTERM, old)
