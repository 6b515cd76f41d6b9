"""Errors of the package that the command line turns into one line and exit status 2.

Every message names the file or value, says what was expected and what to do. The data errors
(a wrong layout, corrupt samples) live in :mod:`handssca.data.errors`; the ones here concern the
package's own files and runs:

- :class:`DiskFullError`: a write failed because the disk is full (the file being written is
  named; atomic writes leave the previous version of the file as it was);
- :class:`DamagedFileError`: a file the package wrote (a run's ``run.json``, a checkpoint's
  ``last.json``, a weights file) cannot be read any more;
- :class:`UnsafeFileError`: a file that should hold only tensors holds other objects and was not
  loaded, because loading it could run code;
- :class:`TrainingDivergedError`: the training loss became NaN or infinite.

Each is also a subclass of the built-in exception that code catching the old behaviour expects
(``OSError``, ``ValueError``, ``FloatingPointError``).
"""
from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any, Optional

#: errno values that mean "no room left": a full disk, or a full quota
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
#: what torch.save and safetensors say when the file system refuses their writes
_NO_SPACE_TEXT = ("unexpected pos", "file write failed", "StorageFull", "No space left",
                  "os error 28", "code: 28")


class HandsscaError(Exception):
    """Base of the package's errors that the command line prints as ``error: <message>``."""


class DiskFullError(HandsscaError, OSError):
    """A write failed because the disk (or the user's quota) is full; the message names the file."""

    def __str__(self) -> str:
        # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)


class DamagedFileError(HandsscaError, ValueError):
    """A file the package wrote cannot be read (truncated or overwritten); the message names it
    and says how to recover."""


class UnsafeFileError(HandsscaError, ValueError):
    """A file that should hold only tensors, numbers and strings holds other objects; it was not
    loaded, because unpickling them could run code."""


class TrainingDivergedError(HandsscaError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step, the value and what
    to change."""


def disk_full_error(exc: BaseException, path) -> Optional[DiskFullError]:
    """The :class:`DiskFullError` for ``exc`` raised while writing ``path``, or None when ``exc``
    is not a full disk.

    A full disk shows as an ``OSError`` with ``errno.ENOSPC`` (or ``EDQUOT``) from Python's own
    writes, as torch.save's ``RuntimeError`` ("inline_container.cc ... unexpected pos" or
    "file write failed") and as safetensors' error naming ``StorageFull`` / os error 28.
    """
    if isinstance(exc, DiskFullError):
        return None  # already translated by an inner write
    if isinstance(exc, OSError):
        full = exc.errno in _NO_SPACE
    else:
        # torch and safetensors report the failed write in text only
        full = (isinstance(exc, RuntimeError) or type(exc).__name__ == "SafetensorError") and \
            any(t in str(exc) for t in _NO_SPACE_TEXT)
    if not full:
        return None
    path = Path(path)
    return DiskFullError(
        errno.ENOSPC,
        f"{path}: the disk is full (no space left on the device) while writing this file; the "
        f"previous version of it, if any, is left intact. Free space on the disk holding "
        f"{path.parent} (or write to another folder) and run the same command again")


def read_json(path, remedy: Optional[str] = None) -> Any:
    """The content of a JSON file the package wrote; :class:`DamagedFileError` names the file
    when it is not valid JSON (truncated, overwritten, not text).

    Args:
        path: the file (FileNotFoundError when it is absent, as ``open`` raises it).
        remedy: what the user can do about a damaged file (default: restore it from a backup or
            delete it so that the package writes it again).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        where = (f" at line {exc.lineno} column {exc.colno}"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise DamagedFileError(
            f"{path} is damaged: not valid JSON ({getattr(exc, 'msg', exc)}{where}); it was "
            f"truncated or overwritten. "
            f"{remedy or 'Restore it from a backup, or delete it so that it is written again'}"
        ) from None


__all__ = ["HandsscaError", "DiskFullError", "DamagedFileError", "UnsafeFileError",
           "TrainingDivergedError", "disk_full_error", "read_json"]
