"""Paper numbers, result files with provenance, and "paper | ours | difference" tables.

- :mod:`.paper`: every number of the paper's Tables 1-6, from one data file
  (``paper_numbers.csv``: table, caption, row, column, value, unit, note); never typed in prose.
- :mod:`.results`: small JSON result files that carry their provenance (commit, profile, data
  kind, seeds, device), so the book can show a GPU run's numbers without re-running it.
- :mod:`.tables`: the one function that puts the paper's numbers and ours side by side.
"""
from .paper import COLUMN_LABELS, paper_numbers, paper_table, paper_value
from .results import load_result, write_result
from .tables import Table, compare_table

__all__ = ["COLUMN_LABELS", "paper_numbers", "paper_table", "paper_value", "load_result",
           "write_result", "Table", "compare_table"]
