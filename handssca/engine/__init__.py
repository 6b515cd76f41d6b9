"""Train, evaluate, predict: the one engine behind the command line and the book's chapters.

The chapters contain no training code of their own; they call these functions:

=================================  ==========================================================
:func:`train`                      train (or reuse the finished run of the same configuration;
                                   resume an interrupted one) -> :class:`~.trainer.RunSummary`
:func:`evaluate`                   the dataset's official protocol on a run, ``metrics.json``
                                   with provenance, the submission file, two constants
:func:`predict`                    mesh (OBJ, PLY), joints and MANO parameters (JSON) and an
                                   overlay (PNG) for images
:func:`mean_pose_baseline`         the two constants that ignore the image (the training rows'
                                   mean pose; their mean articulation), same protocol
:func:`load_run`                   a run's network, configuration, log and metrics
:func:`run_log`                    a run's per-epoch log as a table (:class:`~.runlog.RunLog`)
:func:`resolve_profile`            a profile (smoke, quick, paper), as the CLI resolves it
:func:`training_config`            a profile's training settings for a dataset
:func:`train_variants`             the ablations of Tables 4-6: one run per variant and seed, on
                                   the same data; :func:`evaluate_variants` scores them
:func:`import_run`                 the authors' released weights as a run folder that evaluate
                                   and predict accept
=================================  ==========================================================

Command line: ``python -m handssca train|evaluate|predict|import ...`` (:mod:`.cli_train`,
:mod:`.cli_evaluate`, :mod:`.cli_predict`, :mod:`.cli_import`).

Modules: :mod:`.trainer` (the loop), :mod:`.checkpoint` (safetensors + JSON, strict loading),
:mod:`.randomness` (seeds from (seed, epoch)), :mod:`.datasets` (real or synthetic data),
:mod:`.factory` (a profile's network configuration, ImageNet and mean-hand initialisations),
:mod:`.imports` (imported weights as a run folder),
:mod:`.runtime` (device, bf16, channels-last, compile), :mod:`.runlog`, :mod:`.runs`,
:mod:`.runlock` (one writer per run folder),
:mod:`.evaluation`, :mod:`.prediction`, :mod:`.profiles`.

Heavy modules load on first use, so ``import handssca.engine`` stays cheap.
"""
from __future__ import annotations

import importlib

from .profiles import (available_profiles, resolve_profile, synthetic_settings,
                       training_config)

_LAZY = {
    "train": "trainer", "RunSummary": "trainer", "RunConfigMismatchError": "trainer",
    "evaluate": "evaluation", "mean_pose_baseline": "evaluation",
    "predict": "prediction",
    "load_run": "runs", "Run": "runs", "run_log": "runs",
    "RunLog": "runlog",
    "RunFolderInUseError": "runlock",
    "CheckpointMismatchError": "checkpoint", "load_weights": "checkpoint",
    "import_run": "imports",
    "resolve_data": "datasets",
    "train_variants": "ablation", "evaluate_variants": "ablation", "TABLE_VARIANTS": "ablation",
    "TABLE_DATASET": "ablation", "ablation_table": "ablation",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(list(_LAZY) + ["resolve_profile", "training_config", "synthetic_settings",
                                "available_profiles"])
