"""Checkpoints: weights as safetensors, a JSON that describes them, and the training state.

Layout inside a run's ``checkpoints/`` folder::

    last.json                  the latest completed epoch: what it is and which files hold it
    best.json                  the epoch with the best validation score (when validating)
    epoch-0007.safetensors     the network's weights (``state_dict``: parameters and BN buffers)
    epoch-0007.state.pt        optimiser, schedule, RNG states, epoch, step, history (torch.save)
    best-0005.safetensors      the best epoch's weights

Every file is written atomically (temporary file, then rename), and the JSON is written last: it
is the commit point. A run killed at any moment leaves the previous JSON pointing at complete
files, so it loses at most the epoch in progress. Files no JSON points to are removed when the
next checkpoint is written.

The JSON holds the network's configuration (``network``: the fields of
:class:`~handssca.models.HandSSCAConfig`, backbone included; ``build_model(**network)`` rebuilds
it), the network version the weights were trained for (``network_version``,
:data:`~handssca.models.NETWORK_VERSION`), the hand model it was trained with, the dataset, data
kind ("real" or "synthetic"), profile, seed, the epoch's metrics, the SHA-256 of the weights file
and provenance (commit, device, time, versions).

Loading (:func:`load_weights`) refuses a checkpoint of another network version (weights trained
before the network took the authors' conventions compute another function in it), or whose
configuration or tensor shapes do not match the model, and names the first mismatch. (The
authors' loader silently skips mismatched weights, which hides, e.g., a channel branch built for
another input size.)
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import torch

from ..errors import DamagedFileError, UnsafeFileError, read_json
from ..models import NETWORK_VERSION, HandSSCAConfig
from ..utils import atomic_path, write_json_atomic

FORMAT = "handssca-checkpoint/1"
CHECKPOINT_DIR = "checkpoints"
_EPOCH_FILE = re.compile(r"^(epoch|best)-(\d{4,})\.(safetensors|state\.pt)$")
#: a temporary file of :func:`handssca.utils.atomic_path` for one of the files written here
#: (".<name>.<8 random characters of mkstemp>.tmp"): what a killed write leaves behind
_TEMP_FILE = re.compile(r"^\.((?:epoch|best)-\d{4,}\.(?:safetensors|state\.pt)|last\.json|"
                        r"best\.json)\.[a-z0-9_]{8}\.tmp$")

PathLike = Union[str, os.PathLike]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into; the message names the first
    mismatch (a configuration field, a missing or unexpected tensor, or a shape)."""


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _plain_state_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_weights(path: PathLike, model: torch.nn.Module, metadata: Optional[dict] = None) -> str:
    """Write the model's ``state_dict`` to ``path`` as safetensors, atomically.

    Returns:
        the SHA-256 of the written file.
    """
    from safetensors.torch import save_file

    # one metadata entry: safetensors writes a multi-key header in hash-map order, which would
    # make the bytes (and the recorded SHA-256) differ between processes for the same weights
    meta = {"handssca": json.dumps(dict(metadata or {}, format=FORMAT), sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(_plain_state_dict(model), str(tmp), metadata=meta)
    return sha256_file(path)


def save_state(path: PathLike, state: dict) -> None:
    """``torch.save`` the training state (optimiser, schedule, RNG, counters) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


#: what to do about a damaged or refused file of a run's checkpoints/ folder
CHECKPOINT_REMEDY = ("Restore the run folder from a backup, or delete its checkpoints/ folder to "
                     "train the run again from the start")


def load_state(path: PathLike) -> dict:
    """Read a training state written by :func:`save_state`.

    Raises:
        UnsafeFileError: the file pickles objects other than tensors, numbers, strings and
            containers (this package never writes such a state); it was not loaded.
        DamagedFileError: the file is not a readable torch file (truncated or overwritten).
    """
    # the state holds only tensors, numbers, strings and lists: the safe loader suffices
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False, which would run whatever the file holds:
        # the advice is dropped (from None), not passed on
        raise UnsafeFileError(
            f"{path} holds objects other than tensors, numbers and strings, so it is not a "
            f"training state this package wrote; it was not loaded, because unpickling those "
            f"objects could run code. {CHECKPOINT_REMEDY}") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise _damaged(path, "torch", exc, str(exc).splitlines()[0] if str(exc)
                       else type(exc).__name__) from None


def read_checkpoint_json(path: PathLike) -> dict:
    """A checkpoint JSON (``last.json``, ``best.json``); :class:`DamagedFileError` names it when
    it is not valid JSON."""
    return read_json(path, CHECKPOINT_REMEDY)


def load_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """The tensors of a safetensors file; :class:`DamagedFileError` names the file when it is
    truncated or is not a safetensors file."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError alike: a damaged file
        raise _damaged(path, "safetensors", exc, f"{type(exc).__name__}: {exc}") from None


def _damaged(path: PathLike, kind: str, exc: BaseException, what: str) -> Exception:
    """The error for a ``kind`` file at ``path`` that could not be read: ``exc`` itself when the
    file is missing (that is not damage), else a :class:`DamagedFileError` naming the file."""
    if isinstance(exc, FileNotFoundError):
        return exc
    return DamagedFileError(f"{path} is damaged: not a readable {kind} file ({what}); it was "
                            f"truncated or overwritten. {CHECKPOINT_REMEDY}")


# ----------------------------------------------------------------------------------------------
# the JSON and its resolution
# ----------------------------------------------------------------------------------------------
def checkpoint_dir(run: PathLike) -> Path:
    """The ``checkpoints/`` folder of a run folder."""
    return Path(run) / CHECKPOINT_DIR


def write_checkpoint(run: PathLike, model: torch.nn.Module, info: dict, epoch: int,
                     state: Optional[dict] = None, best: bool = False) -> Path:
    """Write the checkpoint of a completed ``epoch`` (1-based) and make it the run's last one
    (and its best one when ``best``).

    Args:
        run: the run folder.
        model: the network (its ``state_dict`` is saved).
        info: JSON-serialisable description (``network``: the model's configuration, dataset,
            data kind, profile, seed, metrics, provenance); ``weights``, ``weights_sha256``,
            ``state``, ``epoch``, ``format`` and ``network_version`` are added here.
        epoch: the number of completed epochs.
        state: the training state for resuming (None: weights only).
        best: also record this epoch as ``best.json``.

    Returns:
        the path of ``last.json``.
    """
    d = checkpoint_dir(run)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"epoch-{epoch:04d}"
    weights = d / f"{stem}.safetensors"
    digest = save_weights(weights, model, {"network": info.get("network"),
                                           "network_version": NETWORK_VERSION})
    record = dict(info, format=FORMAT, network_version=NETWORK_VERSION, epoch=int(epoch),
                  weights=weights.name, weights_sha256=digest)
    if state is not None:
        save_state(d / f"{stem}.state.pt", state)
        record["state"] = f"{stem}.state.pt"
    last = write_json_atomic(d / "last.json", record)
    if best:
        best_file = d / f"best-{epoch:04d}.safetensors"
        with atomic_path(best_file) as tmp:
            tmp.unlink()
            try:
                os.link(weights, tmp)  # the same bytes: a hard link where the file system allows
            except OSError:
                import shutil
                shutil.copyfile(weights, tmp)
        best_record = dict(record, weights=best_file.name)
        best_record.pop("state", None)
        write_json_atomic(d / "best.json", best_record)
    prune(run)
    return last


def _referenced(d: Path) -> set:
    names = set()
    for tag in ("last", "best"):
        p = d / f"{tag}.json"
        if p.exists():
            rec = read_checkpoint_json(p)
            names.update(x for x in (rec.get("weights"), rec.get("state")) if x)
    return names


def prune(run: PathLike) -> None:
    """Remove the epoch files no JSON points to (left by older epochs or a killed write).

    Only names this module writes are candidates (epoch and best files, and the temporary
    files of their atomic writes): a file anyone else put into the folder is never removed.
    Training calls this under the run folder's lock (:mod:`.runlock`), so no other writer's
    temporary file can be in the folder while it runs."""
    d = checkpoint_dir(run)
    if not d.is_dir():
        return
    keep = _referenced(d)
    for p in d.iterdir():
        if (_EPOCH_FILE.match(p.name) or _TEMP_FILE.match(p.name)) and p.name not in keep:
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def resolve_checkpoint(path: PathLike, which: str = "last") -> Tuple[Path, dict]:
    """Find a checkpoint's JSON and read it.

    Args:
        path: a run folder, its ``checkpoints/`` folder, a checkpoint JSON, or a ``.safetensors``
            file with its JSON beside it.
        which: "last" or "best" when ``path`` is a folder.

    Returns:
        (path of the JSON, its content with "weights" made an absolute path).

    Raises:
        FileNotFoundError: nothing to load there (the message says what was looked for).
        ValueError: an unknown ``which`` or a JSON that is not a checkpoint description.
    """
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    p = Path(path)
    if p.is_dir():
        d = p if (p / f"{which}.json").exists() or p.name == CHECKPOINT_DIR else p / CHECKPOINT_DIR
        js = d / f"{which}.json"
        if not js.exists():
            hint = (" (the run validates nothing, so it has no best checkpoint)"
                    if which == "best" and (d / "last.json").exists() else "")
            raise FileNotFoundError(f"no checkpoint in {p}: expected {js}{hint}; train a run "
                                    f"first (python -m handssca train ... --out {p})")
    elif p.suffix == ".safetensors":
        candidates = [j for j in p.parent.glob("*.json")
                      if read_checkpoint_json(j).get("weights") == p.name]
        if not candidates:
            raise FileNotFoundError(f"{p}: no checkpoint JSON beside it describes this file")
        js = candidates[0]
    elif p.suffix == ".json" and p.exists():
        js = p
    else:
        raise FileNotFoundError(f"checkpoint not found: {p} (expected a run folder, a checkpoint "
                                f"JSON or a .safetensors file)")
    rec = read_checkpoint_json(js)
    if (not isinstance(rec, dict) or rec.get("format") != FORMAT or "weights" not in rec
            or not ("network" in rec or "spec" in rec)):
        raise ValueError(f"{js} is not a HandSSCA checkpoint description (format {FORMAT!r})")
    weights = js.parent / rec["weights"]
    if not weights.exists():
        raise FileNotFoundError(f"{js} points to {weights}, which does not exist")
    rec["weights"] = str(weights)
    if rec.get("state"):
        rec["state"] = str(js.parent / rec["state"])
    return js, rec


# ----------------------------------------------------------------------------------------------
# strict loading
# ----------------------------------------------------------------------------------------------
def first_difference(a: Any, b: Any, prefix: str = "") -> Optional[Tuple[str, Any, Any]]:
    """The first (dotted key, value in a, value in b) where two nested dicts differ, or None.

    Keys are visited in sorted order, so "first" is well defined."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                return key, a.get(k, "<absent>"), b.get(k, "<absent>")
            d = first_difference(a[k], b[k], key)
            if d is not None:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return None if a == b else (prefix, a, b)


def check_network_version(record: dict, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` unless the checkpoint's weights were trained for
    this network's version (:data:`~handssca.models.NETWORK_VERSION`).

    A checkpoint without ``network_version`` was written before the network took the authors'
    two conventions (version 1: the encoder read the raw heatmap scores, the 6D rotations were
    read as row-major (3, 2) matrices); loaded into this network its weights would compute
    another function, silently.
    """
    version = record.get("network_version", 1)
    if version == NETWORK_VERSION:
        return
    if isinstance(version, int) and version > NETWORK_VERSION:
        raise CheckpointMismatchError(
            f"{where} was written for network version {version}, newer than this package's "
            f"({NETWORK_VERSION}): update the package to load it")
    raise CheckpointMismatchError(
        f"{where} holds weights of network version {version}, written before the network took "
        f"the authors' conventions (version {NETWORK_VERSION}): its encoder read the raw heatmap "
        f"scores (now the heatmap probabilities) and its 6D rotations were read row-major (now "
        f"two columns one after the other), so the weights compute another function in this "
        f"network. Retrain the run (python -m handssca train ...); permuting the MANO head's rows "
        f"with handssca.hand.rotations.ROT6D_ROWS_FROM_ROW_MAJOR is not enough, because the "
        f"encoder's input changed too")


def complete_network(network: dict, where: str = "checkpoint") -> dict:
    """A recorded network configuration with every field filled in (the dataclass's defaults;
    the backbone completed); CheckpointMismatchError names an unknown or invalid field."""
    import dataclasses

    if not isinstance(network, dict):
        raise CheckpointMismatchError(f"{where}: the network configuration must be a dict of "
                                      f"HandSSCAConfig fields, got {type(network).__name__}")
    names = {f.name for f in dataclasses.fields(HandSSCAConfig)}
    unknown = sorted(set(network) - names)
    if unknown:
        raise CheckpointMismatchError(f"{where}: unknown network configuration field "
                                      f"{unknown[0]!r} (this version knows {sorted(names)})")
    try:
        return HandSSCAConfig(**network).to_dict()
    except ValueError as exc:
        raise CheckpointMismatchError(f"{where}: invalid network configuration: {exc}") from exc


# fields of the network configuration that choose code paths but not weights
_RUNTIME_FIELDS = ("scan_backend",)


def check_config(saved: dict, model: torch.nn.Module, where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` unless the saved network configuration equals
    ``model.config``.

    ``scan_backend`` (which kernel runs the scan) is not compared: it does not change weights.
    """
    want = complete_network(saved, where)
    have = getattr(model, "_orig_mod", model).config.to_dict()
    for part in (want, have):
        for f in _RUNTIME_FIELDS:
            part.pop(f, None)
    diff = first_difference(want, have)
    if diff is not None:
        key, a, b = diff
        raise CheckpointMismatchError(
            f"{where} does not match the model: network.{key} is {a!r} in the checkpoint but "
            f"{b!r} in the model (first mismatch; build the model from the checkpoint's "
            f"configuration, build_model(**record['network']), or load the run with "
            f"handssca.engine.load_run)")


def check_state_dict(state: Dict[str, torch.Tensor], model: torch.nn.Module,
                     where: str = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` naming the first missing or unexpected tensor, or
    the first tensor whose shape differs (in the model's key order)."""
    own = getattr(model, "_orig_mod", model).state_dict()
    for k, v in own.items():
        if k not in state:
            raise CheckpointMismatchError(f"{where} lacks the tensor {k!r} of shape "
                                          f"{tuple(v.shape)} (first mismatch)")
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointMismatchError(
                f"{where}: tensor {k!r} has shape {tuple(state[k].shape)} but the model expects "
                f"{tuple(v.shape)} (first mismatch)")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointMismatchError(f"{where} has a tensor the model lacks: {extra[0]!r} "
                                      f"({len(extra)} unexpected in all; first mismatch)")


def load_weights(model: torch.nn.Module, checkpoint: PathLike, which: str = "last",
                 check_hash: bool = True) -> dict:
    """Load a checkpoint into ``model``, refusing any mismatch.

    Args:
        model: the network (built from the same configuration).
        checkpoint: anything :func:`resolve_checkpoint` accepts.
        which: "last" or "best" for a run folder.
        check_hash: verify the weights file against the SHA-256 recorded in the JSON.

    Returns:
        the checkpoint's JSON record.

    Raises:
        CheckpointMismatchError: another network version, or configuration, tensor names or
            shapes differ (the first one is named); or the file's hash differs from the
            recorded one.
    """
    js, rec = resolve_checkpoint(checkpoint, which)
    where = f"checkpoint {js}"
    check_network_version(rec, where)
    check_config(rec["network"], model, where)
    if check_hash and rec.get("weights_sha256"):
        digest = sha256_file(rec["weights"])
        if digest != rec["weights_sha256"]:
            raise CheckpointMismatchError(f"{where}: {rec['weights']} has SHA-256 {digest[:12]}..., "
                                          f"the JSON records {rec['weights_sha256'][:12]}...")
    state = load_safetensors(rec["weights"])
    check_state_dict(state, model, where)
    target = getattr(model, "_orig_mod", model)
    target.load_state_dict(state, strict=True)
    return rec


def list_checkpoint_files(run: PathLike) -> Iterable[Path]:
    """The files of a run's ``checkpoints/`` folder (for inspection and tests)."""
    d = checkpoint_dir(run)
    return sorted(d.iterdir()) if d.is_dir() else []
