"""The generator's machinery shared by the three styles: file encoders (deterministic bytes),
atomic writes, the output folder's state (refusal, overwrite, resume), stage timings, and the
loop that runs a style's work units.

Determinism: every file's bytes depend only on (style, seed, n, options, hand model). JPEG and PNG
come from OpenCV with fixed parameters, ``.npz`` archives are written with fixed timestamps
(``numpy.savez`` stamps the current time), pickles with protocol 2, YAML and JSON with fixed key
order. ``synth_info.json`` holds no time or path.

Ownership: every file the generator writes is listed in ``synth_files.txt`` before it is written
(and the list is rewritten sorted at the end, so its bytes too depend only on the arguments);
``overwrite`` deletes only the listed files, and refuses a folder that holds anything else.

Resumption: a work unit (one sample, one frame, or one DexYCB frame seen by all its cameras)
writes its files atomically (a temporary file, then a rename), then a small record
``.synth_partial/<unit>.json``. A rerun with the same arguments skips units whose record exists;
the aggregate files (annotation lists, split lists, the final ``synth_info.json``) are written
last, and ``.synth_partial/`` is removed once everything is written.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import time
import zipfile
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import yaml

from handssca.utils import atomic_path

GENERATOR = "handssca.data.synth"
#: bumped whenever the bytes written for the same arguments change
GENERATOR_VERSION = "2.1"
INFO_FILE = "synth_info.json"
PARTIAL_DIR = ".synth_partial"
#: the files the generator wrote into the folder, one "/"-separated relative path a line
MANIFEST_FILE = "synth_files.txt"
STAGES = ("pose", "render", "compose", "encode", "write")


# ----------------------------------------------------------------------------- encoders
def jpeg_bytes(rgb: np.ndarray, quality: int = 92) -> bytes:
    """RGB (H, W, 3) or grey (H, W) uint8 -> JPEG bytes (OpenCV, baseline, 4:2:0)."""
    img = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


#: PNG settings per content (zlib level 1; the filter and strategy that are fastest for about the
#: same size): photographs, smooth depth maps, flat label maps
_PNG_MODES = {
    "photo": [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB],
    "depth": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB],
    "labels": [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE],
}


def png_bytes(img: np.ndarray, rgb: bool = True, mode: str = "photo") -> bytes:
    """uint8/uint16 image -> PNG bytes (zlib level 1). ``rgb``: a 3-channel input is RGB (stored
    as PNG's RGB); False: the array is already in OpenCV's BGR channel order. ``mode``: "photo",
    "depth" or "labels" (the encoder's filter and strategy; any PNG reader reads them all)."""
    if img.ndim == 3 and rgb:
        img = img[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 1] + _PNG_MODES[mode])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def npz_bytes(arrays: dict, compressed: bool = True) -> bytes:
    """A ``.npz`` archive (what ``numpy.savez_compressed`` writes, readable by ``numpy.load``) with
    fixed member timestamps, so the bytes are reproducible."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def pickle_bytes(obj: Any) -> bytes:
    """Pickle with protocol 2 (readable by Python 2 and 3, as HO3D's files are)."""
    return pickle.dumps(obj, protocol=2)


def yaml_text(obj: Any) -> str:
    """YAML in a fixed key order (the order of the dict)."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=1000)


def obj_text(vertices: np.ndarray, faces: np.ndarray, name: str = "") -> str:
    """A Wavefront OBJ (metres, faces 1-based, counter-clockwise outwards)."""
    lines = [f"# {name} (synthetic stand-in, metres)"] if name else []
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, dtype=np.float64)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces, dtype=np.int64)]
    return "\n".join(lines) + "\n"


def json_compact(obj: Any) -> str:
    """Compact JSON (no spaces), as the FreiHAND files are written."""
    return json.dumps(obj, separators=(",", ":"))


def rounded(a, decimals: int = 8):
    """A numpy array as nested lists of floats rounded to ``decimals`` (compact JSON)."""
    return np.round(np.asarray(a, dtype=np.float64), decimals).tolist()


# ----------------------------------------------------------------------------- writing
def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


class Timer:
    """Seconds spent per stage ("pose", "render", "compose", "encode", "write")."""

    def __init__(self):
        self.totals = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.totals[stage] += time.perf_counter() - t


class Manifest:
    """The list of the files the generator wrote into a folder (:data:`MANIFEST_FILE`).

    A name is appended before its file is written, so a generation killed at any moment leaves
    none of its files unlisted (a listed name whose file never came is harmless); a resumed
    generation appends to the same list. :meth:`finish` rewrites it sorted and without
    repeats."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_FILE
        self._listed: Optional[set] = None  # read at the first use: after the folder's checks

    def listed(self) -> set:
        """The names listed so far (by this generation and any it resumes)."""
        if self._listed is None:
            self._listed = set(read_manifest(self.root) or ())
        return self._listed

    def claim(self, rel: str) -> None:
        """List the file ``rel`` ("/"-separated, relative to the folder) as the generator's."""
        if rel in self.listed():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(rel + "\n")
        self._listed.add(rel)

    def finish(self) -> None:
        """Rewrite the list sorted, one name once (atomically)."""
        write_text(self.path, "".join(name + "\n" for name in sorted(self.listed())))


def read_manifest(root: Path) -> Optional[list]:
    """The names listed in a folder's :data:`MANIFEST_FILE`, or None when it has none."""
    try:
        text = (Path(root) / MANIFEST_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return [line for line in text.splitlines() if line]


class FileWriter:
    """Encodes and writes a unit's files, timing the two apart, and lists each one in the
    folder's :class:`Manifest` first."""

    def __init__(self, root: Path, timer: Timer):
        self.root = Path(root)
        self.timer = timer
        self.manifest = Manifest(self.root)

    def bytes(self, rel: str, data: bytes) -> None:
        """Write bytes to ``root / rel`` atomically ("write" stage)."""
        with self.timer("write"):
            self.manifest.claim(rel)
            write_bytes(self.root / rel, data)

    def encoded(self, rel: str, encode, *args, **kwargs) -> None:
        """Encode with ``encode(*args, **kwargs)`` ("encode" stage), then write."""
        with self.timer("encode"):
            data = encode(*args, **kwargs)
        self.bytes(rel, data)

    def text(self, rel: str, text: str) -> None:
        """Write UTF-8 text to ``root / rel`` atomically."""
        self.bytes(rel, text.encode("utf-8"))


# ----------------------------------------------------------------------------- occlusion
def occlusion_record(visible: np.ndarray, amodal: Optional[np.ndarray]) -> dict:
    """The occlusion of the hand in one image, from its masks.

    Args:
        visible: (H, W) bool, hand pixels seen in the full rendering.
        amodal: (H, W) bool, hand pixels of the hand rendered alone (None: no hand).

    Returns:
        {"occlusion": 1 - visible/amodal (None without hand pixels), "hand_px", "visible_px"}.
    """
    if amodal is None:
        return {"occlusion": None, "hand_px": 0, "visible_px": 0}
    hand = int(amodal.sum())
    vis = int((visible & amodal).sum())
    return {"occlusion": (round(1.0 - vis / hand, 6) if hand else None), "hand_px": hand, "visible_px": vis}


def occlusion_summary(samples: dict) -> dict:
    """Mean, median, quartiles and counts of the per-image occlusion fractions."""
    occ = np.array([s["occlusion"] for s in samples.values() if s.get("occlusion") is not None], dtype=float)
    if occ.size == 0:
        return {"count": 0}
    q = np.quantile(occ, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"count": int(occ.size), "mean": round(float(occ.mean()), 6),
            "p10": round(float(q[0]), 6), "p25": round(float(q[1]), 6), "median": round(float(q[2]), 6),
            "p75": round(float(q[3]), 6), "p90": round(float(q[4]), 6),
            "share_above_0.1": round(float((occ > 0.1).mean()), 6)}


# ----------------------------------------------------------------------------- the folder's state
@dataclass
class Unit:
    """One work unit: ``key`` names its record; ``data`` is what the style needs to run it."""

    key: str
    data: Any = None


@dataclass
class SynthResult:
    """What :func:`handssca.data.synth.generate` returns.

    Attributes:
        out: the dataset folder. style, seed, n: as asked.
        info: the content of ``synth_info.json``.
        units: work units in the dataset; generated: those generated by this call (the rest were
            already there: a resumed run).
        renders: hand/scene renderings made by this call (one per image of a distinct view).
        images: colour image files written by this call (FreiHAND: 4 versions per training sample).
        seconds: wall time of this call. timings: seconds per stage ("pose", "render", "compose",
            "encode", "write", and "other").
    """

    out: Path
    style: str
    seed: int
    n: int
    info: dict
    units: int = 0
    generated: int = 0
    renders: int = 0
    images: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


def read_info(out: Path) -> Optional[dict]:
    """``synth_info.json`` of a folder, or None (missing or unreadable)."""
    try:
        return json.loads((Path(out) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


_IDENTITY_KEYS = ("generator", "generator_version", "style", "seed", "n", "options", "hand_model")


def prepare_folder(out: Path, identity: dict, overwrite: bool) -> bool:
    """Check the output folder against the dataset to be written; clear it if asked.

    Returns:
        True when the folder already holds this very dataset, complete (nothing to do).

    Raises:
        NotADirectoryError: ``out`` is a file.
        FileExistsError: a non-empty folder that is not a synthetic dataset (never cleared, even
            with ``overwrite``), or one of another style/seed/size/options without ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"synth: --out {out} is a file; expected a folder (new or empty)")
    if not out.exists() or not any(out.iterdir()):
        return False
    info = read_info(out)
    if info is None or info.get("generator") != GENERATOR:
        raise FileExistsError(
            f"synth: {out} is not empty and holds no {INFO_FILE} of a synthetic dataset; refusing to write "
            f"into it (this is never overridden: choose a new or empty folder)")
    same = all(info.get(k) == identity.get(k) for k in _IDENTITY_KEYS)
    if same:
        return bool(info.get("complete"))
    if not overwrite:
        have = {k: info.get(k) for k in ("style", "seed", "n", "options", "generator_version")}
        want = {k: identity.get(k) for k in ("style", "seed", "n", "options", "generator_version")}
        hm = (info.get("hand_model") or {}).get("kind"), identity["hand_model"]["kind"]
        raise FileExistsError(
            f"synth: {out} holds another synthetic dataset ({have}, hand model {hm[0]!r}) than the one asked "
            f"for ({want}, hand model {hm[1]!r}); pass --overwrite (overwrite=True) to replace it")
    remove_generated(out)
    return False


#: what an atomic write leaves behind when killed: ".<name>.<8 characters of mkstemp>.tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: a unit's record in PARTIAL_DIR (:func:`partial_path`)
_RECORD_NAME = re.compile(rf"^{re.escape(PARTIAL_DIR)}/\d{{8}}\.json$")


def _is_generated(rel: str, listed: set) -> bool:
    """Whether the file ``rel`` (relative, "/"-separated) is the generator's: listed, its
    bookkeeping, or the temporary file of a listed one."""
    if rel in listed or rel in (INFO_FILE, MANIFEST_FILE) or _RECORD_NAME.match(rel):
        return True
    parent, _, name = rel.rpartition("/")
    m = _TEMP_NAME.match(name)
    if m is None:
        return False
    target = f"{parent}/{m['name']}" if parent else m["name"]
    return target in listed or target in (INFO_FILE, MANIFEST_FILE) or bool(_RECORD_NAME.match(target))


def _folder_entries(out: Path) -> list:
    """Every file and symbolic link under ``out`` (links to folders are not followed), as
    "/"-separated paths relative to ``out``."""
    entries = []
    for folder, dirs, files in os.walk(out):
        base = Path(folder).relative_to(out)
        links = [d for d in dirs if (Path(folder) / d).is_symlink()]
        entries += [(base / name).as_posix() for name in files + links]
    return sorted(entries)


def remove_generated(out: Path) -> None:
    """Delete the synthetic dataset in ``out``: the files its :data:`MANIFEST_FILE` lists, its
    bookkeeping, and the folders left empty by that.

    A file the generator did not write makes this refuse, deleting nothing: left in place it
    would be mixed silently into the new dataset (an image in ``training/rgb/`` that the
    annotations do not describe), and deleting it would lose the user's work. A folder
    without the list (written before the generator kept one) is refused as a whole, since its
    files cannot be told from files added since.

    Raises:
        FileExistsError: the folder holds files the generator did not write, or no list.
    """
    listed = read_manifest(out)
    if listed is None:
        raise FileExistsError(
            f"synth: {out} holds a synthetic dataset without the list of its files "
            f"({MANIFEST_FILE}; written by an earlier version of the generator), so files added "
            f"to it since cannot be told apart and --overwrite deletes nothing: delete the "
            f"folder yourself, or choose another folder")
    listed = set(listed)
    entries = _folder_entries(out)
    foreign = [rel for rel in entries if not _is_generated(rel, listed)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(
            f"synth: {out} holds {len(foreign)} file(s) the generator did not write ({shown}); "
            f"--overwrite deletes only the generator's own files and will not mix others into a "
            f"new dataset: move them out of the folder, or choose another folder")
    folders = set()
    for rel in entries:
        (out / rel).unlink()
        folders.update(Path(rel).parents)
    # deepest first; a folder that still holds something (a user's empty folder in it) stays
    for rel in sorted(folders - {Path(".")}, key=lambda f: len(f.parts), reverse=True):
        try:
            (out / rel).rmdir()
        except OSError:
            pass


def write_info(out: Path, info: dict) -> None:
    """Write ``synth_info.json`` atomically."""
    write_text(Path(out) / INFO_FILE, json.dumps(info, indent=1) + "\n")


def partial_path(out: Path, index: int) -> Path:
    """Where the record of work unit ``index`` goes while the dataset is being written."""
    return Path(out) / PARTIAL_DIR / f"{index:08d}.json"


def load_record(out: Path, index: int, key: str) -> Optional[dict]:
    """The record of a finished unit, or None (not finished, or a record of another unit)."""
    try:
        rec = json.loads(partial_path(out, index).read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("key") == key else None


def save_record(out: Path, index: int, record: dict) -> None:
    """Mark work unit ``index`` finished (after all its files are written)."""
    write_text(partial_path(out, index), json.dumps(record, separators=(",", ":")))
