"""Loading a trained run: :func:`load_run` gives the network, its configuration and its metrics.

A "run" is a training folder (``runs/<name>/``, see :mod:`.trainer`) or a folder of imported
weights (:mod:`.imports`); a bare checkpoint (a checkpoint JSON or its safetensors file) loads
too, without the run's log. The network is rebuilt with ``build_model(**network)`` from the
configuration recorded in the checkpoint, with the hand model it was trained with, and the
weights are loaded strictly (:func:`.checkpoint.load_weights`, which also refuses weights of an
earlier network version).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..errors import read_json
from ..models import HandSSCAConfig, build_model
from . import checkpoint as ckpt
from .runlog import LOG_FILE, RunLog, read_log
from .runtime import pick_device

EVAL_DIR = "eval"


@dataclass
class Run:
    """A loaded run.

    Attributes:
        path: the run folder (or the checkpoint's folder for a bare checkpoint).
        model: the network, in eval mode, on ``device``.
        spec: the network's configuration (:class:`~handssca.models.HandSSCAConfig`, the same
            as ``model.config``; ``build_model(**run.spec.to_dict())`` rebuilds the network).
        checkpoint: the checkpoint's JSON record (dataset, data kind, profile, seed, metrics of
            its epoch, provenance, weights path and SHA-256; ``imported`` for imported weights).
        config: the run's configuration (``run.json``), or {} for a bare checkpoint.
        log: the per-epoch log (:class:`~.runlog.RunLog`), empty for a bare checkpoint.
        metrics: evaluation results found in ``<run>/eval/*/metrics.json``, keyed by folder name.
        device: where the model is.
    """

    path: Path
    model: torch.nn.Module
    spec: HandSSCAConfig
    checkpoint: Dict[str, Any]
    config: Dict[str, Any] = field(default_factory=dict)
    log: RunLog = field(default_factory=lambda: RunLog([]))
    metrics: Dict[str, Any] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")

    @property
    def dataset(self) -> str:
        return self.checkpoint["dataset"]

    @property
    def data(self) -> str:
        """"real" or "synthetic": the data this run was trained on."""
        return self.checkpoint["data"]

    @property
    def profile(self) -> str:
        return self.checkpoint["profile"]

    @property
    def seed(self) -> Optional[int]:
        """The training seed (None for imported weights, trained elsewhere)."""
        seed = self.checkpoint.get("seed")
        return None if seed is None else int(seed)

    @property
    def imported(self) -> Optional[Dict[str, Any]]:
        """For imported weights, where they came from (format, file, SHA-256, epoch); None for
        a run trained here."""
        return self.checkpoint.get("imported")

    @property
    def input_size(self) -> int:
        return int(self.model.config.input_size)

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}, dataset={self.dataset!r}, data={self.data!r}, "
                f"profile={self.profile!r}, attention={self.spec.attention!r}, "
                f"epoch={self.checkpoint.get('epoch')})")


def hand_model_for(record: dict):
    """The hand model a checkpoint was trained with (its ``hand_model.kind``): the procedural
    hand, or the real MANO (which must then be installed; see ``data/README.md``)."""
    from ..hand import load_hand_model

    kind = (record.get("hand_model") or {}).get("kind")
    if kind not in (None, "mano", "procedural"):
        raise ValueError(f"checkpoint names an unknown hand model kind {kind!r}")
    return load_hand_model(kind=kind)


def run_folder(path) -> Optional[Path]:
    """The run folder of a path (a run folder, its checkpoints folder, or a file in it), or None."""
    p = Path(path).resolve()
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "run.json").exists():
            return cand
    return None


def load_run(path, which: str = "last", device: Optional[str] = None, hand_model=None) -> Run:
    """Load a run (or a bare checkpoint): the network with its weights, configuration, log and
    evaluation metrics.

    Args:
        path: a run folder, its ``checkpoints/`` folder, a checkpoint JSON or safetensors file.
        which: "last" (the final epoch) or "best" (the best validation epoch).
        device: "cpu", "cuda", ... (None: CUDA when available).
        hand_model: the hand model to build the network with (default: the kind recorded in the
            checkpoint, :func:`hand_model_for`).

    Raises:
        FileNotFoundError: no checkpoint there.
        handssca.engine.checkpoint.CheckpointMismatchError: the weights were trained for an
            earlier network version, or do not fit the recorded configuration (names the first
            mismatch).
    """
    js, rec = ckpt.resolve_checkpoint(path, which)
    where = f"checkpoint {js}"
    ckpt.check_network_version(rec, where)
    network = ckpt.complete_network(rec["network"], where)
    hm = hand_model if hand_model is not None else hand_model_for(rec)
    model = build_model(**network, hand_model=hm)
    ckpt.load_weights(model, js)
    dev = pick_device(device)
    model = model.to(dev).eval()
    folder = run_folder(js)
    config, log, metrics = {}, RunLog([]), {}
    if folder is not None:
        config = read_json(folder / "run.json").get("config", {})
        if (folder / LOG_FILE).exists():
            log = read_log(folder)
        for m in sorted((folder / EVAL_DIR).glob("*/metrics.json")):
            metrics[m.parent.name] = read_json(m, "Delete it and run evaluate again")
    return Run(path=folder or js.parent, model=model, spec=model.config, checkpoint=rec,
               config=config,
               log=log, metrics=metrics, device=dev)


def run_log(path) -> RunLog:
    """The per-epoch log of a run folder as a table (:class:`~.runlog.RunLog`)."""
    folder = run_folder(path)
    if folder is None:
        raise FileNotFoundError(f"{path} is not inside a training run folder (no run.json)")
    return read_log(folder)
