#!/usr/bin/env bash
# Regenerates crds/ from hack/gen-crds.py and copies it into the Helm chart, the one other place the CRDs live.
# tests/packaging fails when either copy drifts from the generator.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" hack/gen-crds.py crds
mkdir -p charts/kubemeter/crds
rm -f charts/kubemeter/crds/*.yaml
cp crds/*.yaml charts/kubemeter/crds/
