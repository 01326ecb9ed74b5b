"""Event names: client-go's ``<name>.<hex time>`` while that fits, and always a name the API server accepts."""

from __future__ import annotations

import re

from kubemeter.kubeapi import event_name

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
NOW_NS = 1_796_000_000_123_456_789
# 253 characters, the longest an object name may be; the cut lands after a "." or "-" for some lengths.
LONGEST = ("kubemeter-policy." * 15)[:252] + "x"


def valid(name: str) -> bool:
    return len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name) is not None


def test_a_name_that_fits_keeps_client_gos_form():
    assert event_name("sim-worker-1", NOW_NS) == f"sim-worker-1.{NOW_NS:x}"


def test_names_up_to_the_longest_give_valid_event_names_that_stay_unique():
    names = {}
    for length in range(200, 254):
        involved = LONGEST[:length].rstrip("-.")
        name = event_name(involved, NOW_NS)
        assert valid(name), (length, name)
        assert name.endswith(f".{NOW_NS:x}")
        names.setdefault(name, set()).add(involved)
    assert all(len(objects) == 1 for objects in names.values()), "one Event name per object and time"
    # Two long names equal in the part kept, and one object at two times: still distinct.
    other = LONGEST[:-1] + "y"
    assert event_name(LONGEST, NOW_NS) != event_name(other, NOW_NS)
    assert event_name(LONGEST, NOW_NS) != event_name(LONGEST, NOW_NS + 1)
