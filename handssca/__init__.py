"""HandSSCA (published as HandS3C): 3D hand mesh reconstruction with state space channel attention.

The package mirrors the paper's Figure 2:

- :mod:`handssca.ssm`     the state space model (Eq. 1-3), the selective scan, the cross-scan
- :mod:`handssca.models`  backbone + FPN, the SSCA block, the regressor, the whole network, Eq. 4
- :mod:`handssca.hand`    MANO (when the user has it) or a procedural MANO-format hand
- :mod:`handssca.data`    the three datasets' loaders and a synthetic-data generator
- :mod:`handssca.metrics` the official metrics
- :mod:`handssca.engine`  train, evaluate, predict

Heavy subpackages are imported on first use, so ``import handssca`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_model": ("handssca.models", "build_model"),
    "resolve_profile": ("handssca.engine.profiles", "resolve_profile"),
}


def __getattr__(name):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'handssca' has no attribute {name!r}")


__all__ = ["build_model", "resolve_profile", "__version__"]
