"""Result files: small JSON files holding measured numbers with their provenance.

A result file is what the book shows as "ours". It is written by the chapter (or the engine)
that measured it, in the same build, or committed from a GPU run, and always says what produced
it: ``data`` ("synthetic" or "real"), ``profile``, ``seeds``, ``device`` and the commit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from handssca.utils import environment_info, git_commit, write_json_atomic

REQUIRED = ("kind", "data", "profile", "metrics", "provenance")
DATA_KINDS = ("synthetic", "real")


def write_result(path, *, kind: str, data: str, profile: str, metrics: Dict[str, Any],
                 **extra) -> Path:
    """Write a result file atomically, adding provenance (commit, environment).

    Args:
        kind: what was measured, e.g. ``"ablation/ho3d"``.
        data: ``"synthetic"`` or ``"real"``.
        profile: the profile that produced it.
        metrics: metric key -> value (mm, fractions, counts), or -> list of per-seed values.
        extra: anything else worth keeping (seeds, dataset, attention, ...).
    """
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    payload = {"kind": kind, "data": data, "profile": profile, "metrics": metrics, **extra,
               "provenance": {"commit": git_commit(), **environment_info()}}
    return write_json_atomic(path, payload)


def load_result(path) -> Dict[str, Any]:
    """Read a result file; ValueError names the file and the first missing field."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON result file ({exc})") from exc
    for key in REQUIRED:
        if key not in payload:
            raise ValueError(f"{path}: result file lacks the field {key!r} (expected {REQUIRED})")
    if payload["data"] not in DATA_KINDS:
        raise ValueError(f"{path}: 'data' must be one of {DATA_KINDS}, got {payload['data']!r}")
    return payload
