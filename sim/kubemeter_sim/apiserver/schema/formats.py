"""The string formats kube-openapi's strfmt registry checks (``date-time``, ``byte``, ``ipv4``, ...)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from datetime import datetime

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _valid_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _valid_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _valid_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _valid_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


_FORMAT_CHECKS = {
    "date-time": _valid_date_time,
    "datetime": _valid_date_time,
    "date": lambda text: bool(_DATE.match(text)),
    "byte": _valid_base64,
    "uuid": lambda text: bool(_UUID.match(text)),
    "ipv4": lambda text: _valid_ip(text, 4),
    "ipv6": lambda text: _valid_ip(text, 6),
    "cidr": _valid_cidr,
}


def format_ok(format_: str | None, text: str) -> bool:
    """Whether ``text`` is a valid ``format_``; any format the registry does not check (int32, int64, ...) passes."""
    check = _FORMAT_CHECKS.get(format_ or "")
    return check is None or check(text)
