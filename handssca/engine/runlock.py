"""One writer per run folder: an advisory lock that ``train`` holds while it writes a run.

Two ``train`` processes writing into one run folder would corrupt each other's run (one's
checkpoint clean-up removes the other's files, their ``last.json`` and ``metrics.jsonl``
interleave). :func:`run_lock` takes an exclusive ``flock`` on ``<run>/.lock`` and writes the
holder's PID into it; a second process is refused at once with :class:`RunFolderInUseError`,
which names that PID.

The lock belongs to the open file, not to the file's existence: the kernel releases it when the
holder exits in any way (SIGKILL and power loss included), so a dead run never leaves a stale
lock behind, and the file itself is left in place (removing it would let a third process lock a
new file while a second still holds the old one). DataLoader workers forked by the holder share
its open file, so the lock lasts until they too have exited (a few seconds after a SIGKILL of
their parent).

``flock`` is POSIX: where the platform lacks it (Windows), the lock is a no-op.
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator, Optional

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunFolderInUseError(RuntimeError):
    """Another process holds a run folder's lock (the message names the folder and its PID)."""


def lock_path(run) -> Path:
    """The lock file of a run folder."""
    return Path(run) / LOCK_FILE


def lock_holder(run) -> Optional[str]:
    """What the lock file of a run folder says about its holder ("PID n on host"), or None."""
    try:
        text = lock_path(run).read_text().strip()
    except OSError:
        return None
    return text or None


@contextlib.contextmanager
def run_lock(run) -> Iterator[Path]:
    """Hold the exclusive lock of the run folder ``run`` (created if absent) for the block.

    Raises:
        RunFolderInUseError: another process holds it; refused at once, not waited for (a
            training run may hold it for hours).
    """
    folder = Path(run)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - no advisory locks on this platform
        yield folder
        return
    fd = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(folder) or "a process that has not written its PID yet"
            raise RunFolderInUseError(
                f"run folder {folder} is in use by {holder} (another train process writes "
                f"into it); wait for that process to end, or choose another --out") from None
        # the holder's PID, for the message above; rewritten in place, under the lock
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode())
        try:
            yield folder
        finally:
            os.ftruncate(fd, 0)  # no holder any more (the lock itself goes with the close)
    finally:
        os.close(fd)
