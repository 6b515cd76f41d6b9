"""A Sphinx extension of the book: its print style sheet (``print.css``, beside this file).

``make book-pdf`` prints the one-page build of the book with Chromium; the sheet wraps code and
output lines instead of cutting them, fits tables, images and equations to the page and leaves
the navigation out. Browsers use it when a reader prints a page.
"""
from pathlib import Path


def _copy_sheet(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        (static / "handssca-print.css").write_text((Path(__file__).parent / "print.css")
                                                  .read_text())


def setup(app):
    app.add_css_file("handssca-print.css", media="print")
    app.connect("build-finished", _copy_sheet)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
