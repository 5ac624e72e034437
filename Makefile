# matseg-nb: the two README commands are `make demo` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.matseg-installed
PROFILE ?= profiles/demo-cpu.json
OUT     ?= runs/demo

.PHONY: install system-deps demo test lint bench schema clean-demo

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml requirements/constraints.txt
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test,napari,formats]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

## the main job on the embedded default profile: profile -> data -> sweep -> compare -> QC -> explain -> report
demo: install
	$(VENV)/bin/matseg demo $(PROFILE) --out $(OUT)

## the whole suite (slow, browser and gui tests included), under a virtual X display, on 2 workers
## (pytest-xdist, one test file per worker: the slow files wait on kernels, Slurm and Chromium)
test: install system-deps
	$(VENV)/bin/ruff check matseg_nb tests benchmarks
	xvfb-run -a -s "-screen 0 1280x1024x24" $(VENV)/bin/pytest -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check matseg_nb tests benchmarks

bench: install
	$(PY) -m benchmarks

schema: install
	$(PY) -m matseg_nb.profiles.export_schema
	$(PY) -m matseg_nb.data.schema

clean-demo:
	rm -rf $(OUT)
