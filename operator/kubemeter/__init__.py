"""kubemeter: per-workload resource metering for Kubernetes."""

import importlib.metadata

__version__ = importlib.metadata.version("kubemeter")  # the installed distribution's: never drifts from pyproject.toml

GROUP = "kubemeter.io"
VERSION = "v1alpha1"
