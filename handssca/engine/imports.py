"""Imported weights as a run folder: ``python -m handssca import hands3c SNAPSHOT --out RUN``.

:func:`import_run` reads the authors' released ``snapshot_*.pth.tar``
(:func:`handssca.models.import_hands3c`), loads it strictly into
``build_model(attention="ssca", input_size=S)`` and writes a run folder that ``evaluate``,
``predict`` and :func:`~.runs.load_run` accept like a trained one::

    run.json          {"config": {"kind": "import", "format": "hands3c", "dataset", "source":
                      {"file", "sha256", "epoch"}, "network", "network_version", "hand_model"},
                      "fingerprint", "status", "summary", "provenance"}
    checkpoints/      last.json + epoch-NNNN.safetensors (NNNN: the file's epoch), the JSON
                      recording ``imported`` (format, file, path, SHA-256, epoch) and
                      ``data_root: null`` (the weights were trained elsewhere)

The dataset fixes the input size (FreiHAND 224, HO3D and DexYCB 256), which must agree with the
file's shapes. An existing non-empty ``--out`` is refused unless it is an earlier import of the
same file for the same dataset (which is then returned as it is).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import torch

from ..errors import read_json
from ..models import NETWORK_VERSION, build_model, load_hands3c
from ..utils import write_json_atomic
from . import checkpoint as ckpt
from .factory import parameter_count
from .profiles import check_dataset
from .trainer import RUN_FILE, fingerprint, provenance

#: the input size S each dataset's released weights were trained at (book/paper_vs_code.md, "The authors' released weights")
DATASET_INPUT_SIZE = {"freihand": 224, "ho3d": 256, "dexycb": 256}
#: the profile name an imported run records (its weights come from no profile of ours)
IMPORT_PROFILE = "imported"
FORMATS = ("hands3c",)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _earlier_import(out: Path, name: str, sha: str, dataset: Optional[str]) -> Optional[dict]:
    """The run.json of an earlier import of the same file and dataset (any dataset when None)
    in ``out`` (None when ``out`` is absent or empty); ValueError for anything else there."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    run_json = out / RUN_FILE
    run = read_json(run_json) if run_json.is_file() else None
    config = (run or {}).get("config") or {}
    if config.get("kind") != "import":
        raise ValueError(f"{out} exists, is not empty and is not an earlier import; choose "
                         f"another --out")
    source = config.get("source") or {}
    if source.get("sha256") != sha or (dataset is not None and config.get("dataset") != dataset):
        raise ValueError(
            f"{out} holds an import of another file or dataset ({source.get('file')}, SHA-256 "
            f"{str(source.get('sha256'))[:12]}..., dataset {config.get('dataset')}), not of "
            f"{name} (SHA-256 {sha[:12]}...) for {dataset or 'any dataset'}; choose another "
            f"--out")
    return run


def _dataset_of(info: dict, dataset: Optional[str], name: str, log) -> str:
    """The dataset of the weights: the given one, which must have their input size, or the one
    their input size names (224 FreiHAND, 256 HO3D)."""
    if dataset is None:
        dataset = "freihand" if info["input_size"] == DATASET_INPUT_SIZE["freihand"] else "ho3d"
        log(f"[import] input size {info['input_size']}: recorded as {dataset} weights (name the "
            f"dataset with --dataset, e.g. dexycb, if that is wrong)")
    size = DATASET_INPUT_SIZE[dataset]
    if info["input_size"] != size:
        raise ValueError(f"{name} holds a network for input size {info['input_size']} "
                         f"(W = {info['W']}), but {dataset} means input size {size} (FreiHAND "
                         f"224, HO3D and DexYCB 256): give the dataset these weights were "
                         f"trained on")
    return dataset


def import_run(snapshot, out, dataset: Optional[str] = None, fmt: str = "hands3c",
               hand_model=None, verbose: bool = True) -> Path:
    """Import released weights into a run folder (see the module's docstring).

    Args:
        snapshot: the authors' ``snapshot_*.pth.tar`` file.
        out: the run folder to write.
        dataset: the dataset the weights were trained on ("ho3d", "dexycb" or "freihand");
            it is recorded (``evaluate`` defaults to it) and fixes the input size. None: read
            from the file's input size, "freihand" at 224 and "ho3d" at 256 (DexYCB's weights
            have the same shapes as HO3D's: name the dataset for them).
        fmt: the file's format; "hands3c" (the authors' HandS3C release) is the only one.
        hand_model: the hand model (default ``load_hand_model()``: MANO when installed; the
            weights predict MANO's parameters, so the procedural hand gives wrong meshes).
        verbose: say what happens on stderr.

    Returns:
        the run folder.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown format or dataset, a file that is not a HandS3C checkpoint or
            whose input size is not the dataset's (:class:`~handssca.models.Hands3cFormatError`),
            or an ``out`` that holds something else.
    """
    log = _log if verbose else (lambda m: None)
    if fmt not in FORMATS:
        raise ValueError(f"unknown weights format {fmt!r}; expected one of {FORMATS}")
    dataset = None if dataset is None else check_dataset(dataset)
    path = Path(snapshot).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    sha = ckpt.sha256_file(path)
    out = Path(out).expanduser().resolve()
    earlier = _earlier_import(out, path.name, sha, dataset)
    if earlier is not None and earlier.get("status") == "complete":
        log(f"[import] {out} already holds {path.name} for {earlier['config']['dataset']}; "
            f"nothing to do")
        return out
    state, info = load_hands3c(path)
    dataset = _dataset_of(info, dataset, path.name, log)
    size = info["input_size"]
    if hand_model is None:
        from ..hand import load_hand_model  # smplx loads on first use, as in the trainer

        hand_model = load_hand_model()
    if hand_model.kind != "mano":
        log("[import] WARNING: the hand model is the procedural one, not MANO, so the imported "
            "network's meshes and every error measured with it are not the "
            "authors' (see data/README.md for MANO)")
    model = build_model(attention="ssca", input_size=size, hand_model=hand_model)
    model.load_state_dict(state, strict=True)
    _write(out, model, path, sha, dataset, info, hand_model)
    log(f"[import] {path.name} (epoch {info['epoch']}, input size {size}) -> {out}")
    return out


def _write(out: Path, model: torch.nn.Module, path: Path, sha: str, dataset: str, info: dict,
           hand_model) -> None:
    """run.json (status "importing"), the checkpoint, then run.json "complete": the last
    write is the commit point, as a training run's."""
    network = model.config.to_dict()
    config = {"kind": "import", "format": "hands3c", "dataset": dataset,
              "source": {"file": path.name, "sha256": sha, "epoch": info["epoch"]},
              "network": network, "network_version": NETWORK_VERSION,
              "hand_model": {"kind": hand_model.kind}}
    fp = fingerprint(config)
    prov = provenance(torch.device("cpu"))
    imported = {"format": "hands3c", "file": path.name, "path": str(path), "sha256": sha,
                "epoch": info["epoch"], "dropped": info["dropped"]}
    record = {"config": config, "fingerprint": fp, "status": "importing", "provenance": prov}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / RUN_FILE, record)
    ckpt.write_checkpoint(out, model, {
        "network": network, "dataset": dataset, "data": "real", "data_root": None,
        "profile": IMPORT_PROFILE, "attention": "ssca", "seed": None, "fingerprint": fp,
        "run": str(out), "imported": imported, "metrics": {}, "provenance": prov,
        "hand_model": {"kind": hand_model.kind,
                       "source": str(getattr(hand_model, "source", ""))}},
        epoch=int(info["epoch"] or 0))
    record.update(status="complete", summary={
        "run": str(out), "status": "complete", "dataset": dataset, "data": "real",
        "profile": IMPORT_PROFILE, "imported": imported, "network": network,
        "parameters": parameter_count(model)})
    write_json_atomic(out / RUN_FILE, record)
