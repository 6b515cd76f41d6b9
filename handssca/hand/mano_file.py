"""Reading ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` as distributed, without chumpy, safely.

The files are Python-2 pickles of a dict. Most entries are numpy arrays; ``J_regressor`` is a
``scipy.sparse`` csc matrix; some entries (``shapedirs`` among them) are ``chumpy.ch.Ch`` objects,
whose pickled state holds the array under ``'x'``. chumpy is unmaintained and does not install on
current Python/numpy, so the file is read by a restricted unpickler that

- resolves only numpy's array/dtype reconstructors, scipy.sparse matrices (read as plain data),
  Python's ``set``/``frozenset``/``object`` and the two pickle helpers (``copy_reg._reconstructor``,
  latin-1 ``_codecs.encode``),
- maps every ``chumpy.*`` class to a stand-in that keeps its state and yields the array 'x',
- refuses everything else (a pickle can otherwise run arbitrary code).

The arrays are then checked against MANO's layout and cached as ``.npz`` (no pickle inside) under
the cache directory, named by the SHA-256 of the file, so the next load reads the ``.npz``. The
cache lives outside the repository (``$HANDSSCA_CACHE_DIR`` or ``~/.cache/handssca``): nothing of
MANO is ever written into the repository.
"""
from __future__ import annotations

import codecs
import copyreg
import hashlib
import io
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..utils import atomic_path
from .joints import MANO_PARENTS

ENV_CACHE_DIR = "HANDSSCA_CACHE_DIR"
CACHE_VERSION = 1

#: the arrays a MANO-format model must hold, and their shapes (None: any size)
N_VERTS, N_FACES, N_JOINTS = 778, 1538, 16
REQUIRED = {
    "v_template": (N_VERTS, 3),
    "f": (N_FACES, 3),
    "J_regressor": (N_JOINTS, N_VERTS),
    "kintree_table": (2, N_JOINTS),
    "weights": (N_VERTS, N_JOINTS),
    "shapedirs": (N_VERTS, 3, None),
    "posedirs": (N_VERTS, 3, 135),
    "hands_components": (None, 45),
    "hands_mean": (45,),
}
OPTIONAL = ("J", "hands_coeffs", "bs_style", "bs_type")


class ManoFileError(ValueError):
    """A MANO file that cannot be read or does not hold what MANO holds."""


# ----------------------------------------------------------------------------------------------
# restricted unpickling
# ----------------------------------------------------------------------------------------------
class _ChumpyStandIn:
    """Takes the place of any chumpy class; keeps the pickled state (the array is under 'x')."""

    def __init__(self, *args, **kwargs):  # construction arguments are ignored
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


def _chumpy_class(name: str):
    return type(name, (_ChumpyStandIn,), {"chumpy_name": name})


class _SparseStandIn:
    """Takes the place of a scipy.sparse matrix class; rebuilt from (data, indices, indptr)."""

    fmt = "csc"

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}


def _sparse_class(fmt: str):
    return type(f"{fmt}_standin", (_SparseStandIn,), {"fmt": fmt})


def _latin1_encode(obj, encoding="latin1", *args):
    """``_codecs.encode`` as Python 3 pickles bytes under protocol 2, latin-1 only."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, "latin1")


def _numpy_attr(modules, name):
    import importlib
    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(name)


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
_SPARSE_FORMATS = {"csc_matrix": "csc", "csr_matrix": "csr", "coo_matrix": "coo",
                   "csc_array": "csc", "csr_array": "csr", "coo_array": "coo"}
_BUILTINS = {"set": set, "frozenset": frozenset, "object": object, "complex": complex,
             "slice": slice}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads numpy/scipy.sparse data and chumpy stand-ins, and nothing else."""

    def find_class(self, module: str, name: str):
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return _numpy_attr(_MULTIARRAY, name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_attr(_NUMERIC, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            import numpy.dtypes as nd
            if hasattr(nd, name):
                return getattr(nd, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_FORMATS:
            return _sparse_class(_SPARSE_FORMATS[name])
        if module == "chumpy" or module.startswith("chumpy."):
            return _chumpy_class(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a MANO file holds only numpy "
                                     "arrays, scipy.sparse matrices and chumpy arrays")


def _to_plain(obj, key: str, file: Path):
    """Replace stand-ins by numpy arrays / scipy.sparse matrices."""
    if isinstance(obj, _ChumpyStandIn):
        x = obj.state.get("x")
        if x is None:
            raise ManoFileError(f"{file}: entry {key!r} is a chumpy.{obj.chumpy_name} without a plain array "
                                "'x' (expected the chumpy.ch.Ch objects of the MANO release)")
        return _to_plain(x, key, file)
    if isinstance(obj, _SparseStandIn):
        st = obj.state
        shape = st.get("_shape", st.get("shape"))
        try:
            if obj.fmt in ("csc", "csr"):
                cls = sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix
                return cls((np.asarray(st["data"]), np.asarray(st["indices"]), np.asarray(st["indptr"])),
                           shape=tuple(shape))
            coords = st.get("coords") or (st["row"], st["col"])
            return sp.coo_matrix((np.asarray(st["data"]), tuple(np.asarray(c) for c in coords)),
                                 shape=tuple(shape))
        except (KeyError, TypeError, ValueError) as e:
            raise ManoFileError(f"{file}: entry {key!r} is a broken scipy.sparse matrix ({e})") from None
    return obj


def unpickle_mano(raw: bytes, file: Path | str = "<bytes>") -> dict:
    """Unpickle the bytes of a MANO pickle with :class:`RestrictedUnpickler` into plain arrays.

    Raises:
        ManoFileError: not a pickle, a refused class, or not a dict.
    """
    file = Path(file)
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise ManoFileError(f"{file}: not a loadable MANO pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, ImportError,
            UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise ManoFileError(f"{file}: not a readable MANO pickle, the file is corrupt or of another kind "
                            f"({type(e).__name__}: {e}); expected MANO_RIGHT.pkl / MANO_LEFT.pkl as "
                            "distributed by mano.is.tue.mpg.de") from None
    if not isinstance(obj, dict):
        raise ManoFileError(f"{file}: holds a {type(obj).__name__}, expected the dict of a MANO model")
    return {str(k): _to_plain(v, str(k), file) for k, v in obj.items()}


# ----------------------------------------------------------------------------------------------
# validation and conversion
# ----------------------------------------------------------------------------------------------
def validate_mano_data(data: dict, file: Path | str = "<data>") -> dict:
    """Check a MANO-format dict and return it with plain arrays (J_regressor dense float64).

    Raises:
        ManoFileError: naming the file, the entry and what was expected.
    """
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ManoFileError(f"{file}: not a MANO model, missing {missing}; expected the keys "
                            f"{sorted(REQUIRED)} of MANO_RIGHT.pkl / MANO_LEFT.pkl")
    out = {}
    for key, shape in REQUIRED.items():
        val = data[key]
        try:
            arr = val.toarray() if sp.issparse(val) else np.asarray(val)
        except Exception as e:  # noqa: BLE001 - report any conversion failure with its entry
            raise ManoFileError(f"{file}: entry {key!r} is not an array ({e})") from None
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok or arr.dtype.kind not in "fiu":
            want = "x".join("N" if s is None else str(s) for s in shape)
            raise ManoFileError(f"{file}: entry {key!r} has shape {arr.shape} and dtype {arr.dtype}, "
                                f"expected {want} numbers (the MANO hand: {N_VERTS} vertices, "
                                f"{N_FACES} faces, {N_JOINTS} joints)")
        if not np.all(np.isfinite(arr)):
            raise ManoFileError(f"{file}: entry {key!r} holds NaN or infinite values")
        out[key] = arr
    f = out["f"]
    if f.min() < 0 or f.max() >= N_VERTS:
        raise ManoFileError(f"{file}: faces index vertices {f.min()}..{f.max()}, expected 0..{N_VERTS - 1}")
    out["f"] = f.astype(np.int64)
    parents = out["kintree_table"][0].astype(np.int64)
    parents = np.where(parents >= N_JOINTS, -1, parents)
    if tuple(parents[1:]) != tuple(MANO_PARENTS[1:]):
        raise ManoFileError(f"{file}: kintree_table parents {parents.tolist()} differ from MANO's "
                            f"{list(MANO_PARENTS)}")
    out["kintree_table"] = np.stack([parents, np.arange(N_JOINTS)])
    if out["hands_components"].shape[0] < 1:
        raise ManoFileError(f"{file}: hands_components is empty, expected (45, 45)")
    if out["shapedirs"].shape[2] < 1:
        raise ManoFileError(f"{file}: shapedirs has no shape direction, expected (778, 3, 10)")
    for key in ("J", "hands_coeffs"):
        if key in data:
            out[key] = np.asarray(data[key].toarray() if sp.issparse(data[key]) else data[key], dtype=np.float64)
    for key in ("bs_style", "bs_type"):
        if isinstance(data.get(key), str):
            out[key] = data[key]
    for key in list(out):
        if isinstance(out[key], np.ndarray) and out[key].dtype.kind == "f":
            out[key] = out[key].astype(np.float64)
    return out


#: joints of MANO's order used to tell the hands apart: the wrist and the four finger MCPs
_WRIST, _MCPS = 0, (1, 4, 7, 10)
#: the wrist lies this far (metres) from the MCPs along x in either hand (about 0.09 in MANO);
#: a smaller offset is no evidence either way
_SIDE_MIN_OFFSET = 0.03


def hand_side(data: dict) -> str | None:
    """"right" or "left": which hand a MANO-format dict holds, read from its content; None when
    the template does not say.

    MANO_RIGHT.pkl and MANO_LEFT.pkl share MANO's canonical frame and are mirror images of each
    other in x: the right hand's fingers point along -x, its wrist joint about 0.09 m on the +x
    side of the finger MCPs; the left hand's the other way. (The procedural hand follows the
    same frame.) The sign of the wrist's x offset from the MCPs at the zero pose, with the joints
    regressed from the template, tells the hands apart.
    """
    reg = data["J_regressor"]
    reg = reg.toarray() if sp.issparse(reg) else np.asarray(reg, dtype=np.float64)
    joints = reg @ np.asarray(data["v_template"], dtype=np.float64)
    offset = joints[_WRIST, 0] - joints[list(_MCPS), 0].mean()
    if abs(offset) < _SIDE_MIN_OFFSET:
        return None
    return "right" if offset > 0 else "left"


def check_hand_side(data: dict, expected: str, file) -> None:
    """Raise :class:`ManoFileError` when ``data`` (read from ``file``) holds the other hand than
    ``expected`` ("right" or "left"), e.g. MANO_LEFT.pkl saved as MANO_RIGHT.pkl."""
    found = hand_side(data)
    if found is None or found == expected:
        return
    raise ManoFileError(
        f"{file}: expected a {expected} hand, but the file holds a {found} hand (in MANO's frame "
        f"its fingers point along {'-x' if found == 'right' else '+x'} from the wrist, as in "
        f"MANO_{found.upper()}.pkl); it looks like MANO_{found.upper()}.pkl saved under another "
        f"name. Put the {expected} hand's file, MANO_{expected.upper()}.pkl from "
        f"mano.is.tue.mpg.de, in its place (see data/README.md)")


# ----------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------
def resolve_cache_dir(cache_dir=None) -> Path:
    """The cache folder: the argument, ``$HANDSSCA_CACHE_DIR``, or ``~/.cache/handssca``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "handssca"


def _save_npz(path: Path, data: dict) -> None:
    arrays = {k: (np.asarray(v) if not isinstance(v, str) else np.array(v)) for k, v in data.items()}
    with atomic_path(path) as tmp:  # atomic: a reader never sees half a file
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: (str(z[k]) if z[k].dtype.kind == "U" else z[k]) for k in z.files}


def load_mano_data(file, *, cache_dir=None, use_cache: bool = True) -> dict:
    """Read a MANO file (``.pkl`` as distributed, or ``.npz``) into a checked MANO-format dict.

    The ``.pkl`` is converted once and cached as ``<cache>/mano/<name>-<sha256[:16]>.npz``; a
    broken cache entry is rebuilt. If the cache folder cannot be written, the file is still read.

    Args:
        file: path of ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl`` or a ``.npz`` of the same arrays.
        cache_dir: the cache folder (see :func:`resolve_cache_dir`).
        use_cache: read and write the cache.

    Raises:
        FileNotFoundError: no such file. ManoFileError: unreadable, refused, or not MANO's layout.
    """
    file = Path(file).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"MANO file {file} not found (expected MANO_RIGHT.pkl / MANO_LEFT.pkl "
                                "from mano.is.tue.mpg.de, see data/README.md)")
    if file.suffix == ".npz":
        try:
            data = _load_npz(file)
        except Exception as e:  # noqa: BLE001 - any failure means a broken file
            raise ManoFileError(f"{file}: not a readable .npz of MANO arrays ({type(e).__name__}: {e})") from None
        return validate_mano_data(data, file)
    raw = file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = resolve_cache_dir(cache_dir) / "mano" / f"{file.stem}-{digest}-v{CACHE_VERSION}.npz"
    if use_cache and target.is_file():
        try:
            return validate_mano_data(_load_npz(target), target)
        except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt from the pickle
            pass
    data = validate_mano_data(unpickle_mano(raw, file), file)
    if use_cache:
        try:
            _save_npz(target, data)
        except OSError:
            pass  # a read-only cache folder only costs the conversion next time
    return data
