"""Paper numbers, result files with provenance, and "paper | ours | difference" tables.

- :mod:`.paper`: every number of the paper's Tables 1-6, from one data file
  (``paper_numbers.csv``: table, caption, row, column, value, unit, note); never typed in prose.
- :mod:`.results`: small JSON result files that carry their provenance (commit, profile, data
  kind, seeds, device), so the book can show a GPU run's numbers without re-running it.
- :mod:`.tables`: the one function that puts the paper's numbers and ours side by side, and the
  formatting of every number it prints.
- :mod:`.spread`: our variants alone, mean and spread over seeds beside the two constants, and
  the one rule for reading a difference between variants (:func:`separation`: a gap larger
  than twice the pooled seed standard deviation, else "no detectable difference").
- :mod:`.verdict`: a network against the best of the two constants (the mean-pose and the
  mean-articulation hand, which ignore the image), as one line (:func:`verdict`).
- :mod:`.collect`: the result files of Tables 1-6 gathered from a folder, the parameter
  counts of the paper's configuration, and one evaluation beside its table
  (:func:`evaluation_table`, e.g. the authors' imported weights on the real dataset).
"""
from .collect import (RESULT_FILES, TableResult, evaluation_table, hardware_label,
                      load_table_results, long_compare_table, parameter_counts, results_table, runs_hardware,
                      table_parameters, table_result, table_verdicts)
from .paper import (COLUMN_LABELS, VARIANT_LABELS, paper_numbers, paper_table, paper_value,
                    table_columns)
from .results import load_result, write_result
from .spread import (Separation, metric_separation, pooled_std, seed_separation, separation,
                     spread_table)
from .tables import (CONSTANT_KEYS, CONSTANT_LABELS, CONSTANTS_NOTE, Table, compare_table,
                     format_value, long_table, paper_cells, printed_table)
from .verdict import (NETWORK_LABELS, Verdict, constants_of, variant_verdicts, verdict,
                      verdict_lines)

__all__ = ["COLUMN_LABELS", "VARIANT_LABELS", "paper_numbers", "paper_table", "paper_value",
           "table_columns", "load_result",
           "write_result", "Table", "compare_table", "format_value", "paper_cells",
           "spread_table", "seed_separation", "RESULT_FILES", "TableResult", "hardware_label",
           "load_table_results", "parameter_counts", "results_table", "runs_hardware",
           "table_parameters", "table_result", "evaluation_table", "CONSTANT_KEYS",
           "CONSTANT_LABELS", "CONSTANTS_NOTE", "Separation", "metric_separation", "pooled_std",
           "separation", "Verdict", "constants_of", "verdict", "verdict_lines", "NETWORK_LABELS",
           "variant_verdicts", "table_verdicts", "long_table", "printed_table",
           "long_compare_table"]
