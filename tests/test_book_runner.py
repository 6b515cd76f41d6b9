"""The book runner's pieces that need no execution: table-of-contents handling, the status page
and the silent-failure scan."""
from pathlib import Path

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
    import pytest

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
