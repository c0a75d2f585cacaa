# Two commands: `make run` (demo on a local broker it starts itself) and `make test` (the whole suite).
# Everything else is set up on the way: a virtualenv in .venv, the Kafka broker from Maven Central in .kafka.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test setup lint typecheck unit broker-start broker-stop clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,fast]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: setup
	$(BIN)/pseudonymizer demo

test: setup
	scripts/kafka.sh fetch
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m 'not integration'

bench: setup
	$(BIN)/python -m benchmarks.filemode_throughput

broker-start:
	scripts/kafka.sh start

broker-stop:
	scripts/kafka.sh stop

clean:
	scripts/kafka.sh stop || true
	rm -rf .kafka .demo var .pytest_cache .mypy_cache .ruff_cache .hypothesis
