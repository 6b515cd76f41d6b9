"""``python -m handssca plan``: what a profile's book costs, known before it runs.

The book's training chapters (05-08, and 10-11, which reuse the ablation's networks) train one
network per (dataset, attention variant, seed) through :func:`~.trainer.train`, which reuses a
finished run of the same configuration. The plan lists, per chapter and dataset:

- I, the training images of one epoch (the dataset's training split,
  :data:`handssca.data.registry.SPLIT_SIZES`);
- E, the epochs (the profile's ``train`` section, :func:`~.profiles.training_config`);
- R, the runs the chapter asks for (variants x seeds), and R_new, those no earlier chapter
  trained;
- I x E x R_new, the training images processed, and the evaluation images (the test split once
  per run the chapter evaluates: every chapter re-evaluates its runs);
- hours = images / (throughput x GPUs x scaling efficiency) / 3600.

What each chapter trains is read from where the chapter reads it: the notebook's own literal
assignments (``attention``, ``seed``, ``variants``), the profile's ``chapters``
section (ablation datasets and seeds, the receptive-field variants) and the ablation tables'
variants (:data:`~.ablation.TABLE_VARIANTS`). Nothing here repeats a number of a profile.

Throughput is given (``--images-per-second``, per GPU) or measured on this device: whole
training steps of the profile's network (:func:`handssca.bench.gpu.training_throughput`) at each
crop size the plan trains at, warm-up steps excluded. GPUs scale it by an explicit efficiency
(linear, 1.0, by default: the runs are independent processes, one per GPU, not one run spread
over GPUs); the plan prints which figures were measured and which assumed.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..data.registry import SPLIT_SIZES, split_size
from ..utils import repo_root, write_text_atomic
from .ablation import TABLE_DATASET, TABLE_VARIANTS, ablation_table
from .profiles import Profile, resolve_profile, training_config

#: a plan above this many hours asks before ``make book`` builds it
CONFIRM_ABOVE_HOURS = 1.0
#: evaluation images per second over training images per second when only the training figure
#: is given: a forward pass without the backward (about twice the forward) and the step
EVAL_SPEEDUP_ASSUMED = 3.0
#: the per-GPU training throughput the book's how-to-run page assumes (no GPU has measured the
#: paper profile for this release): an assumption, printed as one
ASSUMED_IMAGES_PER_SECOND = 500.0
#: GPU counts the how-to-run page shows
PAGE_GPUS = (1, 8)


@dataclass
class Row:
    """One chapter's training on one dataset: I images per epoch, E epochs, R runs asked for
    (variants x seeds), R_new of them trained here (the others are reused)."""
    chapter: str
    dataset: str
    variants: List[str]
    seeds: List[int]
    input_size: int
    images_per_epoch: int
    epochs: int
    runs: int
    new_runs: int
    eval_images_per_run: int
    train_images: int = 0
    eval_images: int = 0
    hours: float = 0.0


@dataclass
class Throughput:
    """Images per second per GPU: ``train`` per crop size S, ``eval`` per S; ``source``
    "given" or "measured"; ``how``: one line per figure saying how it came about."""
    train: Dict[int, float]
    eval: Dict[int, float]
    source: str
    how: List[str] = field(default_factory=list)


# ------------------------------------------------------------------------- what chapters train
def notebook_literals(path: Path) -> Dict[str, object]:
    """The literal values assigned at the top level of a notebook's code cells, first
    assignment of each name (e.g. ``attention = "ssca"``, ``seed = 0``, ``variants = [...]``).

    Raises:
        FileNotFoundError: no such notebook (the plan reads the chapters of a repository).
    """
    if not path.is_file():
        raise FileNotFoundError(f"plan: {path} not found; the plan reads what each chapter "
                                f"trains from the notebooks of the repository")
    out: Dict[str, object] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # a cell with IPython magics holds no plain assignment we need
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:  # computed (e.g. from the profile): not a literal
                    continue
                out.setdefault(node.targets[0].id, value)
    return out


def _seeds(prof: Profile) -> List[int]:
    return [int(s) for s in prof.section("chapters", "ablation")["seeds"]]


def _one_run(nb: Path, prof: Profile) -> List[Tuple[str, List[str], List[int]]]:
    """Chapters 05-07: the dataset the chapter is named after (``NN_train_<dataset>``), the
    attention and seed of its parameters cell."""
    lit = notebook_literals(nb)
    return [(nb.stem.split("_train_", 1)[1], [str(lit["attention"])], [int(lit["seed"])])]


def _ablation(nb: Path, prof: Profile) -> List[Tuple[str, List[str], List[int]]]:
    """Chapter 08: each table's variants x the profile's seeds, for the profile's datasets."""
    return [(str(d), list(TABLE_VARIANTS[ablation_table(str(d))]), _seeds(prof))
            for d in prof.section("chapters", "ablation")["datasets"]]


def _erf(nb: Path, prof: Profile) -> List[Tuple[str, List[str], List[int]]]:
    """Chapter 10: Table 6's dataset, the profile's receptive-field variants x ablation seeds."""
    return [(TABLE_DATASET[6], [str(v) for v in prof.section("chapters", "erf")["variants"]],
             _seeds(prof))]


def _attention_maps(nb: Path, prof: Profile) -> List[Tuple[str, List[str], List[int]]]:
    """Chapter 11: Table 6's dataset, the notebook's variants x ablation seeds."""
    return [(TABLE_DATASET[6], [str(v) for v in notebook_literals(nb)["variants"]],
             _seeds(prof))]


#: the chapters that train, in book order, and how each one's runs are read
CHAPTERS: Tuple[Tuple[str, Callable], ...] = (
    ("05_train_freihand", _one_run), ("06_train_dexycb", _one_run),
    ("07_train_ho3d", _one_run), ("08_ablations", _ablation),
    ("10_receptive_fields", _erf), ("11_attention_maps", _attention_maps),
)


def _notebook_dir() -> Path:
    """The chapters beside this package (a source checkout), else in the project folder
    (``HANDSSCA_HOME`` may name a folder for runs and data that holds no notebooks)."""
    here = Path(__file__).resolve().parents[2] / "notebooks"
    return here if here.is_dir() else repo_root() / "notebooks"


def plan_rows(profile, notebooks: Optional[Path] = None,
              chapters: Optional[Sequence[str]] = None) -> List[Row]:
    """The plan's rows (no hours yet): per chapter and dataset, I, E, R and R_new; only the
    chapters whose name starts with one of ``chapters`` (the book's ``--chapters``) when given.

    A run (dataset, variant, seed) counts as new in the first chapter that asks for it; later
    chapters reuse it (:func:`~.trainer.train` reuses a finished run of the same configuration,
    when the chapters are given the same data folder)."""
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile)
    folder = Path(notebooks) if notebooks else _notebook_dir()
    seen = set()
    rows = []
    for chapter, runs_of in CHAPTERS:
        if chapters and not any(chapter.startswith(str(c)) for c in chapters):
            continue
        for dataset, variants, seeds in runs_of(folder / f"{chapter}.ipynb", prof):
            cfg = training_config(prof, dataset)
            keys = [(dataset, v, s) for v in variants for s in seeds]
            new = [k for k in keys if k not in seen]
            seen.update(keys)
            rows.append(Row(chapter=chapter, dataset=dataset, variants=variants, seeds=seeds,
                            input_size=int(cfg["input_size"]),
                            images_per_epoch=split_size(dataset, "train"),
                            epochs=int(cfg["epochs"]), runs=len(keys), new_runs=len(new),
                            eval_images_per_run=split_size(dataset, "test")))
    return rows


# ------------------------------------------------------------------------------ arithmetic
def cost(rows: Sequence[Row], throughput: Throughput, gpus: int = 1,
         efficiency: float = 1.0) -> dict:
    """Fill each row's images and hours and return the plan.

    train images = I x E x R_new; eval images = test split x R;
    hours = train / (train_ips(S) x N x eff) + eval / (eval_ips(S) x N x eff), over 3600.

    Raises:
        ValueError: ``gpus`` < 1 or ``efficiency`` outside (0, 1], or no throughput for a
            row's crop size.
    """
    if int(gpus) < 1 or not 0.0 < float(efficiency) <= 1.0:
        raise ValueError(f"plan: --gpus must be >= 1 and --scaling-efficiency in (0, 1], got "
                         f"{gpus} and {efficiency}")
    scale = int(gpus) * float(efficiency)
    for r in rows:
        if r.input_size not in throughput.train or r.input_size not in throughput.eval:
            raise ValueError(f"plan: no throughput for {r.input_size} x {r.input_size} crops "
                             f"({r.chapter}, {r.dataset}); have {sorted(throughput.train)}")
        r.train_images = r.images_per_epoch * r.epochs * r.new_runs
        r.eval_images = r.eval_images_per_run * r.runs
        r.hours = (r.train_images / (throughput.train[r.input_size] * scale)
                   + r.eval_images / (throughput.eval[r.input_size] * scale)) / 3600.0
    total = {"runs": sum(r.new_runs for r in rows),
             "train_images": sum(r.train_images for r in rows),
             "eval_images": sum(r.eval_images for r in rows),
             "hours": sum(r.hours for r in rows),
             # one run on one GPU (runs side by side, one per GPU)
             "longest_run_hours": max([r.images_per_epoch * r.epochs
                                       / (throughput.train[r.input_size] * efficiency) / 3600.0
                                       for r in rows if r.new_runs] or [0.0])}
    return {"rows": [asdict(r) for r in rows], "total": total, "gpus": int(gpus),
            "scaling_efficiency": float(efficiency),
            "throughput": {"train": throughput.train, "eval": throughput.eval,
                           "source": throughput.source, "how": throughput.how},
            "estimates": {d: list(v["estimate"]) for d, v in SPLIT_SIZES.items() if v["estimate"]},
            "sources": {d: v["source"] for d, v in SPLIT_SIZES.items()}}


def given_throughput(images_per_second: float, sizes: Sequence[int],
                     eval_images_per_second: Optional[float] = None) -> Throughput:
    """A throughput the user states: the same figure for every crop size; evaluation
    ``eval_images_per_second`` or :data:`EVAL_SPEEDUP_ASSUMED` x the training figure."""
    if not images_per_second > 0 or (eval_images_per_second is not None
                                     and not eval_images_per_second > 0):
        raise ValueError(f"plan: --images-per-second must be > 0, got {images_per_second} "
                         f"(evaluation: {eval_images_per_second})")
    ev = eval_images_per_second or EVAL_SPEEDUP_ASSUMED * images_per_second
    how = [f"training: {images_per_second:g} images/s, given (--images-per-second), "
           f"any crop size",
           f"evaluation: {ev:g} images/s, " + (
               "given (--eval-images-per-second)" if eval_images_per_second else
               f"assumed: {EVAL_SPEEDUP_ASSUMED:g} x training (forward pass only)")]
    return Throughput({int(s): float(images_per_second) for s in sizes},
                      {int(s): float(ev) for s in sizes}, "given", how)


def measured_throughput(profile, rows: Sequence[Row], device: Optional[str] = None,
                        batch: Optional[int] = None, steps: int = 3,
                        warmup: int = 2) -> Throughput:
    """Measure training (forward, Eq. 4's loss, backward, Adam step) and evaluation (forward
    under ``no_grad``) images per second of the profile's SSCA network on ``device``, at each
    crop size of ``rows``, with the profile's autocast and memory format on a GPU.

    Batch: ``batch``, else the profile's on a GPU (halved until it fits) and 2 on a CPU (a
    CPU step of the paper's network at batch 64 takes minutes). The other attention variants
    are counted at the SSCA network's speed.
    """
    import torch  # deferred: the plan with a given throughput needs no torch

    from ..bench.gpu import synthetic_batch, training_throughput
    from ..models import build_model
    from .factory import network_config
    from .runtime import pick_device

    prof = profile if isinstance(profile, Profile) else resolve_profile(profile)
    dev = pick_device(device)
    train, ev, how = {}, {}, []
    for size, dataset in sorted({(r.input_size, r.dataset) for r in rows}):
        if size in train:
            continue
        cfg = training_config(prof, dataset)
        amp = cfg["amp"] if dev.type == "cuda" else "none"
        b = int(batch or (cfg["batch_size"] if dev.type == "cuda" else 2))
        while True:
            torch.manual_seed(0)
            model = build_model(**network_config(cfg, "ssca", size))
            try:
                res = training_throughput(model, b, size, dev, amp, cfg["channels_last"] and
                                          dev.type == "cuda", steps=steps, warmup=warmup)
                break
            except torch.cuda.OutOfMemoryError:  # a batch the device holds
                if b == 1:
                    raise
                b //= 2
                del model
                torch.cuda.empty_cache()
        train[size] = res["images_per_s"]
        ev[size] = _eval_throughput(model, synthetic_batch(b, size, dev)["image"], dev, amp,
                                    steps, warmup)
        how.append(f"training at {size} x {size}: {train[size]:.1f} images/s, measured on "
                   f"{_device_name(dev)}")
        how.append(f"  (SSCA network, batch {b}, {'bf16' if amp == 'bf16' else 'fp32'}, "
                   f"{steps} timed steps after "
                   f"{warmup} warm-up)")
        how.append(f"evaluation at {size} x {size}: {ev[size]:.1f} images/s, measured the "
                   f"same way (forward only)")
    return Throughput(train, ev, "measured", how)


def _eval_throughput(model, images, dev, amp: str, steps: int, warmup: int) -> float:
    """Images per second of forward passes in eval mode under ``no_grad``."""
    import time

    import torch

    from ..bench import sync
    from .runtime import autocast

    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            with autocast(dev, amp):
                model(images)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            with autocast(dev, amp):
                model(images)
        sync(dev)
    return images.shape[0] * steps / (time.perf_counter() - t0)


def _device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"the CPU ({torch.get_num_threads()} threads)"


def make_plan(profile, images_per_second: Optional[float] = None, gpus: int = 1,
              efficiency: float = 1.0, eval_images_per_second: Optional[float] = None,
              device: Optional[str] = None, batch: Optional[int] = None,
              notebooks: Optional[Path] = None,
              chapters: Optional[Sequence[str]] = None) -> dict:
    """The plan of ``profile``: :func:`plan_rows`, a given or measured throughput, :func:`cost`."""
    prof = profile if isinstance(profile, Profile) else resolve_profile(profile)
    rows = plan_rows(prof, notebooks, chapters)
    if not rows:  # no training chapter: nothing to measure
        tp = Throughput({}, {}, "none", ["no chapter of this selection trains a network"])
    elif images_per_second is not None:
        tp = given_throughput(images_per_second, sorted({r.input_size for r in rows}),
                              eval_images_per_second)
    else:
        tp = measured_throughput(prof, rows, device, batch)
    plan = cost(rows, tp, gpus, efficiency)
    plan["profile"] = prof.get("name")
    plan["description"] = prof.get("description", "")
    return plan


# ------------------------------------------------------------------------------ the report
def render(plan: dict) -> str:
    """The plan as text, lines of at most 79 characters (the book's column)."""
    g, eff = plan["gpus"], plan["scaling_efficiency"]
    lines = [f"Plan of the {plan['profile']} profile ({plan['description']})",
             "throughput per GPU:"] + [f"  {h}" for h in plan["throughput"]["how"]]
    lines.append(f"GPUs: {g}, scaling efficiency {eff:g} (" + (
        "one GPU" if g == 1 else
        "assumed: linear" if eff == 1.0 else "given") + ")")
    # the chapter's number and the dataset name a row (the chapters: notebooks/NN_*.ipynb)
    lines += ["", f"{'chapter':<17}{'img/epoch':>10}{'epochs':>7}{'runs':>5}{'new':>4}"
                  f"{'train img':>13}{'eval img':>11}{'hours':>10}"]
    for r in plan["rows"]:
        lines.append(f"{r['chapter'][:2] + ' ' + r['dataset']:<17}{r['images_per_epoch']:>10,}"
                     f"{r['epochs']:>7}{r['runs']:>5}{r['new_runs']:>4}"
                     f"{r['train_images']:>13,}{r['eval_images']:>11,}{_hours(r['hours']):>10}")
    t = plan["total"]
    lines.append(f"{'total':<17}{'':>10}{'':>7}{'':>5}{t['runs']:>4}"
                 f"{t['train_images']:>13,}{t['eval_images']:>11,}{_hours(t['hours']):>10}")
    lines += ["", f"In all: {t['runs']} networks, {t['hours']:.1f} hours "
                  f"({t['hours'] / 24:.1f} days) on {g} GPU{'s' if g > 1 else ''}.",
              "runs: variants x seeds a chapter asks for; new: those no earlier",
              "chapter trained (a finished run of the same configuration is reused)."]
    if g > 1:
        # two ways to use N GPUs, the same hours under linear scaling: runs side by side, one
        # per GPU (then the longest run bounds the wall time), or each run data-parallel on
        # all N through torchrun (README, "Training on several GPUs")
        lines += [f"One run per GPU: the longest, {t['longest_run_hours']:.1f} hours on one GPU, "
                  f"bounds", "the wall time from below; under torchrun each run is spread over "
                  "the GPUs."]
    for d, which in plan["estimates"].items():
        lines.append(f"{d} {', '.join(which)} images: an estimate "
                     f"(handssca.data.registry.SPLIT_SIZES).")
    return "\n".join(lines) + "\n"


def _hours(h: float) -> str:
    """Hours for the table: two decimals below 100, one with separators above."""
    return f"{h:.2f}" if h < 100 else f"{h:,.1f}"


# ------------------------------------------------------------------------------ confirmation
def needs_confirmation(plan: dict, limit_hours: float = CONFIRM_ABOVE_HOURS) -> bool:
    """True when the plan's total exceeds ``limit_hours``."""
    return plan["total"]["hours"] > limit_hours


def confirm(plan: dict, yes: bool, interactive: bool, ask: Callable[[str], str] = input,
            out=print) -> Tuple[bool, Optional[str]]:
    """Whether to go ahead with a plan: print it, and above an hour ask (or refuse).

    Args:
        yes: the ``--yes`` flag: go ahead without asking.
        interactive: stdin is a terminal (someone can answer).
        ask: reads the answer (``input``).

    Returns:
        (go ahead, the one-line reason when not).
    """
    out(render(plan))
    if yes or not needs_confirmation(plan):
        return True, None
    hours = plan["total"]["hours"]
    if not interactive:
        return False, (f"the {plan['profile']} profile's plan takes {hours:.1f} hours (over "
                       f"{CONFIRM_ABOVE_HOURS:g}); stdin is not a terminal, so nobody can "
                       f"confirm: pass --yes (make book PROFILE={plan['profile']} YES=1)")
    try:
        answer = ask(f"Build it ({hours:.1f} hours)? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True, None
    return False, "not confirmed; nothing was run"


def confirm_book(profile: str, yes: bool, chapters: Optional[Sequence[str]] = None,
                 out=print, plan: Optional[dict] = None) -> bool:
    """The book runner's question before a ``paper`` build (other profiles: True at once,
    nothing printed or measured).

    The plan (``plan``, else :func:`make_plan` of the chosen ``chapters``) measures the
    throughput on this device, on one GPU: the book trains its runs one after the other in one
    process."""
    if profile != "paper":
        return True
    plan = plan or make_plan(profile, chapters=chapters)
    go, why = confirm(plan, yes, sys.stdin.isatty(), out=out)
    if not go:
        print(f"[book] {why}", file=sys.stderr)
    return go


def write_page_plans(folder: Path, profile: str = "paper",
                     images_per_second: float = ASSUMED_IMAGES_PER_SECOND) -> List[Path]:
    """Write the plan text for each of :data:`PAGE_GPUS` into ``folder`` as
    ``plan-<profile>-<N>gpu.txt`` (the how-to-run page includes them): computed in the build
    that renders the page, with the assumed throughput stated in the text."""
    paths = []
    for n in PAGE_GPUS:
        path = Path(folder) / f"plan-{profile}-{n}gpu.txt"
        write_text_atomic(path, render(make_plan(profile, images_per_second, gpus=n)))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options."""
    p.add_argument("--profile", default="paper", help="profile name or YAML file (default paper)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs, each training its own runs (1)")
    p.add_argument("--images-per-second", type=float, default=None,
                   help="training images/s per GPU (default: measured on this device)")
    p.add_argument("--eval-images-per-second", type=float, default=None,
                   help=f"evaluation images/s per GPU (default: measured, or "
                        f"{EVAL_SPEEDUP_ASSUMED:g} x --images-per-second)")
    p.add_argument("--scaling-efficiency", type=float, default=1.0,
                   help="throughput of N GPUs over N x one GPU's (default 1: linear)")
    p.add_argument("--device", default=None, help="where to measure (default: CUDA if any)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of the measurement (default: the profile's on a GPU, 2 on a CPU)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args) -> int:
    """Print the plan (text or JSON); a bad option value is one line on stderr, status 2."""
    try:
        plan = make_plan(args.profile, args.images_per_second, args.gpus,
                         args.scaling_efficiency, args.eval_images_per_second, args.device,
                         args.batch)
    except ValueError as exc:  # the message names the option and what it must be
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(plan, indent=1) if args.json else render(plan).rstrip("\n"))
    return 0
