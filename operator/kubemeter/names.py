"""Object names the operator derives from other objects' names, kept within what the API server accepts."""

from __future__ import annotations

import hashlib

MAX_NAME = 253
"""The longest object name (a DNS subdomain) the API server accepts."""


def short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def cut_with_hash(base: str, limit: int, *parts: str) -> str:
    """``base`` cut to fit ``limit`` characters with ``-<hash of parts>`` appended, so that names which the cut
    made equal stay apart; no ``-`` or ``.`` is left before the hash (a DNS subdomain's parts end alphanumeric)."""
    suffix = short_hash(*parts)
    return f"{base[: limit - len(suffix) - 1].rstrip('-.')}-{suffix}"
