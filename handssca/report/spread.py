"""Our runs alone: the mean and spread over seeds of each variant (Section 4.4's ablations).

The paper prints one number per variant. Our ablations train every variant once per seed, so
each cell is a small sample: :func:`spread_table` shows its mean and standard deviation beside
the two constants scored on the same samples (the mean-pose and the mean-articulation constant,
:mod:`.verdict`), :func:`seed_separation` puts the differences between variants next to the
differences between seeds of one variant, and :func:`separation` decides, by one rule, whether
a difference between variants can be read at all: only a gap larger than twice the pooled seed
standard deviation is a detectable difference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .paper import COLUMN_LABELS, VARIANT_LABELS, paper_numbers
from .tables import CONSTANT_LABELS, CONSTANTS_NOTE, OURS_DATA, Table, format_value, paper_cells

#: a gap between two variants is detectable when it exceeds this many pooled seed sds
DETECTABLE_SDS = 2.0


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
                 constants: Optional[Mapping[str, Optional[Mapping[str, object]]]] = None,
                 caption: str = "Our variants: mean ± std over seeds") -> Table:
    """Per variant, the mean ± sample standard deviation over seeds of each column, and the
    constants on the same samples as the last rows.

    Args:
        metrics: {variant: {metric key: value or [value per seed]}} (package keys and units,
            as :func:`handssca.engine.evaluate_variants` returns them; the aligned F-scores
            fill the paper's F@5/F@15, :func:`~.tables.paper_cells`).
        columns: the paper's metric columns to show, e.g. ``["pa_mpjpe", "f5"]``.
        data: ``"synthetic"`` or ``"real"``: named in the caption.
        baseline: {metric key: value or [value per seed]} of the mean-pose constant (the
            first name of ``constants["mean_pose"]``), or None.
        constants: {"mean_pose": cells or None, "mean_articulation": cells or None}
            (:data:`CONSTANT_LABELS`); a row per constant given.
        caption: the caption; the data kind is appended.

    Returns:
        a :class:`~.tables.Table` with one row per variant (the paper's labels), a "seeds"
        column, and one row per constant.
    """
    if data not in OURS_DATA[:2]:
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    if not columns:
        raise ValueError("columns must name at least one metric column")
    consts = dict(constants or {})
    unknown = set(consts) - set(CONSTANT_LABELS)
    if unknown:
        raise ValueError(f"constants: unknown keys {sorted(unknown)}; expected "
                         f"{list(CONSTANT_LABELS)}")
    if baseline is not None:
        consts.setdefault("mean_pose", baseline)
    header = ["variant", "seeds"] + [COLUMN_LABELS.get(c, c) for c in columns]

    def row(label, cells):
        cells = paper_cells(cells)
        n = max((len(_values(cells.get(c))) for c in columns), default=0)
        return [label, str(n)] + [_cell(cells.get(c), column_unit(c)) for c in columns]

    rows = [row(VARIANT_LABELS.get(v, v), cells) for v, cells in metrics.items()]
    rows += [row(label, consts[k]) for k, label in CONSTANT_LABELS.items() if consts.get(k)]
    kind = "SYNTHETIC data" if data == "synthetic" else "real data"
    notes = ["Each cell: mean ± sample standard deviation over the seeds (no ± with one seed)."]
    if any(consts.values()):
        notes.append(CONSTANTS_NOTE)
    return Table(header, rows, f"{caption} ({kind})", notes)


def pooled_std(samples: Sequence[Sequence[float]]) -> Optional[float]:
    """The pooled sample standard deviation of several groups (one group per variant, one
    value per seed): sqrt(sum_i (n_i - 1) s_i^2 / sum_i (n_i - 1)) over the groups with two or
    more values; None when no group has two."""
    groups = [list(x) for x in samples if len(x) > 1]
    dof = sum(len(x) - 1 for x in groups)
    if dof == 0:
        return None
    ss = sum(sum((v - sum(x) / len(x)) ** 2 for v in x) for x in groups)
    return math.sqrt(ss / dof)


def seed_separation(metrics: Mapping[str, Mapping[str, object]], column: str) -> Dict[str, object]:
    """How far apart the variants' means are, against how far apart one variant's seeds are.

    Args:
        metrics: {variant: {metric key: [value per seed]}} (package keys and units).
        column: a paper column, e.g. ``"pa_mpjpe"`` (``"f5"`` reads ``f5_aligned``).

    Returns:
        {"means": {variant: mean}, "best": the variant with the best mean (lowest error, highest
        F-score or AUC), "range": largest minus smallest mean, "pooled_std": the pooled
        within-variant standard deviation (:func:`pooled_std`; None when no variant has two
        seeds),
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
    pooled = pooled_std(list(vals.values()))
    rng = max(means.values()) - min(means.values())
    return {"means": means, "best": best, "range": rng, "pooled_std": pooled,
            "ratio": None if pooled is None else (rng / pooled if pooled > 0 else math.inf),
            "seeds": {v: len(x) for v, x in vals.items()}}


@dataclass
class Separation:
    """Whether variants differ by more than their seeds do (:func:`separation`).

    Attributes:
        name: what is compared, e.g. "PA-MPJPE". unit: its unit ("mm", "%", "px", "").
        higher: True when the highest value leads (F-scores, contrasts, radii), False when the
            lowest does (errors).
        means: {variant: mean over seeds}. seeds: {variant: number of seeds}.
        pooled_std: the pooled seed standard deviation (:func:`pooled_std`), None with one seed
            per variant. threshold: ``factor`` x pooled_std (None without it).
        order: the variants, leader first. gap: the leader's distance to the next.
        winner: the leader when that gap exceeds the threshold, else None.
        detectable: [(ahead, behind, gap)] every pair whose gap exceeds the threshold.
        labels: {variant: name in the text}.
    """
    name: str
    unit: str
    higher: bool
    means: Dict[str, float]
    seeds: Dict[str, int]
    pooled_std: Optional[float]
    threshold: Optional[float]
    order: List[str]
    gap: float
    winner: Optional[str]
    detectable: List[Tuple[str, str, float]] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def leader(self) -> str:
        """The variant with the highest (``higher``) or lowest mean: not a winner unless
        :attr:`winner` says so."""
        return self.order[0]

    @property
    def text(self) -> str:
        """The finding in one sentence, from the numbers (see :func:`separation`)."""
        return _separation_text(self)

    def _repr_markdown_(self) -> str:
        return self.text


def _num(x: float, unit: str) -> str:
    return f"{x:.2f}" + ("%" if unit == "%" else f" {unit}" if unit else "")


def _separation_text(s: Separation) -> str:
    lab = lambda v: s.labels.get(v, VARIANT_LABELS.get(v, v))  # noqa: E731
    means = "; means " + ", ".join(f"{lab(v)} {_num(s.means[v], s.unit)}" for v in s.order)
    counts = sorted(set(s.seeds.values()))
    seeds = (f"{counts[0]} seed{'s' if counts[0] != 1 else ''} per variant" if len(counts) == 1
             else f"{counts[0]}-{counts[-1]} seeds per variant")
    if s.pooled_std is None:
        return (f"{s.name}: no detectable difference between the variants: with one seed per "
                f"variant there is no seed spread to set the gaps against" + means + ".")
    rule = f"2 x pooled seed sd = {_num(s.threshold, s.unit)}, {seeds}"
    word = "highest" if s.higher else "lowest"
    if s.winner is not None:
        nxt = s.order[1]
        return (f"{s.name}: {lab(s.winner)} has the {word} value, {_num(s.gap, s.unit)} ahead "
                f"of the next ({lab(nxt)}), more than {rule}" + means + ".")
    if not s.detectable:
        return (f"{s.name}: no detectable difference between the variants: the largest gap, "
                f"{_num(abs(s.means[s.order[0]] - s.means[s.order[-1]]), s.unit)}, is within "
                f"{rule}" + means + ".")
    pairs = "; ".join(f"{lab(a)} {'above' if s.higher else 'below'} {lab(b)} by "
                      f"{_num(g, s.unit)}" for a, b, g in s.detectable)
    return (f"{s.name}: no single variant stands out ({lab(s.order[0])} and {lab(s.order[1])} "
            f"are within {rule}); detectable: {pairs}" + means + ".")


def separation(values: Mapping[str, object], *, name: str, unit: str = "",
               higher: bool = False, labels: Optional[Mapping[str, str]] = None,
               factor: float = DETECTABLE_SDS) -> Separation:
    """The one rule for reading a difference between variants: a gap between two variants'
    means is detectable only when it exceeds ``factor`` (2) times the pooled standard deviation
    of their seeds; otherwise the text says "no detectable difference". With one seed per
    variant nothing is detectable (no spread to judge by).

    The paper prints one run per variant (Section 4.4, Tables 4-6); the rule is ours, so that
    a ranking is read only where another set of seeds would be unlikely to reverse it.

    Args:
        values: {variant: [value per seed]} (a bare number counts as one seed; NaN and None
            are dropped), in the unit of the text.
        name: what the values are, e.g. "PA-MPJPE" or "r50 after training".
        unit: their unit, e.g. "mm", "%", "px" ("" for a ratio).
        higher: True when the highest value leads, False when the lowest does.
        labels: {variant: name in the text} (default: the paper's labels).
        factor: how many pooled seed sds a gap must exceed (default 2).

    Returns:
        a :class:`Separation`; its ``text`` is the sentence a chapter prints.

    Raises:
        ValueError: fewer than two variants hold a value, or ``factor`` is not positive.
    """
    if not factor > 0:
        raise ValueError(f"separation: factor must be positive, got {factor!r}")
    vals = {v: _values(x) for v, x in values.items()}
    vals = {v: x for v, x in vals.items() if x}
    if len(vals) < 2:
        raise ValueError(f"separation of {name!r}: needs values of at least two variants; got "
                         f"{ {v: len(_values(x)) for v, x in values.items()} } values per variant")
    means = {v: _mean_std(x)[0] for v, x in vals.items()}
    order = sorted(means, key=means.get, reverse=higher)
    pooled = pooled_std(list(vals.values()))
    thr = None if pooled is None else factor * pooled
    detectable = []
    if thr is not None:
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                gap = abs(means[a] - means[b])
                if gap > thr:
                    detectable.append((a, b, gap))
    gap = abs(means[order[0]] - means[order[1]])
    winner = order[0] if thr is not None and gap > thr else None
    return Separation(name, unit, higher, means, {v: len(x) for v, x in vals.items()}, pooled,
                      thr, order, gap, winner, detectable, dict(labels or {}))


def metric_separation(metrics: Mapping[str, Mapping[str, object]], column: str,
                      labels: Optional[Mapping[str, str]] = None) -> Separation:
    """:func:`separation` of one metric column of an ablation: errors in mm (lowest leads),
    F-scores and AUCs in % (highest leads; ``f5`` reads ``f5_aligned``).

    Args:
        metrics: {variant: {metric key: [value per seed]}} (package keys and units, as
            :func:`handssca.engine.evaluate_variants` returns them).
        column: a paper column, e.g. ``"pa_mpjpe"``.
        labels: {variant: name} (default: the paper's labels).
    """
    unit = column_unit(column)
    scale = 100.0 if unit == "%" else 1.0
    vals = {v: [scale * x for x in _values(paper_cells(cells).get(column))]
            for v, cells in metrics.items()}
    return separation(vals, name=COLUMN_LABELS.get(column, column).replace(" (mm)", ""),
                      unit=unit, higher=unit == "%", labels=labels)
