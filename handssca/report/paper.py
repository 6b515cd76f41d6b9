"""The paper's Tables 1-6, read from ``paper_numbers.csv`` (the only place they are written).

Columns of the file: ``table`` (1-6), ``caption``, ``row`` (a method, or in the ablation
tables 4-6 the attention variant: ``none``, ``self_attention``, ``ssa``, ``ssca``), ``column``
(a metric key, see :data:`COLUMN_LABELS`), ``value`` (empty where the paper prints "-"), ``unit``
(``mm``, ``%`` or ``M`` parameters) and ``note`` (the paper's row label in the ablations).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

PAPER_CSV = Path(__file__).with_name("paper_numbers.csv")

#: metric key -> how the paper labels the column
COLUMN_LABELS = {
    "params": "#Params",
    "mpjpe": "MPJPE (mm)",
    "pa_mpjpe": "PA-MPJPE (mm)",
    "pa_mpjpe_auc": "PA-MPJPE AUC",
    "pa_mpvpe": "PA-MPVPE (mm)",
    "pa_mpvpe_auc": "PA-MPVPE AUC",
    "f5": "F@5",
    "f15": "F@15",
}

#: the paper's label of each attention variant in Tables 4-6; "Baseline" is the paper's name of
#: the FPN without attention (H = F), the one thing this project calls a baseline: the hands
#: that ignore the image are "constants" (:mod:`.verdict`)
VARIANT_LABELS = {
    "none": "Baseline (FPN only)",
    "self_attention": "Baseline+Self-Attention",
    "ssa": "Baseline+SSA",
    "ssca": "Baseline+SSCA",
}


@dataclass(frozen=True)
class PaperNumber:
    """One number of the paper: ``value`` None where the paper prints '-'."""
    table: int
    caption: str
    row: str
    column: str
    value: Optional[float]
    unit: str
    note: str


@lru_cache(maxsize=1)
def paper_numbers() -> tuple:
    """All numbers of Tables 1-6, in the file's order, as :class:`PaperNumber` tuples."""
    out = []
    with PAPER_CSV.open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            try:
                out.append(PaperNumber(int(r["table"]), r["caption"], r["row"], r["column"],
                                       float(r["value"]) if r["value"].strip() else None,
                                       r["unit"], r["note"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{PAPER_CSV}, line {i}: expected table,caption,row,column,"
                                 f"value,unit,note with numeric table/value; got {r}") from exc
    return tuple(out)


def paper_table(table: int) -> Dict[str, Dict[str, PaperNumber]]:
    """Table ``table`` as {row: {column: PaperNumber}}, rows and columns in the paper's order."""
    if table not in range(1, 7):
        raise ValueError(f"the paper has Tables 1-6, got {table!r}")
    out: Dict[str, Dict[str, PaperNumber]] = {}
    for n in paper_numbers():
        if n.table == table:
            out.setdefault(n.row, {})[n.column] = n
    return out


def paper_value(table: int, row: str, column: str) -> Optional[float]:
    """One number of the paper (None where it prints '-'); KeyError names what is missing."""
    t = paper_table(table)
    if row not in t or column not in t[row]:
        raise KeyError(f"Table {table} has no cell ({row!r}, {column!r}); rows: {list(t)}")
    return t[row][column].value


def table_columns(table: int) -> List[str]:
    """The metric columns of a table, in the paper's order."""
    cols: List[str] = []
    for row in paper_table(table).values():
        for c in row:
            if c not in cols:
                cols.append(c)
    return cols
