"""The book runner's pieces that need no book build: table-of-contents handling, the status page
and the silent-failure scan, the generated configuration, the API reference's coverage, and the
source archive the book ships (installed into a new venv and run, marked slow)."""
from pathlib import Path

import pytest

from handssca.book import render_status, scan_html, subset_toc, toc_files

TOC = {
    "format": "jb-book",
    "root": "book/intro",
    "parts": [
        {"caption": "Model", "chapters": [{"file": "notebooks/01_a"}, {"file": "notebooks/02_b"}]},
        {"caption": "Data", "chapters": [{"file": "notebooks/03_c", "sections": [{"file": "notebooks/04_d"}]}]},
        {"caption": "About", "chapters": [{"file": "book/status"}]},
    ],
}


def test_toc_files_in_reading_order():
    assert toc_files(TOC) == ["book/intro", "notebooks/01_a", "notebooks/02_b", "notebooks/03_c",
                              "notebooks/04_d", "book/status"]


def test_subset_keeps_pages_and_chosen_chapters():
    sub = subset_toc(TOC, ["01", "04"])
    assert toc_files(sub) == ["book/intro", "notebooks/01_a", "book/status"]
    # a kept section under a dropped chapter goes with its chapter; a part left empty disappears
    assert [p["caption"] for p in sub["parts"]] == ["Model", "About"]


def test_scan_html_finds_silent_failures(tmp_path: Path):
    (tmp_path / "ok.html").write_text("<p>fine</p><img src='a.png'>")
    (tmp_path / "fig.html").write_text("<pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre>")
    (tmp_path / "widget.html").write_text("<pre>HBox(children=(IntProgress(value=0)</pre>")
    (tmp_path / "tb.html").write_text("<pre>Traceback (most recent call last):</pre>")
    found = sorted(scan_html(tmp_path))
    assert found == ["fig.html: a figure printed as text", "tb.html: a traceback",
                     "widget.html: a widget printed as text"]


def test_status_page_lists_every_chapter():
    prov = {"commit": "abc", "profile": "smoke", "total_seconds": 3.0,
            "environment": {"device": "cpu", "cpu": "x", "cpu_count": 2, "torch_threads": 2, "time_utc": "t"},
            "packages": {"torch": "2.13.0"},
            "chapters": [{"notebook": "notebooks/01_a.ipynb", "status": "ok", "seconds": 1.5,
                          "parameters": {"profile": "smoke"}, "data": "synthetic"}]}
    page = render_status(prov)
    assert "| notebooks/01_a.ipynb | ok | 1.5 | synthetic | `profile=smoke` |" in page
    assert "| torch | 2.13.0 |" in page


def test_out_folders_the_runner_did_not_make_are_never_replaced(tmp_path: Path):
    from handssca.book import MARKER, BookError, build, mark_own_folder, replace_own_folder

    # a user's html/ or stage/ under --out: refused before any chapter runs, nothing touched
    for sub in ("html", "stage/book"):
        out = tmp_path / sub.replace("/", "-")
        mine = out / sub / "index.html"
        mine.parent.mkdir(parents=True)
        mine.write_text("my own site")
        top = out / sub.split("/")[0]
        with pytest.raises(BookError, match=f"{top} exists and was not made by the book runner"):
            build(profile="smoke", out=out, log=lambda *a: None)
        assert mine.read_text() == "my own site"
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
            [p.as_posix() for p in Path(sub).parents][:-1] + [sub, f"{sub}/index.html"])
    # a folder the runner marked as its own is replaced
    own = tmp_path / "own" / "html"
    mark_own_folder(own)
    (own / "index.html").write_text("an earlier build")
    assert (own / MARKER).is_file()
    replace_own_folder(own)
    assert not own.exists()


def test_api_reference_documents_every_module():
    # each module of the package has an automodule entry on one page of the API reference
    # (book/api/), and each of those pages is in the table of contents
    import re

    import yaml

    from handssca.utils import repo_root

    root = repo_root()
    modules = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
               for p in (root / "handssca").rglob("*.py") if p.name != "__main__.py"}
    documented, pages = {}, set()
    for page in (root / "book" / "api").glob("*.md"):
        pages.add(page.relative_to(root).with_suffix("").as_posix())
        for m in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.M):
            documented.setdefault(m, []).append(page.name)
    assert sorted(modules - set(documented)) == [], "modules missing from book/api/*.md"
    assert {m: p for m, p in documented.items() if len(p) > 1} == {}, "documented twice"
    assert sorted(pages - set(toc_files(yaml.safe_load((root / "_toc.yml").read_text())))) == []


def test_repository_setting_turns_repository_and_launch_buttons_on_and_off():
    # one setting: the repository URL (``_config.yml``'s ``repository: url:`` or the runner's
    # environment variable). Empty: no button; filled: repository, Binder and Colab buttons
    import yaml

    from handssca.book import book_config
    from handssca.utils import repo_root

    config = yaml.safe_load((repo_root() / "_config.yml").read_text())
    assert config["repository"]["url"] == "", "the committed configuration names no repository"
    off = book_config(config)
    assert off["html"]["use_repository_button"] is False
    assert not any(off["launch_buttons"].get(k) for k in
                   ("binderhub_url", "colab_url", "jupyterhub_url"))
    on = book_config(config, "https://github.com/owner/handssca")
    assert on["repository"]["url"] == "https://github.com/owner/handssca"
    assert on["html"]["use_repository_button"] is True
    assert on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert on["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    filled = dict(config, repository={"url": "https://github.com/owner/handssca"})
    assert book_config(filled)["html"]["use_repository_button"] is True
    assert book_config(filled, "")["html"]["use_repository_button"] is False  # the variable wins
    assert config["html"]["use_repository_button"] is False  # the committed config is untouched


def test_status_page_data_column_names_the_data_of_every_chapter(tmp_path: Path):
    # synthetic when every data root is empty, the root when one is given, none without one
    import json

    from handssca.book import SYNTHETIC, chapter_data

    def notebook(name, source):
        cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source,
                "outputs": [], "execution_count": None}
        path = tmp_path / name
        path.write_text(json.dumps({"cells": [cell], "metadata": {}}))
        return path

    one = notebook("a.ipynb", ['profile = "quick"  # p\n', 'data_root = ""  # empty: synthetic\n'])
    three = notebook("b.ipynb", ['data_root_freihand = ""\n', 'data_root_ho3d: str = ""\n'])
    none = notebook("c.ipynb", ['profile = "quick"\n', "seed = 0\n"])
    assert chapter_data(one, {"profile": "smoke"}) == SYNTHETIC == "synthetic (generated)"
    assert chapter_data(one, {"data_root": "/data/HO3D_v2"}) == "/data/HO3D_v2"
    assert chapter_data(three, {}) == SYNTHETIC
    assert chapter_data(three, {"data_root_ho3d": "/d/HO3D"}) == "data_root_ho3d=/d/HO3D"
    assert chapter_data(none, {}) == "none (reads no dataset)"
    prov = {"commit": "abc", "profile": "smoke", "total_seconds": 3.0, "environment": {},
            "packages": {}, "shipped": {},
            "chapters": [{"notebook": "n.ipynb", "status": "ok", "seconds": 1.0,
                          "parameters": {}}]}
    assert "| n.ipynb | ok | 1.0 | not recorded |" in render_status(prov)


def test_source_archive_holds_the_commit_and_the_status_page_says_when_the_tree_was_dirty(
        tmp_path: Path):
    import subprocess
    import tarfile

    from handssca.book import source_archive

    repo = tmp_path / "repo"
    (repo / "handssca").mkdir(parents=True)
    (repo / "handssca" / "__init__.py").write_text("X = 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["-C", str(repo), "add", "-A"], check=True)
    subprocess.run(git + ["-C", str(repo), "commit", "-qm", "one"], check=True)
    (repo / "handssca" / "__init__.py").write_text("X = 2  # not committed\n")
    rec = source_archive(repo, tmp_path / "out" / "src.tar.gz")
    assert rec["dirty"] is True and rec["folder"] == f"handssca-{rec['commit'][:12]}"
    with tarfile.open(tmp_path / "out" / "src.tar.gz") as tar:
        text = tar.extractfile(f"{rec['folder']}/handssca/__init__.py").read().decode()
    assert text == "X = 1\n"  # the commit, not the work tree
    prov = {"commit": rec["commit"] + "+dirty", "profile": "smoke", "total_seconds": 0.0,
            "environment": {}, "packages": {}, "chapters": [], "shipped": rec}
    assert "without the uncommitted changes" in render_status(prov)
    outside = source_archive(tmp_path / "out", tmp_path / "none.tar.gz")  # not a git checkout
    assert outside["file"] is None and not (tmp_path / "none.tar.gz").exists()


@pytest.mark.slow
def test_source_archive_installs_into_a_clean_venv_and_runs_a_chapter(tmp_path: Path):
    # the box on every page says: unpack the archive, install it, run a chapter. Here: the
    # archive of HEAD, unpacked, installed (no dependencies) into a new venv, and chapter 01
    # run by papermill in that venv with the smoke profile.
    # The venv sees the current environment's packages through a path file (``--system-site-
    # packages`` would give the base interpreter's, which lack torch): nothing is downloaded, a
    # machine without a network runs it, and the venv's own site-packages come first, so the
    # ``handssca`` imported is the archive's (asserted), not the checkout's.
    import os
    import site
    import subprocess
    import sys
    import sysconfig
    import tarfile

    from handssca.book import source_archive
    from handssca.utils import repo_root

    rec = source_archive(repo_root(), tmp_path / "src.tar.gz")
    assert rec["file"], "the project is not a git checkout"
    with tarfile.open(tmp_path / "src.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    src = tmp_path / "unpacked" / rec["folder"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True,
                             text=True).stdout.strip()
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()] or [
        sysconfig.get_paths()["purelib"]]
    Path(purelib, "outer-environment.pth").write_text("\n".join(outer) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HANDSSCA_HOME")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                   check=True, env=env, cwd=tmp_path)
    where = subprocess.run([str(py), "-c", "import handssca; print(handssca.__file__)"],
                           check=True, capture_output=True, text=True, env=env,
                           cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv)), where
    out = tmp_path / "01.ipynb"
    subprocess.run([str(py), "-m", "papermill", "-k", "python3", "--cwd",
                    str(src / "notebooks"), "-p", "profile", "smoke", "--no-progress-bar",
                    str(src / "notebooks" / "01_ssm_discretisation.ipynb"), str(out)],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    assert '"output_type": "error"' not in out.read_text()


def test_scan_html_leaves_the_api_reference_and_source_pages_alone(tmp_path: Path):
    # they show this module's own patterns as code, not as executed output
    for page in ("_modules/handssca/book.html", "book/api/project.html", "notebooks/01.html"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("<pre>HBox(children=...)</pre>")
    assert scan_html(tmp_path) == ["notebooks/01.html: a widget printed as text"]


def test_book_pdf_needs_a_built_book_first(tmp_path: Path):
    from handssca.book import BookError, build_pdf

    with pytest.raises(BookError, match=r"holds no built book to print: run `python -m handssca "
                                        r"book`"):
        build_pdf(tmp_path)
