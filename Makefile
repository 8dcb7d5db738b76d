# The two commands: `make demo` and `make test`. Each builds .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Tests run on both cores; override with `make test PYTEST_ARGS=...`.
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint bench clean sandbox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $@

demo: $(STAMP)
	$(BIN)/python -m loyalty.demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collected no test; that must fail CI, never pass silently.
test: $(TEST_STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Benchmarks vs the peers (bench/README.md); e.g. `make bench BENCH_ARGS="--size 200000"`,
# `BENCH_ARGS="--only load,map"`, `BENCH_ARGS=--quick`. Peers install into bench/.peers/.
BENCH_ARGS ?=
bench: $(TEST_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

sandbox: $(STAMP)
	$(BIN)/loyalty sandbox

clean:
	rm -rf $(VENV) loyalty.duckdb .loyalty build *.egg-info
