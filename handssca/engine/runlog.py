"""A run's per-epoch log: ``metrics.jsonl`` (one JSON object per completed epoch), optional
TensorBoard event files, and :class:`RunLog`, the table the chapters show and plot.

The log is rewritten atomically from the history stored with each checkpoint, so after a crash
and a resume it holds exactly the completed epochs, once each.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..errors import DamagedFileError
from ..utils import write_text_atomic

LOG_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def write_log(run: Path, history: Sequence[dict]) -> Path:
    """Write ``metrics.jsonl`` of a run from its history (a list of epoch records)."""
    text = "".join(json.dumps(rec, sort_keys=False) + "\n" for rec in history)
    return write_text_atomic(Path(run) / LOG_FILE, text)


class RunLog:
    """The per-epoch records of a run as a small table.

    Attributes:
        rows: list of dicts, one per epoch (keys: epoch, step, lr, loss, loss_<term>, val_*,
            seconds, ...).
        columns: the keys, in first-seen order.

    ``log.column("loss")`` gives one column; ``log.to_markdown()`` a text table; in a notebook
    the table renders as HTML; ``log.to_pandas()`` when pandas is installed.
    """

    def __init__(self, rows: Sequence[dict]):
        self.rows: List[dict] = [dict(r) for r in rows]
        cols: List[str] = []
        for r in self.rows:
            cols.extend(k for k in r if k not in cols)
        self.columns = cols

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def column(self, name: str) -> list:
        """The values of one column (None where an epoch lacks it)."""
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {self.columns}")
        return [r.get(name) for r in self.rows]

    def select(self, names: Sequence[str]) -> "RunLog":
        """A table with only ``names`` (in that order)."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise KeyError(f"no column {missing[0]!r}; columns: {self.columns}")
        return RunLog([{n: r.get(n) for n in names} for r in self.rows])

    @staticmethod
    def _fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
        return "" if v is None else str(v)

    def to_markdown(self, columns: Optional[Sequence[str]] = None) -> str:
        """A Markdown table of the log (all columns, or ``columns``)."""
        cols = list(columns or self.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            lines.append("| " + " | ".join(self._fmt(r.get(c)) for c in cols) + " |")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._fmt(r.get(c)))}</td>"
                                        for c in self.columns) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        return self.to_markdown()

    def to_pandas(self):
        """A ``pandas.DataFrame`` (raises ImportError when pandas is not installed)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def read_log(run) -> RunLog:
    """The per-epoch log of a run folder (``metrics.jsonl``) as a :class:`RunLog`.

    Raises:
        FileNotFoundError: the folder has no log (no epoch completed yet, or not a run).
    """
    p = Path(run) / LOG_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: {run} is not a run folder or no epoch has "
                                f"completed yet")
    rows = []
    for number, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            # the log is rewritten from the checkpoint's history at the next epoch or resume
            raise DamagedFileError(
                f"{p} is damaged: line {number} is not valid JSON ({exc}). Delete the file: "
                f"training writes it again from the last checkpoint (train ... --resume)"
            ) from None
    return RunLog(rows)


class TensorBoard:
    """TensorBoard scalars when the ``tensorboard`` package is installed; otherwise nothing.

    Args:
        run: the run folder (events go to ``<run>/tensorboard``).
        purge_step: on resume, the first step of the resumed epoch: later events of the
            interrupted attempt are dropped.
    """

    def __init__(self, run: Path, purge_step: Optional[int] = None, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except (ImportError, ModuleNotFoundError):
            return
        self.writer = SummaryWriter(str(Path(run) / TENSORBOARD_DIR), purge_step=purge_step)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def scalars(self, values: Dict[str, Any], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
