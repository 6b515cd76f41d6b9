"""A Sphinx extension of the book: every page ends with a box linking to the code it was built from.

The book runner (``handssca/book.py``) ships, in the HTML folder's root, the source archive of
the commit the book was built from and a zip of the executed chapters, and hands their names to
this extension as the configuration value ``handssca_downloads`` (``file``, ``folder``,
``commit``, ``dirty``, ``notebooks``). The box links to both, relative to each page (so it works
from ``file://``, on a server and in the one-page build of the PDF), and gives the two commands
that install the archive and run a chapter. Without the value (a plain ``jupyter-book build``)
there is no box.
"""
from html import escape


def _box(downloads, pathto):
    if not downloads.get("file"):
        return ('<aside class="handssca-downloads"><p><strong>Run this book:</strong> this build '
                "was made outside a git checkout and ships no source archive; see "
                "<em>How to run</em>.</p></aside>")
    src = escape(pathto(downloads["file"], 1))
    nbs = escape(pathto(downloads["notebooks"], 1))
    commit = escape(downloads["commit"][:12])
    dirty = (" The work tree had uncommitted changes when this book was built; the archive "
             "holds the commit without them." if downloads.get("dirty") else "")
    folder = escape(downloads["folder"])
    # two short lines: they fit the narrowest column of the theme without a scroll bar
    commands = (f"tar xzf {escape(downloads['file'])}\n"
                f"cd {folder} &amp;&amp; make venv\n"
                ".venv/bin/python -m handssca book \\\n"
                "    --profile smoke --chapters 01")
    return ('<aside class="handssca-downloads" style="border-top: 1px solid #ccc; '
            'margin-top: 2em; padding-top: 0.5em">'
            f'<p><strong>Run this book:</strong> <a href="{src}">the source</a> of commit '
            f'<code>{commit}</code> it was built from, and <a href="{nbs}">the executed '
            f"chapters</a>.{dirty} Install and run a chapter:</p>"
            f'<div class="highlight"><pre>{commands}</pre></div></aside>')


def _add_box(app, pagename, templatename, context, doctree):
    downloads = app.config.handssca_downloads
    if not downloads or "body" not in context or doctree is None:
        return
    context["body"] += _box(downloads, context["pathto"])


def setup(app):
    app.add_config_value("handssca_downloads", {}, "html")
    app.connect("html-page-context", _add_box)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
