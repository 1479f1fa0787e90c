"""Declared, typed parameters (benchopt-style): a default, a type, bounds and a doc line.

Plugins (methods, datasets, backbones) declare theirs, and so do the spec's settings tables
(``harness.settings``). ``validate`` is the one check of given values against a declaration: the
spec, ``data check --param``, ``--set`` and backbone building all go through it. The ``plugins``
command prints declarations, and trial hashing fills in defaults (``resolve_params``) so that a
default written out and a default left implicit give the same trial.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from harness.yamlfile import show


@dataclass(frozen=True)
class Param:
    default: Any
    doc: str = ""
    type: type | None = None  # inferred from the default when None
    choices: Sequence[Any] | None = None
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    nullable: bool = False
    exclusive_low: bool = False  # ``low`` itself is not allowed (``low=0, exclusive_low=True``: positive)

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def describe_type(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = self.kind
        words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}
        text = words.get(kind, kind.__name__)
        noun = "integer" if kind is int else "number"
        if kind in (int, float):
            positive = self.low is not None and (self.low > 0 or (self.low == 0 and self.exclusive_low))
            if self.high is None and positive:
                text = f"a positive {noun}"
            elif self.high is None and self.low == 0:
                text = f"a non-negative {noun}"
            elif self.low is not None or self.high is not None:
                low = "-inf" if self.low is None else self.low
                high = "inf" if self.high is None else self.high
                text += f" in {'(' if self.exclusive_low else '['}{low}, {high}]"
        return text + (" or null" if self.nullable else "")

    def check(self, value: Any) -> str | None:
        """Return None if ``value`` is acceptable, else a message 'expected X, got Y'."""
        got = f"got {value!r}"
        if value is None:
            return None if self.nullable else f"expected {self.describe_type()}, {got}"
        if self.choices is not None:
            return None if value in self.choices else f"expected {self.describe_type()}, {got}"
        kind = self.kind
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is list:
            ok = isinstance(value, list)
        else:
            ok = isinstance(value, kind)
        if not ok:
            return f"expected {self.describe_type()}, {got}"
        if kind in (int, float):
            below = self.low is not None and (value <= self.low if self.exclusive_low else value < self.low)
            if below or (self.high is not None and value > self.high):
                return f"expected {self.describe_type()}, {got}"
        return None

    def coerce(self, value: Any) -> Any:
        if value is not None and self.kind is float and isinstance(value, int):
            return float(value)
        return value


class ParamError(ValueError):
    """A given value that its declaration refuses. ``key`` is the parameter's name (None: the whole
    mapping); ``message`` says what is wrong; ``str()`` is one line naming the owner."""

    def __init__(self, owner: str, key: str | None, message: str):
        self.owner, self.key, self.message = owner, key, message
        super().__init__(owner, key, message)

    def __str__(self) -> str:
        if self.message.startswith("unknown parameter"):
            return self.message
        if self.key is None:
            return f"{self.owner}: {self.message}"
        return f"{self.owner}: parameter '{self.key}': {self.message}"


def validate(owner: str, declared: Mapping[str, Param], given: Any) -> dict[str, Any]:
    """``given`` checked against ``declared``: a mapping of declared names to acceptable values.
    Returns the values coerced (ints widened where declared float), without defaults; raises
    ``ParamError`` at the first problem. ``owner`` names the declaration in messages ("method 'uniform'")."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ParamError(owner, None, f"expected a mapping of parameters, got {show(given)}")
    values = {}
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(str(name), list(declared), n=1, cutoff=0.5)
            raise ParamError(
                owner,
                name,
                f"unknown parameter '{name}' of {owner} (declared: "
                f"{', '.join(sorted(declared)) or 'none'})" + (f"; did you mean '{close[0]}'?" if close else ""),
            )
        problem = declared[name].check(value)
        if problem:
            raise ParamError(owner, name, problem)
        values[name] = declared[name].coerce(value)
    return values


def resolve_params(declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, ints widened to floats where declared float. Assumes ``given`` was validated."""
    resolved = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        resolved[name] = declared[name].coerce(value) if name in declared else value
    return dict(sorted(resolved.items()))
