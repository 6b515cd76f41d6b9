"""A Sphinx extension of the book: its style sheets, beside this file.

``screen.css``: the API reference's module docstrings wrap at the column on screen.

``make book-pdf`` prints the one-page build of the book with Chromium; the sheet wraps code and
output lines instead of cutting them, fits tables, images and equations to the page and leaves
the navigation out. Browsers use it when a reader prints a page (``print.css``).
"""
from pathlib import Path


def _copy_sheet(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        for sheet in ("print", "screen"):
            (static / f"handssca-{sheet}.css").write_text(
                (Path(__file__).parent / f"{sheet}.css").read_text())


def setup(app):
    app.add_css_file("handssca-print.css", media="print")
    app.add_css_file("handssca-screen.css", media="screen")
    app.connect("build-finished", _copy_sheet)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
