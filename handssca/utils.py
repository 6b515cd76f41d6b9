"""Small shared utilities: atomic writes, progress bars, provenance, project paths.

Everything the user has is written atomically (a temporary file in the same folder, then
``os.replace``), so a killed run never leaves a half-written checkpoint, result or dataset file;
the files get the permissions an ordinary write gives (the umask's), not a temporary file's 0600.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import disk_full_error

#: set by the book runner (and CI): progress bars off, nothing interactive.
NONINTERACTIVE_ENV = "HANDSSCA_NONINTERACTIVE"


# ----------------------------------------------------------------------------- atomic writes
def _new_temp_file(path: Path, suffix: str) -> Path:
    """Create a new, empty file with a random name beside ``path`` and return its path.

    It is opened with mode 0o666 and ``O_EXCL``, so the operating system applies the umask (and
    a folder's default ACL) exactly as it does for an ordinary ``open(path, "w")``; the renamed
    file then has the mode an ordinary write would give it (``tempfile.mkstemp`` would create it
    0600, and ``os.replace`` keeps that). Reading the umask instead (``os.umask`` sets it to
    read it) would change it for every thread of the process for a moment. ``O_EXCL`` never
    follows a link planted under the name, and a name taken is simply drawn again.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}: 100 random names "
                          f"were all taken; remove the .{path.name}.* files there")


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    The temporary file exists (empty) when yielded; write it by name. The file ends with the
    permissions an ordinary write gives (0o666 less the umask, as the new file got them), so
    checkpoints, results and datasets in a lab's shared folder are readable as the umask says.
    On an exception the temporary file is removed and ``path`` is left as it was; a full disk
    becomes a :class:`~handssca.errors.DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path, suffix)
    mode = stat.S_IMODE(tmp.stat().st_mode)  # what an ordinary write gets here
    try:
        yield tmp
        # some writers replace the file instead of writing into it (safetensors creates its own,
        # 0600): it gets the ordinary mode back
        if tmp.exists() and stat.S_IMODE(tmp.stat().st_mode) != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        # a full disk surfaces as ENOSPC or as torch's "unexpected pos": say which file and why
        full = disk_full_error(exc, path)
        if full is not None:
            raise full from exc
        raise


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


class OutputExistsError(ValueError):
    """An output file exists already and replacing it was not asked for (the message names it)."""


def refuse_existing(paths: Iterable, how: str = "pass --overwrite") -> None:
    """Raise :class:`OutputExistsError` naming the first of ``paths`` that exists (and how many
    do): a command never replaces a file in a folder the user chose unless told to."""
    found = [Path(p) for p in paths if Path(p).exists() or Path(p).is_symlink()]
    if found:
        more = f" (and {len(found) - 1} more of its outputs)" if len(found) > 1 else ""
        raise OutputExistsError(f"{found[0]} exists already{more}; {how} to replace it, or "
                                f"choose another --out")


def write_json_atomic(path, payload: Any, indent: int = 2) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (numpy scalars/arrays converted)."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, default=_json_default) + "\n")


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    return str(o)


def require_folder(path, option: str = "--out", expected: str = "a folder") -> Path:
    """``path`` as a Path; ValueError when it, or a folder above it, is a file (it could not
    hold the files to write). ``option`` and ``expected`` word the message."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"lies under {p}, which is a file"
                raise ValueError(f"{option} {path} {what}; expected {expected}. Choose another "
                                 f"{option}")
            break
    return path


# ----------------------------------------------------------------------------- progress bars
def interactive() -> bool:
    """True when a person is watching: a terminal or a live notebook, and not the book build."""
    if os.environ.get(NONINTERACTIVE_ENV, "") not in ("", "0"):
        return False
    if os.environ.get("PAPERMILL_EXECUTION") or "papermill" in sys.modules:
        return False
    try:
        from IPython import get_ipython
        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return sys.stderr.isatty()


def progress(iterable: Optional[Iterable] = None, **kwargs):
    """A ``tqdm`` progress bar (a widget in a notebook when ipywidgets is installed, text
    otherwise) that is off when nobody watches (book build, CI, logs)."""
    try:  # a notebook widget where widgets can render, a text bar otherwise
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm

    kwargs.setdefault("disable", not interactive())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


# ----------------------------------------------------------------------------- provenance
def repo_root() -> Path:
    """The project folder: ``$HANDSSCA_HOME``, else the nearest parent holding ``_config.yml``
    and ``handssca/``, else the folder above the installed package."""
    env = os.environ.get("HANDSSCA_HOME")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            if (p / "_config.yml").exists() and (p / "handssca").is_dir():
                return p
    return Path(__file__).resolve().parent.parent


def git_commit(root: Optional[Path] = None) -> str:
    """The current commit (with ``+dirty`` when the work tree has changes), or ``unknown``."""
    root = root or repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_info() -> dict:
    """Versions and hardware for provenance records: python, torch, device, CPU, cores."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def build_dir() -> Path:
    """Where builds, benchmark and result files go: ``$HANDSSCA_BUILD_DIR``, else ``_build/``."""
    env = os.environ.get("HANDSSCA_BUILD_DIR")
    return Path(env).resolve() if env else repo_root() / "_build"


def shown_path(path) -> str:
    """A path as a page prints it: relative to the repository (``runs/...``,
    ``data/synth/...``), else ``<build>/...`` inside the build folder, else as given.

    The book is built on one machine and read on another: an absolute path names a folder of
    the machine that built it, which the reader does not have.
    """
    p = Path(path)
    for base, prefix in ((repo_root(), ""), (build_dir(), "<build>/")):
        try:
            return prefix + str(p.resolve().relative_to(Path(base).resolve()))
        except ValueError:
            continue
    return str(p)


def results_dir() -> Path:
    """Result files of this build's chapters (JSON with provenance): ``<build>/results``."""
    return build_dir() / "results"
