"""A Sphinx extension of the book: inline code that names a documented object links to its entry.

A chapter that writes ``handssca.models.loss.hand_loss`` or ``handssca.ssm.scan.selective_scan``
in backticks gets, without any markup of its own, a link from that code to the object's entry in
the API reference (whose ``[source]`` link leads on to the highlighted source). A name the package
re-exports (``handssca.ssm.selective_scan``) resolves to the object it names. Code in code cells
and names that the reference does not document are left as they are; so are headings (the
reference's own section titles name its modules).
"""
import importlib
import re

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: a dotted name in the package, optionally followed by a call's parentheses
NAME = re.compile(r"^(handssca(?:\.\w+)+)(?:\(\))?$")


def _canonical(name):
    """The documented name of the object ``name`` refers to (re-exports followed), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        return f"{module}.{qualname}" if module and qualname else None
    return None


def _target(domain, name):
    """(docname, anchor) of the API entry for ``name`` in the Python domain, or None."""
    if name in domain.objects:
        entry = domain.objects[name]
        return entry.docname, entry.node_id
    if name in domain.modules:
        entry = domain.modules[name]
        return entry.docname, entry.node_id
    canonical = _canonical(name)
    if canonical and canonical != name and canonical in domain.objects:
        entry = domain.objects[canonical]
        return entry.docname, entry.node_id
    return None


def _link_literals(app, doctree, docname):
    domain = app.env.get_domain("py")
    linked = 0
    for lit in list(doctree.findall(nodes.literal)):
        m = NAME.match(lit.astext())
        if not m or isinstance(lit.parent, (nodes.reference, nodes.title)):
            continue
        found = _target(domain, m.group(1))
        if not found:
            continue
        target_doc, anchor = found
        uri = "" if target_doc == docname else app.builder.get_relative_uri(docname, target_doc)
        ref = nodes.reference("", "", internal=True, refuri=f"{uri}#{anchor}",
                              classes=["api-link"], reftitle=f"API reference: {m.group(1)}")
        lit.replace_self(ref)
        ref.append(lit)
        linked += 1
    if linked:
        logger.info(f"[apilinks] {docname}: {linked} inline names linked to the API reference")


def setup(app):
    app.connect("doctree-resolved", _link_literals)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
