"""The ablations of Tables 4-6: the same training, once per attention variant and seed.

Section 4.4 of the paper compares its "Baseline" (``none``: the FPN without attention),
+ self-attention, + SSA (spatial scans only) and + SSCA on each dataset. :func:`train_variants`
trains (or reuses) one run per (variant, seed) through :func:`~.trainer.train`, all on the
*same* data: without a data root, the synthetic data of the first seed, so that seeds vary the
initialisation, the validation split and the shuffling, not the images. Chapters 08 (the
tables), 10 (receptive fields) and 11 (attention maps) call it with the same arguments and so
share the runs: whichever runs first trains, the others reuse the finished runs.

:func:`evaluate_variants` scores every run with the dataset's protocol and gathers
{variant: {metric: [one value per seed]}}, the form :func:`handssca.report.compare_table` takes,
and the same for the two constants scored on the same samples.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, Optional, Sequence, Tuple

from .datasets import resolve_data
from .profiles import check_dataset, resolve_profile
from .trainer import ATTENTIONS, RunSummary, train

#: the variants of each ablation table, in the paper's row order
TABLE_VARIANTS = {
    4: ("none", "self_attention", "ssca"),  # FreiHAND
    5: ("none", "self_attention", "ssca"),  # DexYCB
    6: ("none", "self_attention", "ssa", "ssca"),  # HO3D
}
#: the dataset of each ablation table
TABLE_DATASET = {4: "freihand", 5: "dexycb", 6: "ho3d"}


def ablation_table(dataset: str) -> int:
    """The paper's ablation table of ``dataset`` (4 FreiHAND, 5 DexYCB, 6 HO3D)."""
    dataset = check_dataset(dataset)
    return {v: k for k, v in TABLE_DATASET.items()}[dataset]


def train_variants(dataset: str, variants: Optional[Sequence[str]] = None,
                   seeds: Iterable[int] = (0,), data_root=None, profile: str = "quick",
                   data_seed: Optional[int] = None, verbose: bool = True, jobs: int = 1,
                   **train_kwargs) -> Dict[Tuple[str, int], RunSummary]:
    """Train (or reuse) one run per attention variant and seed on the same data.

    Args:
        dataset: "freihand", "ho3d" or "dexycb".
        variants: attention variants (default: the rows of the dataset's ablation table).
        seeds: the seeds; each seeds a run's initialisation, validation split and shuffling.
        data_root: the dataset folder, or None / "" for synthetic data of that style.
        profile: smoke, quick or paper.
        data_seed: the seed of the synthetic data (default: the first of ``seeds``).
        jobs: how many runs train at the same time, each in a process of its own (on a CPU
            machine with one core per run; the runs are independent, so this is a pool of
            ordinary ``train`` calls, not distributed training). 1: one after the other.
        train_kwargs: passed to :func:`~.trainer.train` (device, num_workers, overrides, ...);
            with ``jobs`` > 1 they must be picklable (no callback).

    Returns:
        {(variant, seed): RunSummary}, in variant-major order.
    """
    dataset = check_dataset(dataset)
    variants = tuple(variants or TABLE_VARIANTS[ablation_table(dataset)])
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    for v in variants:
        if v not in ATTENTIONS:
            raise ValueError(f"unknown attention variant {v!r}; expected one of {ATTENTIONS}")
    prof = resolve_profile(profile) if isinstance(profile, str) else profile
    # one data folder for every seed: the synthetic data of the first seed (the same folder a
    # plain train(dataset, seed=seeds[0]) uses, so that run is shared too)
    source = resolve_data(dataset, data_root, prof.get("name"),
                          seeds[0] if data_seed is None else int(data_seed), prof,
                          **({} if verbose else {"log": lambda msg: None}))
    keys = [(v, s) for v in variants for s in seeds]
    args = [(dataset, str(source.root), prof) for _ in keys]
    if int(jobs) <= 1 or len(keys) == 1:
        return {(v, s): train(*a, attention=v, seed=s, verbose=verbose, **train_kwargs)
                for (v, s), a in zip(keys, args)}
    if "callback" in train_kwargs:
        raise ValueError("train_variants: a callback cannot reach runs in other processes; "
                         "use jobs=1 with a callback")
    # one share of the cores per run (a runtime setting: the runs' configurations, and so their
    # reuse by other chapters, do not change)
    threads = max(1, (os.cpu_count() or 1) // int(jobs))
    train_kwargs["overrides"] = dict(train_kwargs.get("overrides") or {}, cpu_threads=threads)
    # spawn, not fork: a forked child would inherit this process's OpenMP thread pool
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(int(jobs), len(keys)), mp_context=ctx) as pool:
        futures = {k: pool.submit(train, *a, attention=k[0], seed=k[1], verbose=verbose,
                                  **train_kwargs) for k, a in zip(keys, args)}
        return {k: futures[k].result() for k in keys}


def load_run_data_root(run):
    """The data folder a run trained on (its checkpoint records it)."""
    from pathlib import Path

    from .checkpoint import checkpoint_dir, read_checkpoint_json

    rec = read_checkpoint_json(checkpoint_dir(Path(run)) / "last.json")
    return Path(rec.get("data_root", ""))


def evaluate_variants(runs: Dict[Tuple[str, int], RunSummary], split: Optional[str] = None,
                      verbose: bool = False) -> Dict[str, dict]:
    """Evaluate every run of :func:`train_variants` with its dataset's protocol.

    Args:
        runs: {(variant, seed): RunSummary}.
        split: "test" (official split), "val" (the run's held-out training rows) or None: "test"
            where the test split carries ground truth (synthetic HO3D-style data writes HO3D's
            released evaluation ground truth; a real HO3D folder may lack it), else "val"; when a
            run also held out no rows, "test" anyway, for the submission file (no metrics then).

    Returns:
        {"metrics": {variant: {metric: [value per seed]}}, "baseline": {variant: {metric:
        [value per seed]}} (the mean-pose constant on the same samples: the key keeps the name
        of ``metrics.json``), "baseline_mean_articulation": the same for the mean-articulation
        constant, "split": the split used, "data": "real" or "synthetic", "reports":
        {(variant, seed): metrics.json dict}}.
    """
    from .evaluation import evaluate, test_split_has_ground_truth
    from .trainer import read_run

    out = {"metrics": {}, "baseline": {}, "baseline_mean_articulation": {}, "reports": {},
           "split": split, "data": None}
    for (v, s), summary in runs.items():
        which = split
        if which is None:
            cfg = read_run(summary.path)["config"]
            root = load_run_data_root(summary.path)
            which = "test" if test_split_has_ground_truth(cfg["dataset"], root) else "val"
        try:
            rep = evaluate(summary.path, split=which, verbose=verbose)
        except ValueError as exc:
            if split is not None or "no validation rows" not in str(exc):
                raise
            # no ground truth in the test split and no held-out rows (the paper profile trains
            # on every row): write the submission file; the scores come from the dataset's server
            rep = evaluate(summary.path, split="test", verbose=verbose)
        out["split"] = rep["split"]
        out["data"] = rep["data"]
        out["reports"][(v, s)] = rep
        for key, target in (("metrics", rep["metrics"]),
                            ("baseline", (rep.get("baseline") or {}).get("metrics")),
                            ("baseline_mean_articulation",
                             (rep.get("baseline_mean_articulation") or {}).get("metrics"))):
            for m, val in (target or {}).items():
                if isinstance(val, (int, float)):
                    out[key].setdefault(v, {}).setdefault(m, []).append(float(val))
    return out
