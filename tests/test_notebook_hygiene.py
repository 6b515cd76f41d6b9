"""Notebook hygiene, enforced: committed without outputs, kernel python3, one parameters cell of
flat literal values right after the imports, followed by a profile resolution; every chapter in
the table of contents and every table-of-contents entry present."""
import ast
import json
from pathlib import Path

import pytest
import yaml

from handssca.book import toc_files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_kernel_python3(path):
    nb = json.loads(path.read_text())
    for cell in _code_cells(nb):
        assert not cell.get("outputs"), f"{path.name}: a code cell has outputs"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_flat_parameters_cell_after_imports_then_profile(path):
    nb = json.loads(path.read_text())
    code = _code_cells(nb)
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    i = tagged[0]
    # everything before it is imports (and comments)
    for c in code[:i]:
        for node in ast.parse("".join(c["source"])).body:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)), \
                f"{path.name}: only imports may come before the parameters cell"
    # flat literal assignments only: nothing derived
    src = "".join(code[i]["source"])
    tree = ast.parse(src)
    names = []
    for node in tree.body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"{path.name}: parameters cell holds {ast.dump(node)[:60]}"
        value = node.value
        ast.literal_eval(value)  # raises if derived from anything
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        names.append(target.id)
    assert "profile" in names, f"{path.name}: the parameters cell must define 'profile'"
    for line in src.splitlines():
        if "=" in line and not line.strip().startswith("#"):
            assert "#" in line, f"{path.name}: parameter line without a comment: {line!r}"
    # the next code cell resolves the profile through the package function
    nxt = "".join(code[i + 1]["source"])
    assert "resolve_profile(" in nxt, f"{path.name}: the cell after the parameters must call resolve_profile"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_only_public_package_names(path):
    nb = json.loads(path.read_text())
    for c in _code_cells(nb):
        for node in ast.walk(ast.parse("".join(c["source"]))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handssca"):
                assert not any(part.startswith("_") for part in node.module.split(".")), node.module
                assert not any(a.name.startswith("_") for a in node.names), node.module
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("notebooks"):
                raise AssertionError(f"{path.name} imports from notebooks/")


def test_toc_and_notebooks_agree():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = toc_files(toc)
    for f in files:
        assert (ROOT / f).with_suffix(".md").exists() or (ROOT / f).with_suffix(".ipynb").exists(), f
    listed = {f for f in files if f.startswith("notebooks/")}
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
