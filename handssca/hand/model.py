"""``load_hand_model``: the real MANO when the user has installed it, else the procedural hand.

Where MANO is looked for, in this order (``data/README.md``):

1. the ``path`` argument (a folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, or one file);
2. the folder named by the environment variable ``HANDSSCA_MANO_DIR``;
3. ``data/mano/`` in the repository.

A path given by 1 or 2 must hold a valid MANO file: a missing or broken file raises an error
rather than falling back. If neither is given and ``data/mano/`` holds no MANO file, the
procedural hand (:mod:`handssca.hand.procedural`) is used. The returned layer says which one it is
in ``kind`` ("mano" or "procedural").
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from . import joints as J
from .mano_file import ManoFileError, check_hand_side, load_mano_data
from .model_data import mirror_mano_data, procedural_mano_data

ENV_MANO_DIR = "HANDSSCA_MANO_DIR"
REPO_MANO_DIR = Path(__file__).resolve().parents[2] / "data" / "mano"
KINDS = ("mano", "procedural")


class HandModel(smplx.MANO):
    """``smplx.MANO`` built from a MANO-format dict, with what the rest of the package needs.

    Holds no learnable parameters (all of smplx's ``create_*`` flags are off): pass ``betas``,
    ``global_orient``, ``hand_pose`` (and ``transl``) to ``forward``, as with ``smplx.MANOLayer``.

    Attributes beyond smplx's:
        kind: "mano" (the real model) or "procedural".
        source: the file it was read from, or "procedural".
        mirrored: True when a left hand was made by mirroring a right one.
        faces: (F, 3) int64 numpy array (F = 1538).
        hands_mean_data: buffer (45,), the model's mean articulation whatever ``flat_hand_mean``.
        hands_components_data: buffer (45, 45), all PCA axes (rows) whatever ``num_pca_comps``.
    """

    def __init__(self, data: dict, *, kind: str, source: str, is_rhand: bool = True,
                 use_pca: bool = False, num_pca_comps: int = 45, flat_hand_mean: bool = False,
                 dtype: torch.dtype = torch.float32, mirrored: bool = False):
        if kind not in KINDS:
            raise ValueError(f"HandModel: kind must be one of {KINDS}, got {kind!r}")
        if not 1 <= int(num_pca_comps) <= 45:
            raise ValueError(f"HandModel: num_pca_comps must be in 1..45, got {num_pca_comps}")
        data = dict(data)
        data["f"] = np.array(data["f"], dtype=np.int64)  # a writable copy
        # smplx prints a warning for models with fewer than 300 shape directions (MANO has 10)
        with contextlib.redirect_stdout(io.StringIO()):
            super().__init__(
                model_path="", data_struct=Struct(**data), is_rhand=is_rhand,
                create_global_orient=False, create_hand_pose=False, create_betas=False,
                create_transl=False, create_body_pose=False, use_pca=use_pca, num_pca_comps=int(num_pca_comps),
                flat_hand_mean=flat_hand_mean, dtype=dtype)
        self.kind = kind
        self.source = source
        self.mirrored = mirrored
        self.faces = data["f"]
        self.register_buffer("hands_mean_data", torch.tensor(np.asarray(data["hands_mean"]), dtype=dtype))
        self.register_buffer("hands_components_data",
                             torch.tensor(np.asarray(data["hands_components"])[:45], dtype=dtype))

    def fingertip_vertices(self, convention: str = "manopth") -> tuple[int, ...]:
        """The 5 fingertip vertex ids (thumb, index, middle, ring, pinky) of a convention.

        Args:
            convention: "manopth", "freihand" or "ho3d" (``joints.FINGERTIP_VERTICES``). For the
                real MANO_LEFT mesh, manopth's middle fingertip is vertex 445
                (book/datasets_and_metrics.md, section Joint orders).
        """
        if convention not in J.FINGERTIP_VERTICES:
            raise ValueError(f"fingertip convention: expected one of {sorted(J.FINGERTIP_VERTICES)}, "
                             f"got {convention!r}")
        tips = J.FINGERTIP_VERTICES[convention]
        if convention == "manopth" and self.kind == "mano" and not self.is_rhand and not self.mirrored:
            tips = (tips[0], tips[1], 445, tips[3], tips[4])
        return tuple(tips)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, source={self.source!r}, is_rhand={self.is_rhand}\n" + super().extra_repr()


def _mano_file(folder: Path, is_rhand: bool) -> Path:
    return folder / ("MANO_RIGHT.pkl" if is_rhand else "MANO_LEFT.pkl")


def resolve_mano_path(path=None, *, is_rhand: bool = True) -> tuple[Path | None, str]:
    """Where the real MANO would be read from, and why.

    Returns:
        (file or None, origin) with origin "argument", "environment", "repository" or "none". The
        file is returned even if it does not exist when it comes from the argument or the
        environment (the caller raises); from the repository only if it exists.
    """
    if path is not None:
        p = Path(path).expanduser()
        return (_mano_file(p, is_rhand) if p.is_dir() else p), "argument"
    env = os.environ.get(ENV_MANO_DIR, "").strip()
    if env:
        return _mano_file(Path(env).expanduser(), is_rhand), "environment"
    f = _mano_file(REPO_MANO_DIR, is_rhand)
    if f.exists():
        return f, "repository"
    if not is_rhand and _mano_file(REPO_MANO_DIR, True).exists():
        return f, "repository"
    return None, "none"


def load_hand_model(path=None, *, is_rhand: bool = True, kind: str | None = None,
                    use_pca: bool = False, num_pca_comps: int = 45, flat_hand_mean: bool = False,
                    dtype: torch.dtype = torch.float32, cache_dir=None) -> HandModel:
    """The MANO layer: the real MANO when installed, otherwise the procedural MANO-format hand.

    Args:
        path: a MANO file (``.pkl`` as distributed, or a ``.npz`` of the same arrays) or a folder
            holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``. Default: ``$HANDSSCA_MANO_DIR``, then
            the repository's ``data/mano/``. An explicit path (argument or environment) that is
            missing or not a valid MANO file raises FileNotFoundError / ManoFileError.
        is_rhand: right hand (default) or left. Without ``MANO_LEFT.pkl`` next to
            ``MANO_RIGHT.pkl``, the left hand is the exact mirror of the right (``mirrored``).
        kind: None (automatic, as above), "mano" (the real MANO is required) or "procedural"
            (always the procedural hand, whatever is installed).
        use_pca, num_pca_comps, flat_hand_mean: as ``smplx.MANO``; the defaults (no PCA,
            articulation as offsets from ``hands_mean``) are the convention of FreiHAND,
            HandOccNet and HandSSCA.
        dtype: of the buffers.
        cache_dir: where the converted MANO arrays are cached (default ``$HANDSSCA_CACHE_DIR``
            or ``~/.cache/handssca``).

    Returns:
        a :class:`HandModel` (a ``smplx.MANO``) with ``kind``, ``source`` and ``faces``.
    """
    if kind not in (None,) + KINDS:
        raise ValueError(f"load_hand_model: kind must be None, 'mano' or 'procedural', got {kind!r}")
    opts = dict(is_rhand=is_rhand, use_pca=use_pca, num_pca_comps=num_pca_comps,
                flat_hand_mean=flat_hand_mean, dtype=dtype)
    if kind == "procedural":
        return HandModel(procedural_mano_data(is_rhand), kind="procedural", source="procedural", **opts)

    file, origin = resolve_mano_path(path, is_rhand=is_rhand)
    if file is None:
        if kind == "mano":
            raise FileNotFoundError(
                f"load_hand_model(kind='mano'): no MANO found; place MANO_RIGHT.pkl in {REPO_MANO_DIR} "
                f"or set {ENV_MANO_DIR} (see data/README.md)")
        return HandModel(procedural_mano_data(is_rhand), kind="procedural", source="procedural", **opts)

    side = "LEFT" if "LEFT" in file.name.upper() else "RIGHT" if "RIGHT" in file.name.upper() else None
    if side is not None and (side == "RIGHT") != is_rhand:
        raise ValueError(f"load_hand_model: {file} is a {side.lower()} hand but is_rhand={is_rhand}")
    mirrored = False
    if not file.exists():
        right = file.with_name("MANO_RIGHT.pkl")
        if not is_rhand and file.name == "MANO_LEFT.pkl" and right.exists():
            warnings.warn(f"{file} not found: using the mirror image of {right} as the left hand",
                          stacklevel=2)
            file, mirrored = right, True
        else:
            hint = {"argument": "the path given to load_hand_model",
                    "environment": f"${ENV_MANO_DIR}={os.environ.get(ENV_MANO_DIR)}",
                    "repository": str(REPO_MANO_DIR)}[origin]
            raise FileNotFoundError(f"MANO file {file} not found (from {hint}); expected "
                                    f"MANO_RIGHT.pkl / MANO_LEFT.pkl as distributed by "
                                    f"mano.is.tue.mpg.de (see data/README.md)")
    data = load_mano_data(file, cache_dir=cache_dir)
    # the name (or is_rhand) says which hand; the content must agree, or every left/right
    # convention downstream silently inverts
    check_hand_side(data, "right" if (is_rhand or mirrored) else "left", file)
    if mirrored:
        data = mirror_mano_data(data)
    return HandModel(data, kind="mano", source=str(file), mirrored=mirrored, **opts)


__all__ = ["HandModel", "load_hand_model", "resolve_mano_path", "ManoFileError", "ENV_MANO_DIR",
           "REPO_MANO_DIR"]
