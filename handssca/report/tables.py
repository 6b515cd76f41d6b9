"""The one function that builds "paper | ours | difference" tables (Tables 1-6).

Rules it enforces: the paper's numbers come from :mod:`.paper` only; ours come from measured
values passed in; a cell without a run of ours says "not run" (never a copied number); every
table says what data, profile, seed count and hardware produced our numbers.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

from .paper import COLUMN_LABELS, VARIANT_LABELS, paper_table, table_columns

NOT_RUN = "not run"
Number = Union[float, int]


@dataclass
class Table:
    """A rendered table: header, rows of strings, caption and notes; shows itself as HTML in a
    notebook and as markdown with :meth:`to_markdown`."""
    header: List[str]
    rows: List[List[str]]
    caption: str = ""
    notes: List[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        out = (f"**{self.caption}**\n\n" if self.caption else "") + "\n".join(lines)
        return out + "".join(f"\n\n{n}" for n in self.notes)

    def _repr_html_(self) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                      for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return (f'<table class="handssca-compare">{cap}<thead><tr>{th}</tr></thead>'
                f"<tbody>{trs}</tbody></table>{notes}")


def _fmt(value: Optional[Number], unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "M":
        return f"{value:.2f}M" if value < 10 else f"{value:.1f}M"
    return f"{value:.2f}"


def _ours(values, unit: str):
    """Our value(s) in the paper's unit: fractions -> %, parameter counts -> millions.
    Returns (mean, std or None, n) or None."""
    if values is None:
        return None
    vals = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return None
    scale = 100.0 if unit == "%" else (1e-6 if unit == "M" else 1.0)
    vals = [v * scale for v in vals]
    mean = sum(vals) / len(vals)
    std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
           if len(vals) > 1 else None)
    return mean, std, len(vals)


def compare_table(table: int, ours: Mapping[str, Mapping[str, object]], *, data: str,
                  profile: str, hardware: str, columns: Optional[Sequence[str]] = None,
                  ours_label: str = "ours") -> Table:
    """The paper's Table ``table`` beside our measurements.

    Args:
        table: 1-6.
        ours: {paper row: {column: value or list of per-seed values}} in the package's units
            (mm, fractions for F-scores/AUCs, parameter counts). For Tables 1-3 our HandSSCA
            goes under the row ``"HandSSCA (paper)"``; for 4-6 rows are the variants
            (``none``, ``self_attention``, ``ssa``, ``ssca``).
        data: ``"synthetic"`` or ``"real"``; profile, hardware: what produced ours.
        columns: the metric columns to show (default: all of the paper's).

    Returns:
        A :class:`Table` with, per column, the paper's value, ours (mean ± std over seeds) and
        the difference ours - paper; "not run" where we have no value.
    """
    if data not in ("synthetic", "real"):
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    paper = paper_table(table)
    unknown = set(ours) - set(paper)
    if unknown:
        raise ValueError(f"Table {table} has no rows {sorted(unknown)}; rows: {list(paper)}")
    cols = list(columns or table_columns(table))
    header = ["method"]
    for c in cols:
        label = COLUMN_LABELS.get(c, c)
        header += [f"{label} paper", f"{label} {ours_label}", f"{label} diff"]
    rows = []
    seeds = set()
    for row, cells in paper.items():
        label = VARIANT_LABELS.get(row, row)
        r = [label]
        for c in cols:
            p = cells.get(c)
            unit = p.unit if p else ("%" if c.startswith("f") or c.endswith("auc") else "mm")
            pv = p.value if p else None
            o = _ours(ours.get(row, {}).get(c), unit)
            r.append(_fmt(pv, unit))
            if o is None:
                r += [NOT_RUN, ""]
                continue
            mean, std, n = o
            seeds.add(n)
            r.append(_fmt(mean, unit) + (f" ± {_fmt(std, unit)}" if std is not None else ""))
            r.append("" if pv is None else
                     (f"{mean - pv:+.1f} pt" if unit == "%" else f"{mean - pv:+.2f}"))
        rows.append(r)
    name = next(n.caption for cells in paper.values() for n in cells.values())
    caption = f"Table {table} ({name}): paper vs {ours_label}"
    seed_txt = ", ".join(str(s) for s in sorted(seeds)) or "0"
    kind = "SYNTHETIC data" if data == "synthetic" else "the real dataset"
    notes = [f"'{ours_label}': {kind}, profile '{profile}', {seed_txt} seed(s) per cell, {hardware}.",
             "'paper': the numbers printed in the paper (Jiao et al.). Other methods are quoted, "
             "not reproduced: their 'ours' cells say 'not run'."]
    if data == "synthetic":
        notes.append("Numbers on synthetic data check the code paths and show trends; they are "
                     "not comparable with the paper's numbers on the real dataset.")
    return Table(header, rows, caption, notes)
