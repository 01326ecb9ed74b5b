"""CEL for CRD ``x-kubernetes-validations``, on cel-python, with the Kubernetes library parts CRDs use.

cel-python lacks what cel-go gives the real API server, so this module adds it: Go-style ``duration()``
errors, ``quantity()`` (compareTo, isLessThan, isGreaterThan), cross-type numeric comparison (``1 < 1.5``), the ``strings``/``lists`` extension functions and a
static check that every called function exists (cel-python only notices at evaluation time).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions

from kubernetes.utils.quantity import parse_quantity

from kubemeter_sim.apiserver.goduration import GoDurationError, parse_go_duration

# Macros cel-python expands itself (its ``min`` doubles as the Kubernetes lists-library ``list.min()``).
_MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter", "dyn", "min"})
_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
"""apimachinery's splitREString, which its parse error quotes."""
_GLOBAL_NAMES = frozenset({"self", "oldSelf", "int", "uint", "double", "bool", "string", "bytes", "list", "map",
                           "null_type", "type", "duration", "timestamp"})


class CelRuntimeError(Exception):
    """A rule that could not be evaluated (missing key, bad conversion, ...); worded like cel-go."""


def _duration(value: Any) -> Any:
    if isinstance(value, celtypes.DurationType):
        return value
    if isinstance(value, str):
        try:
            seconds, nanos = divmod(parse_go_duration(value), 1_000_000_000)
        except GoDurationError:
            pass
        else:
            return celtypes.DurationType(seconds, nanos)  # kept to the microsecond (a timedelta underneath)
    source = "string" if isinstance(value, str) else type(value).__name__.removesuffix("Type").lower()
    return CELEvalError(f"type conversion error from '{source}' to 'google.protobuf.Duration'")


@dataclass(frozen=True)
class Quantity:
    """A ``quantity()`` of Kubernetes' CEL quantity library (exact, as resource.Quantity)."""

    value: Decimal


def _quantity(value: Any) -> Any:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, str):
        try:
            return Quantity(parse_quantity(str(value)))
        except ValueError:
            pass
    return CELEvalError(f"quantities must match the regular expression '{_QUANTITY_REGEX}'")


def _compare_to(a: Any, b: Any) -> Any:
    if not (isinstance(a, Quantity) and isinstance(b, Quantity)):
        return CELEvalError("no such overload")
    return celtypes.IntType((a.value > b.value) - (a.value < b.value))


def _numeric_pair(a: Any, b: Any) -> tuple[Any, Any]:
    """cel-go compares int, uint and double with each other; cel-python raises TypeError instead."""
    if isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS) and type(a) is not type(b):
        return float(a), float(b)
    return a, b


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def compare(a: Any, b: Any) -> Any:
        if isinstance(a, CELEvalError):
            return a
        if isinstance(b, CELEvalError):
            return b
        left, right = _numeric_pair(a, b)
        try:
            return celtypes.BoolType(op(left, right))
        except TypeError:
            return CELEvalError("no such overload")

    return compare


@dataclass(frozen=True)
class OptionalValue:
    """``oldSelf`` of a rule with ``optionalOldSelf: true`` (cel-python has no optional type)."""

    value: Any
    present: bool


def _optional_value(optional: OptionalValue) -> Any:
    return optional.value if optional.present else CELEvalError("optional.none() dereference")


def _plain(value: Any) -> Any:
    """Numbers as floats so int and double order together, as in cel-go's lists library."""
    return float(value) if isinstance(value, _NUMBERS) else value


def _is_sorted(items: Any) -> Any:
    values = [_plain(v) for v in items]
    return celtypes.BoolType(all(x <= y for x, y in zip(values, values[1:])))


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    parts = str(text).split(str(separator)) if limit is None else str(text).split(str(separator), int(limit) - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(items: Any, separator: Any = "") -> Any:
    return celtypes.StringType(str(separator).join(str(i) for i in items))


def _sum(items: Any) -> Any:
    total: Any = celtypes.IntType(0)
    for item in items:
        left, right = _numeric_pair(total, item)
        total = left + right if isinstance(left, float) else celtypes.IntType(left + right)
    return celtypes.DoubleType(total) if isinstance(total, float) else total


def _max(items: Any) -> Any:
    # cel-python already reads ``list.min()`` as its own macro; ``max()`` is the lists-library function.
    if not items:
        return CELEvalError("max called on an empty list")
    return max(items, key=_plain)


def _string_method(method: Callable[..., Any]) -> Callable[..., Any]:
    return lambda text, *args: celtypes.StringType(method(str(text), *(str(a) for a in args)))


def _index_of(text: Any, sub: Any) -> Any:
    return celtypes.IntType(str(text).find(str(sub)))


# Kubernetes' CEL environment: the standard library plus the extension libraries CRD authors reach for.
KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "duration": _duration,
    "quantity": _quantity,
    "compareTo": _compare_to,
    "isLessThan": lambda a, b: r if isinstance(r := _compare_to(a, b), CELEvalError) else celtypes.BoolType(r < 0),
    "isGreaterThan": lambda a, b: r if isinstance(r := _compare_to(a, b), CELEvalError) else celtypes.BoolType(r > 0),
    "_<_": _compare(operator.lt),
    "_<=_": _compare(operator.le),
    "_>_": _compare(operator.gt),
    "_>=_": _compare(operator.ge),
    "_==_": _compare(operator.eq),
    "_!=_": _compare(operator.ne),
    "lowerAscii": _string_method(lambda s: "".join(c.lower() if c.isascii() else c for c in s)),
    "upperAscii": _string_method(lambda s: "".join(c.upper() if c.isascii() else c for c in s)),
    "trim": _string_method(str.strip),
    "replace": _string_method(str.replace),
    "indexOf": _index_of,
    "split": _split,
    "join": _join,
    "isSorted": _is_sorted,
    "hasValue": lambda optional: celtypes.BoolType(optional.present),
    "value": _optional_value,
    "orValue": lambda optional, fallback: optional.value if optional.present else fallback,
    "sum": _sum,
    "max": _max,
}
_KNOWN_FUNCTIONS = frozenset(base_functions) | frozenset(KUBERNETES_FUNCTIONS) | _MACROS
_ENVIRONMENT = celpy.Environment()


@dataclass(frozen=True)
class CelProgram:
    """One compiled CEL expression; ``uses_old_self`` marks a transition rule."""

    source: str
    runner: Any
    uses_old_self: bool

    def evaluate(self, self_value: Any, old_self: Any = None) -> Any:
        activation: dict[str, Any] = {"self": self_value}
        if self.uses_old_self:
            activation["oldSelf"] = old_self
        try:
            result = self.runner.evaluate(activation)
        except CELEvalError as error:
            result = error
        except Exception as error:  # cel-python internals may raise anything; a rule must never crash a request
            raise CelRuntimeError(str(error) or type(error).__name__) from None
        if isinstance(result, CELEvalError):
            raise CelRuntimeError(_go_wording(result)) from None
        return result


def _go_wording(error: CELEvalError) -> str:
    """cel-python's error text, reworded as cel-go's (which the real API server prints)."""
    text = str(error.args[0]) if error.args else "evaluation error"
    missing = re.match(r"no such member in mapping: '(.*)'", text)
    if missing:
        return f"no such key: {missing.group(1)}"
    undeclared = re.match(r"undeclared reference to '([^']*)'", text)
    if undeclared:
        return undeclared.group(0)  # without cel-python's dump of the whole activation
    if "no matching overload" in text or text.startswith("no such overload"):
        return "no such overload"
    return text


def _called_functions(tree: lark.Tree) -> set[str]:
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            names.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            names.add(str(node.children[1]))
    return names


def _identifiers(tree: lark.Tree) -> set[str]:
    return {str(node.children[0]) for node in tree.iter_subtrees() if node.data == "ident"}


def _macro_variables(tree: lark.Tree) -> set[str]:
    """Names bound by comprehension macros, e.g. ``p`` in ``self.all(p, p > 0)``."""
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and str(node.children[1]) in _MACROS and len(node.children) > 2:
            arguments = node.children[2]
            if isinstance(arguments, lark.Tree) and arguments.children:
                bound = _identifiers(arguments.children[0])
                names.update(bound if len(bound) == 1 else ())
    return names


def compile_expression(source: str) -> CelProgram:
    """Parse and check one expression; ValueError with the compiler's complaint when it is not valid CEL."""
    try:
        tree = _ENVIRONMENT.compile(source)
    except celpy.CELParseError as error:
        detail = " ".join(str(error).split())
        raise ValueError(f"compilation failed: ERROR: <input>: Syntax error: {detail}") from None
    unknown = sorted((_called_functions(tree) - _KNOWN_FUNCTIONS)
                     | (_identifiers(tree) - _GLOBAL_NAMES - _macro_variables(tree)))
    if unknown:
        raise ValueError(f"compilation failed: undeclared reference to '{unknown[0]}'")
    runner = _ENVIRONMENT.program(tree, functions=KUBERNETES_FUNCTIONS)
    return CelProgram(source=source, runner=runner, uses_old_self="oldSelf" in _identifiers(tree))
