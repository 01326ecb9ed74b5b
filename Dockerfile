# syntax=docker/dockerfile:1
# The kubemeter operator image. The builder stage turns the project's own metadata (pyproject.toml) into a wheel
# and installs it, with its runtime dependencies only (the simulator is another distribution, sim/), into a virtualenv; the final stage copies
# just that virtualenv onto the same slim Python base, so no build tool or source tree reaches the image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# pip builds the wheel through the setuptools backend pinned in pyproject.toml's [build-system];
# the venv's own pip and setuptools are removed afterwards: the running operator never installs anything.
# The last step fails the build if the operator's imports need anything the image lacks.
RUN python -m venv /opt/kubemeter \
    && /opt/kubemeter/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/kubemeter/bin/pip install /tmp/wheels/kubemeter-*.whl \
    && /opt/kubemeter/bin/pip uninstall --yes pip setuptools \
    && /opt/kubemeter/bin/python -c "import kubemeter.app, kubemeter.handlers"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubemeter" \
      org.opencontainers.image.description="Kubernetes operator that meters what workloads really use: per-workload CPU and memory from kubelets, as custom resource status and Prometheus gauges." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubemeter/kubemeter"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/kubemeter/bin:$PATH
COPY --from=builder /opt/kubemeter /opt/kubemeter
# A numeric user, so Kubernetes' runAsNonRoot can verify it without resolving names.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["kubemeter"]
CMD ["run"]
