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

up: venv cluster-up
	@export KUBECONFIG=$(KUBECONFIG_LOCAL) PATH="$$(hack/controlplane/build.sh):$$PATH"; \
	if compgen -G 'crds/*.yaml' >/dev/null; then \
	  kubectl apply --server-side -k crds/ && kubectl wait --for=condition=Established --timeout=60s crd/sessions.kabin.dev crd/drives.kabin.dev crd/environmentconfigs.kabin.dev; fi; \
	if compgen -G 'examples/*.yaml' >/dev/null; then kubectl apply --server-side -f examples/; fi; \
	echo; echo "The operator runs in the foreground (Ctrl-C stops it). In another shell:"; \
	echo "  export KUBECONFIG=$(KUBECONFIG_LOCAL)"; \
	echo "  kubectl get kabin -A --watch"; echo; \
	exec $(BIN)/kabin operator

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
