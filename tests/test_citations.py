"""What the package, the chapters and the book's pages cite can be opened by a reader: no
citation of files outside the repository, and every "book/datasets_and_metrics.md, section X"
names a heading of that page."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "datasets_and_metrics.md"
#: citations of notes that are not in the repository
FORBIDDEN = re.compile(r"data spec|architecture notes|spec, section|architecture spec|checkpoint spec",
                       re.IGNORECASE)


def _sources():
    yield from sorted((ROOT / "handssca").rglob("*.py"))
    yield from sorted((ROOT / "notebooks").glob("*.ipynb"))
    yield from sorted((ROOT / "book").glob("*.md"))
    yield from sorted(p for p in (ROOT / "tests").glob("*.py") if p.name != Path(__file__).name)


def _flat(text: str) -> str:
    """Text with line breaks, comment markers and JSON string breaks removed."""
    text = re.sub(r'\\n",\s*"', " ", text)  # a notebook's source lines
    text = re.sub(r"\n\s*(#:?\s)?", " ", text)
    return re.sub(r"\s+", " ", text)


def test_nothing_cites_notes_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in _sources() for i, line in enumerate(p.read_text().splitlines(), 1)
            if FORBIDDEN.search(line)]
    assert not hits, "citations of files a reader cannot open:\n" + "\n".join(hits)


def test_cited_sections_of_the_datasets_page_exist():
    titles = [m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", PAGE.read_text(), re.M)]
    cited = []
    for p in _sources():
        for m in re.finditer(r"datasets_and_metrics\.md, section ([^);:]+)",
                             _flat(p.read_text())):
            cited.append((p.relative_to(ROOT), m.group(1).strip()))
    assert len(cited) > 20  # the package cites the page throughout
    missing = [f"{p}: {c!r}" for p, c in cited if not any(c.startswith(t) for t in titles)]
    assert not missing, "sections the page does not have:\n" + "\n".join(missing)


def test_the_datasets_page_labels_its_sections_and_is_in_the_book():
    text = PAGE.read_text()
    headings = re.findall(r"^(#+) ", text, re.M)
    labels = re.findall(r"^\((dm-[a-z0-9-]+|datasets-and-metrics)\)=$", text, re.M)
    assert len(labels) == len(headings)  # every section can be referred to
    assert "file: book/datasets_and_metrics" in (ROOT / "_toc.yml").read_text()
