#!/usr/bin/env bash
# Regenerates crds/ from hack/gen-crds.py and copies it to the other places the CRDs live: the Helm chart, and the
# simulator's distribution (with the demo policy), so an installed `kubemeter demo` can apply them.
# tests/packaging fails when any copy drifts from the generator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" hack/gen-crds.py crds
for dest in charts/kubemeter/crds sim/kubemeter_sim/crds; do
    mkdir -p "$dest"
    rm -f "$dest"/*.yaml
    cp crds/*.yaml "$dest"/
done
cp examples/metricspolicy-demo.yaml sim/kubemeter_sim/examples/
