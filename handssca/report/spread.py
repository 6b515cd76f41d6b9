"""Our runs alone: the mean and spread over seeds of each variant (Section 4.4's ablations).

The paper prints one number per variant. Our ablations train every variant once per seed, so
each cell is a small sample: :func:`spread_table` shows its mean and standard deviation beside
the mean-pose baseline scored on the same samples, and :func:`seed_separation` puts the
differences between variants next to the differences between seeds of one variant, the first
thing to look at before reading a ranking into a table.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

from .paper import COLUMN_LABELS, VARIANT_LABELS, paper_numbers
from .tables import OURS_DATA, Table, format_value, paper_cells

BASELINE_LABEL = "mean-pose baseline"


def column_unit(column: str) -> str:
    """The paper's unit of a metric column (``mm``, ``%`` or ``M``); for a column the paper
    does not print, ``%`` for F-scores and AUCs and ``mm`` otherwise."""
    for n in paper_numbers():
        if n.column == column:
            return n.unit
    return "%" if column.startswith("f") or column.endswith("auc") else "mm"


def _values(values) -> list:
    if values is None:
        return []
    vals = values if isinstance(values, (list, tuple)) else [values]
    return [float(v) for v in vals if v is not None and not math.isnan(float(v))]


def _mean_std(vals: Sequence[float]):
    mean = sum(vals) / len(vals)
    std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
           if len(vals) > 1 else None)
    return mean, std


def _cell(values, unit: str) -> str:
    vals = _values(values)
    if not vals:
        return "not run"
    scale = 100.0 if unit == "%" else (1e-6 if unit == "M" else 1.0)
    mean, std = _mean_std([v * scale for v in vals])
    return format_value(mean, unit) + ("" if std is None else f" ± {format_value(std, unit)}")


def spread_table(metrics: Mapping[str, Mapping[str, object]], columns: Sequence[str], *,
                 data: str, baseline: Optional[Mapping[str, object]] = None,
                 caption: str = "Our variants: mean ± std over seeds") -> Table:
    """Per variant, the mean ± sample standard deviation over seeds of each column, and the
    mean-pose baseline on the same samples as the last row.

    Args:
        metrics: {variant: {metric key: value or [value per seed]}} (package keys and units,
            as :func:`handssca.engine.evaluate_variants` returns them; the aligned F-scores
            fill the paper's F@5/F@15, :func:`~.tables.paper_cells`).
        columns: the paper's metric columns to show, e.g. ``["pa_mpjpe", "f5"]``.
        data: ``"synthetic"`` or ``"real"``: named in the caption.
        baseline: {metric key: value or [value per seed]} of the mean-pose baseline, or None.
        caption: the caption; the data kind is appended.

    Returns:
        a :class:`~.tables.Table` with one row per variant (the paper's labels), a "seeds"
        column, and the baseline row.
    """
    if data not in OURS_DATA[:2]:
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    if not columns:
        raise ValueError("columns must name at least one metric column")
    header = ["variant", "seeds"] + [COLUMN_LABELS.get(c, c) for c in columns]
    rows = []
    for variant, cells in metrics.items():
        cells = paper_cells(cells)
        n = max((len(_values(cells.get(c))) for c in columns), default=0)
        rows.append([VARIANT_LABELS.get(variant, variant), str(n)]
                    + [_cell(cells.get(c), column_unit(c)) for c in columns])
    if baseline is not None:
        cells = paper_cells(baseline)
        n = max((len(_values(cells.get(c))) for c in columns), default=0)
        rows.append([BASELINE_LABEL, str(n)]
                    + [_cell(cells.get(c), column_unit(c)) for c in columns])
    kind = "SYNTHETIC data" if data == "synthetic" else "real data"
    notes = ["Each cell: mean ± sample standard deviation over the seeds (no ± with one seed). "
             f"The {BASELINE_LABEL} predicts every sample as the mean hand of the run's training "
             "rows and is scored with the same protocol on the same samples."]
    return Table(header, rows, f"{caption} ({kind})", notes)


def seed_separation(metrics: Mapping[str, Mapping[str, object]], column: str) -> Dict[str, object]:
    """How far apart the variants' means are, against how far apart one variant's seeds are.

    Args:
        metrics: {variant: {metric key: [value per seed]}} (package keys and units).
        column: a paper column, e.g. ``"pa_mpjpe"`` (``"f5"`` reads ``f5_aligned``).

    Returns:
        {"means": {variant: mean}, "best": the variant with the best mean (lowest error, highest
        F-score or AUC), "range": largest minus smallest mean, "pooled_std": the root mean
        within-variant variance over the variants with two or more seeds (None when none has),
        "ratio": range / pooled_std (None without a pooled std, inf when it is 0), "seeds":
        {variant: n}} in the package's units (mm, fractions).

    Raises:
        ValueError: no variant holds a value of ``column``.
    """
    vals = {v: _values(paper_cells(cells).get(column)) for v, cells in metrics.items()}
    vals = {v: x for v, x in vals.items() if x}
    if not vals:
        raise ValueError(f"no variant holds a value of {column!r}; variants: {list(metrics)}")
    means = {v: _mean_std(x)[0] for v, x in vals.items()}
    higher_is_better = column_unit(column) == "%"
    best = (max if higher_is_better else min)(means, key=means.get)
    variances = [_mean_std(x)[1] ** 2 for x in vals.values() if len(x) > 1]
    pooled = math.sqrt(sum(variances) / len(variances)) if variances else None
    rng = max(means.values()) - min(means.values())
    return {"means": means, "best": best, "range": rng, "pooled_std": pooled,
            "ratio": None if pooled is None else (rng / pooled if pooled > 0 else math.inf),
            "seeds": {v: len(x) for v, x in vals.items()}}
