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

# two workers (a 2-core machine; tests sharing a module-scoped run stay on one: xdist_group) and,
# beside them, the SLURM tests: those mostly wait on the scheduler and its polling, so they overlap
# the rest (their report is printed after the others'); the status is the worse of the two.
# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning while they wait; the tests and
# the jobs they start share two cores, and spinning threads took CPU from the processes at work
test: install
	@export OMP_WAIT_POLICY=PASSIVE; $(BIN)/python -m pytest -q -m slurm > .slurm-tests.log 2>&1 & slurm=$$!; \
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slurm"; rest=$$?; \
	wait $$slurm; status=$$?; echo "== SLURM tests (run beside the others)"; cat .slurm-tests.log; \
	rm -f .slurm-tests.log; [ $$rest = 0 ] && [ $$status = 0 ]

# the inner loop: everything but the real workflow, SLURM and end-to-end suites (make test runs them)
test-fast: install
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow" -n 2
