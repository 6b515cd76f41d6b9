"""The book runner behind ``make book``: papermill into a staging copy, then jupyter-book.

Steps (conventions of ``book.md``):

1. read ``_toc.yml`` and pick the chapters (all, or ``--chapters`` for a course subset);
2. copy the book's sources (``_config.yml``, ``_toc.yml``, ``book/``) into ``<out>/stage``,
   fill in the publisher's repository setting (:func:`book_config`) and pack the committed
   source (``git archive HEAD``, :func:`source_archive`) for the HTML to ship;
3. execute each notebook with papermill into the stage, injecting ``profile`` (and any
   ``-p name value``), progress bars off; mark the injected-parameters cell hidden; fail on any
   error cell; in a student build, remove cells tagged ``solution``;
4. record provenance (commit, profile, parameters, data, device, package versions, durations,
   the shipped archives) in ``<out>/stage/book/provenance.json``, render it as the status page,
   and pack the executed chapters for the HTML to ship;
5. ``jupyter-book build`` the stage (``execute_notebooks: off``, warnings as errors) into
   ``<out>/html``;
6. scan the HTML for silent failures (``<Figure size``, ``HBox(``, tracebacks, papermill error
   cells) and print each chapter's time and the total.

Every page of the built book ends with a box (``book/_ext/downloads.py``) linking to
:data:`SOURCE_ARCHIVE` (the commit the book was built from) and :data:`NOTEBOOKS_ARCHIVE` (its
executed chapters), which the HTML folder holds, with the two commands that install and run it.
A build from a work tree with uncommitted changes is not refused (building while editing is the
common case): the archive holds the commit without those changes, and provenance, the status
page and the box say so. Outside a git checkout there is no archive and the box says that.

``<out>/stage`` and ``<out>/html`` are replaced on every build; the runner marks them as its own
(:data:`MARKER`) and refuses, before running anything, an ``--out`` whose ``stage`` or ``html``
folder it did not make.
"""
from __future__ import annotations

import argparse
import contextlib
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from handssca.utils import (NONINTERACTIVE_ENV, environment_info, git_commit, repo_root,
                            write_json_atomic, write_text_atomic)

PROFILES = ("smoke", "quick", "paper")

#: the files the HTML folder ships (its root): the committed source the book was built from and
#: the executed chapter notebooks
SOURCE_ARCHIVE = "handssca-source.tar.gz"
NOTEBOOKS_ARCHIVE = "handssca-notebooks.zip"
#: the stage folder Sphinx copies into the HTML root (``html_extra_path``)
DOWNLOADS = "_downloads"
#: the publisher's repository URL, when set, overrides ``repository: url:`` of ``_config.yml``
REPOSITORY_ENV = "HANDSSCA_BOOK_REPOSITORY"
#: the launch services a filled-in repository URL turns on (JupyterHub needs a hub of the
#: publisher's own: set ``launch_buttons: jupyterhub_url:`` in ``_config.yml`` for it)
LAUNCH_SERVICES = {"binderhub_url": "https://mybinder.org",
                   "colab_url": "https://colab.research.google.com"}
#: what the status page's data column says of a chapter whose data roots are all empty
SYNTHETIC = "synthetic (generated)"
#: ... and of a chapter without a data root parameter
NO_DATA = "none (reads no dataset)"

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
        f"- total execution time: {prov['total_seconds']:.0f} s",
        f"- source: {_source_line(prov.get('shipped') or {})}", "",
        "| chapter | status | time (s) | data | parameters |",
        "|---|---|---:|---|---|",
    ]
    for ch in prov["chapters"]:
        params = ", ".join(f"{k}={v}" for k, v in ch["parameters"].items())
        lines.append(f"| {ch['notebook']} | {ch['status']} | {ch['seconds']:.1f} | "
                     f"{ch.get('data') or 'not recorded'} | `{params}` |")
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in prov["packages"].items()]
    return "\n".join(lines) + "\n"


def _source_line(shipped: dict) -> str:
    """The status page's line on the shipped source archive."""
    if not shipped.get("file"):
        return "not a git checkout: this build ships no source archive"
    # raw HTML: the archive is no source file of the book, so a markdown link to it would be
    # a missing cross-reference (a warning, hence an error); the status page is book/status
    line = (f"<a href=\"../{shipped['file']}\">{shipped['file']}</a> holds commit "
            f"`{shipped['commit'][:12]}`")
    if shipped.get("dirty"):
        line += (" **without the uncommitted changes the work tree had when this book was "
                 "built**")
    return line


def scan_html(html_dir: Path) -> List[str]:
    """Silent failures in the built HTML, as ``"<file>: <what>"`` strings (empty when clean)."""
    found = []
    for f in sorted(html_dir.rglob("*.html")):
        if "_static" in f.parts or "genindex" in f.name or f.name == "search.html":
            continue
        # the API reference and its highlighted source show the package's code and docstrings
        # (this module's patterns among them), never executed output
        rel = f.relative_to(html_dir).parts
        if rel[0] == "_modules" or rel[:2] == ("book", "api"):
            continue
        text = f.read_text(errors="replace")
        for what, pat in SILENT_FAILURES.items():
            if pat.search(text):
                found.append(f"{f.relative_to(html_dir)}: {what}")
    return found


def pick_chapters(root: Path, chapters: Optional[List[str]] = None) -> dict:
    """Step 1: the book's ``_toc.yml``, cut to the ``chapters`` prefixes when given."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return subset_toc(toc, chapters) if chapters else toc


def book_config(config: dict, repository: Optional[str] = None,
                downloads: Optional[dict] = None) -> dict:
    """The ``_config.yml`` the stage is built with: ``config`` with the publisher's repository
    URL (``repository``, else ``repository: url:`` of ``config``) turning the repository button
    and the Binder and Colab launch buttons on (empty: all off), and the shipped files
    (``downloads``, from :func:`source_archive`) handed to the page box."""
    config = json.loads(json.dumps(config))  # a deep copy of plain YAML data
    repo = config.setdefault("repository", {})
    url = (repository if repository is not None else repo.get("url")) or ""
    repo["url"] = url.strip()
    on = bool(repo["url"])
    config.setdefault("html", {})["use_repository_button"] = on
    launch = config.setdefault("launch_buttons", {})
    for key, service in LAUNCH_SERVICES.items():
        launch[key] = service if on else ""
    if not on:
        launch["jupyterhub_url"] = ""
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["html_extra_path"] = [DOWNLOADS]
    sphinx["handssca_downloads"] = dict(downloads or {})
    return config


def source_archive(root: Path, dest: Path) -> dict:
    """``git archive`` of HEAD into ``dest`` (a ``.tar.gz`` whose files sit in one folder
    ``handssca-<commit>/``). Returns what the page box and provenance say of it: ``file``
    (None outside a git checkout), ``commit`` and ``dirty`` (uncommitted changes to tracked
    files, which the archive does not hold)."""
    commit = git_commit(root)
    if commit == "unknown":
        return {"file": None, "commit": commit, "dirty": False, "folder": None}
    sha = commit.split("+")[0]
    folder = f"handssca-{sha[:12]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["git", "archive", "--format=tar.gz", f"--prefix={folder}/",
                          "-o", str(dest), sha], cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        raise BookError(f"git archive of {sha} in {root} failed: {res.stderr.strip()}")
    return {"file": dest.name, "commit": sha, "dirty": commit.endswith("+dirty"),
            "folder": folder}


def stage_sources(root: Path, stage: Path, toc: dict) -> dict:
    """Step 2: copy ``_config.yml`` (through :func:`book_config`), the (cut) ``_toc.yml`` and
    ``book/`` into ``stage``; drop executed notebooks of chapters no longer in the toc (papermill
    writes the others); pack the source archive. Returns :func:`source_archive`'s record."""
    mark_own_folder(stage)  # everything under stage/ is the runner's (the copy, the executed notebooks)
    if (stage / DOWNLOADS).exists():
        shutil.rmtree(stage / DOWNLOADS)
    shipped = source_archive(root, stage / DOWNLOADS / SOURCE_ARCHIVE)
    shipped["notebooks"] = NOTEBOOKS_ARCHIVE
    config = yaml.safe_load((root / "_config.yml").read_text())
    write_text_atomic(stage / "_config.yml", yaml.safe_dump(
        book_config(config, os.environ.get(REPOSITORY_ENV), shipped), sort_keys=False))
    write_text_atomic(stage / "_toc.yml", yaml.safe_dump(toc, sort_keys=False))
    if (stage / "book").exists():
        shutil.rmtree(stage / "book")
    shutil.copytree(root / "book", stage / "book")
    # how_to_run.md includes the paper profile's plan, computed in this build (deferred import:
    # the engine loads torch, which the runner does not need otherwise)
    from handssca.engine.plan import write_page_plans
    write_page_plans(stage / "book")
    (stage / "notebooks").mkdir(exist_ok=True)
    keep = chapter_notebooks(root, toc)
    for f in (stage / "notebooks").glob("*.ipynb"):
        if f.relative_to(stage) not in keep:
            f.unlink()
    return shipped


def pack_notebooks(stage: Path, records: List[dict]) -> Path:
    """The executed chapter notebooks of the stage as one zip in the shipped files."""
    dest = stage / DOWNLOADS / NOTEBOOKS_ARCHIVE
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            nb = stage / r["notebook"]
            if nb.exists():
                z.write(nb, Path(r["notebook"]).as_posix())
    return dest


def chapter_data(notebook: Path, params: dict) -> str:
    """What data a chapter ran on, for the status page: the real data roots it was given,
    :data:`SYNTHETIC` when its ``data_root*`` parameters are all empty, :data:`NO_DATA` when it
    has no such parameter. Defaults come from the notebook's ``parameters`` cell;
    ``params`` (the injected values) override them."""
    nb = json.loads(notebook.read_text())
    roots = {}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                    if isinstance(target, ast.Name) and target.id.startswith("data_root"):
                        roots[target.id] = ast.literal_eval(node.value) if node.value else ""
    roots.update({k: v for k, v in params.items() if k.startswith("data_root")})
    if not roots:
        return NO_DATA
    given = {k: str(v) for k, v in roots.items() if v}
    if not given:
        return SYNTHETIC
    return ", ".join(f"{k}={v}" if len(roots) > 1 else str(v) for k, v in given.items())


@contextlib.contextmanager
def _chapter_environment(root: Path, out: Path):
    """The environment the chapters run in (non-interactive, the project and build folders
    named), restored afterwards."""
    env_backup = dict(os.environ)
    os.environ[NONINTERACTIVE_ENV] = "1"
    os.environ["HANDSSCA_HOME"] = str(root)
    os.environ["HANDSSCA_BUILD_DIR"] = str(out.resolve())
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env_backup)


def _reusable(rec: dict, prev: Optional[dict], dst: Path) -> bool:
    """Whether the last build's execution of this chapter (``prev``) can stand for ``rec``."""
    return bool(prev and prev["status"] == "ok" and dst.exists()
                and prev["source_sha"] == rec["source_sha"]
                and prev["parameters"] == rec["parameters"])


def execute_chapter(root: Path, stage: Path, out: Path, rel: Path, params: dict,
                    student: bool) -> dict:
    """Run one notebook with papermill into the stage; its provenance record."""
    import papermill as pm  # deferred: heavy, and only a build that executes needs it

    src, dst = root / rel, stage / rel
    rec = {"notebook": str(rel), "parameters": params, "source_sha": _sha(src),
           "status": "ok", "seconds": 0.0}
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
    # the chapter's own statement of its data (a result's meta file) wins; else its parameters
    meta = out / "results" / (rel.stem + ".meta.json")
    rec["data"] = chapter_data(src, params)
    if meta.exists():
        rec["data"] = json.loads(meta.read_text()).get("data") or rec["data"]
    return rec


def execute_chapters(root: Path, stage: Path, out: Path, toc: dict, params: dict,
                     student: bool = False, reuse: bool = False, keep_going: bool = False,
                     execute: bool = True, log=print):
    """Step 3: execute every chapter of ``toc`` (or reuse the last build's run of it).

    Returns ``(records, failures)``: one provenance record per chapter, and one line per
    failed chapter (stops at the first unless ``keep_going``)."""
    old = {}
    old_prov = out / "provenance.json"
    if reuse and old_prov.exists():
        old = {c["notebook"]: c for c in json.loads(old_prov.read_text())["chapters"]}
    records, failures = [], []
    with _chapter_environment(root, out):
        for rel in chapter_notebooks(root, toc):
            prev = old.get(str(rel))
            rec = {"notebook": str(rel), "parameters": params, "source_sha": _sha(root / rel),
                   "status": "ok", "seconds": 0.0}
            if (not execute) or (reuse and _reusable(rec, prev, stage / rel)):
                rec.update({k: prev[k] for k in ("seconds", "status")} if prev else {})
                rec["reused"] = True
                log(f"[book] {rel}: reused")
                records.append(rec)
                continue
            log(f"[book] {rel}: executing (profile {params['profile']}) ...")
            rec = execute_chapter(root, stage, out, rel, params, student)
            records.append(rec)
            log(f"[book] {rel}: {rec['status']} in {rec['seconds']:.1f} s")
            if rec["status"] != "ok":
                failures.append(f"{rel}: {rec.get('error', '')}")
                if not keep_going:
                    break
    return records, failures


def write_provenance(root: Path, stage: Path, out: Path, profile: str, student: bool,
                     records: List[dict], shipped: Optional[dict] = None) -> dict:
    """Step 4: the provenance record (into the stage and ``out``), the status page and the
    executed chapters packed for shipping (``shipped``: :func:`stage_sources`' record)."""
    pack_notebooks(stage, records)
    prov = {"commit": git_commit(root), "profile": profile, "student": student,
            "environment": environment_info(), "packages": _package_versions(),
            "chapters": records, "shipped": shipped or {},
            "total_seconds": round(sum(r["seconds"] for r in records), 1)}
    write_json_atomic(stage / "book" / "provenance.json", prov)
    write_json_atomic(out / "provenance.json", prov)
    write_text_atomic(stage / "book" / "status.md", render_status(prov))
    return prov


def _jupyter_book(stage: Path, jb_out: Path, builder: str = "html") -> Path:
    """``jupyter-book build`` of ``stage`` with ``builder`` (warnings as errors) under
    ``jb_out``; the folder it wrote."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage),
           "--path-output", str(jb_out), "--builder", builder, "-W", "--keep-going", "--all",
           "-q"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "jupyter_book.cli.main"]
    # the API reference documents this checkout's package (the one the chapters ran), not
    # whichever copy the environment has installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(repo_root()), os.environ.get("PYTHONPATH", "")) if p))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise BookError(f"jupyter-book build ({builder}) failed (warnings are errors):\n"
                        + res.stdout[-4000:] + res.stderr[-4000:])
    return jb_out / "_build" / builder


def run_jupyter_book(stage: Path, out: Path, html: Path, trusted: bool, log=print) -> float:
    """Step 5: ``jupyter-book build`` the stage (warnings as errors) into ``html``; the
    seconds it took."""
    log("[book] building HTML ...")
    t0 = time.perf_counter()
    built = _jupyter_book(stage, out / "jb")
    replace_own_folder(html, trusted)
    shutil.move(str(built), str(html))
    mark_own_folder(html)
    return time.perf_counter() - t0


def check_and_report(html: Path, records: List[dict], t_html: float, total: float,
                     profile: str, log=print) -> None:
    """Step 6: raise on silent failures in the HTML; print each chapter's time and the total."""
    bad = scan_html(html)
    if bad:
        raise BookError("silent failures in the built book:\n" + "\n".join(bad))
    log("")
    log(f"{'chapter':<44} {'status':>8} {'seconds':>9}")
    for r in records:
        log(f"{r['notebook']:<44} {r['status']:>8} {r['seconds']:>9.1f}"
            + ("  (reused)" if r.get("reused") else ""))
    log(f"{'jupyter-book build':<44} {'':>8} {t_html:>9.1f}")
    log(f"{'total (profile ' + profile + ')':<44} {'':>8} {total:>9.1f}  = {total / 60:.1f} min")
    log(f"[book] HTML: {html / 'index.html'}")


def build(profile: str = "quick", chapters: Optional[List[str]] = None, out: Optional[Path] = None,
          parameters: Optional[dict] = None, student: bool = False, reuse: bool = False,
          keep_going: bool = False, execute: bool = True, log=print) -> Path:
    """Execute the chapters and build the HTML book (steps 1-6 of the module docstring).
    Returns the HTML folder.

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
    toc = pick_chapters(root, chapters)
    shipped = stage_sources(root, stage, toc)
    params = {"profile": profile, **(parameters or {})}
    records, failures = execute_chapters(root, stage, out, toc, params, student, reuse,
                                         keep_going, execute, log)
    write_provenance(root, stage, out, profile, student, records, shipped)
    if failures:
        raise BookError("chapters failed:\n" + "\n".join(failures))
    t_html = run_jupyter_book(stage, out, html, trusted, log)
    check_and_report(html, records, t_html, time.perf_counter() - t_start, profile, log)
    return html


def pdf_pages(pdf: Path) -> int:
    """The number of pages of a PDF (its ``/Type /Page`` objects; Chromium writes them plain)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf.read_bytes()))


def build_pdf(out: Optional[Path] = None, log=print) -> Path:
    """``make book-pdf``: the book of the last build (``<out>/stage``, its executed chapters)
    as one PDF, ``<out>/book.pdf``. Returns its path.

    jupyter-book's ``singlehtml`` builder puts the whole book on one page; the Chromium of the
    browser tests prints it with the book's print style sheet (``book/_ext/print.css``: code
    and output lines wrap, tables and figures fit the page). jupyter-book's own ``pdfhtml``
    builder is not used: it downloads a Chromium (pyppeteer) at run time.
    """
    out = Path(out) if out else repo_root() / "_build"
    stage = out / "stage"
    if not (stage / MARKER).is_file() or not (stage / "book" / "provenance.json").is_file():
        raise BookError(f"{stage} holds no built book to print: run `python -m handssca book` "
                        f"(or `make book`) with the same --out first")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                     if shutil.which(n)), None)
    if chromium is None:
        raise BookError("the PDF is printed by Chromium, which is not installed "
                        "(apt-get install chromium)")
    log("[book] building the one-page HTML ...")
    single = _jupyter_book(stage, out / "jb-pdf", "singlehtml")
    # the one page is the root document (book/intro.html, index.html only redirects to it), but
    # its links are relative to the folder's top (_static/, _images/): print a copy from there
    root_doc = yaml.safe_load((stage / "_toc.yml").read_text())["root"]
    page = single / "book-for-print.html"
    shutil.copy2(single / (root_doc + ".html"), page)
    pdf = out / "book.pdf"
    if pdf.exists():
        pdf.unlink()
    log("[book] printing it with Chromium ...")
    # the virtual time budget lets MathJax typeset every equation before the page is printed
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--no-pdf-header-footer",
           "--virtual-time-budget=120000", f"--print-to-pdf={pdf}", page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise BookError(f"Chromium printed no PDF (exit status {res.returncode}):\n"
                        + res.stderr[-2000:])
    log(f"[book] PDF: {pdf} ({pdf_pages(pdf)} pages)")
    return pdf


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
    parser.add_argument("--pdf", action="store_true",
                        help="print the built book to <out>/book.pdf (after the HTML; Chromium)")
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
        if args.pdf:
            build_pdf(Path(args.out) if args.out else None)
    except BookError as exc:
        print(f"[book] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
