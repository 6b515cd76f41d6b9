"""The book runner behind ``make book``: papermill into a staging copy, then jupyter-book.

Steps (conventions of ``book.md``):

1. read ``_toc.yml`` and pick the chapters (all, or ``--chapters`` for a course subset);
2. copy the book's sources (``_config.yml``, ``_toc.yml``, ``book/``) into ``<out>/stage``;
3. execute each notebook with papermill into the stage, injecting ``profile`` (and any
   ``-p name value``), progress bars off; mark the injected-parameters cell hidden; fail on any
   error cell; in a student build, remove cells tagged ``solution``;
4. record provenance (commit, profile, parameters, device, package versions, durations) in
   ``<out>/stage/book/provenance.json`` and render it as the status page;
5. ``jupyter-book build`` the stage (``execute_notebooks: off``, warnings as errors) into
   ``<out>/html``;
6. scan the HTML for silent failures (``<Figure size``, ``HBox(``, tracebacks, papermill error
   cells) and print each chapter's time and the total.

``<out>/stage`` and ``<out>/html`` are replaced on every build; the runner marks them as its own
(:data:`MARKER`) and refuses, before running anything, an ``--out`` whose ``stage`` or ``html``
folder it did not make.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from handssca.utils import (NONINTERACTIVE_ENV, environment_info, git_commit, repo_root,
                            write_json_atomic, write_text_atomic)

PROFILES = ("smoke", "quick", "paper")

#: text that must never appear in the built HTML: a figure printed instead of drawn, a widget
#: printed as text, a traceback, a cell papermill marked as failed.
SILENT_FAILURES = {
    "a figure printed as text": re.compile(r"(<|&lt;)Figure size \d"),
    "a widget printed as text": re.compile(r"HBox\(|VBox\(|IntProgress\("),
    "a traceback": re.compile(r"Traceback \(most recent call last\)|class=\"[^\"]*traceback"),
    "a papermill error cell": re.compile(r"An Exception was encountered at|papermill-error-cell"),
}


#: the file the runner writes into each folder it makes and later deletes (``<out>/stage``,
#: ``<out>/html``): a folder without it is not the runner's and is never deleted or written into
MARKER = ".handssca-book"


class BookError(RuntimeError):
    """A chapter failed, the built book holds a silent failure, or ``--out`` holds a folder the
    runner would replace but did not make."""


def check_own_folder(folder: Path, trusted: bool = False) -> None:
    """Raise :class:`BookError` when ``folder`` exists without the runner's :data:`MARKER`.

    ``trusted``: the project's own default build folder (``_build``, ignored by git), where a
    folder without the marker was made by a runner from before the marker."""
    if folder.exists() and not trusted and not (folder / MARKER).is_file():
        raise BookError(f"{folder} exists and was not made by the book runner (it holds no "
                        f"{MARKER}); the runner replaces that folder, so it refuses to touch "
                        f"it: move it away, or give another --out")


def mark_own_folder(folder: Path) -> None:
    """Create ``folder`` (if needed) and write the runner's :data:`MARKER` into it."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / MARKER, "made by the book runner (python -m handssca book); "
                                       "it deletes and rebuilds this folder\n")


def replace_own_folder(folder: Path, trusted: bool = False) -> None:
    """Delete ``folder`` when it is the runner's own (:func:`check_own_folder`)."""
    check_own_folder(folder, trusted)
    if folder.exists():
        shutil.rmtree(folder)


def toc_files(toc: dict) -> List[str]:
    """Every file named in a jupyter-book ``_toc.yml`` (root first), in reading order."""
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("parts", []) or []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return out


def chapter_notebooks(root: Path, toc: dict) -> List[Path]:
    """The notebooks of the book (paths relative to the root) in reading order."""
    nbs = []
    for f in toc_files(toc):
        p = root / (f if f.endswith(".ipynb") else f + ".ipynb")
        if p.exists():
            nbs.append(p.relative_to(root))
    return nbs


def subset_toc(toc: dict, keep: List[str]) -> dict:
    """A copy of ``toc`` holding only the files whose name starts with one of ``keep``
    (e.g. ``["01", "02"]``) plus every non-notebook page; for course subsets."""
    def want(f: str) -> bool:
        name = Path(f).name
        return not f.startswith("notebooks/") or any(name.startswith(k) for k in keep)

    def filt(entries):
        res = []
        for e in entries or []:
            e = dict(e)
            if "sections" in e:
                e["sections"] = filt(e["sections"])
                if not e["sections"]:
                    e.pop("sections")
            if "file" in e and not want(e["file"]):
                continue
            res.append(e)
        return res

    new = dict(toc)
    if "parts" in new:
        parts = []
        for part in new["parts"]:
            part = dict(part)
            part["chapters"] = filt(part.get("chapters"))
            if part["chapters"]:
                parts.append(part)
        new["parts"] = parts
    if "chapters" in new:
        new["chapters"] = filt(new["chapters"])
    return new


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _postprocess(nb_path: Path, student: bool) -> List[str]:
    """Hide the injected-parameters cell, drop solutions in a student build; return the
    error messages of any failed cell."""
    nb = json.loads(nb_path.read_text())
    errors = []
    cells = []
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
        if student and "solution" in tags:
            continue
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                errors.append(f"{out.get('ename')}: {out.get('evalue')}")
        cells.append(cell)
    nb["cells"] = cells
    write_text_atomic(nb_path, json.dumps(nb, indent=1) + "\n")
    return errors


def _package_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    names = ["torch", "numpy", "scipy", "smplx", "trimesh", "pyrender", "matplotlib",
             "papermill", "jupyter-book", "mamba-ssm"]
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def render_status(prov: dict) -> str:
    """The status page (markdown) from the provenance record of a build."""
    lines = [
        "# Status of this build", "",
        "Every chapter of this book was executed by the book runner in the build that produced",
        "these pages. This page is generated from its provenance record.", "",
        f"- commit: `{prov['commit']}`",
        f"- profile: `{prov['profile']}`",
        f"- device: {prov['environment'].get('device', 'cpu')}"
        f" ({prov['environment'].get('cpu', '?')}, {prov['environment'].get('cpu_count')} cores,"
        f" {prov['environment'].get('torch_threads')} torch threads)",
        f"- built: {prov['environment'].get('time_utc')}",
        f"- total execution time: {prov['total_seconds']:.0f} s", "",
        "| chapter | status | time (s) | data | parameters |",
        "|---|---|---:|---|---|",
    ]
    for ch in prov["chapters"]:
        params = ", ".join(f"{k}={v}" for k, v in ch["parameters"].items())
        lines.append(f"| {ch['notebook']} | {ch['status']} | {ch['seconds']:.1f} | "
                     f"{ch.get('data', '-')} | `{params}` |")
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in prov["packages"].items()]
    return "\n".join(lines) + "\n"


def scan_html(html_dir: Path) -> List[str]:
    """Silent failures in the built HTML, as ``"<file>: <what>"`` strings (empty when clean)."""
    found = []
    for f in sorted(html_dir.rglob("*.html")):
        if "_static" in f.parts or "genindex" in f.name or f.name == "search.html":
            continue
        text = f.read_text(errors="replace")
        for what, pat in SILENT_FAILURES.items():
            if pat.search(text):
                found.append(f"{f.relative_to(html_dir)}: {what}")
    return found


def build(profile: str = "quick", chapters: Optional[List[str]] = None, out: Optional[Path] = None,
          parameters: Optional[dict] = None, student: bool = False, reuse: bool = False,
          keep_going: bool = False, execute: bool = True, log=print) -> Path:
    """Execute the chapters and build the HTML book. Returns the HTML folder.

    Raises :class:`BookError` when a chapter fails or the HTML holds a silent failure.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    root = repo_root()
    # the default build folder is the project's own; a folder given with --out may hold
    # anything, so its stage/ and html/ are replaced only when the runner's marker says it
    # made them (checked before any chapter runs, not after an hour of them)
    trusted = out is None
    out = Path(out) if out else root / "_build"
    stage, html = out / "stage", out / "html"
    for folder in (stage, html):
        check_own_folder(folder, trusted)
    t_start = time.perf_counter()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if chapters:
        toc = subset_toc(toc, chapters)
    # 1-2. stage the sources (book/ and config); notebooks are written by papermill below
    mark_own_folder(stage)  # everything under stage/ is the runner's (the copy, the executed notebooks)
    for name in ("_config.yml",):
        shutil.copy2(root / name, stage / name)
    write_text_atomic(stage / "_toc.yml", yaml.safe_dump(toc, sort_keys=False))
    if (stage / "book").exists():
        shutil.rmtree(stage / "book")
    shutil.copytree(root / "book", stage / "book")
    (stage / "notebooks").mkdir(exist_ok=True)
    for f in (stage / "notebooks").glob("*.ipynb"):  # chapters dropped from the toc
        if f.relative_to(stage) not in chapter_notebooks(root, toc):
            f.unlink()

    old = {}
    prov_path = stage / "book" / "provenance.json"
    old_prov = out / "provenance.json"
    if reuse and old_prov.exists():
        old = {c["notebook"]: c for c in json.loads(old_prov.read_text())["chapters"]}

    # 3. execute
    import papermill as pm

    env_backup = dict(os.environ)
    os.environ[NONINTERACTIVE_ENV] = "1"
    os.environ["HANDSSCA_HOME"] = str(root)
    os.environ["HANDSSCA_BUILD_DIR"] = str(out.resolve())
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    records, failures = [], []
    params = {"profile": profile, **(parameters or {})}
    try:
        for rel in chapter_notebooks(root, toc):
            src, dst = root / rel, stage / rel
            rec = {"notebook": str(rel), "parameters": params, "source_sha": _sha(src),
                   "status": "ok", "seconds": 0.0}
            prev = old.get(str(rel))
            if (not execute) or (reuse and prev and prev["status"] == "ok" and dst.exists()
                                 and prev["source_sha"] == rec["source_sha"]
                                 and prev["parameters"] == params):
                rec.update({k: prev[k] for k in ("seconds", "status")} if prev else {})
                rec["reused"] = True
                log(f"[book] {rel}: reused")
                records.append(rec)
                continue
            log(f"[book] {rel}: executing (profile {profile}) ...")
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                    cwd=str(src.parent), progress_bar=False, log_output=False)
            except Exception as exc:  # papermill raises PapermillExecutionError
                rec["status"] = "failed"
                rec["error"] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
            rec["seconds"] = round(time.perf_counter() - t0, 2)
            if dst.exists():
                errs = _postprocess(dst, student)
                if errs and rec["status"] == "ok":
                    rec["status"] = "failed"
                    rec["error"] = "; ".join(errs)
            meta = out / "results" / (rel.stem + ".meta.json")
            if meta.exists():
                rec["data"] = json.loads(meta.read_text()).get("data", "-")
            records.append(rec)
            log(f"[book] {rel}: {rec['status']} in {rec['seconds']:.1f} s")
            if rec["status"] != "ok":
                failures.append(f"{rel}: {rec.get('error', '')}")
                if not keep_going:
                    break
    finally:
        os.environ.clear()
        os.environ.update(env_backup)

    # 4. provenance and status page
    prov = {"commit": git_commit(root), "profile": profile, "student": student,
            "environment": environment_info(), "packages": _package_versions(),
            "chapters": records,
            "total_seconds": round(sum(r["seconds"] for r in records), 1)}
    write_json_atomic(prov_path, prov)
    write_json_atomic(old_prov, prov)
    write_text_atomic(stage / "book" / "status.md", render_status(prov))
    if failures:
        raise BookError("chapters failed:\n" + "\n".join(failures))

    # 5. jupyter-book
    log("[book] building HTML ...")
    t0 = time.perf_counter()
    jb_out = out / "jb"
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage),
           "--path-output", str(jb_out), "-W", "--keep-going", "--all", "-q"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "jupyter_book.cli.main"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BookError("jupyter-book build failed (warnings are errors):\n"
                        + res.stdout[-4000:] + res.stderr[-4000:])
    replace_own_folder(html, trusted)
    shutil.move(str(jb_out / "_build" / "html"), str(html))
    mark_own_folder(html)
    t_html = time.perf_counter() - t0

    # 6. silent failures and timings
    bad = scan_html(html)
    if bad:
        raise BookError("silent failures in the built book:\n" + "\n".join(bad))
    total = time.perf_counter() - t_start
    log("")
    log(f"{'chapter':<44} {'status':>8} {'seconds':>9}")
    for r in records:
        log(f"{r['notebook']:<44} {r['status']:>8} {r['seconds']:>9.1f}"
            + ("  (reused)" if r.get("reused") else ""))
    log(f"{'jupyter-book build':<44} {'':>8} {t_html:>9.1f}")
    log(f"{'total (profile ' + profile + ')':<44} {'':>8} {total:>9.1f}  = {total / 60:.1f} min")
    log(f"[book] HTML: {html / 'index.html'}")
    return html


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=PROFILES,
                        help="smoke (CI), quick (default: 2 CPU cores, synthetic data), paper (GPU)")
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapter number prefixes for a course subset, e.g. 01,02,04")
    parser.add_argument("--out", default=None, help="build folder (default _build)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="inject a chapter parameter (YAML value)")
    parser.add_argument("--student", action="store_true", help="remove cells tagged 'solution'")
    parser.add_argument("--reuse", action="store_true",
                        help="skip chapters whose source and parameters are unchanged since the last build")
    parser.add_argument("--keep-going", action="store_true", help="run every chapter even after a failure")
    parser.add_argument("--yes", action="store_true",
                        help="paper profile: build without asking, whatever the plan's hours")


def run(args) -> int:
    params = {k: yaml.safe_load(v) for k, v in args.parameter}
    chapters = [c.strip() for c in args.chapters.split(",")] if args.chapters else None
    # the paper profile's cost is printed, and above an hour confirmed, before anything runs
    # (imported here: the plan loads the engine and torch, which this module does not need)
    from handssca.engine.plan import confirm_book
    if not confirm_book(args.profile, args.yes, chapters):
        return 2
    try:
        build(args.profile, chapters, Path(args.out) if args.out else None, params,
              student=args.student, reuse=args.reuse, keep_going=args.keep_going)
    except BookError as exc:
        print(f"[book] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
