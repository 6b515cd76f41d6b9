"""What goes wrong with a dataset: a wrong layout, a corrupt sample, too many corrupt samples.

A missing root, file or folder raises :class:`DatasetLayoutError`, naming the first missing path
and showing the expected layout (:func:`require_paths`). One sample whose image or annotation
cannot be read raises :class:`CorruptSampleError`; the dataset
(:class:`handssca.data.dataset.HandDataset`) counts it in a :class:`SkipCounter` shared by the
DataLoader workers and stops with :class:`TooManySkippedError` past ``max_skip`` (a share of the
dataset, :data:`DEFAULT_MAX_SKIP`).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.context
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

#: a run that skips more than this share of a dataset's samples stops with an error.
DEFAULT_MAX_SKIP = 0.01


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, file or folder is missing, or the folder is not laid out as expected.

    The message names the first missing path and shows the expected layout.
    """


class CorruptSampleError(ValueError):
    """One sample's image or annotation cannot be read or is malformed (it is skipped and counted)."""


class ImageTooLargeError(CorruptSampleError):
    """An image file's header gives more pixels than this package decodes
    (:data:`handssca.data.images.MAX_IMAGE_PIXELS`); refused before any pixel is decoded."""


class TooManySkippedError(RuntimeError):
    """More than the allowed share of a dataset's samples were corrupt."""


def require_paths(paths: Iterable, dataset: str, layout: str) -> None:
    """Raise :class:`DatasetLayoutError` naming the first of ``paths`` that does not exist.

    Args:
        paths: paths in the order they should be checked (the root first).
        dataset: the dataset's name for the message.
        layout: the expected layout (a few lines of text) shown in the message.
    """
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DatasetLayoutError(
                f"{dataset}: {p} not found. Expected the official layout:\n{layout.rstrip()}\n"
                f"(see data/README.md, section Datasets)")


class SkipCounter:
    """Counts the distinct samples of a dataset skipped as corrupt, across DataLoader workers.

    Each newly skipped sample is reported with ``warnings.warn`` (its id, the reason, the running
    count); when more than ``max_fraction`` of the dataset's ``n`` samples have been skipped,
    :meth:`record` raises :class:`TooManySkippedError`. The flags live in shared memory made at
    construction, so forked or spawned workers add to the same count.

    Args:
        name: the dataset's name (for messages).
        n: the number of samples the share is taken of.
        max_fraction: the allowed share, in [0, 1].
    """

    def __init__(self, name: str, n: int, max_fraction: float = DEFAULT_MAX_SKIP):
        if not 0.0 <= float(max_fraction) <= 1.0:
            raise ValueError(f"max_skip: expected a fraction in [0, 1], got {max_fraction}")
        self.name, self.n, self.max_fraction = name, int(n), float(max_fraction)
        # one flag per sample in shared memory without a lock (a lock is tied to one start method);
        # the count is the number of flags set, so concurrent skips cannot double-count
        self._flags = multiprocessing.RawArray("b", max(self.n, 1))
        self._reasons: dict[str, str] = {}  # this process's reasons, for the summary

    # shared memory can only travel to a process being started; otherwise pickle a copy
    def __getstate__(self):
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            state["_flags"] = bytes(self._flags)
        return state

    def __setstate__(self, state):
        flags = state["_flags"]
        if isinstance(flags, bytes):
            arr = multiprocessing.RawArray("b", len(flags))
            np.frombuffer(arr, dtype=np.int8)[:] = np.frombuffer(flags, dtype=np.int8)
            state["_flags"] = arr
        self.__dict__.update(state)

    def _array(self) -> np.ndarray:
        return np.frombuffer(self._flags, dtype=np.int8)

    @property
    def count(self) -> int:
        """How many distinct samples have been skipped so far."""
        return int(np.count_nonzero(self._array()))

    @property
    def limit(self) -> int:
        """The largest number of skipped samples allowed."""
        return int(np.floor(self.max_fraction * self.n + 1e-9))

    def record(self, key: int, sample_id: str, reason: str) -> None:
        """Count sample ``key`` (0..n-1) as skipped, warn, and stop when past the allowed share."""
        flags = self._array()
        k = int(key) % len(flags)
        new = not flags[k]
        flags[k] = 1
        count = int(np.count_nonzero(flags))
        if new:
            self._reasons[str(sample_id)] = reason
            warnings.warn(f"{self.name}: skipped corrupt sample {sample_id}: {reason} "
                          f"({count} of {self.n} skipped so far; limit {self.max_fraction:.2%})",
                          RuntimeWarning, stacklevel=3)
        if count > self.limit:
            raise TooManySkippedError(
                f"{self.name}: {count} of {self.n} samples are corrupt, more than the allowed "
                f"{self.max_fraction:.2%}; last: {sample_id}: {reason}. Re-download or re-extract "
                f"the files of the samples named in the warnings above and run the same command "
                f"again (from Python, handssca.data.build_dataset(..., max_skip=FRACTION) allows "
                f"a larger share).")

    def summary(self) -> str:
        """A one-line summary (and a warning when anything was skipped)."""
        msg = f"{self.name}: {self.count} of {self.n} samples skipped as corrupt"
        if self.count:
            some = ", ".join(list(self._reasons)[:5])
            warnings.warn(msg + (f" (e.g. {some})" if some else ""), RuntimeWarning, stacklevel=2)
        return msg


__all__ = ["DEFAULT_MAX_SKIP", "DatasetLayoutError", "CorruptSampleError", "ImageTooLargeError",
           "TooManySkippedError",
           "require_paths", "SkipCounter"]
