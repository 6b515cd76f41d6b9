"""The chapters fit the book's page: code lines of at most 79 characters (the column of the
rendered book), and every cell that shows a figure carries a numbered caption and alt text
(myst-nb cell metadata), one figure per cell. Checked on every chapter, one test per chapter."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: the book's code column, in characters
MAX_LINE = 79
#: a cell shows a figure when it calls plt.show(), displays a figure object or calls a package
#: plotting helper and shows it
SHOWS_FIGURE = re.compile(r"\bplt\.show\(|\bdisplay\(\s*fig\b|\bfig\.show\(")


def _cells(path):
    nb = json.loads(path.read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_column(path):
    long = [f"cell {i}: {len(line)} chars: {line[:50]}..."
            for i, c in enumerate(_cells(path))
            for line in _source(c).splitlines() if len(line) > MAX_LINE]
    assert not long, (f"{path.name}: {len(long)} code lines longer than {MAX_LINE} "
                      f"characters (wrap them):\n" + "\n".join(long))


def _figure_problem(cell):
    """Why a figure cell lacks what the book needs, or None."""
    src = _source(cell)
    shows = len(SHOWS_FIGURE.findall(src))
    if not shows:
        return None
    if shows > 1:
        return f"shows {shows} figures (one figure per cell)"
    nb = cell.get("metadata", {}).get("mystnb", {})
    fig, image = nb.get("figure", {}), nb.get("image", {})
    missing = [k for k, v in (("figure.caption", fig.get("caption")),
                              ("figure.name", fig.get("name")),
                              ("image.alt", image.get("alt"))) if not v]
    if missing:
        return f"lacks mystnb metadata {', '.join(missing)}"
    if not str(fig["name"]).startswith("fig-"):
        return f"figure name {fig['name']!r} does not start with 'fig-'"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_and_alt_text(path):
    bad = [f"cell {i}: {why}" for i, c in enumerate(_cells(path))
           if (why := _figure_problem(c))]
    assert not bad, (f"{path.name}: figure cells without a numbered caption and alt text "
                     f"({{'mystnb': {{'figure': {{'caption', 'name'}}, 'image': {{'alt'}}}}}}):"
                     "\n" + "\n".join(bad))


def test_figure_names_are_unique_across_the_book():
    seen = {}
    for path in NOTEBOOKS:
        for c in _cells(path):
            name = c.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
            if name:
                assert name not in seen, f"{name} in {path.name} and {seen[name]}"
                seen[name] = path.name


def test_the_rules_catch_what_they_should():
    long = {"cell_type": "code", "metadata": {}, "source": "x = 1  # " + "a" * 80}
    bare = {"cell_type": "code", "metadata": {}, "source": "plt.plot([1])\nplt.show()"}
    two = {"cell_type": "code", "source": "plt.show()\nplt.show()",
           "metadata": {"mystnb": {"figure": {"caption": "c", "name": "fig-x"},
                                   "image": {"alt": "a"}}}}
    good = dict(two, source="plt.show()")
    assert any(len(line) > MAX_LINE for line in _source(long).splitlines())
    assert "lacks" in _figure_problem(bare)
    assert "one figure per cell" in _figure_problem(two)
    assert _figure_problem(good) is None
