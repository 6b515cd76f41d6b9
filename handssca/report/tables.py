"""The one function that builds "paper | ours | difference" tables (Tables 1-6).

Rules it enforces: the paper's numbers come from :mod:`.paper` only; ours come from measured
values passed in; a cell without a run of ours says "not run" (never a copied number); every
table says, in its caption and its notes, what data, profile, seed count and hardware produced
our numbers.

:func:`spread_table` is its companion for our own runs alone: per variant the mean and spread
over seeds, beside the mean-pose baseline on the same samples.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

from .paper import COLUMN_LABELS, VARIANT_LABELS, paper_table, table_columns

NOT_RUN = "not run"
Number = Union[float, int]

#: what a table's "ours" may come from: a dataset of synthetic images, the real dataset, or no
#: data at all (only the network's parameter counts, or nothing run)
OURS_DATA = ("synthetic", "real", "n/a")

#: paper column -> the key of :func:`handssca.metrics.evaluate_mesh_and_joints` that holds the
#: paper's number where the two differ: the papers' F@5/F@15 are the F-scores after the vertex
#: Procrustes fit (book/datasets_and_metrics.md, section F-score; the FreiHAND toolkit's
#: ``eval.py``, ``calculate_fscore``), our ``f5``/``f15`` are the unaligned ones
PAPER_METRIC_KEYS = {"f5": "f5_aligned", "f15": "f15_aligned"}


#: the constants that ignore the image, in the order the tables show them: key -> label
CONSTANT_LABELS = {"mean_pose": "mean-pose constant",
                   "mean_articulation": "mean-articulation constant"}
#: the key of each constant in ``metrics.json`` and in the result files (their first names,
#: kept so that every reader of those files still reads them)
CONSTANT_KEYS = {"mean_pose": "baseline", "mean_articulation": "baseline_mean_articulation"}
#: what the constants' rows are, for the notes of every table that shows them
CONSTANTS_NOTE = ("Constants (no image used): every sample predicted as one hand computed from "
                  "the run's training rows, scored with the same protocol on the same samples: "
                  "the mean-pose constant (the mean of their root-relative joints and vertices) "
                  "and the mean-articulation constant (the MANO hand of their mean articulation "
                  "and shape, no global rotation, which a Procrustes fit supplies). Each row's "
                  "numbers say which of the two is the stronger here.")


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
        trs = "".join("<tr>" + "".join(f"<td>{_cell_html(c)}</td>" for c in r) + "</tr>"
                      for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        # the book's column is about 770 px: headers and labels wrap, a value with its spread
        # ("9.87 ± 0.12") stays on one line; a table still wider scrolls inside the column
        return (f'<div style="overflow-x: auto; max-width: 100%">'
                f'<table class="handssca-compare" style="font-size: 0.85em">'
                f"{cap}<thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>{notes}")


def _cell_html(text: str) -> str:
    """A cell's text as HTML: escaped, a value and its spread joined by no-break spaces."""
    return html.escape(text).replace(" \u00b1 ", "\u00a0\u00b1\u00a0")


def format_value(value: Optional[Number], unit: str) -> str:
    """A number as the comparison tables print it: ``%`` with one decimal and a percent sign,
    ``M`` (millions of parameters) with two decimals below 10 and one above, ``mm`` with two
    decimals; ``-`` for a missing value (the paper's "-")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "M":
        return f"{value:.2f}M" if value < 10 else f"{value:.1f}M"
    return f"{value:.2f}"


_fmt = format_value  # the name the first version of this module used


def paper_cells(metrics: Mapping[str, object]) -> Dict[str, object]:
    """An evaluation's metrics (package keys, :func:`handssca.engine.evaluate`) as the paper's
    columns: ``f5``/``f15`` take the aligned F-scores (:data:`PAPER_METRIC_KEYS`) where the dict
    holds them, every other key is kept as it is.

    Args:
        metrics: {metric key: value or list of per-seed values}.
    """
    out = dict(metrics)
    for col, key in PAPER_METRIC_KEYS.items():
        if key in metrics:
            out[col] = metrics[key]
    return out


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
                  ours_label: str = "ours",
                  constants: Optional[Mapping[str, Optional[Mapping[str, object]]]] = None
                  ) -> Table:
    """The paper's Table ``table`` beside our measurements.

    Args:
        table: 1-6.
        ours: {paper row: {column: value or list of per-seed values}} in the package's units
            (mm, fractions for F-scores/AUCs, parameter counts). For Tables 1-3 our HandSSCA
            goes under the row ``"HandSSCA (paper)"``; for 4-6 rows are the variants
            (``none``, ``self_attention``, ``ssa``, ``ssca``). A row may be an evaluation's
            metrics dict as it is: its aligned F-scores fill F@5/F@15 (:func:`paper_cells`).
            ``params`` is the parameter count of the network (Tables 1-3) or of the attention
            block (Table 6) in the paper's configuration: a count, the same whatever the data.
        data: what produced the measured cells: ``"synthetic"``, ``"real"`` or ``"n/a"`` (no
            data: only parameter counts, or nothing run); profile, hardware: what produced them.
        columns: the metric columns to show (default: all of the paper's).
        constants: {"mean_pose": cells or None, "mean_articulation": cells or None}: the
            constants scored on the same samples as ours (:data:`CONSTANT_LABELS`), each a row
            after the paper's, with no paper value and no difference.

    Returns:
        A :class:`Table` with, per column, the paper's value, ours (mean ± std over seeds) and
        the difference ours - paper; "not run" where we have no value; then one row per
        constant given. The caption names the data kind (SYNTHETIC data / real data / nothing
        run).
    """
    if data not in OURS_DATA:
        raise ValueError(f"data must be 'synthetic', 'real' or 'n/a', got {data!r}")
    paper = paper_table(table)
    unknown = set(ours) - set(paper)
    if unknown:
        raise ValueError(f"Table {table} has no rows {sorted(unknown)}; rows: {list(paper)}")
    ours = {row: paper_cells(cells) for row, cells in ours.items()}
    cols = list(columns or table_columns(table))
    header = ["method"]
    for c in cols:
        label = COLUMN_LABELS.get(c, c)
        header += [f"{label} paper", f"{label} {ours_label}", f"{label} diff"]
    rows = []
    seeds = set()
    counted = False
    # a column's unit from any row that has it (Table 6's baseline has no #Params cell)
    units = {c: next((cells[c].unit for cells in paper.values() if c in cells),
                     "%" if c.startswith("f") or c.endswith("auc") else "mm") for c in cols}
    for row, cells in paper.items():
        label = VARIANT_LABELS.get(row, row)
        r = [label]
        for c in cols:
            p = cells.get(c)
            unit = units[c]
            pv = p.value if p else None
            o = _ours(ours.get(row, {}).get(c), unit)
            r.append(format_value(pv, unit))
            if o is None:
                r += [NOT_RUN, ""]
                continue
            mean, std, n = o
            if c == "params":  # a count, not a measurement per seed
                counted = True
            else:
                seeds.add(n)
            r.append(format_value(mean, unit)
                     + (f" ± {format_value(std, unit)}" if std is not None else ""))
            r.append("" if pv is None else
                     (f"{mean - pv:+.1f} pt" if unit == "%" else f"{mean - pv:+.2f}"))
        rows.append(r)
    rows += _constant_rows(constants, cols, units)
    name = next(n.caption for cells in paper.values() for n in cells.values())
    kind = {"synthetic": "SYNTHETIC data", "real": "real data",
            "n/a": "nothing run" + (", #Params counted" if counted else "")}[data]
    caption = f"Table {table} ({name}): paper vs {ours_label} ({kind})"
    notes = []
    if seeds or data != "n/a":
        seed_txt = ", ".join(str(s) for s in sorted(seeds)) or "0"
        what = "SYNTHETIC data" if data == "synthetic" else "the real dataset"
        notes.append(f"'{ours_label}': {what}, profile '{profile}', {seed_txt} seed(s) per cell, "
                     f"{hardware}.")
    else:
        notes.append(f"'{ours_label}': nothing measured on data for this table"
                     + (" (only parameter counts)." if counted else "."))
    if counted:
        notes.append(f"#Params '{ours_label}': counted on the network in the paper's configuration "
                     "(ResNet-50 + FPN, S = 256, C = 256) as the package builds it; a count needs "
                     "neither data nor training, so it is the same whatever the other columns' "
                     "data and profile.")
    notes.append("'paper': the numbers printed in the paper (Jiao et al.). Other methods are "
                 "quoted, not reproduced: their 'ours' cells say 'not run'.")
    if any((constants or {}).values()):
        notes.append(CONSTANTS_NOTE)
    if data == "synthetic":
        notes.append("Numbers on synthetic data check the code paths and show trends; they are "
                     "not comparable with the paper's numbers on the real dataset.")
    return Table(header, rows, caption, notes)


#: the rows a long table keeps beside the constants: HandSSCA's row of Tables 1-3 and the
#: attention variants of Tables 4-6 (the other methods are quoted, not reproduced)
OWN_ROWS = ("HandSSCA (paper)",) + tuple(VARIANT_LABELS)


def long_table(wide: Table, rows: Sequence[str] = OWN_ROWS,
               extra: Optional[Mapping[str, Sequence[Sequence[str]]]] = None) -> Table:
    """:func:`compare_table`'s table in long format: one line per (row, metric) with the
    paper's value, ours and ours - paper, for the book's column (Table 3 is 22 columns wide).

    Only our own rows are kept (``rows``: HandSSCA's and the variants', by their paper
    labels or keys) and the constants; the quoted methods, whose "ours" always says "not
    run", are in :func:`printed_table`.

    Args:
        wide: from :func:`compare_table` (header "method", then "<metric> paper",
            "<metric> ours", "<metric> diff" per metric).
        rows: the rows to keep (keys or labels).
        extra: {row label: [[metric, paper, ours, diff], ...]} lines added after a row's
            #Params line, or after its metrics (e.g. the parameter count of the network
            trained here).

    Returns:
        a :class:`Table` with the header [row, metric, paper, ours, ours - paper] and the
        wide table's caption and notes.
    """
    keep = {VARIANT_LABELS.get(r, r) for r in rows}
    metrics = [h[:-len(" paper")] for h in wide.header[1::3]]
    out = []
    for r in wide.rows:
        label = r[0]
        if label not in keep and not label.endswith("constant (ours)"):
            continue
        added = [[label, *line] for line in (extra or {}).get(label, ())]
        for i, m in enumerate(metrics):
            paper, ours, diff = r[1 + 3 * i: 4 + 3 * i]
            if label.endswith("constant (ours)") and not ours:
                continue  # a constant has no parameter count
            out.append([label, m, paper or "", ours or "-", diff or ""])
            if m == "#Params":  # the other network's size right below the count
                out += added
                added = []
        out += added
    return Table(["row", "metric", "paper", "ours", "ours - paper"], out, wide.caption,
                 list(wide.notes))


def printed_table(table: int) -> Table:
    """The paper's Table ``table`` as it prints it: one row per method, one column per
    metric, the paper's numbers only (from :mod:`.paper`); "-" where it prints none."""
    paper = paper_table(table)
    cols = table_columns(table)
    units = {c: next((cells[c].unit for cells in paper.values() if c in cells), "mm")
             for c in cols}
    rows = [[VARIANT_LABELS.get(row, row)]
            + [format_value(cells[c].value if c in cells else None, units[c]) for c in cols]
            for row, cells in paper.items()]
    name = next(n.caption for cells in paper.values() for n in cells.values())
    return Table(["method"] + [COLUMN_LABELS.get(c, c) for c in cols], rows,
                 f"Table {table} ({name}) as the paper prints it",
                 ["The paper's numbers (Jiao et al.), from handssca/report/paper_numbers.csv. "
                  "Methods other than HandSSCA are quoted, not reproduced."])


def _constant_rows(constants, cols: Sequence[str], units: Mapping[str, str]) -> List[List[str]]:
    """One row per constant given: per column an empty paper cell, our value (mean ± std over
    seeds) and an empty difference (the paper scores no constant)."""
    consts = dict(constants or {})
    unknown = set(consts) - set(CONSTANT_LABELS)
    if unknown:
        raise ValueError(f"constants: unknown keys {sorted(unknown)}; expected "
                         f"{list(CONSTANT_LABELS)}")
    rows = []
    for key, label in CONSTANT_LABELS.items():
        if not consts.get(key):
            continue
        cells = paper_cells(consts[key])
        r = [f"{label} (ours)"]
        for c in cols:
            o = None if c == "params" else _ours(cells.get(c), units[c])
            r += ["", "" if o is None else format_value(o[0], units[c]) + (
                f" ± {format_value(o[1], units[c])}" if o[1] is not None else ""), ""]
        rows.append(r)
    return rows
