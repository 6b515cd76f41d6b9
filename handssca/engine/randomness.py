"""Randomness that depends only on (seed, epoch), so a resumed run repeats an uninterrupted one.

- The order of an epoch's samples: :class:`handssca.engine.datasets.EpochSampler`, a permutation
  drawn from (seed, epoch).
- The augmentation of a sample: :class:`handssca.engine.datasets.EpochAugmented` draws it from a
  generator seeded by (seed, epoch, row), whichever DataLoader worker loads it and in whatever
  order, so workers may persist across epochs.
- The network's own randomness (drop path, when enabled) and anything else that uses the global
  generators: :func:`seed_epoch` seeds Python's, numpy's and torch's generators from
  (seed, epoch) at the start of every epoch.
- The initialisation and the validation split: seeds derived from the run's seed alone.

Nothing carries random state from one epoch to the next, so a run resumed from the checkpoint of
epoch k trains epoch k+1 exactly as the uninterrupted run did (on the CPU, whose kernels are
deterministic for a fixed number of threads).
"""
from __future__ import annotations

import random

import numpy as np
import torch

#: the streams derived from one (seed, epoch): global generators, the loader, the split
_STREAMS = {"global": 0, "loader": 1, "split": 2, "init": 3}


def derive_seed(seed: int, epoch: int = -1, stream: str = "global") -> int:
    """A 63-bit seed for ``stream`` at ``epoch`` (-1: before the first epoch), from numpy's
    SeedSequence, so nearby (seed, epoch) pairs give unrelated streams."""
    if stream not in _STREAMS:
        raise ValueError(f"stream must be one of {sorted(_STREAMS)}, got {stream!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ss = np.random.SeedSequence([int(seed), int(epoch) + 1, _STREAMS[stream]])
    return int(ss.generate_state(2, dtype=np.uint32).astype(np.uint64)[0] << np.uint64(31)
               ^ ss.generate_state(2, dtype=np.uint32).astype(np.uint64)[1]) & ((1 << 63) - 1)


def seed_everything(value: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(value)
    np.random.seed(value % (2 ** 32))
    torch.manual_seed(value)


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Seed the global generators for ``epoch``; returns a ``torch.Generator`` seeded from
    (seed, epoch) as well, for anything that takes one."""
    seed_everything(derive_seed(seed, epoch, "global"))
    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, epoch, "loader"))
    return gen


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker initialiser: seed numpy and ``random`` from the worker's torch seed, for
    any code in a worker that draws from the global generators (the engine's own augmentation
    does not: it is seeded per sample)."""
    s = torch.initial_seed() % (2 ** 32)
    np.random.seed(s)
    random.seed(s)
