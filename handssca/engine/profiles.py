"""Profiles: ``smoke`` (CI), ``quick`` (the book on 2 CPU cores), ``paper`` (GPU, real data).

A profile is a YAML data file in ``handssca/engine/profiles/``. The command line and every
chapter resolve it through :func:`resolve_profile`, so a notebook and the CLI cannot disagree.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

PROFILE_DIR = Path(__file__).with_name("profiles")


class Profile(dict):
    """A resolved profile: a nested dict with attribute access for the top level and a
    :meth:`section` helper. ``profile.name`` is its name."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc

    def section(self, *path: str) -> Dict[str, Any]:
        """A nested section, e.g. ``profile.section("chapters", "ssm")``; KeyError names the path."""
        node: Any = self
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"profile {self.get('name')!r} has no section "
                               f"{'.'.join(path[: i + 1])!r}")
            node = node[key]
        return node


def available_profiles() -> list:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_profile(name: str, overrides: Optional[dict] = None) -> Profile:
    """Load profile ``name`` (a shipped name or a path to a YAML file), apply ``overrides``
    (a nested dict merged over it), and return it.

    Raises:
        ValueError: an unknown profile name, naming the available ones.
    """
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        data = yaml.safe_load(path.read_text())
    else:
        path = PROFILE_DIR / f"{name}.yaml"
        if not path.exists():
            raise ValueError(f"unknown profile {name!r}; expected one of {available_profiles()} "
                             f"or a path to a .yaml file")
        data = yaml.safe_load(path.read_text())
    if overrides:
        data = _merge(data, overrides)
    data.setdefault("name", path.stem)
    return Profile(data)
