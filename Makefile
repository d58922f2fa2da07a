# kabin: `make up` runs the main job on the local control plane; `make test`
# runs lint and every test. See README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig
DASHBOARD := operator/kabin/gateway/dashboard
ASSETS := $(DASHBOARD)/static/vendor/.installed

.PHONY: help venv assets deps controlplane tools image cluster-up cluster-down crds chart lint lock docs unit test chaos up operator clean

help:
	@echo "make up            local control plane + CRDs + examples + operator (foreground)"
	@echo "make test          lint, unit and integration tests (starts the control plane)"
	@echo "make cluster-up    build (once) and start the local control plane"
	@echo "make cluster-down  stop it and remove its files"
	@echo "make lint          ruff, mypy --strict, import-linter, hadolint"
	@echo "make crds          regenerate crds/ from the pydantic models"
	@echo "make chart         regenerate the chart's schema, its values table (docs/operations.md), manifests/"
	@echo "make image         build the image with buildah on Debian-made bases, and check it"
	@echo "make chaos         the chaos suite at full size (tests/chaos)"
	@echo "make docs          build the documentation site into build/site (mkdocs --strict)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# The dashboard's front-end libraries (htmx and its SSE extension), from npm at build
# time, pinned by package-lock.json, served by the gateway: never from a CDN.
$(ASSETS): $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --silent
	mkdir -p $(DASHBOARD)/static/vendor
	cp $(DASHBOARD)/node_modules/htmx.org/dist/htmx.min.js \
	   $(DASHBOARD)/node_modules/htmx-ext-sse/dist/sse.min.js $(DASHBOARD)/static/vendor/
	touch $@

assets: $(ASSETS)

# Debian packages the tests use: openssh (activity tests) and Chromium (dashboard).
deps:
	hack/deps.sh

controlplane:
	hack/controlplane/build.sh

cluster-up:
	hack/controlplane/up.sh

cluster-down:
	hack/controlplane/down.sh

crds: venv
	$(BIN)/python -m kabin.api.crd crds

# helm and promtool, built from the Go module proxy (once; cached like the control plane).
tools:
	hack/tools/build.sh helm && hack/tools/build.sh promtool

# The Dockerfile's image, built without a container engine or a registry (buildah,
# debootstrap); checked: kabin runs in it as 65532 with exactly requirements.lock.
image:
	hack/image.sh

# The chart's generated parts: values.schema.json and the values table in docs/operations.md (from the
# settings classes) and manifests/kabin.yaml (the chart rendered).
chart: venv
	$(BIN)/python hack/chart.py

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

# The image's pinned runtime dependencies: a clean install of kabin, frozen.
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet . && build/lock/bin/pip freeze --exclude-editable \
	  | grep -v '^kabin' > build/lock.txt
	{ sed -n '1,/^#.*pinned here\.$$/p' requirements.lock; cat build/lock.txt; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# The documentation site (mkdocs.yml); its reference pages are generated from the
# code by hack/docs_hooks.py. --strict: a warning (a broken link or anchor) fails it.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

unit: venv
	$(BIN)/pytest tests/unit

test: lint deps assets docs
	$(BIN)/pytest tests/unit tests/integration tests/chaos

# The chaos suite at full size (500 sessions, 10 kills, 50 x 20 drive races); make test
# runs it smaller. Full-size scenarios take longer than the 300 s a test gets by default.
chaos: venv deps
	KABIN_CHAOS=full $(BIN)/pytest --timeout 3600 tests/chaos

up: venv assets
	hack/up.sh

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
