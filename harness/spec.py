"""Experiment specs: a YAML file -> a validated ``Spec``, or ONE line ``FILE:LINE: FIELD: message``.

The file is composed into YAML nodes with the safe loader (never ``yaml.load``), so every value
keeps the line it came from. Validation checks everything before anything runs: structure and
types, plugin names and their declared parameters (``harness.registry``, ``harness.params``),
evaluation settings, resources, tracking, Ray settings, and what YAML would silently accept
(duplicate keys: YAML keeps the last one). The schema is documented in ``docs/spec.md``.
"""
from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from harness.params import Param, resolve_params
from harness.registry import BACKBONES, DATASETS, METHODS, Registry, UnknownNameError
from harness.settings import EVALUATION_PARAMS
from harness.hashing import canonical_json

TOP_LEVEL_KEYS = ("experiment", "description", "dataset", "datasets", "backbones", "seeds", "methods",
                  "evaluation", "resources", "tracking", "ray", "output", "max_failures", "timeout_s")
METHOD_KEYS = ("name", "params", "grid", "zip", "backbones", "label")
PLUGIN_KEYS = ("name", "params")
RESOURCE_KEYS = ("cpus", "gpus")
TRACKING_KEYS = ("uri", "experiment")
RAY_KEYS = ("address", "num_cpus", "num_gpus", "max_concurrent")
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

FieldPath = tuple  # keys (str) and list indices (int), e.g. ("methods", 2, "grid", "k", 1)


class SpecError(Exception):
    """An invalid spec. ``str()`` is one line: ``FILE:LINE: FIELD: message`` (LINE absent when the
    value came from a command-line override or no line applies)."""

    def __init__(self, file: str, line: int | None, field: str, message: str):
        self.file, self.line, self.field = file, line, field
        self.message = " ".join(str(message).split())  # one line, whatever the cause said
        super().__init__(self.file, self.line, self.field, self.message)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


def format_path(path: Sequence[Any]) -> str:
    """``("methods", 2, "grid", "k", 1)`` -> ``methods[2].grid.k[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


# ---------------------------------------------------------------------------------------------
# The parsed spec
# ---------------------------------------------------------------------------------------------
@dataclass
class PluginRef:
    """A dataset or backbone as written: its name and the params given (validated, not resolved)."""

    name: str
    params: dict[str, Any]
    where: FieldPath = ()  # field path in the spec, for messages

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}


@dataclass
class MethodEntry:
    """One entry of ``methods:``; ``grid`` values are swept as a product, each ``zip`` group moves together."""

    name: str
    params: dict[str, Any]
    grid: dict[str, list[Any]]
    zip: list[dict[str, list[Any]]]
    backbones: list[PluginRef] | None  # None: the spec's top-level backbones
    label: str
    where: FieldPath = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "params": self.params, "grid": self.grid, "zip": self.zip,
                "backbones": None if self.backbones is None else [b.to_dict() for b in self.backbones]}


@dataclass
class Spec:
    path: Path
    source_hash: str  # sha256 of the file's bytes
    experiment: str
    description: str
    datasets: list[PluginRef]
    backbones: list[PluginRef]
    seeds: list[int]
    methods: list[MethodEntry]
    evaluation: dict[str, Any]  # resolved: every EVALUATION_PARAMS key present
    resources: dict[str, Any]
    tracking: dict[str, Any]
    ray: dict[str, Any]
    output: str
    max_failures: int
    timeout_s: float | None
    overrides: dict[str, Any] = field(default_factory=dict)
    lines: dict[FieldPath, int] = field(default_factory=dict, repr=False)
    overridden: dict[FieldPath, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved content, JSON-able (what ``spec_hash`` hashes)."""
        return {
            "experiment": self.experiment, "description": self.description,
            "datasets": [d.to_dict() for d in self.datasets], "backbones": [b.to_dict() for b in self.backbones],
            "seeds": self.seeds, "methods": [m.to_dict() for m in self.methods], "evaluation": self.evaluation,
            "resources": self.resources, "tracking": self.tracking, "ray": self.ray, "output": self.output,
            "max_failures": self.max_failures, "timeout_s": self.timeout_s,
        }

    def line_of(self, where: FieldPath) -> int | None:
        return _line_of(self.lines, self.overridden, tuple(where))

    def error(self, where: FieldPath, message: str) -> SpecError:
        """A ``SpecError`` pointing at a field of this spec, for problems found after loading."""
        where = tuple(where)
        suffix = _override_note(self.overridden, where)
        return SpecError(str(self.path), self.line_of(where), format_path(where), message + suffix)


def _line_of(lines: Mapping[FieldPath, int], overridden: Mapping[FieldPath, str], where: FieldPath) -> int | None:
    for n in range(len(where), -1, -1):
        if where[:n] in overridden:
            return None
        if where[:n] in lines:
            return lines[where[:n]]
    return None


def _override_note(overridden: Mapping[FieldPath, str], where: FieldPath) -> str:
    for n in range(len(where), -1, -1):
        if where[:n] in overridden:
            return f" (from override {overridden[where[:n]]})"
    return ""


# ---------------------------------------------------------------------------------------------
# YAML -> plain values + a line for every field path
# ---------------------------------------------------------------------------------------------
_MAP_TAGS = ("tag:yaml.org,2002:map",)
_SEQ_TAGS = ("tag:yaml.org,2002:seq",)


class _Reader:
    def __init__(self, file: str, text: str):
        self.file = file
        self.loader = yaml.SafeLoader(text)
        self.lines: dict[FieldPath, int] = {}
        self._stack: set[int] = set()
        self._flattened: set[int] = set()  # mappings already checked and merged (reused through an alias)

    def fail(self, line: int, where: FieldPath, message: str) -> SpecError:
        return SpecError(self.file, line, format_path(where), message)

    def read(self) -> Any:
        try:
            node = self.loader.get_single_node()
            if node is None:
                raise SpecError(self.file, 1, "(top level)", "the spec is empty: expected a mapping with at least 'experiment', 'dataset' and 'methods'")
            return self.value(node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = exc.problem or "invalid YAML"
            if exc.context and message.startswith("but "):  # "expected X", "but found Y"
                message = f"{exc.context}, {message}"
            elif exc.context:
                at = exc.context_mark.line + 1 if exc.context_mark else None
                message += f" ({exc.context}" + (f" started at line {at})" if at and mark and at != mark.line + 1 else ")")
            raise SpecError(self.file, mark.line + 1 if mark else None, "(syntax)", message) from None
        except yaml.YAMLError as exc:
            raise SpecError(self.file, None, "(syntax)", str(exc)) from None
        finally:
            self.loader.dispose()

    def value(self, node: yaml.Node, where: FieldPath) -> Any:
        line = node.start_mark.line + 1
        self.lines[where] = line
        if id(node) in self._stack:
            raise self.fail(line, where, "recursive YAML alias")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, where)
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag not in _SEQ_TAGS:
                    raise self.fail(line, where, f"unsupported YAML tag {node.tag}")
                return [self.value(item, where + (i,)) for i, item in enumerate(node.value)]
            if node.tag not in _MAP_TAGS:
                raise self.fail(line, where, f"unsupported YAML tag {node.tag}")
            return self.mapping(node, where)
        finally:
            self._stack.discard(id(node))

    def mapping(self, node: yaml.MappingNode, where: FieldPath) -> dict[str, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in [] if id(node) in self._flattened else node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # explicit keys may override merged (<<) ones
                continue
            key = self.key(key_node, where)
            if key in first_line:
                raise self.fail(key_node.start_mark.line + 1, where + (key,),
                                f"duplicate key '{key}' (first at line {first_line[key]}): YAML would silently keep the last one")
            first_line[key] = key_node.start_mark.line + 1
        self.loader.flatten_mapping(node)
        self._flattened.add(id(node))
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, where)
            result[key] = self.value(value_node, where + (key,))
        return result

    def key(self, node: yaml.Node, where: FieldPath) -> str:
        key = self.scalar(node, where) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            raise self.fail(node.start_mark.line + 1, where, f"mapping keys must be strings, got {_show(key) if key is not None else 'a ' + node.id}")
        return key

    def scalar(self, node: yaml.ScalarNode, where: FieldPath) -> Any:
        line = node.start_mark.line + 1
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # e.g. a !!python/... tag: never constructed
            raise self.fail(line, where, exc.problem or "invalid value") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(line, where, f"expected a finite number, got {node.value}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise self.fail(line, where, f"unsupported value {node.value!r} ({type(value).__name__}): quote it to make it a string")
        return value


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], lines: dict[FieldPath, int],
                     file: str) -> dict[FieldPath, str]:
    """Set ``{"ray.address": "auto", ...}`` in the parsed tree; returns overridden path -> 'key=value'."""
    overridden: dict[FieldPath, str] = {}
    for dotted, value in overrides.items():
        keys = tuple(str(dotted).split("."))
        target = data
        for i, key in enumerate(keys[:-1]):
            if target.get(key) is None:
                target[key] = {}
            if not isinstance(target[key], dict):
                raise SpecError(file, None, format_path(keys[: i + 1]), f"cannot apply override {dotted}={value!r}: not a mapping")
            target = target[key]
        target[keys[-1]] = value
        for path in [p for p in lines if p[: len(keys)] == keys]:
            del lines[path]
        overridden[keys] = f"{dotted}={value!r}"
    return overridden


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
class _Validator:
    def __init__(self, file: str, lines: dict[FieldPath, int], overridden: dict[FieldPath, str]):
        self.file, self.lines, self.overridden = file, lines, overridden

    def fail(self, where: FieldPath, message: str) -> SpecError:
        return SpecError(self.file, _line_of(self.lines, self.overridden, where), format_path(where),
                         message + _override_note(self.overridden, where))

    # -- generic shapes -------------------------------------------------------------------------
    def mapping(self, value: Any, where: FieldPath, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_show(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(where + (key,), f"unknown key '{key}' (allowed: {', '.join(allowed)}){_suggest(key, allowed)}")
        for key in required:
            if key not in value:
                raise self.fail(where + (key,), f"missing required key '{key}'")
        return value

    def list_of(self, value: Any, where: FieldPath, what: str, single_ok: bool = True) -> list[tuple[Any, FieldPath]]:
        """Items with their paths; a single item (not a list) is accepted where ``single_ok``."""
        if isinstance(value, list):
            if not value:
                raise self.fail(where, f"expected at least one {what}, got an empty list")
            return [(item, where + (i,)) for i, item in enumerate(value)]
        if single_ok and value is not None:
            return [(value, where)]
        raise self.fail(where, f"expected a list of {what}s, got {_show(value)}")

    def string(self, value: Any, where: FieldPath, pattern: re.Pattern | None = None, what: str = "a string") -> str:
        if not isinstance(value, str) or not value.strip() or (pattern and not pattern.fullmatch(value)):
            hint = " (quote it)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            raise self.fail(where, f"expected {what}{hint}, got {_show(value)}")
        return value

    def number(self, value: Any, where: FieldPath, *, integer: bool = False, positive: bool = False,
               nullable: bool = False) -> Any:
        if value is None and nullable:
            return None
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if not ok_type or isinstance(value, bool) or (value <= 0 if positive else value < 0):
            what = ("a positive " if positive else "a non-negative ") + ("integer" if integer else "number")
            raise self.fail(where, f"expected {what}{' or null' if nullable else ''}, got {_show(value)}")
        return value

    # -- plugins ---------------------------------------------------------------------------------
    def plugin_class(self, registry: Registry, name: Any, where: FieldPath) -> Any:
        self.string(name, where, what=f"a {registry.kind} name")
        try:
            return registry.get(name)
        except UnknownNameError as exc:
            raise self.fail(where, str(exc)) from None

    def param_value(self, declared: Param, value: Any, where: FieldPath) -> Any:
        problem = declared.check(value)
        if problem:
            raise self.fail(where, problem)
        return declared.coerce(value)

    def param_name(self, owner: str, declared: Mapping[str, Param], name: str, where: FieldPath) -> Param:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise self.fail(where, f"unknown parameter '{name}' of {owner} (declared: {known}){_suggest(name, list(declared))}")
        return declared[name]

    def params(self, owner: str, declared: Mapping[str, Param], value: Any, where: FieldPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping of parameters, got {_show(value)}")
        result = {}
        for name, item in value.items():
            param = self.param_name(owner, declared, name, where + (name,))
            result[name] = self.param_value(param, item, where + (name,))
        return result

    def plugin(self, registry: Registry, value: Any, where: FieldPath) -> PluginRef:
        """``"name"`` or ``{name: ..., params: {...}}``."""
        if isinstance(value, str):
            self.plugin_class(registry, value, where)
            return PluginRef(value, {}, where)
        self.mapping(value, where, PLUGIN_KEYS, required=("name",))
        cls = self.plugin_class(registry, value["name"], where + ("name",))
        owner = f"{registry.kind} '{value['name']}'"
        params = self.params(owner, getattr(cls, "params", {}), value.get("params"), where + ("params",))
        return PluginRef(value["name"], params, where)

    def plugins(self, registry: Registry, value: Any, where: FieldPath) -> list[PluginRef]:
        refs, seen = [], {}
        for item, item_where in self.list_of(value, where, registry.kind):
            ref = self.plugin(registry, item, item_where)
            resolved = canonical_json([ref.name, resolve_params(getattr(registry.get(ref.name), "params", {}), ref.params)])
            if resolved in seen:
                raise self.fail(item_where, f"duplicate {registry.kind}: same as {format_path(seen[resolved])} once defaults are filled in")
            seen[resolved] = item_where
            refs.append(ref)
        return refs

    # -- methods ---------------------------------------------------------------------------------
    def sweep(self, owner: str, declared: Mapping[str, Param], name: str, values: Any, where: FieldPath) -> list[Any]:
        param = self.param_name(owner, declared, name, where)
        if not isinstance(values, list):
            raise self.fail(where, f"expected a list of values to sweep, got {_show(values)}")
        if not values:
            raise self.fail(where, "empty grid: give at least one value")
        swept, seen = [], {}
        for i, item in enumerate(values):
            item = self.param_value(param, item, where + (i,))
            key = canonical_json(item)
            if key in seen:
                raise self.fail(where + (i,), f"duplicate value {_show(item)} (also at index {seen[key]})")
            seen[key] = i
            swept.append(item)
        return swept

    def method(self, value: Any, where: FieldPath) -> MethodEntry:
        if isinstance(value, str):  # "uniform": the method with its defaults
            cls = self.plugin_class(METHODS, value, where)
            value = {"name": value}
        else:
            self.mapping(value, where, METHOD_KEYS, required=("name",))
            cls = self.plugin_class(METHODS, value["name"], where + ("name",))
        name = value["name"]
        declared, owner = getattr(cls, "params", {}), f"method '{name}'"
        params = self.params(owner, declared, value.get("params"), where + ("params",))
        taken = {key: where + ("params", key) for key in params}  # param -> where it is set

        def claim(key: str, at: FieldPath) -> None:
            if key in taken:
                raise self.fail(at, f"parameter '{key}' is already set at {format_path(taken[key])}: set it in one place")
            taken[key] = at

        grid: dict[str, list[Any]] = {}
        raw_grid = value.get("grid")
        if raw_grid is not None:
            if not isinstance(raw_grid, dict):
                raise self.fail(where + ("grid",), f"expected a mapping of parameter -> list of values, got {_show(raw_grid)}")
            if not raw_grid:
                raise self.fail(where + ("grid",), "empty grid: give at least one parameter to sweep, or remove 'grid'")
            for key, values in raw_grid.items():
                grid[key] = self.sweep(owner, declared, key, values, where + ("grid", key))
                claim(key, where + ("grid", key))

        groups: list[dict[str, list[Any]]] = []
        raw_zip = value.get("zip")
        if raw_zip is not None:
            if not isinstance(raw_zip, list) or not raw_zip:
                raise self.fail(where + ("zip",), f"expected a list of zip groups (mappings of parameter -> list of values), got {_show(raw_zip)}")
            for g, raw_group in enumerate(raw_zip):
                at = where + ("zip", g)
                if not isinstance(raw_group, dict) or not raw_group:
                    raise self.fail(at, f"expected a mapping of parameter -> list of values, got {_show(raw_group)}")
                group, first = {}, None
                for key, values in raw_group.items():
                    swept = self.sweep(owner, declared, key, values, at + (key,))
                    if first is None:
                        first = (key, len(swept))
                    elif len(swept) != first[1]:
                        raise self.fail(at + (key,), f"zip group lengths differ: '{key}' has {len(swept)} values, '{first[0]}' has {first[1]}")
                    claim(key, at + (key,))
                    group[key] = swept
                rows = [canonical_json(row) for row in zip(*group.values())]
                for i, row in enumerate(rows):
                    if rows.index(row) != i:
                        raise self.fail(at, f"duplicate zipped row {i} (same values as row {rows.index(row)})")
                groups.append(group)

        backbones = None
        if value.get("backbones") is not None:
            backbones = self.plugins(BACKBONES, value["backbones"], where + ("backbones",))
        label = value.get("label", name)
        self.string(label, where + ("label",))
        return MethodEntry(name, params, grid, groups, backbones, label, where)

    # -- the whole spec --------------------------------------------------------------------------
    def spec(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail((), f"expected a mapping of spec fields at the top level, got {_show(data)}")
        self.mapping(data, (), TOP_LEVEL_KEYS, required=("experiment",))
        out: dict[str, Any] = {}
        out["experiment"] = self.string(data["experiment"], ("experiment",), NAME_PATTERN,
                                        "a name of letters, digits, '_', '.' and '-'")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise self.fail(("description",), f"expected a string, got {_show(description)}")
        out["description"] = description

        if "dataset" in data and "datasets" in data:
            raise self.fail(("datasets",), "give either 'dataset' or 'datasets', not both")
        if "dataset" in data:
            out["datasets"] = [self.plugin(DATASETS, data["dataset"], ("dataset",))]
        elif "datasets" in data:
            out["datasets"] = self.plugins(DATASETS, data["datasets"], ("datasets",))
        else:
            raise self.fail(("dataset",), "missing required key 'dataset' (or 'datasets', a list)")

        out["backbones"] = [] if data.get("backbones") is None else self.plugins(BACKBONES, data["backbones"], ("backbones",))

        seeds, first = [], {}
        for seed, at in self.list_of(data.get("seeds", [0]), ("seeds",), "seed"):
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
                raise self.fail(at, f"expected a seed, an integer in [0, 2**32), got {_show(seed)}")
            if seed in first:
                raise self.fail(at, f"duplicate seed {seed} (also at {format_path(first[seed])})")
            first[seed] = at
            seeds.append(seed)
        out["seeds"] = seeds

        if "methods" not in data:
            raise self.fail(("methods",), "missing required key 'methods'")
        out["methods"] = [self.method(item, at) for item, at in self.list_of(data["methods"], ("methods",), "method", single_ok=False)]
        for entry in out["methods"]:
            if entry.backbones is None and not out["backbones"]:
                raise self.fail(entry.where, f"no backbone for method '{entry.name}': set top-level 'backbones' or this method's 'backbones'")

        out["evaluation"] = self.evaluation(data.get("evaluation"))
        out["output"] = self.string(data.get("output", "results"), ("output",), what="a folder path")
        out["resources"] = self.resources(data.get("resources"))
        out["tracking"] = self.tracking(data.get("tracking"), out["experiment"], out["output"])
        out["ray"] = self.ray(data.get("ray"), out["resources"])
        out["max_failures"] = self.number(data.get("max_failures", 0), ("max_failures",), integer=True)
        out["timeout_s"] = self.number(data.get("timeout_s"), ("timeout_s",), positive=True, nullable=True)
        return out

    def evaluation(self, value: Any) -> dict[str, Any]:
        where = ("evaluation",)
        if value is None:
            return resolve_params(EVALUATION_PARAMS, {})
        given = self.params("evaluation", EVALUATION_PARAMS, value, where)
        if "device" in given and not DEVICE_PATTERN.fullmatch(given["device"]):
            raise self.fail(where + ("device",), f"expected auto, cpu, cuda, cuda:N or mps, got {_show(given['device'])}")
        if "light_backbone" in given:
            self.plugin_class(BACKBONES, given["light_backbone"], where + ("light_backbone",))
        return resolve_params(EVALUATION_PARAMS, given)

    def resources(self, value: Any) -> dict[str, Any]:
        where = ("resources",)
        value = {} if value is None else self.mapping(value, where, RESOURCE_KEYS)
        cpus = self.number(value.get("cpus", 1), where + ("cpus",), positive=True)
        gpus = self.number(value.get("gpus", 0), where + ("gpus",))
        if gpus > 1 and gpus != int(gpus):
            raise self.fail(where + ("gpus",), f"expected a fraction of one GPU or a whole number of GPUs, got {gpus}")
        return {"cpus": cpus, "gpus": gpus}

    def tracking(self, value: Any, experiment: str, output: str) -> dict[str, Any]:
        where = ("tracking",)
        value = {} if value is None else self.mapping(value, where, TRACKING_KEYS)
        uri = self.string(value.get("uri", f"sqlite:///{output}/mlflow.db"), where + ("uri",), what="an MLflow tracking URI")
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        if "+" in scheme:  # e.g. postgresql+psycopg2
            scheme = scheme.split("+", 1)[0]
        if scheme not in TRACKING_SCHEMES:
            raise self.fail(where + ("uri",), f"unsupported tracking URI {uri!r}: expected a scheme among {', '.join(TRACKING_SCHEMES)} (e.g. sqlite:///results/mlflow.db)")
        if scheme == "sqlite" and not uri.startswith("sqlite:///"):
            raise self.fail(where + ("uri",), f"expected sqlite:///RELATIVE/PATH.db or sqlite:////ABSOLUTE/PATH.db, got {uri!r}")
        name = self.string(value.get("experiment", experiment), where + ("experiment",), what="an MLflow experiment name")
        return {"uri": uri, "experiment": name}

    def ray(self, value: Any, resources: dict[str, Any]) -> dict[str, Any]:
        where = ("ray",)
        value = {} if value is None else self.mapping(value, where, RAY_KEYS)
        address = value.get("address")
        if address is not None:
            self.string(address, where + ("address",), what="a Ray address (auto, HOST:PORT, ray://HOST:PORT) or null")
        num_cpus = self.number(value.get("num_cpus"), where + ("num_cpus",), integer=True, positive=True, nullable=True)
        num_gpus = self.number(value.get("num_gpus"), where + ("num_gpus",), integer=True, nullable=True)
        max_concurrent = self.number(value.get("max_concurrent"), where + ("max_concurrent",), integer=True, positive=True, nullable=True)
        # A trial asking for more than the local Ray instance has would stay pending forever.
        if num_cpus is not None and resources["cpus"] > num_cpus:
            raise self.fail(("resources", "cpus"), f"a trial asks for {resources['cpus']} CPUs but ray.num_cpus is {num_cpus}: it would never start")
        if num_gpus is not None and resources["gpus"] > num_gpus:
            raise self.fail(("resources", "gpus"), f"a trial asks for {resources['gpus']} GPUs but ray.num_gpus is {num_gpus}: it would never start")
        return {"address": address, "num_cpus": num_cpus, "num_gpus": num_gpus, "max_concurrent": max_concurrent}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Spec:
    """Read, parse and validate a spec file. Raises ``SpecError`` (one line) on any problem.

    ``overrides`` set dotted fields after parsing and before validation (``{"ray.address": "auto",
    "output": "/scratch/out"}``); errors in an overridden value name the override instead of a line.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError(file, None, "(file)", "spec file not found") from None
    except OSError as exc:
        raise SpecError(file, None, "(file)", f"cannot read the spec: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(file, line, "(file)", "the spec is not UTF-8 text") from None

    reader = _Reader(file, text)
    data = reader.read()
    lines = reader.lines
    overridden: dict[FieldPath, str] = {}
    if overrides and isinstance(data, dict):  # a non-mapping top level is reported by the validator
        overridden = _apply_overrides(data, overrides, lines, file)
    fields = _Validator(file, lines, overridden).spec(data)
    spec = Spec(path=Path(path), source_hash=hashlib.sha256(raw).hexdigest(), overrides=dict(overrides or {}),
                lines=lines, overridden=overridden, **fields)
    _check_distinct_trials(spec)
    return spec


def _check_distinct_trials(spec: Spec) -> None:
    """Two spec entries that give the same trial would run it twice and clash on resume."""
    from harness.grid import expand_with_origins  # grid imports this module

    seen: dict[str, dict[str, FieldPath]] = {}
    for trial, origin in expand_with_origins(spec):
        if trial.hash not in seen:
            seen[trial.hash] = origin
            continue
        first = seen[trial.hash]
        part = next((p for p in ("dataset", "backbone", "method") if origin[p] != first[p]), "method")
        raise spec.error(origin[part], f"gives the same trials as {format_path(first[part])} "
                                       f"(e.g. method '{trial.method.name}', seed {trial.seed}): remove one")
