"""Robustness: whatever the bytes, a decoder returns clean samples or raises DecodeError, nothing else.

"Clean" means the ``kubemeter parse`` document of the result is strict JSON: no NaN or infinity leaks
into the samples. Inputs are random bytes, text made of the characters the text format cares about,
JSON trees built from the summary's own keys, and real captures mutated (cut, bytes flipped, lines
dropped or repeated, numbers made huge). Decoding allocates in proportion to the body, never more.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubemeter.scrape.decode import decode, parse_json
from kubemeter.scrape.resource import decode_resource, kubelet_scrape_error
from kubemeter.scrape.samples import MAX_QUANTITY, DecodeError
from kubemeter.scrape.summary import decode_summary
from kubemeter.types import NodeMetrics

from .decode_fixtures import RESOURCE_FILES, SUMMARY_FILES, read

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAPTURES = {name: read(name) for name in RESOURCE_FILES + SUMMARY_FILES}
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
HUGE_NUMBERS = [b"9" * 400, b"9" * 5000, b"1e999", b"-1e309", b"NaN", b"-0", b"0x1F", b"1_000", b"+Inf", b"4.9e-324"]
TEXT_ALPHABET = 'abcnoderpt_{}",=\\ \t\n#01.9eE+-INaf'
SUMMARY_KEYS = [
    "node", "pods", "nodeName", "podRef", "namespace", "name", "uid", "containers", "cpu", "memory", "time",
    "usageCoreNanoSeconds", "usageNanoCores", "workingSetBytes", "startTime", "network", "interfaces",
    "rxBytes", "txBytes", "ephemeral-storage", "usedBytes",
]


def assert_decodes_or_raises(decoder: Callable[[bytes, float], NodeMetrics], body: bytes) -> None:
    try:
        metrics = decoder(body, 0.0)
    except DecodeError:
        return
    assert isinstance(metrics, NodeMetrics)
    document = parse_json(metrics)
    json.dumps(document, allow_nan=False)  # raises ValueError on NaN/inf
    assert all(0 <= value <= MAX_QUANTITY for value in quantities(document)), "negative or absurd values kept"


def quantities(document: object):
    """Every counter and gauge of a parse document (not names, not timestamps)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith(("Seconds", "Bytes", "Cores")) and value is not None:
                yield value
            else:
                yield from quantities(value)
    elif isinstance(document, list):
        for item in document:
            yield from quantities(item)


@st.composite
def mutated_capture(draw: st.DrawFn, names: list[str]) -> bytes:
    body = CAPTURES[draw(st.sampled_from(names))]
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["truncate", "flip", "drop", "repeat", "huge", "insert"]))
        if operation == "truncate":
            body = body[: draw(st.integers(0, len(body)))]
        elif operation == "flip" and body:
            at = draw(st.integers(0, len(body) - 1))
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        elif operation in ("drop", "repeat"):
            lines = body.split(b"\n")
            at = draw(st.integers(0, len(lines) - 1))
            lines[at : at + 1] = [] if operation == "drop" else [lines[at]] * draw(st.integers(2, 50))
            body = b"\n".join(lines)
        elif operation == "huge":
            numbers = list(NUMBER.finditer(body[:200_000]))
            if numbers:
                number = numbers[draw(st.integers(0, len(numbers) - 1))]
                body = body[: number.start()] + draw(st.sampled_from(HUGE_NUMBERS)) + body[number.end() :]
        elif operation == "insert":
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(st.binary(max_size=64)) + body[at:]
    return body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(SUMMARY_KEYS), children, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(body: bytes) -> None:
    assert_decodes_or_raises(decode_resource, body)
    assert_decodes_or_raises(decode_summary, body)
    assert_decodes_or_raises(decode, body)
    assert kubelet_scrape_error(body.decode("utf-8", "replace")) in (None, True, False)


@FUZZ
@given(st.text(alphabet=TEXT_ALPHABET, max_size=2000))
def test_random_metric_shaped_text(text: str) -> None:
    body = ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 1 2\n' + text).encode()
    assert_decodes_or_raises(decode_resource, body)


@FUZZ
@given(st.dictionaries(st.sampled_from(["node", "pods"]), json_values, max_size=2))
def test_random_summary_shaped_json(document: dict) -> None:
    assert_decodes_or_raises(decode_summary, json.dumps(document).encode())


@FUZZ
@given(mutated_capture(RESOURCE_FILES))
def test_mutated_text_captures(body: bytes) -> None:
    assert_decodes_or_raises(decode_resource, body)


@FUZZ
@given(mutated_capture(SUMMARY_FILES))
def test_mutated_summary_captures(body: bytes) -> None:
    assert_decodes_or_raises(decode_summary, body)


@FUZZ
@given(mutated_capture(RESOURCE_FILES + SUMMARY_FILES))
def test_mutated_captures_through_detection(body: bytes) -> None:
    assert_decodes_or_raises(decode, body)


@settings(FUZZ, max_examples=60)
@given(mutated_capture(RESOURCE_FILES + SUMMARY_FILES))
def test_memory_stays_proportional_to_the_body(body: bytes) -> None:
    """The body is already capped when it is read (max_body_bytes); decoding must not multiply it without bound.

    Intact captures peak at 2-4 times their size (json.loads' objects, the samples); 16 times leaves room
    for mutations without admitting anything that grows with a number's value or a repetition count.
    """
    tracemalloc.start()
    try:
        assert_decodes_or_raises(decode, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 16 * len(body) + 256 * 1024, (len(body), peak)


def test_pathological_long_lines_stay_linear() -> None:
    """Inputs that would make a backtracking parser quadratic; finishing at all is the assertion."""
    size = 1_000_000
    for body in (
        b"container_cpu_usage_seconds_total{" + b"a" * size + b"\n",
        b'container_cpu_usage_seconds_total{container="' + b"\\\\" * size + b"\n",
        b"container_cpu_usage_seconds_total{" + b'a="b",' * (size // 6) + b"\n",
        b"node_cpu_usage_seconds_total " + b" " * size + b"1\n",
        b"\n" * size,
    ):
        assert_decodes_or_raises(decode_resource, body)
    assert_decodes_or_raises(decode_summary, b'{"node": {}, "pods": [' + b"{}," * (size // 3) + b"{}]}")
