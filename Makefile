# The README's two commands: `make demo` (the main job) and `make test`.
# Both create .venv on first use: the CPU build torch==2.13.0 first (pip finds it on local disk;
# an unpinned torch would pull a multi-GB CUDA build), then this package with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/lightformer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.PHONY: install demo test test-fast
install: $(BIN)/lightformer

demo: install
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores 2 all
	@echo; cat results/tables/paper_comparison.md; echo; cat results/tables/ablation_init.md

# two workers (a 2-core machine; tests sharing a module-scoped run stay on one: xdist_group), then
# the SLURM tests alone: their jobs compete with nothing else for the cores, as on a cluster
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slurm"
	$(BIN)/python -m pytest -q -m slurm

# the inner loop: everything but the real workflow, SLURM and end-to-end suites (make test runs them)
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" -n 2
