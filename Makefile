# The README's two commands. Both create .venv on a fresh machine and install everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick

.PHONY: test book book-pdf venv clean-book

venv: $(STAMP)

# torch first, pinned to the CPU wheel this machine carries, so that nothing pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[book,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# PROFILE=paper prints the plan (images, runs, hours) and asks above an hour; YES=1 builds
# without asking (needed where nobody can answer)
book: $(STAMP)
	$(PY) -m handssca book --profile $(PROFILE) $(if $(YES),--yes)

# The book as one PDF, _build/book.pdf, printed by the Chromium the browser tests use (nothing is
# downloaded). Chapters already executed with the same sources and parameters are reused.
book-pdf: $(STAMP)
	$(PY) -m handssca book --profile $(PROFILE) --reuse --pdf

clean-book:
	rm -rf _build
