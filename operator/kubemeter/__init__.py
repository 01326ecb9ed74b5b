"""kubemeter: per-workload resource metering for Kubernetes."""

__version__ = "0.1.0"

GROUP = "kubemeter.io"
VERSION = "v1alpha1"
