"""kubemeter: per-workload resource metering for Kubernetes."""

from importlib.metadata import version

__version__ = version("kubemeter")  # the installed distribution's, so it cannot drift from pyproject.toml

GROUP = "kubemeter.io"
VERSION = "v1alpha1"
