"""Figures and tables of the training chapters (FreiHAND, DexYCB, HO-3D): the run log, a gallery
of predictions, the evaluation beside the two constants that ignore the image (the mean-pose
and the mean-articulation hand, :mod:`handssca.report.verdict`), and the box that says which
data a page was built on.

Glossary (the paper's Section 4 and book/datasets_and_metrics.md, section Metrics):

==========================  =====================================================================
``loss``                    the training loss of Eq. 4 (mean over an epoch's samples)
``loss_<term>``             its terms: ``vertices`` (alpha_V), ``joints`` (alpha_3D), ``pose``
                            (alpha_theta), ``shape`` (alpha_beta), ``joints2d`` (alpha_2D)
``val_pa_mpjpe``            PA-MPJPE (mm) of the run's held-out training rows after each epoch
``pa_mpjpe``, ``pa_mpvpe``  Procrustes-aligned joint / vertex errors, mm (Tables 1, 3)
``f5_aligned``, ...         F-scores after the vertex Procrustes fit: the paper's F@5, F@15
``mpjpe``                   DexYCB: wrist-relative MPJPE, mm (Table 2); FreiHAND, HO-3D:
                            unaligned, with the ground-truth wrist added
==========================  =====================================================================

Everything here reads what :mod:`handssca.engine` writes (run folders, ``metrics.jsonl``, the
``metrics.json`` of :func:`handssca.engine.evaluate`) and draws with matplotlib; crops and
skeletons come from :mod:`handssca.viz.data`, meshes from :func:`handssca.render.overlay_mesh`.
Whatever was computed on synthetic data says "SYNTHETIC" in its title or caption.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from handssca.errors import read_json
from handssca.utils import shown_path
from handssca.report.tables import CONSTANT_LABELS, CONSTANTS_NOTE, Table
from handssca.report.verdict import constants_of

#: metric key -> (label, unit); unit "mm" (errors) or "%" (fractions in [0, 1], shown x 100)
METRIC_LABELS = {
    "pa_mpjpe": ("PA-MPJPE", "mm"),
    "pa_mpvpe": ("PA-MPVPE", "mm"),
    "f5_aligned": ("F@5 (aligned)", "%"),
    "f15_aligned": ("F@15 (aligned)", "%"),
    "pa_mpjpe_auc": ("PA-MPJPE AUC 0-50 mm", "%"),
    "pa_mpvpe_auc": ("PA-MPVPE AUC 0-50 mm", "%"),
    "mpjpe": ("MPJPE", "mm"),
    "mpjpe_auc": ("MPJPE AUC 0-50 mm", "%"),
    "mpvpe": ("MPVPE", "mm"),
    "mpvpe_auc": ("MPVPE AUC 0-50 mm", "%"),
    "sc_tr_mpjpe": ("scale-translation MPJPE", "mm"),
    "sc_tr_mpjpe_auc": ("scale-translation AUC 0-50 mm", "%"),
    "f5": ("F@5 (unaligned)", "%"),
    "f15": ("F@15 (unaligned)", "%"),
    "rr_auc": ("root-relative AUC 0-50 mm (toolkit)", "%"),
    "toolkit_pa_mpjpe": ("PA-MPJPE (toolkit, reflections allowed)", "mm"),
    "toolkit_pa_auc": ("PA AUC 0-50 mm (toolkit)", "%"),
}

#: the keys each dataset's table shows first: the paper's columns, then the protocol's others
MAIN_KEYS = {
    "freihand": ("pa_mpjpe", "pa_mpvpe", "f5_aligned", "f15_aligned", "pa_mpjpe_auc",
                 "pa_mpvpe_auc", "mpjpe"),
    "ho3d": ("pa_mpjpe", "pa_mpjpe_auc", "pa_mpvpe", "pa_mpvpe_auc", "f5_aligned", "f15_aligned",
             "sc_tr_mpjpe", "mpjpe"),
    "dexycb": ("mpjpe", "pa_mpjpe", "rr_auc", "toolkit_pa_mpjpe", "toolkit_pa_auc"),
}

DATASET_NAMES = {"freihand": "FreiHAND", "ho3d": "HO-3D", "dexycb": "DexYCB"}
SPLIT_NAMES = {"test": "official test split", "val": "held-out training rows (split 'val')",
               "train": "whole training split"}


def _synthetic_label(data: Optional[str]) -> str:
    return "SYNTHETIC data: " if data == "synthetic" else ""


def _check_data(data, where: str) -> Optional[str]:
    if data not in (None, "synthetic", "real"):
        raise ValueError(f"{where}: data must be 'synthetic', 'real' or None, got {data!r}")
    return data


# ----------------------------------------------------------------------------------------------
# the run log
# ----------------------------------------------------------------------------------------------
def _run_json(folder: Path) -> dict:
    p = Path(folder) / "run.json"
    return read_json(p) if p.exists() else {}


def _as_log(log_or_run):
    """(RunLog, data kind or None, dataset or None) from a RunLog, Run, run folder or list of
    epoch records."""
    from handssca.engine.runlog import RunLog

    if isinstance(log_or_run, RunLog):
        return log_or_run, None, None
    if isinstance(log_or_run, (str, Path)):
        from handssca.engine import run_log
        from handssca.engine.runs import run_folder

        log = run_log(log_or_run)
        cfg = _run_json(run_folder(log_or_run)).get("config", {})
        return log, (cfg.get("data") or {}).get("kind"), cfg.get("dataset")
    if hasattr(log_or_run, "log") and hasattr(log_or_run, "checkpoint"):  # a loaded Run
        return log_or_run.log, log_or_run.data, log_or_run.dataset
    if hasattr(log_or_run, "path") and isinstance(log_or_run, dict):  # a RunSummary
        return _as_log(log_or_run.path)[0], log_or_run.get("data"), log_or_run.get("dataset")
    if isinstance(log_or_run, (list, tuple)) and all(isinstance(r, dict) for r in log_or_run):
        return RunLog(log_or_run), None, None
    raise ValueError(f"plot_run_log: expected a RunLog, a Run, a RunSummary, a run folder or a "
                     f"list of epoch records, got {type(log_or_run).__name__}")


def constant_values(constants: Optional[Mapping[str, Any]], metric: str = "pa_mpjpe"
                    ) -> Dict[str, float]:
    """{constant's label: value of ``metric``} (mean over seeds) from {label: value}, an
    evaluation report, a result file or :func:`handssca.engine.mean_pose_baseline`'s result;
    {} for None. Raises ValueError for anything else."""
    if constants is None:
        return {}
    if not isinstance(constants, Mapping):
        raise ValueError(f"constants: expected a mapping ({{label: mm}}, an evaluation report or "
                         f"mean_pose_baseline's result), got {type(constants).__name__}")
    if constants and all(isinstance(v, (int, float)) for v in constants.values()):
        return {str(k): float(v) for k, v in constants.items()}
    out = {}
    for key, cells in constants_of(constants).items():
        vals = (cells or {}).get(metric)
        vals = vals if isinstance(vals, (list, tuple)) else [] if vals is None else [vals]
        if vals:
            out[CONSTANT_LABELS[key]] = float(np.mean(vals))
    return out


def lr_steps(log) -> list:
    """The epochs whose learning rate is lower than the previous epoch's, as
    [(epoch, old lr, new lr)]: where the step schedule of Section 4.1 annealed it. The rises of
    a warm-up (the rate recorded at an epoch's start climbs during the first steps) are not
    steps of the schedule and are left out."""
    lrs, epochs = log.column("lr"), log.column("epoch")
    return [(int(epochs[i]), float(lrs[i - 1]), float(lrs[i])) for i in range(1, len(lrs))
            if lrs[i] is not None and lrs[i - 1] is not None and lrs[i] < lrs[i - 1]]


def plot_run_log(log_or_run, ax=None, title: Optional[str] = None, data: Optional[str] = None,
                 terms: bool = False, constants: Optional[Mapping[str, Any]] = None):
    """Training loss (Eq. 4) and validation PA-MPJPE per epoch, learning-rate steps marked.

    The loss is drawn on a log scale (left axis), the validation PA-MPJPE of the run's held-out
    training rows in mm on the right axis (when the run has validation rows), with the
    constants' PA-MPJPE on the same rows as horizontal lines; a dotted vertical line marks each
    epoch whose learning rate the step schedule lowered.

    Args:
        log_or_run: a :class:`handssca.engine.RunLog`, a loaded :class:`handssca.engine.Run`, a
            :class:`handssca.engine.RunSummary`, a run folder, or a list of epoch records (each
            with at least "epoch", "lr" and "loss").
        ax: the matplotlib axis to draw on (default: a new figure).
        title: the title (default: "<dataset> training log"); "SYNTHETIC data: " is put in
            front whenever the run's data was synthetic.
        data: "synthetic" or "real" (default: read from the run; needed for a bare RunLog).
        terms: also draw the five terms of Eq. 4 (thin lines).
        constants: the constants on the run's held-out rows: what
            :func:`handssca.engine.mean_pose_baseline` returns for ``split="val"`` (or an
            evaluation of split "val"), or {label: PA-MPJPE in mm}; drawn as horizontal lines
            on the validation axis.

    Returns:
        the matplotlib Figure.

    Raises:
        ValueError: an empty log, records lacking "epoch", "lr" or "loss", or constants given
            for a run without validation rows.
    """
    import matplotlib.pyplot as plt

    _check_data(data, "plot_run_log")
    log, kind, dataset = _as_log(log_or_run)
    data = data or kind
    if len(log) == 0:
        raise ValueError("plot_run_log: the log is empty (no epoch completed yet); expected at "
                         "least one epoch record")
    missing = [c for c in ("epoch", "lr", "loss") if c not in log.columns]
    if missing:
        raise ValueError(f"plot_run_log: the epoch records lack {missing}; expected the columns "
                         f"'epoch', 'lr' and 'loss' of metrics.jsonl (got {log.columns})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.8, 4.2))
    else:
        fig = ax.figure
    epochs = np.asarray(log.column("epoch"), dtype=float)
    loss = np.asarray(log.column("loss"), dtype=float)
    ax.plot(epochs, loss, "o-", color="#4363d8", label="training loss (Eq. 4)")
    if terms:
        for t in ("vertices", "joints", "pose", "shape", "joints2d"):
            if f"loss_{t}" in log.columns:
                ax.plot(epochs, np.asarray(log.column(f"loss_{t}"), dtype=float), "-", lw=0.8,
                        alpha=0.7, label=f"  {t} term")
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_xticks(epochs)
    handles, labels = ax.get_legend_handles_labels()
    if "val_pa_mpjpe" in log.columns:
        _draw_validation(ax, log, epochs, constants, handles, labels)
    elif constants is not None:
        raise ValueError("plot_run_log: constants were given, but the log has no validation "
                         "PA-MPJPE (the run held out no rows) to set them beside")
    for epoch, old, new in lr_steps(log):  # the schedule acts between two epochs
        ax.axvline(epoch - 0.5, color="grey", ls=":", lw=1)
        ax.text(epoch - 0.5, 1.0, f"lr {old:.2g}\u2192{new:.2g}", rotation=90, va="top",
                ha="right", fontsize=7, color="grey", transform=ax.get_xaxis_transform())
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2, frameon=False)
    name = DATASET_NAMES.get(dataset, dataset or "")
    text = title or f"{name} training log".strip()
    ax.set_title(_synthetic_label(data) + text, fontsize=10)
    fig.tight_layout()
    return fig


def _draw_validation(ax, log, epochs, constants, handles: list, labels: list) -> None:
    """The validation PA-MPJPE per epoch on a twin axis of ``ax``, and the constants' values
    on the same rows as horizontal lines; appends their legend entries."""
    val = np.asarray([np.nan if v is None else v for v in log.column("val_pa_mpjpe")], float)
    ax2 = ax.twinx()
    line, = ax2.plot(epochs, val, "s--", color="#e6194b",
                     label="validation PA-MPJPE (mm, held-out rows)")
    ax2.set_ylabel("validation PA-MPJPE (mm)")
    handles.append(line)
    labels.append(line.get_label())
    for (label, value), style in zip(constant_values(constants).items(), ("--", ":")):
        ref = ax2.axhline(value, ls=style, color="black", lw=1,
                          label=f"{label}: {value:.1f} mm (same rows)")
        handles.append(ref)
        labels.append(ref.get_label())


# ----------------------------------------------------------------------------------------------
# predictions
# ----------------------------------------------------------------------------------------------
def _as_run(run):
    from handssca.engine import Run, load_run

    if isinstance(run, Run):
        return run
    if isinstance(run, dict) and hasattr(run, "path"):  # a RunSummary
        return load_run(run.path, device="cpu")
    if isinstance(run, (str, Path)):
        return load_run(run, device="cpu")
    raise ValueError(f"show_predictions: run must be a Run, a RunSummary or a run folder, got "
                     f"{type(run).__name__}")


def split_dataset(run, split: str):
    """The rows of a run's own data for ``split``, without augmentation, at the run's crop size:
    "test" (the official test split), "val" (the run's held-out training rows, as the run split
    them) or "train" (the whole training split).

    Returns:
        (dataset, data kind "real" | "synthetic").
    """
    from handssca.engine.datasets import Unaugmented, open_dataset
    from handssca.engine.evaluation import run_rows, run_training_source

    if split not in ("test", "val", "train"):
        raise ValueError(f"split must be 'test', 'val' or 'train', got {split!r}")
    run = _as_run(run)
    source = run_training_source(run)
    hm = run.model.hand_model
    if split == "test":
        return open_dataset(source, "test", run.input_size, hand_model=hm), source.kind
    ds = open_dataset(source, "train", run.input_size, hand_model=hm)
    rows = range(len(ds)) if split == "train" else run_rows(run, ds)[1]
    if len(rows) == 0:
        raise ValueError(f"{run.path}: the run held out no validation rows; use split 'test'")
    return Unaugmented(ds, rows), source.kind


def _get_sample(ds, i: int):
    """(sample, transform) of row i without augmentation, from a dataset or a row view."""
    if hasattr(ds, "get"):
        return ds.get(int(i), augment=False)
    if hasattr(ds, "base") and hasattr(ds, "indices"):
        return ds.base.get(ds.indices[int(i)], augment=False)
    raise ValueError(f"show_predictions: dataset must be a handssca.data dataset (FreiHAND, "
                     f"HO3D, DexYCB), a view of one, or a split name, got {type(ds).__name__}")


def _data_kind(ds) -> Optional[str]:
    from handssca.data.files import read_synth_info

    base = getattr(ds, "base", ds)
    root = getattr(base, "root", None)
    if root is None:
        return None
    return "synthetic" if read_synth_info(Path(root)) is not None else "real"


def predict_samples(run, samples: Sequence[dict]) -> Dict[str, np.ndarray]:
    """The network's outputs for sample dictionaries: root-relative "joints" (B, 21, 3) and
    "vertices" (B, 778, 3) (metres, the sample's camera frame, wrist subtracted) and "joints2d"
    (B, 21, 2) normalised uv in the crop, numpy."""
    import torch

    from handssca.engine.trainer import predict_batch

    run = _as_run(run)
    images = torch.stack([s["image"] for s in samples]).to(run.device)
    out = predict_batch(run.model, images, run.device)
    return {k: out[k].numpy() for k in ("joints", "vertices", "joints2d")}


def show_predictions(run, dataset, n: int = 4, indices: Optional[Sequence[int]] = None,
                     title: Optional[str] = None, mesh: bool = True, data: Optional[str] = None):
    """A gallery of predictions: per sample (one column), the input crop with its ground-truth 2D
    joints, the crop with the network's 2D joints (heatmap soft-argmax), and the predicted mesh
    drawn over the crop.

    The network predicts a root-relative mesh; it is drawn at the sample's wrist (the
    ground-truth root, which HO-3D's evaluation split provides too), through the crop's camera
    ``K``: the placement the HO-3D protocol uses. Column titles give the sample id and, where the
    sample has ground truth, its PA-MPJPE (mm, official ``align_w_scale``).

    Args:
        run: a loaded :class:`handssca.engine.Run`, a RunSummary or a run folder.
        dataset: a ``handssca.data`` dataset at the run's crop size (or a view of one with
            ``base`` and ``indices``), or a split name of the run's own data: "test", "val" or
            "train" (:func:`split_dataset`).
        n: how many samples, spread evenly over the dataset (ignored when ``indices`` is given;
            at most the dataset's length).
        indices: the rows to show.
        title: the figure title (default "<dataset> predictions"); "SYNTHETIC data: " is put in
            front when the data is synthetic.
        mesh: False leaves out the mesh row (no OpenGL needed).
        data: "synthetic" or "real" (default: read from the dataset folder, else the run's).

    Returns:
        the matplotlib Figure (3 rows, or 2 without ``mesh``; one column per sample).

    Raises:
        ValueError: n < 1, an index out of range, an empty dataset, or a crop size that is not
            the run's.
    """
    import matplotlib.pyplot as plt

    from handssca.metrics import pa_mpjpe
    from handssca.viz.data import _wrap_id, camera_vertices, crop_image, draw_skeleton

    _check_data(data, "show_predictions")
    run = _as_run(run)
    if isinstance(dataset, str):
        dataset, kind = split_dataset(run, dataset)
    else:
        kind = _data_kind(dataset)
    data = data or kind or run.data
    size = len(dataset)
    if size == 0:
        raise ValueError("show_predictions: the dataset is empty; expected at least one sample")
    if indices is None:
        if int(n) < 1:
            raise ValueError(f"show_predictions: n must be >= 1, got {n}")
        indices = np.unique(np.linspace(0, size - 1, min(int(n), size)).round().astype(int))
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < size]
    if bad or not indices:
        raise ValueError(f"show_predictions: indices must be in 0..{size - 1}, got {indices}")
    pairs = [_get_sample(dataset, i) for i in indices]
    samples = [p[0] for p in pairs]
    S = int(samples[0]["image"].shape[-1])
    if S != run.input_size:
        raise ValueError(f"show_predictions: the dataset's crops are {S} x {S} but the run was "
                         f"trained on {run.input_size} x {run.input_size}; open the dataset "
                         f"with input_size={run.input_size} or pass a split name")
    pred = predict_samples(run, samples)
    faces = np.asarray(run.model.faces)
    rows = 3 if mesh else 2
    cols = len(samples)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 0.6, 2.4 * rows), squeeze=False)
    for c, ((sample, tr), pj, pv, p2) in enumerate(zip(pairs, pred["joints"], pred["vertices"],
                                                     pred["joints2d"])):
        img = crop_image(sample)
        has_gt = bool(sample["has_3d"])
        head = _wrap_id(str(sample["sample_id"]))
        head += " (left, mirrored)" if sample["is_left"] else ""
        if has_gt:
            err = pa_mpjpe(pj[None].astype(np.float64), sample["joints3d"].double().numpy()[None])
            head += f"\nPA-MPJPE {err:.1f} mm"
        ax = axes[0, c]
        ax.imshow(img)
        if has_gt:
            draw_skeleton(ax, sample["joints2d"].numpy(), size=S)
        else:
            ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8,
                    color="white", transform=ax.transAxes,
                    bbox={"facecolor": "black", "alpha": 0.5, "lw": 0})
        ax.set_title(head, fontsize=7)
        ax = axes[1, c]
        ax.imshow(img)
        draw_skeleton(ax, p2, size=S)
        if mesh:
            from handssca.render import overlay_mesh

            placed = camera_vertices({"vertices": _tensor(pv), "root": sample["root"],
                                      "is_left": sample["is_left"]}, tr)
            axes[2, c].imshow(overlay_mesh(img, placed, faces, sample["K"].double().numpy()))
    for r, label in enumerate(("ground truth 2D", "predicted 2D", "predicted mesh")[:rows]):
        axes[r, 0].set_ylabel(label, fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    name = DATASET_NAMES.get(run.dataset, run.dataset)
    fig.suptitle(_synthetic_label(data) + (title or f"{name} predictions"), fontsize=10)
    fig.tight_layout()
    return fig


def _tensor(a):
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def per_sample_errors(run, split: str = "test", batch_size: int = 32) -> Dict[str, np.ndarray]:
    """Per-sample errors of a run on a split of its own data, for looking beyond the mean.

    Errors are computed in the sample's (mirrored, for left hands) camera frame: a mirror is an
    isometry, so they equal the errors after un-mirroring.

    Args:
        run: a loaded Run, a RunSummary or a run folder.
        split: "test", "val" or "train" (:func:`split_dataset`).

    Returns:
        dict of (N,) arrays in dataset order: "sample_id", "is_left", "has_3d", "occlusion"
        (fraction of the hand hidden, NaN when the dataset does not say), "pa_mpjpe" (official
        ``align_w_scale``, mm) and "mpjpe" (wrist-relative, mm); NaN errors where the sample has
        no ground truth.
    """
    from handssca.engine.evaluation import predict_dataset
    from handssca.metrics import mpjpe, pa_mpjpe
    from handssca.viz.data import occlusion_values

    run = _as_run(run)
    ds, _ = split_dataset(run, split)
    res = predict_dataset(run.model, ds, run.device, batch_size=batch_size, desc=f"predict {split}")
    n = len(res["index"])
    pa, rr = np.full(n, np.nan), np.full(n, np.nan)
    ok = res["has_3d"]
    if ok.any():
        pj, gj = res["joints"][ok].astype(np.float64), res["gt_joints"][ok].astype(np.float64)
        pa[ok] = pa_mpjpe(pj, gj, reduce=False)
        rr[ok] = mpjpe(pj, gj, reduce=False)
    # a sample's "index" is its row in the underlying dataset (also for a view of its rows)
    occ = occlusion_values(getattr(ds, "base", ds))[res["index"]]
    return {"sample_id": res["sample_id"], "is_left": res["is_left"], "has_3d": ok,
            "occlusion": occ, "pa_mpjpe": pa, "mpjpe": rr}


def data_notice(data: str, dataset: str, root=None):
    """The box a chapter shows at its top: which data produced its numbers.

    Args:
        data: "synthetic" or "real" (the "data" field of a training summary or an evaluation).
        dataset: "freihand", "ho3d" or "dexycb". root: the data folder (shown when given).

    Returns:
        an ``IPython.display.HTML`` object styled as the book's admonitions ("important" for
        synthetic data, "note" for real data); its text starts with "SYNTHETIC data" for
        synthetic data.
    """
    import html

    from IPython.display import HTML

    _check_data(data, "data_notice")
    if data is None:
        raise ValueError("data_notice: data must be 'synthetic' or 'real', got None")
    name = DATASET_NAMES.get(dataset, dataset)
    if root:  # the path as the reader's checkout would have it
        root = shown_path(root)
    where = f" (<code>{html.escape(str(root))}</code>)" if root else ""
    if data == "synthetic":
        kind, head = "important", "SYNTHETIC data"
        text = (f"Every number measured on this page, and every figure, comes from <b>synthetic "
                f"{html.escape(name)}-style data</b>{where}: procedural hands rendered and written "
                f"in {html.escape(name)}'s own file layout by <code>handssca.data.synth</code>, "
                f"read by the same loader and scored with the same protocol as the real dataset. "
                f"They check the pipeline and compare settings on equal terms; they say nothing "
                f"about the real {html.escape(name)} and are not comparable with the paper's "
                f"numbers. Give <code>data_root</code> to train on the real dataset.")
    else:
        kind, head = "note", f"Real data: {html.escape(name)}"
        text = (f"This page was produced on the real {html.escape(name)} dataset{where}.")
    return HTML(f'<div class="admonition {kind}"><p class="admonition-title">{head}</p>'
                f"<p>{text}</p></div>")


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def _fmt(value, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.1f}" if unit == "%" else f"{value:.2f}"


def metric_keys(dataset: str, metrics: Mapping[str, Any]) -> list:
    """The keys of ``metrics`` in the order a table shows them: the dataset's main keys
    (:data:`MAIN_KEYS`), then the rest."""
    first = [k for k in MAIN_KEYS.get(dataset, ()) if k in metrics]
    return first + [k for k in metrics if k not in first]


def metrics_table(report: Mapping[str, Any], keys: Optional[Sequence[str]] = None) -> Table:
    """The evaluation's metrics beside the two constants' (the mean-pose and the
    mean-articulation constant, those the report has), on the same samples with the same
    protocol.

    Args:
        report: what :func:`handssca.engine.evaluate` returns (or its ``metrics.json``): needs
            "dataset", "split", "data" and "metrics"; the constants are read from "baseline"
            and "baseline_mean_articulation".
        keys: the metric keys to show (default: every key, the dataset's main ones first).

    Returns:
        a :class:`handssca.report.Table`: one row per metric with its unit (errors in mm, lower
        is better; AUCs and F-scores in %, higher is better); the caption names the dataset,
        the split, the sample count and, for synthetic data, says SYNTHETIC.

    Raises:
        ValueError: the report lacks a field, has no metrics (a split without ground truth), or
            ``keys`` names a metric it does not hold.
    """
    if not isinstance(report, Mapping):
        raise ValueError(f"metrics_table: expected the dict handssca.engine.evaluate returns, got "
                         f"{type(report).__name__}")
    missing = [k for k in ("dataset", "split", "data", "metrics") if k not in report]
    if missing:
        raise ValueError(f"metrics_table: the report lacks {missing}; expected the dict "
                         f"handssca.engine.evaluate returns (dataset, split, data, metrics and "
                         f"the constants)")
    _check_data(report["data"], "metrics_table: report['data']")
    if report["data"] is None:
        raise ValueError("metrics_table: report['data'] must say 'synthetic' or 'real'")
    metrics = report["metrics"]
    if not metrics:
        raise ValueError(f"metrics_table: the report of split {report['split']!r} has no metrics "
                         f"(the split carries no ground truth); expected an evaluation with "
                         f"ground truth, e.g. split 'val'")
    dataset = report["dataset"]
    keys = list(keys) if keys is not None else metric_keys(dataset, metrics)
    unknown = [k for k in keys if k not in metrics]
    if unknown:
        raise ValueError(f"metrics_table: the report holds no metric {unknown[0]!r}; it holds "
                         f"{list(metrics)}")
    columns = [("network", metrics)]
    columns += [(CONSTANT_LABELS[k], m) for k, m in constants_of(report).items() if m]
    header = ["metric", "unit"] + [label for label, _ in columns]
    rows = []
    for k in keys:
        label, unit = METRIC_LABELS.get(k, (k, "%" if "auc" in k or k.startswith("f") else "mm"))
        arrow = "\u2193" if unit == "mm" else "\u2191"  # lower / higher is better
        rows.append([label, f"{unit} {arrow}"] + [_fmt(m.get(k), unit) for _, m in columns])
    name = DATASET_NAMES.get(dataset, dataset)
    n = report.get("n_samples")
    where = SPLIT_NAMES.get(report["split"], report["split"])
    count = f", {n} sample{'s' if n != 1 else ''}" if n is not None else ""
    caption = (f"{_synthetic_label(report['data'])}{name}, {where}{count}: the network vs "
               f"the constants")
    notes = []
    if report.get("protocol"):
        notes.append(f"Protocol: {report['protocol']}.")
    notes.append("Units: errors in mm (\u2193 lower is better); AUCs and F-scores in % "
                 "(\u2191 higher is better; the package stores fractions).")
    if len(columns) > 1:
        notes.append(CONSTANTS_NOTE)
    if report["data"] == "synthetic":
        notes.append("SYNTHETIC data: these numbers check the pipeline and compare methods on "
                     "the same data; they are not comparable with numbers on the real dataset.")
    return Table(header, rows, caption, notes)


def log_table(log_or_run, columns: Optional[Sequence[str]] = None, title: Optional[str] = None,
              data: Optional[str] = None) -> Table:
    """A run's per-epoch log as a :class:`handssca.report.Table` with a caption.

    Args:
        log_or_run: as for :func:`plot_run_log`.
        columns: the columns to show, in order (default: epoch, lr, the loss and its vertex and
            joint terms, the validation errors and the epoch's seconds, those the log has).
        title: the caption (default "<dataset> run log"); "SYNTHETIC data: " is put in front when
            the run's data was synthetic.
        data: "synthetic" or "real" (default: read from the run).

    Raises:
        ValueError: an empty log, or a column the log does not have.
    """
    _check_data(data, "log_table")
    log, kind, dataset = _as_log(log_or_run)
    data = data or kind
    if len(log) == 0:
        raise ValueError("log_table: the log is empty (no epoch completed yet)")
    if columns is None:
        columns = [c for c in ("epoch", "lr", "loss", "loss_vertices", "loss_joints",
                               "val_pa_mpjpe", "val_pa_mpvpe", "val_mpjpe", "seconds")
                   if c in log.columns]
    missing = [c for c in columns if c not in log.columns]
    if missing:
        raise ValueError(f"log_table: the log has no column {missing[0]!r}; columns: {log.columns}")

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [[fmt(r.get(c)) for c in columns] for r in log.rows]
    name = DATASET_NAMES.get(dataset, dataset or "")
    caption = _synthetic_label(data) + (title or f"{name} run log".strip())
    notes = ["loss: Eq. 4 (its terms loss_<term>, weighted); val_*: errors in mm on the run's "
             "held-out training rows; seconds: the epoch's training time."]
    return Table(list(columns), rows, caption, notes)


def paper_comparison(report: Mapping[str, Any], table: int, *, profile: str,
                     hardware: str) -> Table:
    """Our evaluation beside the paper's HandSSCA row of Table ``table`` (1 FreiHAND, 2 DexYCB,
    3 HO-3D), one line per metric column: the paper's value, ours, ours - paper and the two
    constants on our samples.

    Built with :func:`handssca.report.compare_table` (the paper's numbers come from
    ``handssca.report`` only; our aligned F-scores go under the paper's F@5/F@15). The #Params
    column is left out: it belongs to the paper's configuration, not to a run.

    Args:
        report: what :func:`handssca.engine.evaluate` returns, with metrics.
        table: 1, 2 or 3. profile, hardware: what produced our numbers (for the notes).

    Returns:
        a :class:`handssca.report.Table`, with a column per constant the report holds (scored
        on our samples, not the paper's); its caption says SYNTHETIC data for synthetic data
        and names the split our numbers are on.

    Raises:
        ValueError: ``table`` not 1-3, or a report without metrics.
    """
    from handssca.report import COLUMN_LABELS, compare_table, paper_cells, table_columns

    if table not in (1, 2, 3):
        raise ValueError(f"paper_comparison: expected Table 1, 2 or 3 (FreiHAND, DexYCB, HO-3D), "
                         f"got {table!r}")
    if not isinstance(report, Mapping) or not report.get("metrics"):
        raise ValueError("paper_comparison: expected an evaluation report with metrics (the dict "
                         "handssca.engine.evaluate returns, on a split with ground truth)")
    row = "HandSSCA (paper)"
    cols = [c for c in table_columns(table) if c != "params"]
    consts = constants_of(report)
    full = compare_table(table, {row: paper_cells(report["metrics"])}, data=report["data"],
                         profile=profile, hardware=hardware, columns=cols, constants=consts)
    ours = next(r for r in full.rows if r[0] == row)
    # the constants' rows of compare_table, turned into columns: their value is the middle cell
    extra = [r for r in full.rows if r[0].endswith("constant (ours)")]
    rows = [[COLUMN_LABELS.get(c, c)] + ours[1 + 3 * i: 4 + 3 * i]
            + [r[2 + 3 * i] or "-" for r in extra] for i, c in enumerate(cols)]
    where = SPLIT_NAMES.get(report.get("split"), report.get("split"))
    n = report.get("n_samples")
    caption = full.caption + f"; ours on the {where}" + (
        f", {n} sample{'s' if n != 1 else ''}" if n else "")
    header = ["metric", "paper", "ours", "ours - paper"] + [r[0].replace(" (ours)", "")
                                                              for r in extra]
    return Table(header, rows, caption, full.notes)


__all__ = ["plot_run_log", "lr_steps", "show_predictions", "split_dataset", "predict_samples",
           "per_sample_errors", "data_notice", "metrics_table", "metric_keys", "log_table",
           "paper_comparison", "constant_values", "METRIC_LABELS", "MAIN_KEYS"]
