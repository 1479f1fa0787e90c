"""Declared, typed plugin parameters (benchopt-style): a default, a type, bounds and a doc line.

The spec validator checks user values against these declarations before anything runs, the
``methods`` command prints them, and trial hashing fills in defaults so that a default written out
and a default left implicit give the same trial.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Param:
    default: Any
    doc: str = ""
    type: type | None = None  # inferred from the default when None
    choices: Sequence[Any] | None = None
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    nullable: bool = False

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def describe_type(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = self.kind
        words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}
        text = words.get(kind, kind.__name__)
        if kind in (int, float):
            if self.low is not None and self.high is None and self.low > 0:
                text = "a positive integer" if kind is int else "a positive number"
            elif self.low is not None or self.high is not None:
                text += f" in [{self.low if self.low is not None else '-inf'}, {self.high if self.high is not None else 'inf'}]"
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
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"expected {self.describe_type()}, {got}"
        return None

    def coerce(self, value: Any) -> Any:
        if value is not None and self.kind is float and isinstance(value, int):
            return float(value)
        return value


def resolve_params(declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, ints widened to floats where declared float. Assumes ``given`` was validated."""
    resolved = {name: p.default for name, p in declared.items()}
    for name, value in given.items():
        resolved[name] = declared[name].coerce(value) if name in declared else value
    return dict(sorted(resolved.items()))
