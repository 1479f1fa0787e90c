"""The structure docs/architecture.md promises: no import circle between the project's modules, and
no harness module that names a built-in method in its code (methods declare what the harness shows)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the papers' methods (the baselines' names, uniform, random, dense, are also generic sampling rules)
BUILT_IN = ("sgs", "temporal_clustering", "liteeval", "videoepitoma", "scsampler")


def _modules() -> dict[str, Path]:
    out = {}
    for base in ("harness", "methods"):
        for path in (ROOT / base).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _load_time_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported when ``path`` loads (module level; not lazy or TYPE_CHECKING imports)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {n for n in names if n in known}
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_finds_a_circle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_project_modules():
    modules = _modules()
    graph = {name: _load_time_imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert import_cycles(graph) == []


@pytest.mark.parametrize("path", sorted((ROOT / "harness").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_harness_code_names_no_built_in_method(path: Path):
    """Identifiers and string literals (not comments or docstrings) of harness/ never name a built-in method."""
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    previous = None
    named = []
    for tok in tokens:
        # a string standing as a statement is a docstring: prose may cite a method
        statement_string = tok.type == tokenize.STRING and (
            previous is None or previous.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
        )
        if tok.type in (tokenize.NAME, tokenize.STRING) and not statement_string:
            words = set(tok.string.strip("'\"").replace("-", "_").split())
            named += [f"{tok.start[0]}: {tok.string}" for name in BUILT_IN if name in words or tok.string == name]
        if tok.type not in (tokenize.COMMENT,):
            previous = tok
    assert not named, f"{path.relative_to(ROOT)} names built-in methods: {named}"
