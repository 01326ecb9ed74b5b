"""Publish stage: a cycle's CycleReport as status on custom resources and as Prometheus gauges, both behind
``publisher.Publisher``; ``documents`` says what a status looks like, ``status`` writes it, ``prometheus`` exports."""
