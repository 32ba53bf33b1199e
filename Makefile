# The two commands that matter: `make demo` (the main job) and `make test` (everything).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(shell bash -c 'echo $${RAY_OPERATOR_TOOLS:-$$HOME/.cache/ray-operator-tools}')/bin
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: help venv tools real-node-deps test-deps images lint format crds test test-unit test-integration demo bench cluster-up cluster-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# The virtualenv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./devtools
	touch $@

venv: $(VENV)/.installed ## Python deps into .venv (package installed editable)

tools: ## build the pinned Go tools into the cache (skips what is there)
	bash ci/build-tools.sh

real-node-deps: ## real nodes: Debian packages (root) + kubelet, kube-proxy, CoreDNS, pause
	bash ci/real-node-deps.sh

test-deps: ## Debian packages the integration tests use (redis-server; root)
	bash ci/test-deps.sh

images: venv real-node-deps ## Ray and operator images as OCI archives (no registry, no daemon; cached)
	$(PY) -m ray_operator_dev.devcluster.images

lint: venv ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

crds: venv ## regenerate crds/, the chart's copy and docs/reference.md from the source
	$(PY) -m ray_operator_dev.crd.generate
	$(PY) -m ray_operator_dev.crd.docs

test: tools real-node-deps test-deps venv lint ## everything: lint, unit, chart, integration and real-node tests
	$(VENV)/bin/pytest tests

test-unit: venv ## unit tests only (no control plane)
	$(VENV)/bin/pytest tests/unit

test-integration: tools test-deps venv ## integration tests on a local control plane
	$(VENV)/bin/pytest tests/integration

demo: tools venv ## the main job: control plane, chart, operator, a heterogeneous RayCluster
	@$(PY) -m ray_operator_dev.devcluster demo

PEER ?= kuberay
bench: tools venv ## benchmarks, ours and KubeRay's side by side (QUICK=1: minutes; PEER=: ours only)
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(PEER),--peer $(PEER),)

cluster-up: tools venv ## start a local control plane in the background (REAL_NODES=1: a real node)
	@$(PY) -m ray_operator_dev.devcluster up $(if $(REAL_NODES),--real-nodes $(REAL_NODES),)

cluster-down: venv ## stop it
	@$(PY) -m ray_operator_dev.devcluster down

clean: ## remove the virtualenv and caches (not the tool cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache
