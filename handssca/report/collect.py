"""The result files of Tables 1-6, gathered into :func:`~.tables.compare_table`'s "ours" form.

Each of the paper's tables has one result file, written by the chapter that measures it
(JSON with provenance, :mod:`.results`):

=====  ==========================  ========================================================
table  file                        written by
=====  ==========================  ========================================================
1      ``train-freihand.json``     notebooks/05_train_freihand (HandSSCA row)
2      ``train-dexycb.json``       notebooks/06_train_dexycb (HandSSCA row)
3      ``train-ho3d.json``         notebooks/07_train_ho3d (HandSSCA row)
4      ``ablation-freihand.json``  notebooks/08_ablations (one row per attention variant)
5      ``ablation-dexycb.json``    notebooks/08_ablations
6      ``ablation-ho3d.json``      notebooks/08_ablations
=====  ==========================  ========================================================

:func:`load_table_results` reads whichever of them a folder holds (by default the build's
``results/``, or a folder of files committed from a GPU run) and :func:`results_table` puts each
beside the paper's table, "not run" where a file or a value is missing. The #Params cells are
not results: :func:`parameter_counts` counts them on the paper's configuration.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from .paper import VARIANT_LABELS, paper_table, table_columns
from .results import load_result
from .tables import CONSTANT_KEYS, Table, compare_table, format_value, long_table
from .verdict import Verdict, constants_of, verdict

#: the dataset of each of the paper's tables
TABLE_DATASETS = {1: "freihand", 2: "dexycb", 3: "ho3d", 4: "freihand", 5: "dexycb", 6: "ho3d"}
#: the result file of each table
RESULT_FILES = {t: (f"train-{d}.json" if t <= 3 else f"ablation-{d}.json")
                for t, d in TABLE_DATASETS.items()}
#: the chapter that writes each table's result file
RESULT_CHAPTERS = {1: "05_train_freihand", 2: "06_train_dexycb", 3: "07_train_ho3d",
                   4: "08_ablations", 5: "08_ablations", 6: "08_ablations"}
#: the row of Tables 1-3 our HandSSCA goes under
HANDSSCA_ROW = "HandSSCA (paper)"
#: the attention variants, in Table 6's order
VARIANTS = ("none", "self_attention", "ssa", "ssca")


@dataclass
class TableResult:
    """What a folder holds for one of the paper's tables.

    Attributes:
        table: 1-6.
        file: the result file's name (:data:`RESULT_FILES`).
        path: where it was found, or None when the folder has none.
        ours: {paper row: {metric key: value or [value per seed]}}, the rows of the paper's
            table only (package keys: :func:`~.tables.compare_table` maps the aligned F-scores).
        data: "synthetic", "real", or "n/a" without a file.
        profile, hardware, commit, time_utc: the file's provenance ("n/a" without a file).
        seeds: the seeds the file's numbers come from.
        baseline: {metric key: value or [value per seed]} of the mean-pose constant on the same
            samples, when the file has one (the file's key ``baseline``).
        constants: {"mean_pose": cells or None, "mean_articulation": cells or None}: both
            constants on the same samples, as far as the file has them.
        split: the split the numbers were measured on, when the file says.
        dropped_rows: rows of the file that the paper's table does not have (not shown).
        params_trained: {paper row: parameters of the network trained for it} (Tables 1-3:
            the whole network; Tables 4-6: the attention block), when the file records them:
            the networks the CPU profiles train are smaller than the paper's configuration.
    """
    table: int
    file: str
    path: Optional[Path] = None
    ours: Dict[str, Dict[str, object]] = field(default_factory=dict)
    data: str = "n/a"
    profile: str = "n/a"
    hardware: str = "n/a"
    commit: str = "n/a"
    time_utc: str = "n/a"
    seeds: List[int] = field(default_factory=list)
    baseline: Optional[Dict[str, object]] = None
    constants: Dict[str, Optional[Dict[str, object]]] = field(default_factory=dict)
    split: Optional[str] = None
    dropped_rows: List[str] = field(default_factory=list)
    params_trained: Dict[str, int] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """Whether the folder holds this table's result file."""
        return self.path is not None


def hardware_label(provenance: Mapping[str, object]) -> str:
    """A short description of the machine of a provenance record (``environment_info``, a run's
    ``run.json`` provenance or ``bench.hardware_info``): the GPU's name, or "CPU (<model>, <n>
    cores, <t> torch threads)"."""
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a mapping, got {type(provenance).__name__}")
    gpu = provenance.get("gpu") or (provenance.get("device") if provenance.get("device")
                                    not in (None, "cpu") else None)
    if gpu:
        return str(gpu)
    parts = [str(provenance.get("cpu") or "unknown CPU")]
    if provenance.get("cpu_count"):
        parts.append(f"{provenance['cpu_count']} cores")
    if provenance.get("torch_threads"):
        t = int(provenance["torch_threads"])
        parts.append(f"{t} torch thread" + ("s" if t != 1 else ""))
    return "CPU (" + ", ".join(parts) + ")"


def runs_hardware(run_folders: Iterable) -> str:
    """The hardware the training runs in ``run_folders`` ran on (from each ``run.json``'s
    provenance), distinct labels joined with "; "."""
    labels: List[str] = []
    for folder in run_folders:
        path = Path(folder) / "run.json"
        try:
            prov = json.loads(path.read_text())["provenance"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}: not a training run's run.json with a provenance record "
                             f"({exc})") from exc
        label = hardware_label(prov)
        if label not in labels:
            labels.append(label)
    return "; ".join(labels) or "n/a"


def table_result(table: int, payload: Optional[Mapping] = None, path=None) -> TableResult:
    """One table's :class:`TableResult` from a result file's content (``load_result``), or the
    empty one ("not run") when ``payload`` is None.

    Raises:
        ValueError: the file's ``kind`` is not this table's (``train/<dataset>`` for Tables 1-3,
            ``ablation/<dataset>`` for 4-6), or its metrics do not have the expected form.
    """
    if table not in TABLE_DATASETS:
        raise ValueError(f"the paper has Tables 1-6, got {table!r}")
    res = TableResult(table=table, file=RESULT_FILES[table])
    if payload is None:
        return res
    where = str(path) if path is not None else RESULT_FILES[table]
    ablation = table > 3
    kind = f"{'ablation' if ablation else 'train'}/{TABLE_DATASETS[table]}"
    if payload.get("kind") != kind:
        raise ValueError(f"{where}: Table {table} expects a result of kind {kind!r}, "
                         f"got {payload.get('kind')!r}")
    metrics = payload.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{where}: 'metrics' must be a mapping, got {type(metrics).__name__}")
    rows = paper_table(table)
    if ablation:
        for v, cells in metrics.items():
            if not isinstance(cells, Mapping):
                raise ValueError(f"{where}: an ablation's metrics are {{variant: {{metric: "
                                 f"[value per seed]}}}}; variant {v!r} holds "
                                 f"{type(cells).__name__}")
        ours = {v: dict(cells) for v, cells in metrics.items() if v in rows}
        res.dropped_rows = [v for v in metrics if v not in rows]
    else:
        ours = {HANDSSCA_ROW: dict(metrics)} if metrics else {}
    prov = payload.get("provenance") or {}
    hw = payload.get("hardware")
    res.path = Path(path) if path is not None else None
    res.ours = ours
    res.data = payload["data"]
    res.profile = str(payload.get("profile"))
    res.hardware = (hw if isinstance(hw, str) and hw else
                    hardware_label(hw if isinstance(hw, Mapping) else prov))
    res.commit = str(prov.get("commit", "unknown"))
    res.time_utc = str(prov.get("time_utc", "unknown"))
    res.seeds = [int(s) for s in (payload.get("seeds") or [])]
    res.baseline = payload.get("baseline") or None
    res.constants = {k: payload.get(key) or None for k, key in CONSTANT_KEYS.items()}
    res.split = payload.get("split")
    trained = payload.get("params_trained")
    if isinstance(trained, Mapping):  # ablation files: {variant: block parameters}
        res.params_trained = {v: int(n) for v, n in trained.items() if v in rows}
    elif isinstance(trained, (int, float)) and not ablation:  # train files: the network
        res.params_trained = {HANDSSCA_ROW: int(trained)}
    return res


def load_table_results(folder=None, tables: Iterable[int] = range(1, 7)) -> Dict[int, TableResult]:
    """The result files of the paper's tables that ``folder`` holds.

    Args:
        folder: a folder of result files (default ``handssca.utils.results_dir()``, the build's
            ``results/``); a folder of files committed from a GPU run shows that run's numbers
            without re-running it.
        tables: which tables (default 1-6).

    Returns:
        {table: :class:`TableResult`}; a table whose file is missing gets the empty result
        (``found`` False: its cells say "not run").

    Raises:
        ValueError: ``folder`` is not a folder, or a file there is malformed or of another kind
            (names the file).
    """
    if folder is None or str(folder) == "":
        from handssca.utils import results_dir

        folder = results_dir()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"results folder {folder} is a file; expected a folder of result files")
    out = {}
    for t in tables:
        path = folder / RESULT_FILES[t]
        out[t] = table_result(t, load_result(path), path) if path.exists() else table_result(t)
    return out


def parameter_counts(variants: Iterable[str] = VARIANTS, input_size: int = 256,
                     device: str = "meta") -> Dict[str, Dict[str, int]]:
    """Parameter counts of the network in the paper's configuration (ResNet-50 + FPN, C = 256,
    MANO head; Section 3, Tables 1-3 and 6), one per attention variant.

    Built on the ``meta`` device by default: shapes only, no memory, no initialisation.

    Returns:
        {variant: {"attention": parameters of the attention block (0 for "none"), "total":
        parameters of the whole network}}.
    """
    import torch

    from handssca.models import parameter_table

    out = {}
    with torch.device(device):
        for v in variants:
            rows = {r["key"]: r["parameters"] for r in parameter_table(attention=v,
                                                                      input_size=input_size)}
            out[v] = {"attention": int(rows["attention"]), "total": int(rows["total"])}
    return out


def table_parameters(table: int, counts: Mapping[str, Mapping[str, int]]
                     ) -> Dict[str, Dict[str, int]]:
    """The "ours" cells of a table's #Params column from :func:`parameter_counts`: the whole
    network with SSCA under HandSSCA's row (Tables 1-3), each attention block under its variant
    (Table 6); {} for Tables 4-5, which print no #Params."""
    if table not in TABLE_DATASETS:
        raise ValueError(f"the paper has Tables 1-6, got {table!r}")
    if "params" not in table_columns(table):
        return {}
    if table <= 3:
        return {HANDSSCA_ROW: {"params": counts["ssca"]["total"]}} if "ssca" in counts else {}
    return {v: {"params": counts[v]["attention"]} for v in paper_table(table) if v in counts}


def _merge(ours: Mapping[str, Mapping], extra: Mapping[str, Mapping]) -> Dict[str, dict]:
    out = {r: dict(c) for r, c in ours.items()}
    for r, c in extra.items():
        out.setdefault(r, {}).update(c)
    return out


def results_table(result: TableResult, params: Optional[Mapping[str, Mapping[str, int]]] = None,
                  layout: str = "wide") -> Table:
    """The paper's table beside a :class:`TableResult` (and our #Params cells).

    Args:
        result: from :func:`load_table_results`.
        params: "ours" cells of the #Params column, from :func:`table_parameters` (optional).
        layout: "wide" (the paper's layout: per metric a paper, an ours and a diff column) or
            "long" (:func:`~.tables.long_table`: one line per row and metric, our rows and the
            constants only, for the book's column). In the long layout the #Params lines say
            which network they count: the paper's configuration (counted, no training) and,
            when the file records it, the network trained for the other lines.

    Returns:
        :func:`~.tables.compare_table`'s table, the constants of the file as rows after the
        paper's, with notes naming the result file, its commit and time, the split and any row
        left out.
    """
    if layout not in ("wide", "long"):
        raise ValueError(f"layout must be 'wide' or 'long', got {layout!r}")
    ours = _merge(result.ours, params or {})
    table = compare_table(result.table, ours, data=result.data if result.found else "n/a",
                          profile=result.profile, hardware=result.hardware,
                          constants=result.constants if result.ours else None)
    if layout == "long":
        table = _long_results(result, table)
    if result.found:
        seeds = ", ".join(str(s) for s in result.seeds) or "not recorded"
        table.notes.append(f"Source: {result.file} (commit {result.commit}, {result.time_utc}; "
                           f"seeds {seeds}" + (f"; split '{result.split}'" if result.split else "")
                           + ").")
        if result.dropped_rows:
            table.notes.append(f"Rows of the file that this table does not print: "
                               f"{', '.join(result.dropped_rows)}.")
        if not result.ours:
            table.notes.append(f"{result.file} holds no metrics (e.g. a split without ground "
                               "truth, scored only by the dataset's server).")
    else:
        table.notes.append(f"No result file {result.file}: notebooks/"
                           f"{RESULT_CHAPTERS[result.table]} writes it, or copy it from a GPU "
                           "run into the results folder.")
    return table


def _long_results(result: TableResult, wide: Table) -> Table:
    """:func:`long_compare_table` of a result file's table."""
    show = result.found or bool(result.ours)
    return long_compare_table(result.table, wide, result.params_trained if show else None,
                              result.profile)


def long_compare_table(table: int, wide: Table,
                       params_trained: Optional[Mapping[str, int]] = None,
                       profile: str = "") -> Table:
    """:func:`~.tables.long_table` of one of the paper's tables, with #Params lines that name
    their network: "<network or block>, paper's configuration (counted)", and, when
    ``params_trained`` is given, "<network or block> trained here" for every own row (its
    count, or "not recorded").

    Args:
        table: 1-6. wide: :func:`~.tables.compare_table`'s table for it.
        params_trained: {row key: parameters of the network (Tables 1-3) or attention block
            (Table 6) trained for the other lines}, or None to add no such line.
        profile: the profile that trained them (named in the line).
    """
    what = "block" if table > 3 else "network"
    rows = [HANDSSCA_ROW] if table <= 3 else list(VARIANTS)
    extra = {}
    if "params" in table_columns(table) and params_trained is not None:
        for row in rows:
            n = params_trained.get(row)
            # three significant digits: a CPU profile's block has a few thousand parameters
            ours = f"{n * 1e-6:.3g}M" if n is not None else "not recorded"
            extra[VARIANT_LABELS.get(row, row)] = [
                [f"#Params of the {what} trained here ({profile} profile)", "", ours, ""]]
    out = long_table(wide, rows, extra)
    for r in out.rows:
        if r[1] == "#Params":
            r[1] = f"#Params of the {what}, paper's configuration (counted)"
    return out


def evaluation_table(metrics) -> Table:
    """The paper's Table 1, 2 or 3 (the one of the evaluation's dataset) beside the numbers of
    one evaluation, e.g. of the authors' imported weights on the real dataset.

    Args:
        metrics: the ``metrics.json`` that ``python -m handssca evaluate`` wrote (a path), or
            its content.

    Returns:
        :func:`~.tables.compare_table`'s table, our numbers under "HandSSCA (paper)" and the
        two constants scored on the same samples as rows after the paper's, with notes naming
        the split, the samples and the weights (imported file or trained run).

    Raises:
        ValueError: not an evaluation's metrics.json, or a split without ground truth (scored
            only by the dataset's server: submit its file there).
    """
    where = "the evaluation"
    if not isinstance(metrics, Mapping):
        where = str(metrics)
        try:
            metrics = json.loads(Path(metrics).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}: not a readable metrics.json ({exc})") from exc
    tables = {d: t for t, d in TABLE_DATASETS.items() if t <= 3}
    if metrics.get("dataset") not in tables or "data" not in metrics:
        raise ValueError(f"{where}: expected the metrics.json of `python -m handssca evaluate` "
                         f"(with 'dataset' and 'data'), got keys {sorted(metrics)[:8]}")
    if metrics.get("metrics") is None:
        raise ValueError(f"{where}: the {metrics['dataset']} {metrics.get('split')} split has no "
                         f"ground truth here; submit {metrics.get('submission')} to the dataset's "
                         f"server")
    prov = metrics.get("provenance") or {}
    table = compare_table(tables[metrics["dataset"]], {HANDSSCA_ROW: metrics["metrics"]},
                          data=metrics["data"], profile=str(prov.get("profile")),
                          hardware=hardware_label(prov), constants=constants_of(metrics))
    model = metrics.get("model") or {}
    weights = (f"imported weights {model['imported'].get('file')}" if model.get("imported")
               else f"run {(metrics.get('checkpoint') or {}).get('run')}")
    table.notes.append(f"Source: {weights}, {metrics.get('split')} split, "
                       f"{metrics.get('n_samples')} samples (commit {prov.get('commit')}).")
    return table



def table_verdicts(result: TableResult, metric: str = "pa_mpjpe") -> List[Verdict]:
    """Each network of a table's result file against the better of the constants the file
    holds (:func:`~.verdict.verdict`): HandSSCA's row of Tables 1-3, each variant of Tables
    4-6.

    Returns:
        one verdict per row the file holds; a missing file gives one "not run" verdict, a file
        without metrics (a split without ground truth) one "no_ground_truth" verdict.
    """
    name = f"Table {result.table}"
    if not result.found:
        return [verdict(None, label=f"{name} ({result.file})")]
    if not result.ours:
        return [verdict({"metrics": None, "split": result.split, "data": result.data},
                        label=f"{name} ({result.file})")]
    out = []
    for row, cells in result.ours.items():
        label = f"{name}, {'HandSSCA' if row == HANDSSCA_ROW else VARIANT_LABELS.get(row, row)}"
        out.append(verdict(cells, result.constants, label=label, metric=metric,
                           data=result.data, split=result.split))
    return out
