"""Training: :func:`train` (the chapters' entry) and the loop behind ``python -m handssca train``.

One run = one folder (``runs/<name>/``)::

    run.json          the configuration (dataset, data kind, profile, attention, seed, training
                      settings, network configuration and version, hand model), its
                      fingerprint, status and summary
    metrics.jsonl     one JSON record per completed epoch (losses of Eq. 4, validation errors)
    checkpoints/      last.json / best.json + safetensors + training state (see .checkpoint)
    tensorboard/      event files, when TensorBoard is installed

The optimisation is the authors' (architecture spec, "Training"): Adam, a step schedule per epoch,
the loss of Eq. 4 with its weights, batch and epochs from the profile. A_log, D and the dt bias
(``no_weight_decay_names``) sit in a parameter group without weight decay.

Exact resumption: every epoch starts by seeding Python, numpy, torch and the DataLoader's
generator from (seed, epoch) (:mod:`.randomness`), so an epoch's shuffling and augmentation do not
depend on what ran before; the checkpoint of each epoch holds the weights, the optimiser and
schedule states, the step and the history. A run killed mid-epoch restarts that epoch from the
last checkpoint and, on the CPU, reproduces the uninterrupted run's losses exactly.

Reuse: a run folder whose ``run.json`` says "complete" with the same configuration fingerprint
is returned as it is (the chapters share runs this way); another configuration in the same
folder is refused, naming the first difference, unless the folder's run never completed an
epoch (a start that failed, e.g. on an empty data folder: nothing trained is lost by replacing
it).

One writer per folder: a run is written only under the folder's lock (:mod:`.runlock`,
``<run>/.lock``); a second ``train`` into a folder in use is refused with the holder's PID.
Reusing a finished run only reads it and takes no lock.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import TrainingDivergedError, read_json
from ..models import NETWORK_VERSION, build_model, load_imagenet_weights
from ..utils import (environment_info, git_commit, progress, repo_root, require_folder,
                     write_json_atomic)
from . import checkpoint as ckpt
from .datasets import (SYNTH_IDENTITY_KEYS, EpochAugmented, EpochSampler, Unaugmented, collate,
                       memoise_annotations, memoise_images, open_dataset, resolve_data,
                       synthetic_identity, train_val_split)
from .factory import imagenet_weights_record, init_mean_hand, network_config, parameter_count
from .profiles import Profile, check_dataset, resolve_profile, training_config
from .randomness import derive_seed, seed_epoch, seed_everything, worker_init_fn
from .runlog import TensorBoard, write_log
from .runlock import LOCK_FILE, run_lock
from .runtime import autocast, device_name, pick_device, prepare_model, to_device

RUN_FILE = "run.json"
#: what --out may be
RUN_FOLDER_EXPECTED = "a folder (a new one, or an existing run folder)"
#: what to do about a damaged run.json (writes are atomic, so something else damaged it)
RUN_FILE_REMEDY = ("Restore it from a backup, or delete the run folder and train again (or "
                   "choose another --out)")
#: training settings that change how fast a run goes, not what it computes (left out of the
#: fingerprint: a run may be resumed or reused with other values)
RUNTIME_KEYS = ("num_workers", "compile", "amp", "channels_last", "cpu_threads", "cache_images_mb")
LOSS_TERMS = ("vertices", "joints", "pose", "shape", "joints2d")
ATTENTIONS = ("none", "self_attention", "ssa", "ssca")


class RunConfigMismatchError(ValueError):
    """A run folder holds a run of another configuration (the message names the first
    difference)."""


class RunSummary(dict):
    """What :func:`train` returns: the run's summary (a dict) with ``.path`` (the run folder)."""

    @property
    def path(self) -> Path:
        return Path(self["run"])


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fingerprint(config: dict) -> str:
    """SHA-256 (16 hex digits) of a configuration's canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(device: torch.device) -> dict:
    """Commit, device, time and versions, for every file the engine writes."""
    env = environment_info()
    return {"commit": git_commit(), "device": device_name(device), "time_utc": env["time_utc"],
            "torch": env.get("torch"), "python": env.get("python"), "cpu": env.get("cpu"),
            "cpu_count": env.get("cpu_count"), "torch_threads": torch.get_num_threads()}


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def default_run_dir(dataset: str, data_kind: str, attention: str, profile: str, seed: int,
                    fp: str) -> Path:
    """``runs/<dataset>-<data kind>-<attention>-<profile>-seed<seed>-<fingerprint>`` under the
    project folder. The fingerprint (8 hex digits of the run's configuration, which includes the
    data's settings and any overrides) makes the same request always land in the same folder,
    and so be reused, while a changed configuration (an edited profile, regenerated data) gets
    a folder of its own instead of clashing with, or overwriting, an earlier run."""
    name = f"{dataset}-{data_kind}-{attention}-{profile}-seed{seed}-{fp[:8]}"
    return repo_root() / "runs" / name


def build_config(dataset: str, attention: str, profile: Profile, seed: int, source,
                 train_cfg: dict, network: dict, hand_model) -> dict:
    """The configuration a run is identified by (its fingerprint is taken over this dict).

    ImageNet weights enter as their file's name and SHA-256: a run started from other weights
    is another run."""
    data = {"kind": source.kind}
    # synthetic data are named by (style, profile, seed): the folder may move with the project
    data["root"] = source.root.name if source.kind == "synthetic" else str(source.root)
    if source.kind == "synthetic":
        # what the data is, not only where: regenerated data of other settings is another run,
        # and evaluation recognises the run's own data by it (wherever the folder is then)
        data["synthetic"] = (synthetic_identity(source.root)
                             or dict.fromkeys(SYNTH_IDENTITY_KEYS))
    train = {k: v for k, v in train_cfg.items() if k not in RUNTIME_KEYS}
    if train.get("imagenet_weights"):
        train["imagenet_weights"] = imagenet_weights_record(train["imagenet_weights"])
    return {
        "dataset": dataset, "attention": attention, "profile": profile.get("name"),
        "seed": int(seed), "data": data, "train": train,
        "network": network, "network_version": NETWORK_VERSION,
        "hand_model": {"kind": hand_model.kind},
    }


# ----------------------------------------------------------------------------------------------
# the run folder
# ----------------------------------------------------------------------------------------------
def read_run(run) -> dict:
    """The ``run.json`` of a run folder (FileNotFoundError when absent)."""
    p = Path(run) / RUN_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: {run} is not a training run folder")
    return read_json(p, RUN_FILE_REMEDY)


def _has_checkpoint(out: Path) -> bool:
    """Whether a run folder holds a completed epoch (its ``checkpoints/last.json``)."""
    return (ckpt.checkpoint_dir(out) / "last.json").exists()


def _check_existing(out: Path, config: dict, fp: str, log=None) -> Optional[dict]:
    """Validate an existing run folder against ``config``; returns its run.json (or None when
    the folder is new, empty, or holds only a start that never completed an epoch)."""
    require_folder(out, "--out", RUN_FOLDER_EXPECTED)
    if not out.exists():
        return None
    p = out / RUN_FILE
    if not p.exists():
        if any(child.name != LOCK_FILE for child in out.iterdir()):
            raise ValueError(f"{out} exists and is not a run folder (no {RUN_FILE}); choose "
                             f"another --out")
        return None
    run = read_json(p, RUN_FILE_REMEDY)
    if run.get("fingerprint") != fp:
        diff = ckpt.first_difference(run.get("config", {}), json.loads(json.dumps(config)))
        what = (f"{diff[0]} is {diff[1]!r} there but {diff[2]!r} now" if diff
                else "the fingerprints differ")
        # a start that failed before its first checkpoint (no data in --data-root, a typo in a
        # setting) holds no trained epoch: the corrected configuration may take the folder over
        if run.get("status") != "complete" and not _has_checkpoint(out):
            if log is not None:
                log(f"[train] {out} holds a start of another configuration that never completed "
                    f"an epoch ({what}): starting this configuration there")
            return None
        raise RunConfigMismatchError(
            f"{out} holds a run of another configuration ({what}); choose another --out, or "
            f"delete that folder to retrain")
    return run


# ----------------------------------------------------------------------------------------------
# the loop's parts
# ----------------------------------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, opt_cfg: dict) -> torch.optim.Optimizer:
    """Adam with two groups: the profile's weight decay, and none for A_log, D, dt bias and
    position embeddings (``no_weight_decay_names``, Mamba/VMamba)."""
    from ..models import no_weight_decay_names

    nwd = set(no_weight_decay_names(model))
    decay = [p for n, p in model.named_parameters() if n not in nwd and p.requires_grad]
    no_decay = [p for n, p in model.named_parameters() if n in nwd and p.requires_grad]
    groups = [{"params": decay, "weight_decay": float(opt_cfg.get("weight_decay", 0.0))}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    betas = tuple(float(b) for b in opt_cfg.get("betas", (0.9, 0.999)))
    return torch.optim.Adam(groups, lr=float(opt_cfg["lr"]), betas=betas)


def make_scheduler(optimizer, step_cfg: dict, steps_per_epoch: int, warmup_steps: int = 0):
    """The learning-rate schedule, stepped once per optimiser step.

    The authors' step schedule (lr x gamma every ``every`` epochs), preceded by a linear warm-up
    over the first ``warmup_steps`` steps (lr x (step + 1) / warmup_steps; 0: none, as the
    authors). The warm-up is a departure for the small CPU profiles: Adam's first updates are
    as large as its later ones while its moment estimates are still noise, and on a network
    trained from scratch they throw the MANO head far from the mean hand (PA-MPJPE 9 -> 25-30 mm
    in the first 25 steps); see the training chapters.
    """
    every, gamma = int(step_cfg["every"]), float(step_cfg["gamma"])
    per_epoch, warm = max(int(steps_per_epoch), 1), max(int(warmup_steps), 0)

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warm) if warm else 1.0
        return ramp * gamma ** ((step // per_epoch) // every)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rng_state() -> dict:
    st = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),)
                    + tuple(state["python"][2:]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))


@torch.no_grad()
def predict_batch(model, images: torch.Tensor, device: torch.device, amp: str = "none") -> dict:
    """Run the network on a batch; returns root-relative "joints" (B, 21, 3) and "vertices"
    (B, 778, 3) (wrist = joint 0 subtracted), "joints2d", "pose", "shape", fp32 on the CPU."""
    with autocast(device, amp):
        out = model(images)
    j = out["joints"].float()
    wrist = j[:, :1]
    return {"joints": (j - wrist).cpu(), "vertices": (out["vertices"].float() - wrist).cpu(),
            "joints2d": out["joints2d"].float().cpu(), "pose": out["pose"].float().cpu(),
            "shape": out["shape"].float().cpu()}


def validate(model, raw_model, loader, device, amp, weights) -> dict:
    """Validation errors on held-out training samples: PA-MPJPE and root-relative MPJPE of the
    joints, PA-MPVPE of the mesh (mm), and the loss of Eq. 4."""
    from ..metrics import mpjpe, pa_mpjpe, pa_mpvpe

    model.eval()
    pj, gj, pv, gv, losses, n = [], [], [], [], 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, device)
            with autocast(device, amp):
                out = model(batch["image"])
            out = {k: v.float() for k, v in out.items()}
            loss = raw_model.compute_loss(out, batch, weights)["total"]
            b = batch["image"].shape[0]
            losses += float(loss) * b
            n += b
            j = out["joints"]
            pj.append((j - j[:, :1]).cpu().numpy())
            pv.append((out["vertices"] - j[:, :1]).cpu().numpy())
            gj.append(batch["joints3d"].cpu().numpy())
            gv.append(batch["vertices"].cpu().numpy())
    model.train()
    pj, gj, pv, gv = (np.concatenate(x) for x in (pj, gj, pv, gv))
    return {"val_loss": losses / max(n, 1), "val_pa_mpjpe": float(pa_mpjpe(pj, gj)),
            "val_mpjpe": float(mpjpe(pj, gj)), "val_pa_mpvpe": float(pa_mpvpe(pv, gv)),
            "val_samples": n}


def check_every_step(device: torch.device) -> bool:
    """Whether the loss is checked for NaN/Inf after every step (True) or once per epoch.

    On the CPU the check is free; on a GPU it would wait for every step to finish, so there the
    epoch's mean loss is checked instead (a NaN in any step makes it NaN)."""
    return device.type != "cuda"


def diverged(loss: float, epoch: int, lr: float, data_root, step: Optional[int] = None,
             batch: Optional[int] = None) -> TrainingDivergedError:
    """The error of a training loss that became NaN or infinite at ``step`` (1-based; None: in
    ``epoch``, 1-based), saying what to change."""
    where = (f"at step {step} (epoch {epoch}, batch {batch})" if step is not None
             else f"in epoch {epoch}")
    return TrainingDivergedError(
        f"training diverged: the loss is {loss} {where}; the run stopped, and the checkpoints of "
        f"the epochs before are kept. Lower the learning rate (--lr, now {float(lr):g}; the run's "
        f"configuration changes with it, so use a new --out) or check the data in {data_root} "
        f"for broken annotations, then train again")


# ----------------------------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------------------------
def train(dataset: str, data_root=None, profile: str = "quick", attention: str = "ssca",
          out=None, seed: int = 0, resume: bool = True, device: Optional[str] = None,
          overrides: Optional[dict] = None, compile: Optional[bool] = None,
          num_workers: Optional[int] = None, callback: Optional[Callable[[dict], Any]] = None,
          hand_model=None, verbose: bool = True, tensorboard: bool = True) -> RunSummary:
    """Train HandSSCA (or a Table 6 variant) on a dataset, or reuse the finished run.

    Args:
        dataset: "freihand", "ho3d" or "dexycb".
        data_root: the dataset folder in its official layout; None or "" uses synthetic data of
            that dataset's style (generated on first use into ``data/synth/``, and said so).
        profile: "smoke", "quick" or "paper" (or a YAML path): training settings, model size and
            synthetic counts (:func:`~.profiles.training_config`).
        attention: "ssca" (the paper's), "ssa", "self_attention" or "none" (Table 6).
        out: the run folder; default ``runs/<dataset>-<data>-<attention>-<profile>-seed<seed>-<hash>``
            (:func:`default_run_dir`).
        seed: seeds the model's initialisation, the validation split, every epoch's shuffling
            and augmentation, and the synthetic data.
        resume: continue an unfinished run in ``out`` from its last checkpoint (False: refuse
            to touch an unfinished run). A finished run with the same configuration is always
            reused, not retrained.
        device: "cpu", "cuda", "cuda:N" or None (CUDA when available).
        overrides: nested dict merged over the profile's training section, e.g.
            ``{"epochs": 2, "optimizer": {"lr": 3e-4}}``.
        compile: ``torch.compile`` on a GPU (None: the profile's setting).
        num_workers: DataLoader workers (None: the profile's setting).
        callback: called with ``{"kind": "step", "epoch", "batch", "step", "loss"}`` after every
            step and ``{"kind": "epoch", **record}`` after every epoch.
        hand_model: the hand model (default ``load_hand_model()``: MANO when installed, else the
            procedural hand; recorded in the checkpoints).
        verbose: print what happens (data, resume, one line per epoch) on stderr.
        tensorboard: write TensorBoard events when TensorBoard is installed.

    Returns:
        a :class:`RunSummary`: "run" (folder), "status", "reused", "data" ("real" or
        "synthetic"), "epochs", "final" (last epoch's record), "best" (best validation record or
        None), "seconds", "seconds_per_epoch", "parameters", "device", ...

    Raises:
        RunConfigMismatchError: ``out`` holds a run of another configuration with at least one
            completed epoch.
        handssca.engine.runlock.RunFolderInUseError: another process is writing into ``out``.
    """
    log = _log if verbose else (lambda msg: None)
    dataset = check_dataset(dataset)
    _check_choice("attention", attention, ATTENTIONS)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile, None)
    train_cfg = training_config(prof, dataset, overrides)
    if num_workers is not None:
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        train_cfg["num_workers"] = int(num_workers)
    if compile is not None:
        train_cfg["compile"] = bool(compile)
    dev = pick_device(device)
    if out:  # a file in the way is refused before any data is read or generated
        require_folder(Path(out).expanduser(), "--out", RUN_FOLDER_EXPECTED)

    source = resolve_data(dataset, data_root, prof.get("name"), seed, prof, log=log)
    if hand_model is None:
        from ..hand import load_hand_model

        hand_model = load_hand_model()
    network = network_config(train_cfg, attention)
    config = build_config(dataset, attention, prof, seed, source, train_cfg, network, hand_model)
    fp = fingerprint(config)
    out = Path(out) if out else default_run_dir(dataset, source.kind, attention, prof.get("name"),
                                                seed, fp)
    out = out.expanduser().resolve()
    # a finished run is reused without the lock: reading it needs none, and several chapters
    # (or processes) may share it at once
    existing = _check_existing(out, config, fp)
    if existing and existing.get("status") == "complete":
        return _reused(out, existing, fp, log)
    with run_lock(out):
        # checked again under the lock: another process may have finished or started the run
        existing = _check_existing(out, config, fp, log)
        if existing and existing.get("status") == "complete":
            return _reused(out, existing, fp, log)
        last_json = ckpt.checkpoint_dir(out) / "last.json"
        resuming = existing is not None and last_json.exists()
        if resuming and not resume:
            raise RuntimeError(f"{out} holds an unfinished run (checkpoint of epoch "
                               f"{ckpt.read_checkpoint_json(last_json).get('epoch')}); pass "
                               f"resume=True (--resume) to continue it, or choose another --out")
        threads = torch.get_num_threads()
        if dev.type == "cpu" and train_cfg["cpu_threads"] > 0:
            torch.set_num_threads(train_cfg["cpu_threads"])
        try:
            return _run(out, config, fp, prof, train_cfg, network, source, hand_model, dev, seed,
                        resuming, callback, log, tensorboard)
        finally:
            torch.set_num_threads(threads)


def _reused(out: Path, existing: dict, fp: str, log) -> RunSummary:
    """The summary of a finished run that is reused as it is."""
    log(f"[train] reusing the finished run {out} (same configuration, fingerprint {fp})")
    return RunSummary(dict(existing["summary"], reused=True, run=str(out)))


def _run(out: Path, config: dict, fp: str, prof: Profile, cfg: dict, network: dict, source,
         hand_model, dev: torch.device, seed: int, resuming: bool, callback, log,
         use_tensorboard: bool) -> RunSummary:
    from ..models import LossWeights

    out.mkdir(parents=True, exist_ok=True)
    runtime = {k: cfg[k] for k in RUNTIME_KEYS}
    run_record = {"config": config, "fingerprint": fp, "status": "running", "runtime": runtime,
                  "provenance": provenance(dev)}
    if not resuming:
        write_json_atomic(out / RUN_FILE, run_record)
    else:
        prev = read_run(out)
        run_record["provenance"] = dict(prev.get("provenance", {}), resumed_utc=provenance(dev)["time_utc"])
        write_json_atomic(out / RUN_FILE, run_record)
    if source.kind == "synthetic":
        log(f"[train] data: SYNTHETIC {source.dataset}-style data in {source.root} (not the real "
            f"dataset; every result is labelled data: synthetic)")
    else:
        log(f"[train] data: real {source.dataset} in {source.root}")

    # ---------------------------------------------------------------- data
    S = int(cfg["input_size"])
    train_ds = memoise_annotations(open_dataset(source, "train", S, hand_model=hand_model))
    memoise_images(train_ds, cfg["cache_images_mb"])
    train_rows, val_rows = train_val_split(train_ds, cfg["val_fraction"], cfg["max_val_samples"], seed)
    bs = int(cfg["batch_size"])
    if len(train_rows) < bs:
        raise ValueError(f"{len(train_rows)} training samples, fewer than one batch of {bs}: "
                         f"lower batch_size or use more data")
    # each epoch's order and augmentation depend on (seed, epoch) only (see .datasets), so the
    # loader's workers may persist across epochs (and keep their decoded annotations)
    nw = int(cfg["num_workers"])
    sampler = EpochSampler(len(train_rows), seed)
    loader = DataLoader(EpochAugmented(train_ds, train_rows, seed, cfg["augment"]), batch_size=bs,
                        sampler=sampler,
                        drop_last=True, num_workers=nw, worker_init_fn=worker_init_fn,
                        collate_fn=collate, pin_memory=dev.type == "cuda",
                        persistent_workers=nw > 0)
    val_loader = None
    if len(val_rows):
        val_loader = DataLoader(Unaugmented(train_ds, val_rows), batch_size=bs, shuffle=False,
                                num_workers=nw, collate_fn=collate, worker_init_fn=worker_init_fn,
                                persistent_workers=nw > 0)

    # ---------------------------------------------------------------- model, optimiser
    seed_everything(derive_seed(seed, -1, "init"))
    raw_model = build_model(**network, hand_model=hand_model)
    if cfg["init_mean_hand"]:
        init_mean_hand(raw_model)
    if cfg["imagenet_weights"] and not resuming:  # the paper's initialisation of ResNet-50
        load_imagenet_weights(raw_model, cfg["imagenet_weights"])
    network = raw_model.config.to_dict()  # every field, defaults included, for the checkpoints
    counts = parameter_count(raw_model)
    amp = cfg["amp"] if dev.type == "cuda" else "none"
    model = prepare_model(raw_model, dev, amp, cfg["channels_last"], cfg["compile"])
    optimizer = make_optimizer(raw_model, cfg["optimizer"])
    scheduler = make_scheduler(optimizer, cfg["lr_step"], len(loader), cfg["warmup_steps"])
    weights = LossWeights(**cfg["loss_weights"])

    start_epoch, step, history, best = 0, 0, [], None
    if resuming:
        rec = ckpt.load_weights(raw_model, out, "last")
        state = ckpt.load_state(rec["state"])
        if state.get("fingerprint") != fp:
            raise RunConfigMismatchError(f"{rec['state']} belongs to another configuration")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history, best = list(state["history"]), state.get("best")
        log(f"[train] resuming {out} after epoch {start_epoch} (step {step})")
    ckpt.prune(out)
    write_log(out, history)
    tb = TensorBoard(out, purge_step=step if resuming else None, enabled=use_tensorboard)

    epochs = int(cfg["epochs"])
    text = (f"{network['attention']}, S={S}, C={network['C']}, "
            f"{network['backbone']['kind']} backbone, {counts['total']:,} parameters")
    log(f"[train] {config['dataset']} / {prof.get('name')} profile / seed {seed} on "
        f"{device_name(dev)} ({'bf16 autocast' if amp == 'bf16' else 'fp32'}): {text}; "
        f"{len(train_rows)} train / {len(val_rows)} val samples, batch {bs}, {epochs} epochs")
    info_base = {"network": network,
                 "hand_model": {"kind": hand_model.kind, "source": str(getattr(hand_model, "source", ""))},
                 "dataset": config["dataset"], "data": source.kind, "data_root": str(source.root),
                 "profile": prof.get("name"), "attention": config["attention"], "seed": seed,
                 "fingerprint": fp, "run": str(out)}
    each_step = check_every_step(dev)
    for epoch in range(start_epoch, epochs):
        seed_epoch(seed, epoch)  # the model's own randomness (drop path), if any
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64, device=dev)
        seen, t0 = 0, time.time()
        bar = progress(loader, desc=f"epoch {epoch + 1}/{epochs}", total=len(loader), leave=False)
        for b, batch in enumerate(bar):
            batch = to_device(batch, dev, cfg["channels_last"])
            with autocast(dev, amp):
                pred = model(batch["image"])
            pred = {k: v.float() for k, v in pred.items()}
            terms = raw_model.compute_loss(pred, batch, weights)
            # stop at the first non-finite loss, before it reaches the weights
            if each_step and not torch.isfinite(terms["total"]):
                raise diverged(float(terms["total"].detach()), epoch + 1,
                               cfg["optimizer"]["lr"], source.root, step + 1, b + 1)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg["grad_clip"])
            optimizer.step()
            scheduler.step()
            step += 1
            n = batch["image"].shape[0]
            seen += n
            sums += torch.stack([terms["total"].detach()] + [terms[t].detach() for t in LOSS_TERMS]
                                ).double() * n
            if callback is not None or bar.disable is False or tb.active:
                loss_now = float(terms["total"].detach())
                if not bar.disable:
                    bar.set_postfix(loss=f"{loss_now:.4g}")
                tb.scalars({"loss": loss_now}, step, "train_step/")
                if callback is not None:
                    callback({"kind": "step", "epoch": epoch + 1, "batch": b, "step": step,
                              "loss": loss_now})
        bar.close()
        means = (sums / max(seen, 1)).tolist()
        seconds = time.time() - t0
        rec: Dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, "loss": means[0]}
        rec.update({f"loss_{t}": m for t, m in zip(LOSS_TERMS, means[1:])})
        rec.update({"train_samples": seen, "seconds": round(seconds, 3),
                    "samples_per_second": round(seen / max(seconds, 1e-9), 2)})
        # before validating: diverged weights would fail there with a message about NaN outputs
        if not math.isfinite(rec["loss"]):
            raise diverged(rec["loss"], epoch + 1, cfg["optimizer"]["lr"], source.root)
        if val_loader is not None:
            rec.update(validate(model, raw_model, val_loader, dev, amp, weights))
        history.append(rec)
        is_best = "val_pa_mpjpe" in rec and (best is None or rec["val_pa_mpjpe"] < best["val_pa_mpjpe"])
        if is_best:
            best = dict(rec)
        state = {"epoch": epoch + 1, "step": step, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": _rng_state(), "history": history,
                 "best": best, "fingerprint": fp}
        ckpt.write_checkpoint(out, raw_model, dict(info_base, metrics=rec, provenance=provenance(dev)),
                              epoch + 1, state=state, best=is_best)
        write_log(out, history)
        tb.scalars({k: v for k, v in rec.items() if k not in ("epoch", "step")}, step, "epoch/")
        val = (f", val PA-MPJPE {rec['val_pa_mpjpe']:.2f} mm" if "val_pa_mpjpe" in rec else "")
        log(f"[train] epoch {epoch + 1}/{epochs}: loss {rec['loss']:.4g}{val} "
            f"({seconds:.1f} s, {rec['samples_per_second']:.0f} samples/s, lr {lr:.3g})")
        if callback is not None:
            callback({"kind": "epoch", **rec})
    tb.close()

    secs = [r["seconds"] for r in history]
    summary = RunSummary({
        "run": str(out), "status": "complete", "reused": False, "dataset": config["dataset"],
        "data": source.kind, "data_root": str(source.root), "profile": prof.get("name"),
        "attention": config["attention"], "seed": seed, "epochs": len(history),
        "final": history[-1] if history else None, "best": best,
        "seconds": round(float(sum(secs)), 3),
        "seconds_per_epoch": round(float(np.mean(secs)), 3) if secs else None,
        "parameters": counts, "device": device_name(dev), "network": network,
        "hand_model": info_base["hand_model"], "fingerprint": fp,
    })
    run_record.update(status="complete", summary=dict(summary))
    write_json_atomic(out / RUN_FILE, run_record)
    log(f"[train] done: {out}")
    return summary
