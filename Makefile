# kabin: `make up` runs the main job on the local control plane; `make test`
# runs lint and every test. See README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: help venv controlplane cluster-up cluster-down crds lint unit test up operator clean

help:
	@echo "make up            local control plane + CRDs + examples + operator (foreground)"
	@echo "make test          lint, unit and integration tests (starts the control plane)"
	@echo "make cluster-up    build (once) and start the local control plane"
	@echo "make cluster-down  stop it and remove its files"
	@echo "make lint          ruff, mypy --strict, import-linter"
	@echo "make crds          regenerate crds/ from the pydantic models"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

controlplane:
	hack/controlplane/build.sh

cluster-up:
	hack/controlplane/up.sh

cluster-down:
	hack/controlplane/down.sh

crds: venv
	$(BIN)/python -m kabin.api.crd crds

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest tests/unit

test: lint
	$(BIN)/pytest

up: venv
	hack/up.sh

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
