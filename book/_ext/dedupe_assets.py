"""A Sphinx extension of the book: drop repeated script tags from every page.

Jupyter Book 1's extensions (sphinx-thebe, sphinx-togglebutton) add some inline scripts twice
(once with filename ``None``, once with ``''``); a repeated ``const THEBE_JS_URL = ...`` is a
JavaScript error in the browser console of every page. This keeps the first of identical
scripts and drops the rest.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    if "script_files" not in context:
        return
    seen, kept = set(), []
    for js in context["script_files"]:
        key = (str(getattr(js, "filename", js) or ""),
               repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
