"""The loop that writes a synthetic dataset: folder checks, static files, work units (resumable),
aggregate files and ``synth_info.json``. Each style is a :class:`StyleWriter`."""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from handssca.utils import atomic_path, progress

from .common import (GENERATOR, GENERATOR_VERSION, INFO_FILE, PARTIAL_DIR, FileWriter, Manifest, SynthResult, Timer,
                     Unit, json_compact, load_record, occlusion_summary, prepare_folder, read_info, save_record,
                     write_info)
from .scene import HandPoser


class StyleWriter:
    """One dataset style. Subclasses set ``style`` and implement the methods below.

    Args:
        out: the dataset folder. n: the number of samples (the style says what a sample is).
        seed: the dataset's seed. poser: the hand model. timer: stage timings.
    """

    style = ""

    def __init__(self, out: Path, n: int, seed: int, poser: HandPoser, timer: Timer, **options):
        self.out = Path(out)
        self.n = int(n)
        self.seed = int(seed)
        self.poser = poser
        self.timer = timer
        self.files = FileWriter(self.out, timer)

    def options(self) -> dict:
        """The style's options that change the dataset (part of its identity)."""
        return {}

    def units(self) -> list:
        """The work units, in a fixed order."""
        raise NotImplementedError

    def write_static(self) -> None:
        """Files that do not depend on any unit (calibration, object models)."""

    def run(self, unit: Unit) -> dict:
        """Render and write one unit; return its record: {"samples": {image path: occlusion
        record}, "renders": int, "images": int, ...}. Bulky parts go under "annotation"."""
        raise NotImplementedError

    def finish(self, records: list, load: Callable[[int], dict]) -> None:
        """Aggregate files, from the records (``load(i)`` re-reads unit i's full record)."""

    def counts(self, records: list) -> dict:
        """What was written, for ``synth_info.json``'s "counts"."""
        return {"units": len(records)}


def write_json_lists(paths: dict, records, manifest: Optional[Manifest] = None) -> None:
    """Write several JSON lists at once, item by item (compact), atomically, without holding them
    in memory: list ``key`` of ``paths`` gets ``record[key]`` of every record, in order. Each
    path is listed in ``manifest`` (the folder's list of generated files) first."""
    with contextlib.ExitStack() as stack:
        handles = {}
        for key, path in paths.items():
            if manifest is not None:
                manifest.claim(Path(path).relative_to(manifest.root).as_posix())
            tmp = stack.enter_context(atomic_path(path))
            handles[key] = stack.enter_context(open(tmp, "w"))
            handles[key].write("[")
        for k, record in enumerate(records):
            for key, fh in handles.items():
                fh.write(("," if k else "") + json_compact(record[key]))
        for fh in handles.values():
            fh.write("]")
            fh.close()  # before the rename done by atomic_path


def _writer_class(style: str):
    if style == "freihand":
        from .freihand import FreiHANDWriter
        return FreiHANDWriter
    if style == "ho3d":
        from .ho3d import HO3DWriter
        return HO3DWriter
    if style == "dexycb":
        from .dexycb import DexYCBWriter
        return DexYCBWriter
    raise ValueError(f"synth: style must be one of ('freihand', 'ho3d', 'dexycb'), got {style!r}")


def generate(style: str, out, n: int, seed: int = 0, *, version: str = "v2", n_eval: Optional[int] = None,
             frames_per_sequence: Optional[int] = None, toolkit_layout: bool = False, overwrite: bool = False,
             hand: Optional[str] = None, show_progress: Optional[bool] = None) -> SynthResult:
    """Render a synthetic dataset in the on-disk format of FreiHAND, HO3D or DexYCB.

    Args:
        style: "freihand", "ho3d" or "dexycb".
        out: the folder (created; must be new, empty, or hold this same dataset, which is then
            resumed; see ``overwrite``).
        n: FreiHAND: training samples (each written in 4 versions); HO3D: frames (train and
            evaluation together); DexYCB: colour images (all cameras, sequences and frames).
        seed: the dataset's seed; the same arguments give the same bytes.
        version: HO3D only, "v2" (PNG frames) or "v3" (JPEG frames).
        n_eval: FreiHAND only, evaluation samples (default: n x 3960 / 32560, at least 1).
        frames_per_sequence: HO3D only, the mean sequence length (default 50; small datasets
            use fewer so that they still hold several training sequences).
        toolkit_layout: DexYCB only: write the layout the official toolkit reads as it is (10
            subjects x 100 sequences, 8 cameras; n a multiple of 8, at least 8000), instead of the
            compact one (:mod:`handssca.data.synth.dexycb`).
        overwrite: replace a synthetic dataset of other arguments found in ``out``: only the
            files its generation wrote (``synth_files.txt``) are deleted, and a folder holding
            any other file is refused (a folder that is not a synthetic dataset is never
            cleared).
        hand: None (the real MANO when installed, else the procedural hand), "mano" or "procedural".
        show_progress: a progress bar (default: when someone watches, ``handssca.utils.progress``).

    Returns:
        a :class:`~handssca.data.synth.common.SynthResult`.
    """
    t_start = time.perf_counter()
    cls = _writer_class(style)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"synth: n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"synth: seed must be a non-negative integer, got {seed!r}")
    if toolkit_layout and style != "dexycb":
        raise ValueError(f"synth: toolkit_layout applies to style 'dexycb' only, got style {style!r}")
    out = Path(out).expanduser()
    timer = Timer()
    poser = HandPoser(kind=hand)
    writer = cls(out, int(n), int(seed), poser, timer, version=version, n_eval=n_eval,
                 frames_per_sequence=frames_per_sequence, toolkit_layout=toolkit_layout)
    identity = {
        "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "style": style, "seed": int(seed),
        "n": int(n), "options": writer.options(),
        "hand_model": {"kind": poser.kind, "source": Path(poser.source).name},
    }
    units = writer.units()
    if prepare_folder(out, identity, overwrite):
        return SynthResult(out=out, style=style, seed=int(seed), n=int(n), info=read_info(out), units=len(units),
                           seconds=time.perf_counter() - t_start)
    out.mkdir(parents=True, exist_ok=True)
    write_info(out, {**identity, "complete": False})
    writer.write_static()
    records, generated, renders, images = [], 0, 0, 0
    kwargs = {} if show_progress is None else {"disable": not show_progress}
    bar = progress(total=len(units), desc=f"synth {style}", unit="sample", **kwargs)
    try:
        for idx, unit in enumerate(units):
            rec = load_record(out, idx, unit.key)
            if rec is None:
                rec = writer.run(unit)
                rec["key"] = unit.key
                save_record(out, idx, rec)
                generated += 1
                renders += int(rec.get("renders", 0))
                images += int(rec.get("images", 0))
            rec.pop("annotation", None)  # re-read from disk by finish() when needed
            records.append(rec)
            bar.update(1)
    finally:
        bar.close()

    def load(i: int) -> dict:
        rec = load_record(out, i, units[i].key)
        if rec is None:  # pragma: no cover - removed while running
            raise FileNotFoundError(f"synth: the record of {units[i].key} in {out / PARTIAL_DIR} disappeared")
        return rec

    with timer("write"):
        writer.finish(records, load)
    samples = {}
    for rec in records:
        samples.update(rec.get("samples", {}))
    info = {**identity, "complete": True, "counts": writer.counts(records),
            "occlusion": {"definition": "1 - visible hand pixels / pixels of the hand rendered alone, per image",
                          **occlusion_summary(samples)},
            "samples": samples}
    writer.files.manifest.finish()
    write_info(out, info)
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    seconds = time.perf_counter() - t_start
    timings = {k: round(v, 4) for k, v in timer.totals.items()}
    timings["other"] = round(max(0.0, seconds - sum(timer.totals.values())), 4)
    return SynthResult(out=out, style=style, seed=int(seed), n=int(n), info=info, units=len(units),
                       generated=generated, renders=renders, images=images, seconds=seconds, timings=timings)


__all__ = ["generate", "StyleWriter", "write_json_lists", "INFO_FILE"]
