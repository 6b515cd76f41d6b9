"""Evaluation with each dataset's official protocol, beside two constants that ignore the image.

``evaluate(checkpoint, dataset, data_root)`` runs the network on the test split, turns its
root-relative predictions into the protocol's inputs with the dataset's own helper
(``to_protocol``), computes the official numbers with :mod:`handssca.metrics`, writes the official
submission file (``write_submission``) and ``metrics.json`` with provenance, and scores two
constants on the same samples.

Protocols (book/datasets_and_metrics.md, sections Metrics and Pitfalls):

- FreiHAND: ``evaluate_mesh_and_joints`` (PA-MPJPE, PA-MPVPE, F@5 and F@15 after the vertex
  Procrustes fit, AUCs; the unaligned numbers with the ground-truth wrist added, i.e.
  wrist-relative); submission ``pred.json``.
- HO-3D: the same keys plus the scale-translation metric (``sc_tr_mpjpe``); the predictions are
  moved onto the ground-truth wrist first (HandOccNet); submission ``pred.zip`` (OpenGL frame,
  H order, ``evaluation.txt`` order). HO-3D's evaluation split carries no hand annotation in its
  meta files; its released ground truth (``evaluation_xyz.json``, ``evaluation_verts.json`` at the
  dataset root, OpenGL frame, H order, as HO-3D's ``eval.py`` reads them) is used when present,
  otherwise only the submission is written.
- DexYCB: ``evaluate_joints_dexycb``: root-relative MPJPE and PA-MPJPE with left hands
  un-mirrored, as HandOccNet and HandSSCA compute them; submission: the toolkit's result file.

The constants ignore the image and are scored with the same protocol (not in the paper: the
yardstick of this reproduction, :mod:`handssca.report.verdict`):

- the **mean-pose constant** predicts, for every test sample, the mean of the training rows'
  root-relative 3D joints and vertices (mirrored left hands included as the right hands the
  network sees);
- the **mean-articulation constant** predicts the MANO hand of the training rows' mean
  articulation and mean shape, without global rotation; under Procrustes alignment it is
  often the stronger of the two.

A network that has learnt nothing from the image does not beat the better of them. In
``metrics.json`` they keep their first key names, ``baseline`` (mean pose) and
``baseline_mean_articulation``; "baseline" otherwise names only the paper's FPN without
attention (Table 6).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ..errors import DamagedFileError, read_json
from ..report.verdict import verdict
from ..utils import progress, refuse_existing, require_folder, write_json_atomic
from . import distributed
from .checkpoint import sha256_file
from .datasets import (DataSource, Unaugmented, collate, open_dataset, resolve_data,
                       root_relative_mean, synthetic_identity, train_val_split)
from .profiles import check_dataset, resolve_profile, synthetic_settings
from .runs import EVAL_DIR, Run, load_run
from .runtime import device_name, pick_device, to_device
from .trainer import provenance

SPLITS = ("test", "val", "train")
SUBMISSION_FILES = {"freihand": "pred.json", "ho3d": "pred.zip", "dexycb": "results.txt"}
PROTOCOLS = {
    "freihand": "FreiHAND eval.py: PA-MPJPE/PA-MPVPE (official align_w_scale), F@5/F@15 after the "
                "vertex Procrustes fit, AUC 0-50 mm; unaligned errors with the ground-truth wrist "
                "added (wrist-relative)",
    "ho3d": "HO-3D eval.py: predictions moved onto the ground-truth wrist; PA-MPJPE/PA-MPVPE, "
            "scale-translation MPJPE, F@5/F@15 aligned, AUC 0-50 mm",
    "dexycb": "HandOccNet/HandSSCA DexYCB evaluation: left hands un-mirrored, root-relative MPJPE "
              "and PA-MPJPE (Umeyama, no reflection); plus the toolkit's Procrustes numbers",
}
UNITS = "errors in mm; AUC and F-scores as fractions in [0, 1]"


#: what the rows of each split are, as the refusal to score substitute data names them
SPLIT_ROWS = {"test": "the test split of the run's data", "val": "the run's held-out rows",
              "train": "the run's training split"}
#: the rows the constants are the mean of
TRAINING_ROWS = ("the rows the run trained on (the constants' mean; --no-constants leaves the "
                 "constants out)")


class RunDataMismatchError(ValueError):
    """The data found for a run is not the data the run recorded it was trained on (its folder
    moved, was deleted or was regenerated with other settings): scoring it as the run's own
    would score other samples. The message names both and what to do."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# predictions and ground truth
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_dataset(model, ds, device, batch_size: int = 32, num_workers: int = 0,
                    desc: str = "predict") -> Dict[str, np.ndarray]:
    """Run ``model`` over a dataset (no augmentation) and gather, in dataset order:

    "index" (N,), "joints" / "vertices" root-relative predictions (N, 21, 3) / (N, 778, 3) in the
    sample's (mirrored for left hands) camera frame, "gt_joints" / "gt_vertices" the samples'
    root-relative targets, "root" (N, 3), "is_left" (N,), "has_3d" (N,), "sample_id" (N,).
    """
    model.eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate)
    keys = ("index", "joints", "vertices", "gt_joints", "gt_vertices", "root", "is_left", "has_3d")
    acc = {k: [] for k in keys}
    ids = []
    for batch in progress(loader, desc=desc, leave=False):
        b = to_device(batch, device)
        out = model(b["image"].float())
        j = out["joints"].float()
        wrist = j[:, :1]
        acc["joints"].append((j - wrist).cpu().numpy())
        acc["vertices"].append((out["vertices"].float() - wrist).cpu().numpy())
        _append_sample_fields(acc, ids, batch)
    return _in_dataset_order(acc, ids)


def predict_shared(model, ds, device, world: distributed.World, batch_size: int = 32,
                   num_workers: int = 0, desc: str = "predict") -> Optional[Dict[str, np.ndarray]]:
    """:func:`predict_dataset` spread over torchrun's ranks: rank r predicts samples
    r, r + W, ... (every sample once, the last ones on the first N mod W ranks), and rank 0
    receives all N in dataset order; None on the other ranks. One process: predict_dataset."""
    if not world.parallel:
        return predict_dataset(model, ds, device, batch_size, num_workers, desc=desc)
    share = Subset(ds, distributed.rank_share(len(ds), world))
    part = predict_dataset(model, share, device, batch_size, num_workers, desc=desc)
    return distributed.gather_in_order(part, world, len(ds))


def _parallel_device(checkpoint, device):
    """(world, device) of an evaluation: under torchrun the process group joined and, on CUDA,
    this rank's GPU; one process: (SINGLE, ``device`` unchanged)."""
    world = distributed.world_from_env()
    if not world.parallel or isinstance(checkpoint, Run):  # a loaded Run has its device
        return distributed.SINGLE if isinstance(checkpoint, Run) else world, device
    world, dev = distributed.setup(pick_device(device), world)
    return world, str(dev)


def _append_sample_fields(acc: Dict[str, list], ids: list, batch: dict) -> None:
    """Append a batch's targets and bookkeeping fields (index, gt joints / vertices, root,
    is_left, has_3d, sample ids) to the lists of ``acc`` and ``ids``."""
    acc["index"].append(batch["index"].numpy())
    acc["gt_joints"].append(batch["joints3d"].numpy())
    acc["gt_vertices"].append(batch["vertices"].numpy())
    acc["root"].append(batch["root"].numpy())
    acc["is_left"].append(np.asarray(batch["is_left"], dtype=bool).reshape(-1))
    acc["has_3d"].append(np.asarray(batch["has_3d"], dtype=bool).reshape(-1))
    ids.extend(batch["sample_id"])


def _in_dataset_order(acc: Dict[str, list], ids: list) -> Dict[str, np.ndarray]:
    """Concatenate the gathered batches and sort every field by the dataset index."""
    res = {k: np.concatenate(v) for k, v in acc.items()}
    order = np.argsort(res["index"], kind="stable")
    res = {k: v[order] for k, v in res.items()}
    res["sample_id"] = np.asarray(ids, dtype=object)[order]
    return res


def _unmirror(points: np.ndarray, is_left: np.ndarray) -> np.ndarray:
    out = points.copy()
    out[is_left, ..., 0] *= -1.0
    return out


def ho3d_official_ground_truth(root: Path, names) -> Optional[Dict[str, np.ndarray]]:
    """HO-3D's released evaluation ground truth, if present at ``root``: ``evaluation_xyz.json``
    (N, 21, 3) and ``evaluation_verts.json`` (N, 778, 3), OpenGL frame, joints in H order, rows
    in ``evaluation.txt`` order (what HO-3D's ``eval.py`` reads). Returned in the OpenCV frame,
    F order, in the order of ``names``; None when the files are absent."""
    from ..hand.joints import HO3D_TO_FREIHAND, OPENGL_TO_OPENCV
    from ..submit import read_evaluation_list

    xyz_p, verts_p = Path(root) / "evaluation_xyz.json", Path(root) / "evaluation_verts.json"
    if not (xyz_p.exists() and verts_p.exists()):
        return None
    xyz = np.asarray(json.loads(xyz_p.read_text()), dtype=np.float64)
    verts = np.asarray(json.loads(verts_p.read_text()), dtype=np.float64)
    order = read_evaluation_list(Path(root) / "evaluation.txt")
    if xyz.shape != (len(order), 21, 3) or verts.shape != (len(order), 778, 3):
        raise ValueError(f"{root}: evaluation_xyz.json {xyz.shape} / evaluation_verts.json "
                         f"{verts.shape} do not match evaluation.txt ({len(order)} lines)")
    flip = np.diag(OPENGL_TO_OPENCV)
    pos = {n: i for i, n in enumerate(order)}
    rows = [pos[str(n)] for n in names]
    return {"joints": (xyz * flip)[rows][:, list(HO3D_TO_FREIHAND)], "vertices": (verts * flip)[rows]}


def ground_truth(source: DataSource, res: Dict[str, np.ndarray], ds=None
                 ) -> Optional[Dict[str, np.ndarray]]:
    """Absolute ground truth in the original camera frame (left hands un-mirrored), dataset
    order: FreiHAND's JSON files read as its ``eval.py`` reads them (float64) when ``ds`` is a
    FreiHAND split that has them; else from the samples when they carry 3D targets (float32);
    else HO-3D's released files; None when the split has none."""
    official = getattr(ds, "official_ground_truth", None)
    if source.dataset == "freihand" and official is not None:
        gt = official(res["index"])
        if gt is not None:
            return gt
    if res["has_3d"].all():
        r = res["root"][:, None].astype(np.float64)
        return {"joints": _unmirror(res["gt_joints"].astype(np.float64), res["is_left"]) + r,
                "vertices": _unmirror(res["gt_vertices"].astype(np.float64), res["is_left"]) + r}
    if source.dataset == "ho3d":
        return ho3d_official_ground_truth(source.root, res["sample_id"])
    return None


def test_split_has_ground_truth(dataset: str, root) -> bool:
    """Whether the official test split of ``dataset`` at ``root`` can be scored here: FreiHAND's
    and DexYCB's carry their annotations; HO-3D's evaluation split does only when its released
    ground truth (``evaluation_xyz.json`` and ``evaluation_verts.json``) sits at the root."""
    if dataset != "ho3d":
        return True
    root = Path(root)
    return (root / "evaluation_xyz.json").exists() and (root / "evaluation_verts.json").exists()


def protocol_metrics(dataset: str, ds, res: Dict[str, np.ndarray], joints: np.ndarray,
                     vertices: np.ndarray, gt: Dict[str, np.ndarray],
                     use_dataset_protocol: bool = True) -> Dict[str, float]:
    """The official numbers of predictions ``joints`` / ``vertices`` (root-relative, sample
    frame, dataset order) against ``gt`` (absolute, original frame)."""
    from ..metrics import evaluate_joints_dexycb, evaluate_mesh_and_joints

    if dataset == "dexycb":
        return evaluate_joints_dexycb(joints, gt["joints"], res["is_left"])
    if use_dataset_protocol:
        prot = ds.to_protocol(res["index"], joints, vertices)
        pj, pv = prot["joints"], prot["vertices"]
        if dataset == "freihand" and not prot.get("root_added", True):
            pj, pv = pj + gt["joints"][:, :1], pv + gt["joints"][:, :1]
    else:  # held-out training rows: put the prediction on the ground-truth wrist
        w = gt["joints"][:, :1]
        pj, pv = _unmirror(joints, res["is_left"]) + w, _unmirror(vertices, res["is_left"]) + w
    # joints are in F order whatever the dataset: the scale-translation bone is F's 0 -> 9
    return evaluate_mesh_and_joints(pj, gt["joints"], pv, gt["vertices"], joint_order="freihand")


# ----------------------------------------------------------------------------------------------
# the constants: mean pose and mean articulation
# ----------------------------------------------------------------------------------------------
_MEAN_CACHE: Dict[tuple, dict] = {}


def training_mean(source: DataSource, rows=None, hand_model=None, input_size: int = 256) -> dict:
    """The mean root-relative joints (21, 3) and vertices (778, 3) of ``source``'s training
    split (or of its ``rows``), cached per process."""
    key = (str(source.root), source.dataset, None if rows is None else tuple(int(r) for r in rows))
    if key not in _MEAN_CACHE:
        ds = open_dataset(source, "train", input_size, train=False, hand_model=hand_model,
                          single_version=True)
        if rows is not None:
            # FreiHAND: the rows name image versions; the annotation is the unique sample's
            base = ds
            uniq = sorted({int(r) % len(base) for r in rows})
            ds = _RowView(base, uniq)
        _MEAN_CACHE[key] = root_relative_mean(ds)
    return _MEAN_CACHE[key]


class _RowView:
    def __init__(self, base, rows):
        self.base, self.rows, self.name = base, list(rows), getattr(base, "name", "dataset")

    def __len__(self):
        return len(self.rows)

    def raw(self, i):
        return self.base.raw(self.rows[i])


def mean_articulation_prediction(mean: dict, hand_model, fingertips: str = "manopth"
                                 ) -> Dict[str, np.ndarray]:
    """The hand of the training rows' mean articulation and mean shape, without global rotation,
    through the MANO layer: root-relative "joints" (21, 3) and "vertices" (778, 3).

    A stronger constant than the mean of the root-relative points: under varied global
    rotations that mean shrinks towards a blob, which no similarity alignment undoes, while the
    Procrustes-aligned metrics ignore the rotation this prediction lacks
    (``handssca.data.stats.mean_articulation_hand``, which the data chapter scores too)."""
    from ..data.stats import mean_articulation_hand

    return mean_articulation_hand(mean["articulation"], mean["shape"], hand_model, fingertips)


def _constant_metrics(dataset, ds, res, joints, vertices, gt, official: bool):
    n = len(res["index"])
    return protocol_metrics(dataset, ds, res, np.broadcast_to(joints, (n, 21, 3)).copy(),
                            np.broadcast_to(vertices, (n, 778, 3)).copy(), gt, official)


def mean_pose_baseline(dataset: Optional[str] = None, data_root=None, *, run=None,
                       profile: str = "quick", seed: int = 0, split: str = "test",
                       hand_model=None, verbose: bool = True) -> Dict[str, Any]:
    """Score the two constants ("always predict the training rows' mean pose", and "always
    predict the hand of their mean articulation and shape") with the dataset's official protocol.

    Args:
        dataset: "freihand", "ho3d" or "dexycb" (default: the run's).
        data_root: the dataset folder to score on; None: the run's data, or synthetic data of
            (dataset, profile, seed).
        run: a run folder or :class:`~.runs.Run`: the mean is taken over the run's own training
            rows (its training split minus its validation rows), the data the network saw.
            Without a run, over the training split of ``data_root``.
        profile, seed: name the synthetic data when neither ``data_root`` nor ``run`` is given.
        split: "test" (the official split), "val" (the run's held-out rows) or "train" (every
            row of the training split of ``data_root``, e.g. of other synthetic data).

    Returns:
        {"metrics": {...} of the mean-pose constant or None (no ground truth),
        "mean_articulation": the same for the mean-articulation constant
        (:func:`mean_articulation_prediction`), "train_samples": n, "data":
        "real" | "synthetic", "dataset", "split", "n_samples", "mean": {"joints": (21, 3)}}.
    """
    log = _log if verbose else (lambda m: None)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    r = _as_run(run) if run is not None else None
    source = _source_for(dataset, data_root, r, profile, seed, log, SPLIT_ROWS[split])
    hm = hand_model if hand_model is not None else (r.model.hand_model if r is not None else None)
    ds = _split_dataset(r, source, split, 128 if r is None else r.input_size, hm)
    res = _ground_truth_rows(ds)
    gt = ground_truth(source, res, ds)
    mean = (run_training_mean(r, hm, log, fallback=source) if r is not None
            else training_mean(source, None, hm))
    if hm is None:
        from ..hand import load_hand_model

        hm = load_hand_model()
    art = mean_articulation_prediction(mean, hm, r.model.config.fingertips if r else "manopth")
    metrics = art_metrics = None
    if gt is not None:
        metrics = _constant_metrics(source.dataset, ds, res, mean["joints"], mean["vertices"], gt,
                                    split == "test")
        art_metrics = _constant_metrics(source.dataset, ds, res, art["joints"], art["vertices"],
                                        gt, split == "test")
    return {"metrics": metrics, "mean_articulation": art_metrics, "train_samples": mean["count"],
            "data": source.kind, "dataset": source.dataset, "split": split,
            "n_samples": int(len(res["index"])), "mean": {"joints": mean["joints"].tolist()}}


def _ground_truth_rows(ds) -> Dict[str, np.ndarray]:
    """The sample fields the protocol needs, without running a network (reads annotations and
    images through the dataset)."""
    loader = DataLoader(ds, batch_size=64, shuffle=False, collate_fn=collate)
    acc = {k: [] for k in ("index", "gt_joints", "gt_vertices", "root", "is_left", "has_3d")}
    ids = []
    for batch in loader:
        _append_sample_fields(acc, ids, batch)
    return _in_dataset_order(acc, ids)


# ----------------------------------------------------------------------------------------------
# evaluate()
# ----------------------------------------------------------------------------------------------
def _as_run(run, which: str = "last", device=None) -> Run:
    return run if isinstance(run, Run) else load_run(run, which, device)


def _recorded_root(run: Run) -> Optional[Path]:
    """The data folder a run was trained on, as its checkpoint records it (None for imported
    weights, trained elsewhere)."""
    root = run.checkpoint.get("data_root")
    return Path(root) if root else None


def _recorded_identity(run: Run) -> Optional[dict]:
    """The identity of the synthetic data a run recorded it was trained on (its ``run.json``),
    or None: a run on real data, imported weights, or a bare checkpoint record none."""
    if run.data != "synthetic":
        return None
    return (run.config.get("data") or {}).get("synthetic") or None


def _describe(identity: dict) -> str:
    return (f"{identity.get('style')}-style, n {identity.get('n')}, seed {identity.get('seed')}, "
            f"options {identity.get('options')}, generator version "
            f"{identity.get('generator_version')}")


def _substitute(run: Run, found: str, use: str) -> RunDataMismatchError:
    """The refusal to score ``found`` (described) as ``use`` of ``run``."""
    want = _recorded_identity(run)
    return RunDataMismatchError(
        f"{run.path} was trained on synthetic data ({_describe(want)}; its run.json) that was at "
        f"{run.checkpoint.get('data_root')}, but {found}: scored as {use} it would give numbers "
        f"of other samples. Give --data-root with the run's own data (its new folder if it "
        f"moved; if it was deleted, generate it again with python -m handssca data synth and "
        f"these settings)")


def check_run_data(run: Run, source: DataSource, use: str) -> None:
    """Raise :class:`RunDataMismatchError` unless ``source`` holds the synthetic data ``run``
    recorded it was trained on (same style, n, seed, options and generator version, wherever
    the folder is now). ``use`` says what the rows would be scored as. Nothing to compare for
    a run that recorded no such identity (:func:`_recorded_identity`)."""
    want = _recorded_identity(run)
    if want is None:
        return
    have = synthetic_identity(source.root)
    if have != want:
        found = (f"the synthetic data at {source.root} is other data ({_describe(have)})"
                 if have is not None else f"{source.root} holds no synthetic data")
        raise _substitute(run, found, use)


def _regenerated_run_data(run: Run, log, use: str) -> DataSource:
    """A run's synthetic data generated again from its profile and seed (generation is
    deterministic: the same settings give the same bytes), when that is the data the run
    recorded; refused, before generating anything, when the profile's settings differ."""
    prof = resolve_profile(run.profile)
    want = _recorded_identity(run)
    if want is not None:
        n = synthetic_settings(prof, run.dataset).get("n")
        if (n, run.seed) != (want.get("n"), want.get("seed")):
            raise _substitute(run, f"that folder is not there now, and the synthetic data of its "
                                   f"profile {run.profile!r} and seed would be other data "
                                   f"(n {n}, seed {run.seed})", use)
    source = resolve_data(run.dataset, None, run.profile, run.seed, prof, log=log)
    check_run_data(run, source, use)
    return source


def _recorded_source(run: Run) -> Optional[DataSource]:
    """The run's data at the folder its checkpoint records, when that folder is there and (for
    synthetic data the run recorded) still holds that data; else None."""
    root = _recorded_root(run)
    if root is None or not root.is_dir():
        return None
    want = _recorded_identity(run)
    if want is not None and synthetic_identity(root) != want:
        return None  # regenerated in place with other settings since
    return DataSource(run.dataset, root, run.data)


def _source_for(dataset, data_root, run: Optional[Run], profile, seed, log,
                use: str = SPLIT_ROWS["test"]) -> DataSource:
    if dataset is None:
        if run is None:
            raise ValueError("give a dataset (freihand, ho3d or dexycb) or a run")
        dataset = run.dataset
    dataset = check_dataset(dataset)
    if data_root not in (None, ""):
        return resolve_data(dataset, data_root, log=log)
    own = run is not None and dataset == run.dataset
    if own:
        recorded = _recorded_source(run)
        if recorded is not None:
            return recorded
    prof = run.profile if run is not None else profile
    s = run.seed if run is not None else seed
    if run is not None and run.imported:
        raise ValueError(f"{run.path} holds imported weights (trained elsewhere on the real "
                         f"{run.dataset}): give the dataset folder with --data-root")
    if run is not None and run.data == "real":
        raise ValueError(f"the run was trained on real {run.dataset} data at "
                         f"{run.checkpoint.get('data_root')}, which is not there now: give "
                         f"--data-root")
    if own:  # no data given: the run's own is meant, and nothing else may stand in for it
        return _regenerated_run_data(run, log, use)
    return resolve_data(dataset, None, prof, s, resolve_profile(prof), log=log)


def run_training_source(run: Run, log=_log, fallback: Optional[DataSource] = None) -> DataSource:
    """The data a run was trained on (regenerating its synthetic data if it was removed).

    Synthetic data the run recorded is recognised by its identity, wherever it is: ``fallback``
    (the data being evaluated, e.g. the run's data moved and given with --data-root) serves
    when it is that data; other data never stands in for it (:class:`RunDataMismatchError`).
    Imported weights were trained elsewhere on the whole training split of their dataset: for
    them the training split of ``fallback`` stands in, when it is of the same dataset."""
    recorded = _recorded_source(run)
    if recorded is not None:
        return recorded
    if (_recorded_identity(run) is not None and fallback is not None
            and fallback.dataset == run.dataset
            and synthetic_identity(fallback.root) == _recorded_identity(run)):
        return fallback
    root = _recorded_root(run)
    if run.imported:
        if fallback is not None and fallback.dataset == run.dataset:
            return fallback
        raise ValueError(f"{run.path} holds imported weights: the constants (mean pose, mean "
                         f"articulation) need a {run.dataset} training split; give --data-root "
                         f"of that dataset (or --no-constants)")
    if run.data == "real":
        raise ValueError(f"the run was trained on real {run.dataset} data at {root}, which is not "
                         f"there now")
    return _regenerated_run_data(run, log, TRAINING_ROWS)


def run_rows(run: Run, ds):
    """(training rows, validation rows) of a run's training split, as the run split them."""
    cfg = run.config.get("train") or {}
    return train_val_split(ds, float(cfg.get("val_fraction", 0.0)),
                           int(cfg.get("max_val_samples", 0)), run.seed)


MEAN_FILE = "mean_pose.json"


def run_training_mean(run: Run, hand_model=None, log=_log,
                      fallback: Optional[DataSource] = None) -> dict:
    """The means (root-relative joints and vertices, articulation, shape; see
    :func:`~.datasets.root_relative_mean`) over the rows the run trained on (for imported
    weights, over the training split of ``fallback``, see :func:`run_training_source`).
    Computed once and kept in ``<run>/mean_pose.json`` (reading every training annotation
    takes a while)."""
    source = run_training_source(run, log, fallback)
    cache = Path(run.path) / MEAN_FILE
    key = {"data_root": str(source.root), "fingerprint": run.checkpoint.get("fingerprint")}
    if cache.exists():
        try:
            saved = read_json(cache)
        except DamagedFileError:
            saved = {}  # a damaged cache is computed again (and rewritten) below
        if isinstance(saved, dict) and saved.get("key") == key:
            return {k: (np.asarray(v) if isinstance(v, list) else v)
                    for k, v in saved["mean"].items()}
    ds = open_dataset(source, "train", run.input_size, train=False,
                      hand_model=hand_model if hand_model is not None else run.model.hand_model)
    rows_train, _ = run_rows(run, ds)
    mean = training_mean(source, rows_train, hand_model)
    if (Path(run.path) / "run.json").exists():
        write_json_atomic(cache, {"key": key, "mean": mean})
    return mean


def _split_dataset(run: Optional[Run], source: DataSource, split: str, input_size: int, hm):
    """The rows to score: the test split; the run's validation rows; or a whole training split,
    without augmentation."""
    if split == "test":
        return open_dataset(source, "test", input_size, hand_model=hm)
    ds = open_dataset(source, "train", input_size, hand_model=hm)
    if split == "train":
        return Unaugmented(ds, range(len(ds)))
    if run is None:
        raise ValueError("split 'val' is a run's held-out rows: give the run")
    if run.imported:
        raise ValueError(f"split 'val' is a run's held-out training rows; {run.path} holds "
                         f"imported weights, which have none: evaluate split 'test' (or 'train' "
                         f"of other data)")
    if source.dataset != run.dataset or (_recorded_identity(run) is None
                                         and source.root != run_training_source(run).root):
        raise ValueError("split 'val' is the run's own held-out rows: evaluate it on the run's "
                         "own dataset and data (or use split 'train' on other data)")
    # the held-out rows are rows of the run's data only: other synthetic data (regenerated, or
    # another folder) would hold other samples under the same row numbers
    check_run_data(run, source, SPLIT_ROWS["val"])
    _, rows_val = run_rows(run, ds)
    if len(rows_val) == 0:
        raise ValueError(f"{run.path}: the run held out no validation rows (val_fraction "
                         f"{(run.config.get('train') or {}).get('val_fraction', 0.0)}); evaluate "
                         f"split 'test' instead")
    return Unaugmented(ds, rows_val)


def constants_line(report: Dict[str, Any]) -> str:
    """The network's PA-MPJPE against the best constant, and both constants, as one line of
    text (:func:`handssca.report.verdict`), e.g. "network 9.10 mm PA-MPJPE vs best constant
    (mean-articulation) 12.20 mm: 0.75x: beats the constant; mean-pose constant 15.00 mm,
    mean-articulation constant 12.20 mm"."""
    v = verdict(report, label="network")
    consts = ", ".join(f"{k} {x:.2f} mm" for k, x in v.constants.items())
    return v.text + (f"; {consts}" if consts else "")


def evaluate(checkpoint, dataset: Optional[str] = None, data_root=None, split: str = "test",
             out=None, which: str = "last", device: Optional[str] = None,
             batch_size: int = 32, num_workers: int = 0, baseline: bool = True,
             verbose: bool = True, overwrite: bool = False) -> Dict[str, Any]:
    """Evaluate a trained run with the dataset's official protocol.

    Args:
        checkpoint: a run folder, a checkpoint JSON / safetensors file, or a loaded
            :class:`~.runs.Run`.
        dataset: "freihand", "ho3d" or "dexycb" (default: the dataset the run was trained on).
        data_root: the dataset folder (default: the run's data; synthetic data of the run's
            profile and seed when the run used synthetic data).
        split: "test" (the official split, with the submission file), "val" (the run's
            held-out training rows) or "train" (a whole training split, e.g. of synthetic data of
            another seed: unseen hands with ground truth); no submission for the last two.
        out: the output folder (default ``<run>/eval/<dataset>-<split>-<which>``, with the data
            folder's name appended when it is not the run's own data). In a folder given here,
            an existing ``metrics.json`` or submission file is refused unless ``overwrite``; the
            default folder is the run's own and is refreshed.
        which: "last" or "best" checkpoint of a run folder.
        device: "cpu", "cuda", ... (None: CUDA when available).
        batch_size, num_workers: of the evaluation loader.
        baseline: also score the two constants (mean pose, mean articulation) on the same
            samples (``metrics.json`` keys ``baseline`` and ``baseline_mean_articulation``).
        overwrite: replace ``metrics.json`` and the submission file in ``out``.

    Raises:
        handssca.utils.OutputExistsError: an output file exists in ``out`` and not
            ``overwrite``.
        RunDataMismatchError: no ``data_root`` was given and the data found for the run (its
            folder moved or regenerated) is not the data it was trained on; or split "val" on
            data that is not the run's.

    Returns:
        the content of ``metrics.json``: "metrics" (None when the split has no ground truth),
        "baseline" (the mean-pose constant), "ratio_to_baseline", "baseline_mean_articulation",
        "ratio_to_mean_articulation", "submission", "data", "protocol", "provenance", ...
        Under torchrun: on rank 0; None on the other ranks, which predict their share only.
    """
    log = _log if verbose else (lambda m: None)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if out is not None:  # a file in the way is refused before the evaluation's work
        require_folder(out, "--out", "a folder for metrics.json and the submission")
    world, device = _parallel_device(checkpoint, device)
    if not world.is_main:  # one voice: rank 0 logs and writes for the job
        log = (lambda m: None)
    run = _as_run(checkpoint, which, device)
    # rank 0 first: it may generate the synthetic split, which the others then read
    source = distributed.main_first(lambda: _source_for(
        dataset, data_root, run, run.profile, run.seed, log, SPLIT_ROWS[split]), world)
    if out is None:
        name = f"{source.dataset}-{split}-{which}"
        own = _recorded_root(run)
        if own is None or source.root != own:
            name += f"-{source.root.name}"
        out = run.path / EVAL_DIR / name
    elif not overwrite:  # a folder the user chose: checked before the work, not after it
        refuse_existing([Path(out) / "metrics.json"]
                        + ([Path(out) / SUBMISSION_FILES[source.dataset]] if split == "test"
                           else []))
    dev = run.device
    ds = _split_dataset(run, source, split, run.input_size, run.model.hand_model)
    kind = "SYNTHETIC " if source.kind == "synthetic" else "real "
    log(f"[evaluate] {run.path.name}: {kind}{source.dataset} {split} split, {len(ds)} samples, "
        f"{which} checkpoint (epoch {run.checkpoint.get('epoch')}) on {device_name(dev)}")
    res = predict_shared(run.model, ds, dev, world, batch_size, num_workers,
                         desc=f"evaluate {split}")
    if res is None:  # another rank than 0: its share is with rank 0
        return None
    gt = ground_truth(source, res, ds)
    metrics = None
    if gt is not None:
        metrics = protocol_metrics(source.dataset, ds, res, res["joints"], res["vertices"], gt,
                                   split == "test")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    submission = None
    if split == "test":
        sub = out / SUBMISSION_FILES[source.dataset]
        if source.dataset == "dexycb":
            ds.write_submission(sub, res["index"], res["joints"])
        else:
            ds.write_submission(sub, res["index"], res["joints"], res["vertices"])
        submission = sub.name
    base, base_art, ratio, ratio_art = None, None, None, None
    if baseline:
        mean = run_training_mean(run, run.model.hand_model, log, fallback=source)
        art = mean_articulation_prediction(mean, run.model.hand_model, run.model.config.fingertips)
        official = split == "test"
        base = {"name": "mean-pose constant", "description": "every sample predicted as the "
                "mean of the root-relative joints and vertices of the rows the run trained on, "
                "scored with the same protocol", "train_samples": mean["count"],
                "metrics": None if gt is None else _constant_metrics(
                    source.dataset, ds, res, mean["joints"], mean["vertices"], gt, official)}
        base_art = {"name": "mean-articulation constant", "description": "every sample "
                    "predicted as the MANO hand of the training rows' mean articulation and mean "
                    "shape (no global rotation), scored with the same protocol",
                    "train_samples": mean["count"],
                    "metrics": None if gt is None else _constant_metrics(
                        source.dataset, ds, res, art["joints"], art["vertices"], gt, official)}

        def _ratio(b):
            if metrics is None or b["metrics"] is None:
                return None
            return {k: metrics[k] / b["metrics"][k] for k in ("pa_mpjpe", "pa_mpvpe", "mpjpe")
                    if k in metrics and k in b["metrics"] and b["metrics"][k]}

        ratio, ratio_art = _ratio(base), _ratio(base_art)
    rec = run.checkpoint
    report = {
        "dataset": source.dataset, "split": split, "data": source.kind,
        "data_root": str(source.root), "n_samples": int(len(res["index"])),
        "protocol": PROTOCOLS[source.dataset] if split == "test" else
        PROTOCOLS[source.dataset] + (" (on the run's held-out training rows" if split == "val"
                                     else " (on a training split") + ", without augmentation; "
        "predictions put on the ground-truth wrist)",
        "units": UNITS, "metrics": metrics, "baseline": base, "ratio_to_baseline": ratio,
        "baseline_mean_articulation": base_art, "ratio_to_mean_articulation": ratio_art,
        "submission": submission,
        "note": None if metrics is not None else (
            "this split carries no ground truth here: submit the file to the dataset's server"
            if source.kind == "real" else
            "this synthetic split carries no ground truth (as the real dataset's): score the "
            "network on the run's held-out training sequences (split 'val'), or on the "
            "training split of other synthetic data (split 'train')"),
        "checkpoint": {"path": rec["weights"], "which": which, "epoch": rec.get("epoch"),
                       "weights_sha256": sha256_file(rec["weights"]), "run": str(run.path)},
        "model": {"network": run.spec.to_dict(), "imported": run.imported,
                  "trained_on": {"dataset": run.dataset, "data": run.data}},
        "provenance": dict(provenance(dev), profile=run.profile, seed=run.seed,
                           hand_model=rec.get("hand_model"), data=source.kind),
    }
    write_json_atomic(out / "metrics.json", report)
    if metrics is not None:
        log(f"[evaluate] {constants_line(report)}")
    log(f"[evaluate] wrote {out / 'metrics.json'}" + (f" and {out / submission}" if submission else ""))
    report["out"] = str(out)
    return report
