"""Reading annotation files: JSON arrays (cached), YAML, HO3D's pickles, checked values.

Nothing is ever written into a dataset folder. Large JSON annotation files (FreiHAND's
``training_verts.json`` is about 1.5 GB of text) are parsed once and kept as ``.npy`` files in the
cache folder (``$HANDSSCA_CACHE_DIR/data`` or ``~/.cache/handssca/data``), named by the file's
absolute path, size and modification time, and memory-mapped afterwards.

A synthetic root (:mod:`handssca.data.synth`) also holds ``synth_info.json`` with what real
datasets lack (the hand model its annotations fit, per-sample occlusion fractions):
:func:`read_synth_info` reads it, and its absence is how a real dataset is recognised.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import CorruptSampleError

#: JSON files at least this large are cached as .npy (smaller ones are simply parsed).
CACHE_MIN_BYTES = 16 * 2**20
#: side file of a synthetic root with what real datasets lack (per-sample occlusion fraction).
SYNTH_INFO = "synth_info.json"


def cache_folder(cache_dir=None) -> Path:
    """The data cache: ``cache_dir``, else ``$HANDSSCA_CACHE_DIR/data``, else ``~/.cache/handssca/data``."""
    from handssca.hand.mano_file import resolve_cache_dir
    return Path(cache_dir).expanduser() if cache_dir is not None else resolve_cache_dir() / "data"


def file_key(path) -> str:
    """A short digest of a file's absolute path, size and modification time."""
    p = Path(path).resolve()
    st = p.stat()
    return hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def load_json_list(path, item_shape: Sequence[int], *, cache_dir=None, use_cache: bool = True,
                   dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A JSON list of equally shaped numeric entries as one array, and which entries are bad.

    Args:
        path: the JSON file (a list of N entries, each of ``item_shape`` once flattened).
        item_shape: the shape of one entry, e.g. (21, 3); () for scalars.
        cache_dir: where to keep the parsed array (default :func:`cache_folder`).
        use_cache: False parses every time and writes nothing.
        dtype: float32 (default: half the memory) or float64 (the values exactly as Python's
            ``json`` reads them, as the official evaluation scripts compare them).

    Returns:
        (array ``(N, *item_shape)`` of ``dtype`` (entries that could not be read are NaN), bad (N,)
        bool).

    Raises:
        ValueError: the file is not JSON or not a list (the whole file is unusable).
    """
    path = Path(path)
    item_shape = tuple(int(s) for s in item_shape)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"load_json_list: dtype must be float32 or float64, got {dtype}")
    cached = None
    if use_cache and path.stat().st_size >= CACHE_MIN_BYTES:
        cached = cache_folder(cache_dir) / "json" / f"{path.stem}-{file_key(path)}-{dtype.name}.npy"
        if cached.exists():
            arr = np.load(cached, mmap_mode="r")
            if arr.shape[1:] == item_shape and arr.dtype == dtype:
                return arr, ~np.isfinite(arr.reshape(len(arr), -1)).all(1)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of entries of shape {item_shape}, got {type(data).__name__}")
    n = len(data)
    out = np.full((n,) + item_shape, np.nan, dtype=dtype)
    size = int(np.prod(item_shape)) if item_shape else 1
    try:  # fast path: every entry well formed
        arr = np.asarray(data, dtype=dtype).reshape((n,) + item_shape)
        out[:] = arr
    except (TypeError, ValueError):
        for i, entry in enumerate(data):
            try:
                a = np.asarray(entry, dtype=dtype)
            except (TypeError, ValueError):
                continue
            if a.size == size:
                out[i] = a.reshape(item_shape)
    del data
    bad = ~np.isfinite(out.reshape(n, -1)).all(1) if n else np.zeros(0, bool)
    if cached is not None:
        from handssca.utils import atomic_path
        with atomic_path(cached, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, out)
        out = np.load(cached, mmap_mode="r")
    return out, bad


def load_yaml(path) -> dict:
    """A YAML file as a dict (raises CorruptSampleError when it cannot be read)."""
    import yaml
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as e:
        raise CorruptSampleError(f"{path}: unreadable YAML ({e})") from None
    if not isinstance(data, dict):
        raise CorruptSampleError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def load_pickle(path) -> dict:
    """One HO3D ``meta/*.pkl`` (a Python-2 pickle of a dict of numpy arrays, read as latin-1).

    Read with the restricted unpickler of :mod:`handssca.hand.mano_file` (numpy arrays and plain
    Python values only: a pickle can otherwise run arbitrary code).

    Raises:
        CorruptSampleError: unreadable, or not a dict.
    """
    from handssca.hand.mano_file import RestrictedUnpickler
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        data = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CorruptSampleError(f"{path}: unreadable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CorruptSampleError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return data


def load_npz(path, keys: Sequence[str]) -> dict:
    """Some arrays of an ``.npz`` (raises CorruptSampleError when unreadable or a key is missing)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in keys}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CorruptSampleError(f"{path}: unreadable or incomplete npz ({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 - zipfile.BadZipFile and friends
        raise CorruptSampleError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None


def listdir_sorted(path) -> list[str]:
    """Names in a folder, sorted (as the DexYCB toolkit lists sequences)."""
    return sorted(os.listdir(path))


def read_synth_info(root) -> dict | None:
    """The side file ``synth_info.json`` of a synthetic root, or None when absent (real data)."""
    p = Path(root) / SYNTH_INFO
    if not p.exists():
        return None
    try:
        with open(p, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as e:
        warnings.warn(f"{p}: unreadable ({e}); occlusion fractions unknown", RuntimeWarning, stacklevel=2)
        return None
    return info if isinstance(info, dict) else None


def occlusion_from_info(info: dict | None, image_keys: Sequence[str]) -> np.ndarray:
    """Per-sample occlusion fractions from ``synth_info.json`` (its ``samples`` entry, keyed by the
    image path relative to the root, "/"-separated); NaN when unknown (real datasets)."""
    out = np.full(len(image_keys), np.nan)
    samples = (info or {}).get("samples")
    if not isinstance(samples, dict):
        return out
    for i, key in enumerate(image_keys):
        entry = samples.get(key)
        occ = entry.get("occlusion") if isinstance(entry, dict) else None
        if occ is not None:
            out[i] = float(occ)
    return out


def as_array(value, shape: Sequence[int], what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (raises :class:`CorruptSampleError`)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CorruptSampleError(f"{what}: not numeric ({e})") from None
    if a.size == int(np.prod(shape)) and a.shape != tuple(shape):
        a = a.reshape(shape)
    if a.shape != tuple(shape):
        raise CorruptSampleError(f"{what}: expected shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise CorruptSampleError(f"{what}: contains NaN or infinite values")
    return a
