"""Does a trained network beat a hand that ignores the image? One line per network.

Two constants are scored beside every network, with the same protocol on the same samples
(:func:`handssca.engine.evaluate`, :func:`handssca.engine.mean_pose_baseline`):

- the **mean-pose constant**: every sample predicted as the mean of the training rows'
  root-relative joints and vertices;
- the **mean-articulation constant**: every sample predicted as the MANO hand of the training
  rows' mean articulation and mean shape, without global rotation; under Procrustes alignment
  (PA-MPJPE, Section 4.2's main metric) it is often the stronger of the two.

:func:`verdict` sets a network's PA-MPJPE against the *best* of the two (the lower PA-MPJPE) and
says, from the numbers alone, whether the network beats it. The constants are not in the paper:
they are this reproduction's yardstick for small networks trained on synthetic data, where a
number without one cannot tell learning from its absence.

The ``metrics.json`` keys keep their first names: ``baseline`` holds the mean-pose constant,
``baseline_mean_articulation`` the mean-articulation constant (:data:`CONSTANT_KEYS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from .paper import COLUMN_LABELS, VARIANT_LABELS
from .spread import column_unit
from .tables import CONSTANT_KEYS, CONSTANT_LABELS, format_value, paper_cells

#: the name of a single trained network in a verdict line, by attention variant
NETWORK_LABELS = {"ssca": "SSCA network", "ssa": "SSA network",
                  "self_attention": "self-attention network", "none": "FPN-only network"}
#: what a verdict can say
STATUSES = ("beats", "mixed", "par", "does_not_beat", "no_constant", "no_ground_truth",
            "not_run")
#: a network counts as beating a constant only when it is more than this share below it: a
#: 13.65 mm network beside a 13.70 mm constant has learnt nothing a reader should credit (two
#: seeds of one network differ by several per cent here)
MARGIN = 0.05

Values = Optional[Mapping[str, object]]


def _metrics_of(entry) -> Optional[dict]:
    """The metrics of a constant's entry: ``{"metrics": {...}}`` (evaluate) or the metrics
    themselves (result files, :func:`handssca.engine.evaluate_variants`)."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ValueError(f"a constant's entry must be a mapping of metrics, got "
                         f"{type(entry).__name__}")
    if "metrics" in entry or "name" in entry:
        return entry.get("metrics") or None
    return dict(entry) or None


def constants_of(report: Mapping[str, object]) -> Dict[str, Optional[dict]]:
    """Both constants' metrics from whatever scored them.

    Args:
        report: the ``metrics.json`` of :func:`handssca.engine.evaluate` (``baseline``,
            ``baseline_mean_articulation``, each ``{"metrics": {...}}``), a result file's
            content (the same keys holding metrics directly), or what
            :func:`handssca.engine.mean_pose_baseline` returns (``metrics`` and
            ``mean_articulation``).

    Returns:
        {"mean_pose": {metric: value or [value per seed]} or None, "mean_articulation": ...}.

    Raises:
        ValueError: ``report`` is not a mapping.
    """
    if not isinstance(report, Mapping):
        raise ValueError(f"constants_of: expected an evaluation report, a result file or "
                         f"mean_pose_baseline's result (a mapping), got {type(report).__name__}")
    if "mean_articulation" in report and "baseline" not in report:  # mean_pose_baseline
        return {"mean_pose": _metrics_of({"metrics": report.get("metrics")}),
                "mean_articulation": _metrics_of({"metrics": report.get("mean_articulation")})}
    return {k: _metrics_of(report.get(key)) for k, key in CONSTANT_KEYS.items()}


def _numbers(value) -> List[float]:
    if value is None:
        return []
    vals = value if isinstance(value, (list, tuple)) else [value]
    out = [float(v) for v in vals if v is not None]
    return [v for v in out if not math.isnan(v)]


def _mean(vals: Sequence[float]) -> float:
    return sum(vals) / len(vals)


@dataclass
class Verdict:
    """One network against the best constant on one metric.

    Attributes:
        status: one of :data:`STATUSES`: "beats" (every seed more than :data:`MARGIN` below
            the best constant), "mixed" (the mean so, some seed not), "par" (the mean below the
            constant by :data:`MARGIN` or less), "does_not_beat" (the mean at or above it), "no_constant" (no constant scored), "no_ground_truth" (the split has none here),
            "not_run" (no run, no result).
        label: the network's name. metric: the metric key (e.g. ``pa_mpjpe``). unit: its unit.
        values: the network's value per seed (one for a single run).
        value: their mean. constant: the best constant's label, or None.
        constant_value: its value (mean over seeds). ratio: value / constant_value.
        below: how many seeds are more than :data:`MARGIN` below the constant (the same seed's
            constant where each seed has its own). data: "synthetic", "real" or None. split: the split, when known.
        constants: {label: value} of every constant scored.
    """
    status: str
    label: str
    metric: str = "pa_mpjpe"
    unit: str = "mm"
    values: List[float] = field(default_factory=list)
    value: Optional[float] = None
    constant: Optional[str] = None
    constant_value: Optional[float] = None
    ratio: Optional[float] = None
    below: int = 0
    data: Optional[str] = None
    split: Optional[str] = None
    constants: Dict[str, float] = field(default_factory=dict)

    @property
    def beats(self) -> bool:
        """True only when every seed beats the best constant."""
        return self.status == "beats"

    @property
    def text(self) -> str:
        """The verdict as one line of plain text (see :meth:`markdown`)."""
        return _text(self)

    def markdown(self) -> str:
        """The line as markdown, the verdict in bold."""
        head, _, tail = self.text.rpartition(": ")
        return f"{head}: **{tail}**" if head else f"**{tail}**"

    def _repr_markdown_(self) -> str:
        return self.markdown()


def _fmt(v: Optional[float], unit: str) -> str:
    if v is None:
        return "-"
    return format_value(100.0 * v, "%") if unit == "%" else f"{format_value(v, unit)} mm"


def _text(v: Verdict) -> str:
    prefix = "SYNTHETIC data: " if v.data == "synthetic" else ""
    where = f" (split '{v.split}')" if v.split else ""
    name = COLUMN_LABELS.get(v.metric, v.metric).replace(" (mm)", "")
    if v.status == "not_run":
        return f"{prefix}{v.label}{where}: not run, no result to judge: no verdict"
    if v.status == "no_ground_truth":
        return (f"{prefix}{v.label}{where}: no ground truth on this split here, so no {name} "
                f"and no comparison with the constants: no verdict")
    n = len(v.values)
    seeds = f", mean of {n} seeds" if n > 1 else ""
    net = f"{prefix}{v.label} {_fmt(v.value, v.unit)} {name}{seeds}{where}"
    if v.status == "no_constant":
        return f"{net}; no constant was scored on these samples: no verdict"
    line = (f"{net} vs best constant ({v.constant.replace(' constant', '')}) "
            f"{_fmt(v.constant_value, v.unit)}: {v.ratio:.2f}x")
    if v.status == "beats":
        return line + (f": beats the constant (all {n} seeds)" if n > 1 else
                       ": beats the constant")
    if v.status == "mixed":
        return line + f": beats the constant on average only ({v.below} of {n} seeds)"
    if v.status == "par":
        return line + (f": no better than the constant (within {MARGIN:.0%}; learnt no more "
                       f"than a constant hand)")
    return line + (f": does not beat the constant ({v.below} of {n} seeds below it)"
                   if n > 1 and v.below else ": does not beat the constant")


def _is_report(network: Mapping) -> bool:
    return "metrics" in network and ("split" in network or "dataset" in network)


def verdict(network, constants: Values = None, *, label: str = "network",
            metric: str = "pa_mpjpe", data: Optional[str] = None,
            split: Optional[str] = None) -> Verdict:
    """A network's number against the best of the two constants (the lower PA-MPJPE).

    Args:
        network: one of

            - the ``metrics.json`` of :func:`handssca.engine.evaluate` (metrics, constants,
              data and split are read from it; ``constants``, ``data``, ``split`` override);
            - {metric key: value or [value per seed]} (package keys and units: mm, fractions;
              the aligned F-scores stand for F@5/F@15);
            - None: no run, no result ("not run").
        constants: {"mean_pose": metrics, "mean_articulation": metrics} (each {metric: value
            or [value per seed]} or None), or anything :func:`constants_of` reads.
        label: the network's name in the line, e.g. "SSCA network" or "FPN + SSCA".
        metric: the metric key (default ``pa_mpjpe``); errors: lower wins, F-scores and AUCs
            (unit %): higher wins.
        data: "synthetic" (the line starts "SYNTHETIC data: "), "real" or None.
        split: the split the numbers are on (named in the line when given).

    Returns:
        a :class:`Verdict`. With several seeds, "beats" needs every seed below the constant
        (each seed against its own constant when the constants have one value per seed);
        "mixed" when only the mean is below it.

    Raises:
        ValueError: ``network`` or ``constants`` are not of these forms, ``data`` is not
            "synthetic", "real" or None, or the network's metrics lack ``metric``.
    """
    if data not in (None, "synthetic", "real"):
        raise ValueError(f"verdict: data must be 'synthetic', 'real' or None, got {data!r}")
    unit = column_unit(metric)
    base = dict(status="not_run", label=label, metric=metric, unit=unit, data=data, split=split)
    if network is None:
        return Verdict(**base)
    if not isinstance(network, Mapping):
        raise ValueError(f"verdict: network must be an evaluation report, a metrics mapping or "
                         f"None, got {type(network).__name__}")
    if _is_report(network):
        base["data"] = data or network.get("data")
        base["split"] = split or network.get("split")
        constants = constants if constants is not None else constants_of(network)
        network = network["metrics"]
        if network is None:
            return Verdict(**dict(base, status="no_ground_truth"))
    values = _numbers(paper_cells(network).get(metric))
    if not values:
        raise ValueError(f"verdict: the network's metrics hold no value of {metric!r}; they "
                         f"hold {sorted(network)}")
    return _judge(Verdict(**dict(base, values=values, value=_mean(values))), constants)


def _judge(v: Verdict, constants) -> Verdict:
    """Fill in the best constant, the ratio, the seeds below it and the status."""
    if constants is not None and not isinstance(constants, Mapping):
        raise ValueError(f"verdict: constants must be a mapping, got {type(constants).__name__}")
    if constants and not set(constants) <= set(CONSTANT_LABELS):
        constants = constants_of(constants)
    higher = v.unit == "%"
    per = {}
    for key, label in CONSTANT_LABELS.items():
        vals = _numbers(paper_cells((constants or {}).get(key) or {}).get(v.metric))
        if vals:
            per[label] = vals
    v.constants = {k: _mean(x) for k, x in per.items()}
    if not per:
        v.status = "no_constant"
        return v
    pick = max if higher else min
    v.constant = pick(v.constants, key=v.constants.get)
    v.constant_value = v.constants[v.constant]
    v.ratio = v.value / v.constant_value if v.constant_value else math.inf
    ref = per[v.constant] if len(per[v.constant]) == len(v.values) else [v.constant_value]
    ref = ref * len(v.values) if len(ref) == 1 else ref
    scale = (1 + MARGIN) if higher else (1 - MARGIN)
    v.below = sum((x > c * scale) if higher else (x < c * scale) for x, c in zip(v.values, ref))
    clear = (v.value > v.constant_value * scale) if higher else (v.value < v.constant_value * scale)
    ahead = v.value > v.constant_value if higher else v.value < v.constant_value
    if clear:
        v.status = "beats" if v.below == len(v.values) else "mixed"
    else:
        v.status = "par" if ahead else "does_not_beat"
    return v


def verdict_lines(verdicts: Sequence[Verdict]) -> str:
    """Several verdicts as a markdown list, one line each (e.g. one per ablation variant)."""
    return "\n".join(f"- {v.markdown()}" for v in verdicts)


def variant_verdicts(evaluation: Mapping[str, object], labels: Optional[Mapping[str, str]] = None,
                     metric: str = "pa_mpjpe") -> List[Verdict]:
    """One :func:`verdict` per variant of an ablation, each variant's seeds against the
    constants of the same seeds.

    Args:
        evaluation: what :func:`handssca.engine.evaluate_variants` returns ("metrics",
            "baseline", "baseline_mean_articulation", "reports", "data", "split").
        labels: {variant: name} (default: the paper's labels, :data:`VARIANT_LABELS`).
        metric: the metric key (default ``pa_mpjpe``).

    Returns:
        the verdicts in the order of the runs; a variant scored on a split without ground truth
        says so ("no_ground_truth").

    Raises:
        ValueError: ``evaluation`` lacks "metrics" or "reports".
    """
    if not isinstance(evaluation, Mapping) or not {"metrics", "reports"} <= set(evaluation):
        raise ValueError("variant_verdicts: expected what handssca.engine.evaluate_variants "
                         "returns (with 'metrics' and 'reports')")
    labels = {**VARIANT_LABELS, **(labels or {})}
    out = []
    for v in dict.fromkeys(k[0] for k in evaluation["reports"]):
        label = labels.get(v, v)
        cells = evaluation["metrics"].get(v)
        if not cells:  # scored on a split without ground truth: the report says which
            rep = next(r for k, r in evaluation["reports"].items() if k[0] == v)
            out.append(verdict(rep, label=label, metric=metric))
            continue
        consts = {k: (evaluation.get(key) or {}).get(v) for k, key in CONSTANT_KEYS.items()}
        out.append(verdict(cells, consts, label=label, metric=metric,
                           data=evaluation.get("data"), split=evaluation.get("split")))
    return out
