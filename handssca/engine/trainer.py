"""Training: :func:`train` (the chapters' entry) and the loop behind ``python -m handssca train``.

One run = one folder (``runs/<name>/``)::

    run.json          the configuration (dataset, data kind, profile, attention, seed, training
                      settings, network configuration and version, hand model), its
                      fingerprint, status and summary
    metrics.jsonl     one JSON record per completed epoch (losses of Eq. 4, validation errors)
    checkpoints/      last.json / best.json + safetensors + training state (see .checkpoint)
    tensorboard/      event files, when TensorBoard is installed

The optimisation is the authors' (the paper, Section 4.1; book/paper_vs_code.md): Adam, a step schedule per epoch,
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

Several processes: under ``torchrun --nproc_per_node=N -m handssca train ...`` the same loop
runs data-parallel (:mod:`.distributed`): each process takes its share of every epoch's
(seed, epoch) permutation, the profile's batch is the global one, and rank 0 alone validates
and writes the run folder; a checkpoint holds the plain network's weights, so a run may resume
at another number of processes.

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
import contextlib
import time
from dataclasses import dataclass, field
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
from . import distributed
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
          hand_model=None, verbose: bool = True, tensorboard: bool = True,
          sync_bn: bool = False) -> RunSummary:
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
        sync_bn: under torchrun, BatchNorm statistics over the global batch
            (``torch.nn.SyncBatchNorm``, CUDA only); default: each process's own batch, as the
            authors' per-GPU training. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) the
            run is data-parallel (:mod:`.distributed`): the profile's batch is the global one,
            rank 0 writes every file, the others return the same summary.

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
    world, dev = distributed.setup(pick_device(device))
    if not world.is_main:  # one voice: rank 0 logs for the job
        log = (lambda msg: None)
    distributed.per_rank_batch(int(train_cfg["batch_size"]), world)
    if sync_bn:
        distributed.check_sync_bn(dev)
    if out:  # a file in the way is refused before any data is read or generated
        require_folder(Path(out).expanduser(), "--out", RUN_FOLDER_EXPECTED)

    # rank 0 first: it may generate the synthetic data, which the others then read
    source = distributed.main_first(
        lambda: resolve_data(dataset, data_root, prof.get("name"), seed, prof, log=log), world)
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
    with contextlib.ExitStack() as held:
        decision = _decide(out, config, fp, resume, log, held, world)
        if decision[0] == "reused":
            return RunSummary(decision[1])
        threads = torch.get_num_threads()
        if dev.type == "cpu" and train_cfg["cpu_threads"] > 0:
            torch.set_num_threads(train_cfg["cpu_threads"])
        try:
            ctx = RunContext(out=out, config=config, fp=fp, prof=prof, cfg=train_cfg,
                             network=network, source=source, hand_model=hand_model, dev=dev,
                             seed=seed, callback=callback, log=log, world=world,
                             sync_bn=bool(sync_bn))
            return _run(ctx, decision[0] == "resume", tensorboard)
        finally:
            torch.set_num_threads(threads)


def _decide(out: Path, config: dict, fp: str, resume: bool, log, held: contextlib.ExitStack,
            world: distributed.World) -> tuple:
    """What to do with ``out``: ("reused", summary), ("resume", None) or ("new", None).

    Rank 0 decides (taking the folder's lock into ``held`` when it trains) and every rank
    receives its decision; an error on rank 0 stops the others with its message."""
    decision = None
    if world.is_main:
        try:
            decision = _decide_here(out, config, fp, resume, log, held)
        except Exception as err:
            distributed.share(("error", f"rank 0 refused the run: {err}"), world)
            raise
    decision = distributed.share(decision, world)
    if decision[0] == "error":
        raise RuntimeError(decision[1])
    return decision


def _decide_here(out: Path, config: dict, fp: str, resume: bool, log,
                 held: contextlib.ExitStack) -> tuple:
    """:func:`_decide` in the process that writes the run folder."""
    # a finished run is reused without the lock: reading it needs none, and several chapters
    # (or processes) may share it at once
    existing = _check_existing(out, config, fp)
    if existing and existing.get("status") == "complete":
        return "reused", _reused(out, existing, fp, log)
    held.enter_context(run_lock(out))
    # checked again under the lock: another process may have finished or started the run
    existing = _check_existing(out, config, fp, log)
    if existing and existing.get("status") == "complete":
        return "reused", _reused(out, existing, fp, log)
    last_json = ckpt.checkpoint_dir(out) / "last.json"
    resuming = existing is not None and last_json.exists()
    if resuming and not resume:
        raise RuntimeError(f"{out} holds an unfinished run (checkpoint of epoch "
                           f"{ckpt.read_checkpoint_json(last_json).get('epoch')}); pass "
                           f"resume=True (--resume) to continue it, or choose another --out")
    return ("resume" if resuming else "new"), None


def _reused(out: Path, existing: dict, fp: str, log) -> RunSummary:
    """The summary of a finished run that is reused as it is."""
    log(f"[train] reusing the finished run {out} (same configuration, fingerprint {fp})")
    return RunSummary(dict(existing["summary"], reused=True, run=str(out)))


@dataclass
class RunContext:
    """What the steps of one training run share: where it writes, what it trains, with what.

    Built by :func:`_run` from :func:`train`'s resolved arguments; the steps
    (:func:`_build_loaders`, :func:`_build_model`, :func:`_restore`, :func:`_train_epoch`,
    :func:`_end_epoch`, :func:`_finish`) fill in and advance the fields after ``log``."""

    out: Path
    config: dict
    fp: str
    prof: Profile
    cfg: dict                     # the resolved training section (profile + overrides)
    network: dict                 # build_model keywords (every field once the model is built)
    source: Any                   # the DataSource
    hand_model: Any
    dev: torch.device
    seed: int
    callback: Optional[Callable[[dict], Any]]
    log: Callable[[str], None]
    world: distributed.World = distributed.SINGLE   # this process among torchrun's
    sync_bn: bool = False
    run_record: dict = field(default_factory=dict)
    train_rows: Any = None
    val_rows: Any = None
    sampler: Any = None
    loader: Any = None
    val_loader: Any = None
    raw_model: Any = None         # the network itself (its weights are what checkpoints hold)
    net: Any = None               # raw_model moved, maybe compiled (what validation calls)
    model: Any = None             # what training calls: net, in DistributedDataParallel
    counts: dict = field(default_factory=dict)
    amp: str = "none"
    optimizer: Any = None
    scheduler: Any = None
    weights: Any = None           # LossWeights of Eq. 4
    start_epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    best: Optional[dict] = None
    tb: Any = None

    @property
    def epochs(self) -> int:
        return int(self.cfg["epochs"])

    @property
    def rank_batch(self) -> int:
        """The batch each process loads (the profile's batch is the global one)."""
        return distributed.per_rank_batch(int(self.cfg["batch_size"]), self.world)

    @property
    def parallel_record(self) -> dict:
        """How the run is spread: world size, per-rank and global batch, BatchNorm."""
        return {"world_size": self.world.size, "per_rank_batch": self.rank_batch,
                "global_batch": int(self.cfg["batch_size"]),
                "batchnorm": "synchronised" if self.sync_bn else "per process"}

    @property
    def info_base(self) -> dict:
        """What every checkpoint's JSON records beside its metrics."""
        return {"network": self.network, "hand_model": self.hand_record,
                "dataset": self.config["dataset"], "data": self.source.kind,
                "data_root": str(self.source.root), "profile": self.prof.get("name"),
                "attention": self.config["attention"], "seed": self.seed,
                "fingerprint": self.fp, "run": str(self.out)}

    @property
    def hand_record(self) -> dict:
        return {"kind": self.hand_model.kind,
                "source": str(getattr(self.hand_model, "source", ""))}


def _run(ctx: RunContext, resuming: bool, use_tensorboard: bool) -> RunSummary:
    """One run, as named steps: the run record, the loaders, the model, the restore, then per
    epoch one pass over the data and its validation and checkpoint."""
    main = ctx.world.is_main
    if main:
        _start_record(ctx, resuming)
    _build_loaders(ctx)
    _build_model(ctx, resuming)
    if resuming:
        _restore(ctx)
    if main:  # every rank has read the checkpoint it needs before rank 0 may write the next
        ckpt.prune(ctx.out)
        write_log(ctx.out, ctx.history)
    ctx.tb = TensorBoard(ctx.out, purge_step=ctx.step if resuming else None,
                         enabled=use_tensorboard and main)
    _log_start(ctx)
    with distributed.collective_guard(ctx.world):
        for epoch in range(ctx.start_epoch, ctx.epochs):
            rec = _train_epoch(ctx, epoch)
            _end_epoch(ctx, rec)
    ctx.tb.close()
    return _finish(ctx)


def _start_record(ctx: RunContext, resuming: bool) -> None:
    """Write ``run.json`` with status "running" (a resumed run keeps its first provenance and
    adds the time it was resumed) and say what data the run trains on."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    runtime = {k: ctx.cfg[k] for k in RUNTIME_KEYS}
    ctx.run_record = {"config": ctx.config, "fingerprint": ctx.fp, "status": "running",
                      "runtime": runtime, "provenance": provenance(ctx.dev)}
    if ctx.world.parallel:  # not in the fingerprint: a run may resume at another world size
        ctx.run_record["parallel"] = ctx.parallel_record
    if resuming:
        prev = read_run(ctx.out)
        ctx.run_record["provenance"] = dict(prev.get("provenance", {}),
                                            resumed_utc=provenance(ctx.dev)["time_utc"])
    write_json_atomic(ctx.out / RUN_FILE, ctx.run_record)
    src = ctx.source
    if src.kind == "synthetic":
        ctx.log(f"[train] data: SYNTHETIC {src.dataset}-style data in {src.root} (not the real "
                f"dataset; every result is labelled data: synthetic)")
    else:
        ctx.log(f"[train] data: real {src.dataset} in {src.root}")


def _build_loaders(ctx: RunContext) -> None:
    """The training loader (every epoch's order and augmentation from (seed, epoch) alone, see
    :mod:`.datasets`) and the validation loader over the held-out rows."""
    cfg, S, bs = ctx.cfg, int(ctx.cfg["input_size"]), int(ctx.cfg["batch_size"])
    rank_bs = ctx.rank_batch
    train_ds = memoise_annotations(open_dataset(ctx.source, "train", S,
                                                hand_model=ctx.hand_model))
    memoise_images(train_ds, cfg["cache_images_mb"])
    ctx.train_rows, ctx.val_rows = train_val_split(train_ds, cfg["val_fraction"],
                                                   cfg["max_val_samples"], ctx.seed)
    if len(ctx.train_rows) < bs:
        raise ValueError(f"{len(ctx.train_rows)} training samples, fewer than one batch of {bs}: "
                         f"lower batch_size or use more data")
    # each epoch's order and augmentation depend on (seed, epoch) only, so the loader's workers
    # may persist across epochs (and keep their decoded annotations)
    nw = int(cfg["num_workers"])
    # under torchrun each rank takes its share of the same permutation (.distributed)
    ctx.sampler = (distributed.RankSampler(len(ctx.train_rows), ctx.seed, ctx.world)
                   if ctx.world.parallel else EpochSampler(len(ctx.train_rows), ctx.seed))
    ctx.loader = DataLoader(EpochAugmented(train_ds, ctx.train_rows, ctx.seed, cfg["augment"]),
                            batch_size=rank_bs, sampler=ctx.sampler, drop_last=True, num_workers=nw,
                            worker_init_fn=worker_init_fn, collate_fn=collate,
                            pin_memory=ctx.dev.type == "cuda", persistent_workers=nw > 0)
    ctx.val_loader = None
    if len(ctx.val_rows) and ctx.world.is_main:  # rank 0 validates (and alone records it)
        ctx.val_loader = DataLoader(Unaugmented(train_ds, ctx.val_rows), batch_size=bs,
                                    shuffle=False, num_workers=nw, collate_fn=collate,
                                    worker_init_fn=worker_init_fn, persistent_workers=nw > 0)


def _build_model(ctx: RunContext, resuming: bool) -> None:
    """The network (seeded from the run's seed; ImageNet weights for a new run when the profile
    asks), the module to call, Adam, the schedule and the loss weights of Eq. 4."""
    from ..models import LossWeights

    cfg = ctx.cfg
    seed_everything(derive_seed(ctx.seed, -1, "init"))
    raw = build_model(**ctx.network, hand_model=ctx.hand_model)
    if cfg["init_mean_hand"]:
        init_mean_hand(raw)
    if cfg["imagenet_weights"] and not resuming:  # the paper's initialisation of ResNet-50
        load_imagenet_weights(raw, cfg["imagenet_weights"])
    ctx.network = raw.config.to_dict()  # every field, defaults included, for the checkpoints
    if ctx.sync_bn:  # same parameter and buffer names: the checkpoints stay plain
        raw = distributed.convert_sync_bn(raw, ctx.dev)
    ctx.raw_model = raw
    ctx.counts = parameter_count(raw)
    ctx.amp = cfg["amp"] if ctx.dev.type == "cuda" else "none"
    ctx.net = prepare_model(raw, ctx.dev, ctx.amp, cfg["channels_last"], cfg["compile"])
    ctx.model = distributed.wrap(ctx.net, ctx.world, ctx.dev)
    ctx.optimizer = make_optimizer(raw, cfg["optimizer"])
    ctx.scheduler = make_scheduler(ctx.optimizer, cfg["lr_step"], len(ctx.loader),
                                   cfg["warmup_steps"])
    ctx.weights = LossWeights(**cfg["loss_weights"])


def _restore(ctx: RunContext) -> None:
    """Load the last checkpoint: weights, optimiser, schedule, random state, step, history."""
    rec = ckpt.load_weights(ctx.raw_model, ctx.out, "last")
    state = ckpt.load_state(rec["state"])
    if state.get("fingerprint") != ctx.fp:
        raise RunConfigMismatchError(f"{rec['state']} belongs to another configuration")
    ctx.optimizer.load_state_dict(state["optimizer"])
    ctx.scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    ctx.start_epoch, ctx.step = int(state["epoch"]), int(state["step"])
    ctx.history, ctx.best = list(state["history"]), state.get("best")
    ctx.log(f"[train] resuming {ctx.out} after epoch {ctx.start_epoch} (step {ctx.step})")


def _log_start(ctx: RunContext) -> None:
    """One line: dataset, profile, seed, device, network, samples, batch, epochs."""
    net = ctx.network
    text = (f"{net['attention']}, S={int(ctx.cfg['input_size'])}, C={net['C']}, "
            f"{net['backbone']['kind']} backbone, {ctx.counts['total']:,} parameters")
    ctx.log(f"[train] {ctx.config['dataset']} / {ctx.prof.get('name')} profile / seed "
            f"{ctx.seed} on {device_name(ctx.dev)} "
            f"({'bf16 autocast' if ctx.amp == 'bf16' else 'fp32'}): {text}; "
            f"{len(ctx.train_rows)} train / {len(ctx.val_rows)} val samples, batch "
            f"{int(ctx.cfg['batch_size'])}, {ctx.epochs} epochs")
    if ctx.world.parallel:
        par = ctx.parallel_record
        ctx.log(f"[train] data-parallel over {par['world_size']} processes: global batch "
                f"{par['global_batch']} = {par['world_size']} x {par['per_rank_batch']} per "
                f"process; BatchNorm statistics {par['batchnorm']}")


def _train_step(ctx: RunContext, batch: dict, epoch: int, b: int, each_step: bool) -> dict:
    """One optimiser step on a batch; returns the loss terms of Eq. 4 (detached)."""
    cfg = ctx.cfg
    batch = to_device(batch, ctx.dev, cfg["channels_last"])
    with autocast(ctx.dev, ctx.amp):
        pred = ctx.model(batch["image"])
    pred = {k: v.float() for k, v in pred.items()}
    terms = ctx.raw_model.compute_loss(pred, batch, ctx.weights)
    # stop at the first non-finite loss, before it reaches the weights
    if each_step and not torch.isfinite(terms["total"]):
        raise diverged(float(terms["total"].detach()), epoch + 1, cfg["optimizer"]["lr"],
                       ctx.source.root, ctx.step + 1, b + 1)
    ctx.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    if cfg["grad_clip"] > 0:
        torch.nn.utils.clip_grad_norm_(ctx.raw_model.parameters(), cfg["grad_clip"])
    ctx.optimizer.step()
    ctx.scheduler.step()
    ctx.step += 1
    return {k: v.detach() for k, v in terms.items()}


def _report_step(ctx: RunContext, bar, terms: dict, epoch: int, b: int) -> None:
    """The step's loss to the progress bar, TensorBoard and the callback (read only when one
    of them is listening: reading it waits for a GPU step to finish)."""
    if ctx.callback is None and bar.disable is not False and not ctx.tb.active:
        return
    loss_now = float(terms["total"])
    if not bar.disable:
        bar.set_postfix(loss=f"{loss_now:.4g}")
    ctx.tb.scalars({"loss": loss_now}, ctx.step, "train_step/")
    if ctx.callback is not None:
        ctx.callback({"kind": "step", "epoch": epoch + 1, "batch": b, "step": ctx.step,
                      "loss": loss_now})


def _train_epoch(ctx: RunContext, epoch: int) -> Dict[str, Any]:
    """One pass over the epoch's permutation; returns the epoch's record (mean losses of Eq. 4
    over its samples, lr, samples, seconds)."""
    seed_epoch(ctx.seed, epoch)  # the model's own randomness (drop path), if any
    ctx.sampler.set_epoch(epoch)
    lr = ctx.optimizer.param_groups[0]["lr"]
    sums = torch.zeros(len(LOSS_TERMS) + 1, dtype=torch.float64, device=ctx.dev)
    seen, t0 = 0, time.time()
    each_step = check_every_step(ctx.dev)
    bar = progress(ctx.loader, desc=f"epoch {epoch + 1}/{ctx.epochs}", total=len(ctx.loader),
                   leave=False)
    for b, batch in enumerate(bar):
        distributed.maybe_inject_fault(ctx.world, ctx.step + 1)
        terms = _train_step(ctx, batch, epoch, b, each_step)
        n = batch["image"].shape[0]
        seen += n
        sums += torch.stack([terms["total"]] + [terms[t] for t in LOSS_TERMS]).double() * n
        _report_step(ctx, bar, terms, epoch, b)
    bar.close()
    # the epoch's means over every rank's samples (one all-reduce per epoch)
    totals = distributed.all_sum(torch.cat([sums, sums.new_tensor([seen])]), ctx.world)
    sums, seen = totals[:-1], int(totals[-1])
    means = (sums / max(seen, 1)).tolist()
    seconds = time.time() - t0
    rec: Dict[str, Any] = {"epoch": epoch + 1, "step": ctx.step, "lr": lr, "loss": means[0]}
    rec.update({f"loss_{t}": m for t, m in zip(LOSS_TERMS, means[1:])})
    rec.update({"train_samples": seen, "seconds": round(seconds, 3),
                "samples_per_second": round(seen / max(seconds, 1e-9), 2)})
    return rec


def _end_epoch(ctx: RunContext, rec: Dict[str, Any]) -> None:
    """Validate, checkpoint (weights, optimiser, schedule, random state, history), log."""
    epoch = rec["epoch"]
    # before validating: diverged weights would fail there with a message about NaN outputs
    if not math.isfinite(rec["loss"]):
        raise diverged(rec["loss"], epoch, ctx.cfg["optimizer"]["lr"], ctx.source.root)
    if not ctx.world.is_main:  # rank 0 validates and writes; the others go on
        ctx.history.append(rec)
        if ctx.callback is not None:
            ctx.callback({"kind": "epoch", **rec})
        return
    if ctx.val_loader is not None:
        rec.update(validate(ctx.net, ctx.raw_model, ctx.val_loader, ctx.dev, ctx.amp,
                            ctx.weights))
    ctx.history.append(rec)
    is_best = "val_pa_mpjpe" in rec and (ctx.best is None
                                         or rec["val_pa_mpjpe"] < ctx.best["val_pa_mpjpe"])
    if is_best:
        ctx.best = dict(rec)
    state = {"epoch": epoch, "step": ctx.step, "optimizer": ctx.optimizer.state_dict(),
             "scheduler": ctx.scheduler.state_dict(), "rng": _rng_state(),
             "history": ctx.history, "best": ctx.best, "fingerprint": ctx.fp}
    ckpt.write_checkpoint(ctx.out, ctx.raw_model,
                          dict(ctx.info_base, metrics=rec, provenance=provenance(ctx.dev)),
                          epoch, state=state, best=is_best)
    write_log(ctx.out, ctx.history)
    ctx.tb.scalars({k: v for k, v in rec.items() if k not in ("epoch", "step")}, ctx.step,
                   "epoch/")
    val = (f", val PA-MPJPE {rec['val_pa_mpjpe']:.2f} mm" if "val_pa_mpjpe" in rec else "")
    ctx.log(f"[train] epoch {epoch}/{ctx.epochs}: loss {rec['loss']:.4g}{val} "
            f"({rec['seconds']:.1f} s, {rec['samples_per_second']:.0f} samples/s, "
            f"lr {rec['lr']:.3g})")
    if ctx.callback is not None:
        ctx.callback({"kind": "epoch", **rec})


def _finish(ctx: RunContext) -> RunSummary:
    """Mark the run complete in ``run.json`` with its summary; returns the summary."""
    secs = [r["seconds"] for r in ctx.history]
    summary = RunSummary({
        "run": str(ctx.out), "status": "complete", "reused": False,
        "dataset": ctx.config["dataset"], "data": ctx.source.kind,
        "data_root": str(ctx.source.root), "profile": ctx.prof.get("name"),
        "attention": ctx.config["attention"], "seed": ctx.seed, "epochs": len(ctx.history),
        "final": ctx.history[-1] if ctx.history else None, "best": ctx.best,
        "seconds": round(float(sum(secs)), 3),
        "seconds_per_epoch": round(float(np.mean(secs)), 3) if secs else None,
        "parameters": ctx.counts, "device": device_name(ctx.dev), "network": ctx.network,
        "hand_model": ctx.hand_record, "fingerprint": ctx.fp,
    })
    if ctx.world.parallel:
        summary["parallel"] = ctx.parallel_record
    if not ctx.world.is_main:
        return summary
    ctx.run_record.update(status="complete", summary=dict(summary))
    write_json_atomic(ctx.out / RUN_FILE, ctx.run_record)
    ctx.log(f"[train] done: {ctx.out}")
    return summary
