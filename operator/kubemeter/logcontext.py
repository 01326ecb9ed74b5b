"""Log context: fields (policy, cycle, node, namespace, kind, workload, ...) that every log record emitted within a
block carries, without each call repeating them.

The context lives in a ContextVar, so it follows asyncio: a task started within a block (a policy's status writer,
a node's scrape) keeps the fields it was started with, and tasks of other policies never see them.
``ContextFilter`` copies the fields onto each record (fields given with ``extra=`` win); ``record_fields`` is what
both log formats show of a record beyond its message.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping

_fields: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("kubemeter_log_context", default={})

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_KOPF_INTERNAL = frozenset({"settings", "k8s_skip", "k8s_ref"})
"""kopf's extras on its per-object records: its settings object and whether to post an Event (never worth a field),
and the object it is about (shown as the fields kind, namespace, name)."""
_KOPF_REF_FIELDS = ("kind", "namespace", "name")


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every record logged within the block (and in tasks started within it) carries ``fields``; None values are
    left out."""
    token = _fields.set({**_fields.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


class ContextFilter(logging.Filter):
    """Puts the current log context on each record passing the handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            record.__dict__.setdefault(key, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """A record's fields beyond time, level, logger, message and exception: its log context, its ``extra=``, and
    the object kopf's per-object records are about."""
    fields = {key: value for key, value in record.__dict__.items() if key not in _STANDARD and key not in _KOPF_INTERNAL}
    ref = record.__dict__.get("k8s_ref")
    if isinstance(ref, Mapping):
        for key in _KOPF_REF_FIELDS:
            if ref.get(key):
                fields.setdefault(key, ref[key])
    return fields
