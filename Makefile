# theorybench: every target installs what it needs first, so on a fresh clone
# `make test` or `make figures` is the only command to type.
#
#   make figures    train or reuse the runs, write figures/*.png|pdf and figures/README.md (quick scale;
#                   SCALE=medium decides the CPU-feasible claims, ≤ 3 h, into results/medium/)
#   make test       the test suite (tests marked slow excluded; see pyproject.toml)
#   make test-slow  only the slow tests
#   make bench      every benchmarks/bench_*.py
#   make clean      remove made figures and Python caches (keeps runs/ and .venv/)

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The project needs Python 3.11 (pyproject.toml); python3 is the fallback where that is its version.
BOOT_PYTHON := $(shell command -v python3.11 || command -v python3)
SCALE ?= quick

.PHONY: install test test-slow figures bench clean

install: $(STAMP)

# Reinstall whenever pyproject.toml (the dependencies) changes; the stamp records a finished install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(BOOT_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e .
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

figures: $(STAMP)
	$(VENV)/bin/theorybench figures --scale $(SCALE)

# One compile worker: with the default pool, timings on 2 cores are distorted (see shared/references/stack.md).
bench: $(STAMP)
	@shopt -s nullglob; benches=(benchmarks/bench_*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks/bench_*.py yet"; fi; \
	for b in "$${benches[@]}"; do \
		echo "== $$b"; TORCHINDUCTOR_COMPILE_THREADS=1 $(PY) "$$b" || exit 1; \
	done

clean:
	rm -f figures/*.png figures/*.pdf figures/*.json figures/README.md
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
