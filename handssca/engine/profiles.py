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


#: the datasets the engine trains and evaluates on (their styles name the synthetic data too)
DATASETS = ("freihand", "ho3d", "dexycb")

#: keys of a resolved training section, and what each must be
_TRAIN_KEYS = {
    "input_size": int, "model": dict, "backbone": dict, "optimizer": dict, "batch_size": int,
    "epochs": int, "lr_step": dict, "warmup_steps": int, "loss_weights": dict, "val_fraction": float,
    "max_val_samples": int, "num_workers": int, "amp": str, "channels_last": bool,
    "compile": bool, "grad_clip": float, "cpu_threads": int, "init_mean_hand": bool,
    "augment": bool, "cache_images_mb": float,
    "imagenet_weights": (str, type(None)),
}


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` lower-cased, or raise ValueError naming the known datasets."""
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return dataset.lower()


def training_config(profile, dataset: str, overrides: Optional[dict] = None) -> Dict[str, Any]:
    """The training settings of ``profile`` for ``dataset``: ``train.common`` with
    ``train.<dataset>`` and then ``overrides`` merged over it.

    Args:
        profile: a :class:`Profile` or a profile name (see :func:`resolve_profile`).
        dataset: "freihand", "ho3d" or "dexycb".
        overrides: a nested dict merged last (e.g. ``{"epochs": 3, "optimizer": {"lr": 3e-4}}``).

    Returns:
        a plain dict with the keys of ``_TRAIN_KEYS`` (validated: a missing or unknown key, or a
        value of the wrong type, raises ValueError naming it and the profile).
    """
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile)
    dataset = check_dataset(dataset)
    section = prof.section("train")
    cfg = _merge(section.get("common") or {}, section.get(dataset) or {})
    if overrides:
        cfg = _merge(cfg, overrides)
    where = f"profile {prof.get('name')!r}, train.{dataset}"
    cfg.setdefault("cache_images_mb", 0.0)  # decoded images kept in memory (0: none)
    cfg.setdefault("augment", True)  # HandOccNet's augmentation unless a profile turns it off
    cfg.setdefault("imagenet_weights", None)  # optional: profiles written before it existed
    unknown = sorted(set(cfg) - set(_TRAIN_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown training setting {unknown[0]!r}; expected "
                         f"{sorted(_TRAIN_KEYS)}")
    for key, typ in _TRAIN_KEYS.items():
        if key not in cfg:
            raise ValueError(f"{where}: missing training setting {key!r}")
        value = cfg[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            cfg[key] = value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            what = typ.__name__ if isinstance(typ, type) else "a path or null"
            raise ValueError(f"{where}: {key} must be {what}, got {value!r}")
    for key in ("batch_size", "epochs", "input_size"):
        if cfg[key] < 1:
            raise ValueError(f"{where}: {key} must be positive, got {cfg[key]}")
    if cfg["warmup_steps"] < 0:
        raise ValueError(f"{where}: warmup_steps must be >= 0 (0: no warm-up), got {cfg['warmup_steps']}")
    if not 0.0 <= cfg["val_fraction"] < 1.0:
        raise ValueError(f"{where}: val_fraction must be in [0, 1), got {cfg['val_fraction']}")
    if cfg["amp"] not in ("bf16", "none"):
        raise ValueError(f"{where}: amp must be 'bf16' or 'none', got {cfg['amp']!r}")
    step = cfg["lr_step"]
    if set(step) != {"every", "gamma"} or int(step["every"]) < 1 or not 0 < float(step["gamma"]) <= 1:
        raise ValueError(f"{where}: lr_step must be {{every: >= 1 epochs, gamma: in (0, 1]}}, "
                         f"got {step!r}")
    _check_imagenet_weights(cfg, where)
    opt = cfg["optimizer"]
    if opt.get("name", "adam") != "adam" or float(opt.get("lr", 0)) <= 0:
        raise ValueError(f"{where}: optimizer must be {{name: adam, lr: > 0, ...}}, got {opt!r}")
    return cfg


def _check_imagenet_weights(cfg: Dict[str, Any], where: str) -> None:
    """ImageNet weights are torchvision's ResNet-50's: refused for any other backbone."""
    if cfg["imagenet_weights"] == "":
        cfg["imagenet_weights"] = None
    kind = (cfg["backbone"] or {}).get("kind", "resnet50")
    if cfg["imagenet_weights"] and kind != "resnet50":
        raise ValueError(f"{where}: imagenet_weights ({cfg['imagenet_weights']}) are torchvision's "
                         f"ResNet-50 weights, but this profile trains the {kind!r} backbone, "
                         f"which has no ImageNet weights; use the paper profile (ResNet-50) or "
                         f"leave imagenet_weights out")


def synthetic_settings(profile, dataset: str) -> Dict[str, int]:
    """The arguments of :func:`handssca.data.synth.generate` for ``dataset``'s style in
    ``profile``: {"n": ...} and, for FreiHAND, {"n_eval": ...}, for HO3D optionally
    {"frames_per_sequence": ...} (see the profiles' comments for
    what ``n`` counts in each style)."""
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile)
    dataset = check_dataset(dataset)
    node = prof.section("synthetic", dataset)
    allowed = {"freihand": {"n", "n_eval"}, "ho3d": {"n", "frames_per_sequence"}}.get(dataset, {"n"})
    bad = sorted(set(node) - allowed)
    if bad or "n" not in node:
        raise ValueError(f"profile {prof.get('name')!r}: synthetic.{dataset} must give "
                         f"{sorted(allowed)} (positive integers), got {dict(node)!r}")
    out = {k: int(node[k]) for k in sorted(node)}
    if min(out.values()) < 1:
        raise ValueError(f"profile {prof.get('name')!r}: synthetic.{dataset} counts must be "
                         f"positive, got {out}")
    return out
