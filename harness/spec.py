"""Experiment specs: a YAML file -> a validated ``Spec``, or ONE line ``FILE:LINE: FIELD: message``.

The file is read by ``harness.yamlfile`` (safe loader, a line for every field, hostile input
refused). Validation checks everything before anything runs: structure and types, plugin names and
their declared parameters (``harness.registry``, ``harness.params.validate``), the settings tables
of ``harness.settings`` (evaluation, resources, tracking, Ray, retries), names that become paths,
and what YAML would silently accept (duplicate keys). Whether two entries give the same trial is
checked where the grid is expanded (``harness.grid.check_distinct_trials``). The schema is
documented in ``docs/spec.md``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from harness.hashing import canonical_json
from harness.params import Param, ParamError, resolve_params, validate
from harness.registry import BACKBONES, DATASETS, METHODS, Registry, UnknownNameError
from harness.settings import EVALUATION_PARAMS, LAUNCH_PARAMS, RAY_PARAMS, RESOURCE_PARAMS, TRACKING_PARAMS
from harness.yamlfile import FieldPath, SpecError, decode, format_path, read_bytes, read_yaml, show, text_problem

__all__ = [
    "MethodEntry",
    "PluginRef",
    "Spec",
    "SpecError",
    "format_path",
    "load_spec",
    "parse_override",
    "ray_address_problem",
    "select_methods",
]

TOP_LEVEL_KEYS = (
    "experiment",
    "description",
    "dataset",
    "datasets",
    "backbones",
    "seeds",
    "methods",
    "evaluation",
    "resources",
    "tracking",
    "ray",
    "output",
    "max_failures",
    "timeout_s",
)
METHOD_KEYS = ("name", "params", "grid", "zip", "backbones", "label")
PLUGIN_KEYS = ("name", "params")
BACKBONE_KEYS = ("name", "params", "weights")  # weights: {path, sha256}, a local pretrained checkpoint
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
NAME_RULE = "a name of letters, digits, '_', '.' and '-'"
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
HOST_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
EMPTY_SPEC = "the spec is empty: expected a mapping with at least 'experiment', 'dataset' and 'methods'"


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a name that becomes a path component (experiment, report folder), or None."""
    if not NAME_PATTERN.fullmatch(name):
        return f"expected {NAME_RULE}"
    if set(name) == {"."}:
        return "expected a name, not '.' or '..' (names become folder names)"
    return None


def ray_address_problem(address: str) -> str | None:
    """Why ``address`` is not a Ray address (auto, local, HOST:PORT, ray://HOST[:PORT]), or None."""
    if address in ("auto", "local"):
        return None
    client = address.startswith("ray://")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep:
        host, port = (address.removeprefix("ray://"), "") if client else ("", "")
    if (
        not HOST_PATTERN.fullmatch(host)
        or (port and not (port.isdigit() and 0 < int(port) < 65536))
        or (not port and not client)
    ):
        return f"expected a Ray address: auto, HOST:PORT or ray://HOST:PORT, got {show(address)}"
    return None


# ---------------------------------------------------------------------------------------------
# The parsed spec
# ---------------------------------------------------------------------------------------------
@dataclass
class PluginRef:
    """A dataset or backbone as written: its name and the params given (validated, not resolved)."""

    name: str
    params: dict[str, Any]
    where: FieldPath = ()  # field path in the spec, for messages
    weights: dict[str, str] | None = None  # backbones only: {path, sha256} of a checked local checkpoint

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "params": self.params}
        if self.weights:
            out["weights"] = dict(self.weights)
        return out


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
        return {
            "name": self.name,
            "label": self.label,
            "params": self.params,
            "grid": self.grid,
            "zip": self.zip,
            "backbones": None if self.backbones is None else [b.to_dict() for b in self.backbones],
        }


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
            "experiment": self.experiment,
            "description": self.description,
            "datasets": [d.to_dict() for d in self.datasets],
            "backbones": [b.to_dict() for b in self.backbones],
            "seeds": self.seeds,
            "methods": [m.to_dict() for m in self.methods],
            "evaluation": self.evaluation,
            "resources": self.resources,
            "tracking": self.tracking,
            "ray": self.ray,
            "output": self.output,
            "max_failures": self.max_failures,
            "timeout_s": self.timeout_s,
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


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], lines: dict[FieldPath, int], file: str
) -> dict[FieldPath, str]:
    """Set ``{"ray.address": "auto", ...}`` in the parsed tree; returns overridden path -> 'key=value'."""
    overridden: dict[FieldPath, str] = {}
    for dotted, value in overrides.items():
        keys = tuple(str(dotted).split("."))
        target = data
        for i, key in enumerate(keys[:-1]):
            if target.get(key) is None:
                target[key] = {}
            if not isinstance(target[key], dict):
                raise SpecError(
                    file, None, format_path(keys[: i + 1]), f"cannot apply override {dotted}={value!r}: not a mapping"
                )
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
        return SpecError(
            self.file,
            _line_of(self.lines, self.overridden, where),
            format_path(where),
            message + _override_note(self.overridden, where),
        )

    # -- generic shapes -------------------------------------------------------------------------
    def mapping(self, value: Any, where: FieldPath, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {show(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    where + (key,), f"unknown key '{key}' (allowed: {', '.join(allowed)}){_suggest(key, allowed)}"
                )
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
        raise self.fail(where, f"expected a list of {what}s, got {show(value)}")

    def string(self, value: Any, where: FieldPath, pattern: re.Pattern | None = None, what: str = "a string") -> str:
        if not isinstance(value, str) or not value.strip() or (pattern and not pattern.fullmatch(value)):
            hint = " (quote it)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            raise self.fail(where, f"expected {what}{hint}, got {show(value)}")
        return value

    # -- plugins ---------------------------------------------------------------------------------
    def plugin_class(self, registry: Registry, name: Any, where: FieldPath) -> Any:
        self.string(name, where, what=f"a {registry.kind} name")
        try:
            return registry.get(name)
        except UnknownNameError as exc:
            raise self.fail(where, str(exc)) from None

    def params(self, owner: str, declared: Mapping[str, Param], value: Any, where: FieldPath) -> dict[str, Any]:
        """``value`` checked by ``harness.params.validate``; a problem points at the parameter's field."""
        try:
            return validate(owner, declared, value)
        except ParamError as exc:
            raise self.fail(where if exc.key is None else where + (exc.key,), exc.message) from None

    def param(self, owner: str, declared: Mapping[str, Param], name: str, value: Any, at: FieldPath) -> Any:
        """One value of parameter ``name``; a problem points at ``at`` (e.g. an item of a swept list)."""
        try:
            return validate(owner, declared, {name: value})[name]
        except ParamError as exc:
            raise self.fail(at, exc.message) from None

    def plugin(self, registry: Registry, value: Any, where: FieldPath) -> PluginRef:
        """``"name"`` or ``{name: ..., params: {...}}``."""
        if isinstance(value, str):
            self.plugin_class(registry, value, where)
            return PluginRef(value, {}, where)
        self.mapping(value, where, BACKBONE_KEYS if registry is BACKBONES else PLUGIN_KEYS, required=("name",))
        cls = self.plugin_class(registry, value["name"], where + ("name",))
        owner = f"{registry.kind} '{value['name']}'"
        params = self.params(owner, getattr(cls, "params", {}), value.get("params"), where + ("params",))
        weights = None if value.get("weights") is None else self.weights(value["weights"], where + ("weights",))
        return PluginRef(value["name"], params, where, weights)

    def weights(self, value: Any, where: FieldPath) -> dict[str, str]:
        """``{path, sha256}``: the file exists here and has that hash (a relative path is the spec's folder's)."""
        # lazy: harness.backbones imports torch, which spec loading (plan, plugins) must not pay for
        from harness.backbones.weights import WeightsError, check_weights

        self.mapping(value, where, ("path", "sha256"), required=("path", "sha256"))
        path = Path(str(value["path"])).expanduser()
        if not path.is_absolute() and self.file:
            path = Path(self.file).resolve().parent / path
        try:
            check_weights({"path": str(path), "sha256": str(value["sha256"])})
        except WeightsError as exc:
            raise self.fail(where, str(exc)) from None
        return {"path": str(path), "sha256": str(value["sha256"]).lower()}

    def plugins(self, registry: Registry, value: Any, where: FieldPath) -> list[PluginRef]:
        refs, seen = [], {}
        for item, item_where in self.list_of(value, where, registry.kind):
            ref = self.plugin(registry, item, item_where)
            declared = getattr(registry.get(ref.name), "params", {})
            resolved = canonical_json([ref.name, resolve_params(declared, ref.params)])
            if resolved in seen:
                raise self.fail(
                    item_where,
                    f"duplicate {registry.kind}: same as {format_path(seen[resolved])} once defaults are filled in",
                )
            seen[resolved] = item_where
            refs.append(ref)
        return refs

    # -- methods ---------------------------------------------------------------------------------
    def sweep(self, owner: str, declared: Mapping[str, Param], name: str, values: Any, where: FieldPath) -> list[Any]:
        if name not in declared:
            self.param(owner, declared, name, None, where)  # unknown: raises, naming the declared ones
        if not isinstance(values, list):
            raise self.fail(where, f"expected a list of values to sweep, got {show(values)}")
        if not values:
            raise self.fail(where, "empty grid: give at least one value")
        swept, seen = [], {}
        for i, item in enumerate(values):
            item = self.param(owner, declared, name, item, where + (i,))
            key = canonical_json(item)
            if key in seen:
                raise self.fail(where + (i,), f"duplicate value {show(item)} (also at index {seen[key]})")
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
                raise self.fail(
                    at, f"parameter '{key}' is already set at {format_path(taken[key])}: set it in one place"
                )
            taken[key] = at

        grid: dict[str, list[Any]] = {}
        raw_grid = value.get("grid")
        if raw_grid is not None:
            if not isinstance(raw_grid, dict):
                raise self.fail(
                    where + ("grid",), f"expected a mapping of parameter -> list of values, got {show(raw_grid)}"
                )
            if not raw_grid:
                raise self.fail(where + ("grid",), "empty grid: give at least one parameter to sweep, or remove 'grid'")
            for key, values in raw_grid.items():
                grid[key] = self.sweep(owner, declared, key, values, where + ("grid", key))
                claim(key, where + ("grid", key))

        groups: list[dict[str, list[Any]]] = []
        raw_zip = value.get("zip")
        if raw_zip is not None:
            if not isinstance(raw_zip, list) or not raw_zip:
                raise self.fail(
                    where + ("zip",),
                    f"expected a list of zip groups (mappings of parameter -> list of values), got {show(raw_zip)}",
                )
            for g, raw_group in enumerate(raw_zip):
                at = where + ("zip", g)
                if not isinstance(raw_group, dict) or not raw_group:
                    raise self.fail(at, f"expected a mapping of parameter -> list of values, got {show(raw_group)}")
                group, first = {}, None
                for key, values in raw_group.items():
                    swept = self.sweep(owner, declared, key, values, at + (key,))
                    if first is None:
                        first = (key, len(swept))
                    elif len(swept) != first[1]:
                        raise self.fail(
                            at + (key,),
                            f"zip group lengths differ: '{key}' has {len(swept)} values, '{first[0]}' has {first[1]}",
                        )
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
            raise self.fail((), f"expected a mapping of spec fields at the top level, got {show(data)}")
        self.mapping(data, (), TOP_LEVEL_KEYS, required=("experiment",))
        out: dict[str, Any] = {}
        out["experiment"] = self.string(data["experiment"], ("experiment",), NAME_PATTERN, NAME_RULE)
        if name_problem(out["experiment"]):
            raise self.fail(("experiment",), f"{name_problem(out['experiment'])}, got {show(out['experiment'])}")
        description = data.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise self.fail(("description",), f"expected a string, got {show(description)}")
        out["description"] = description

        if "dataset" in data and "datasets" in data:
            raise self.fail(("datasets",), "give either 'dataset' or 'datasets', not both")
        if "dataset" in data:
            out["datasets"] = [self.plugin(DATASETS, data["dataset"], ("dataset",))]
        elif "datasets" in data:
            out["datasets"] = self.plugins(DATASETS, data["datasets"], ("datasets",))
        else:
            raise self.fail(("dataset",), "missing required key 'dataset' (or 'datasets', a list)")

        backbones = data.get("backbones")
        out["backbones"] = [] if backbones is None else self.plugins(BACKBONES, backbones, ("backbones",))

        seeds, first = [], {}
        for seed, at in self.list_of(data.get("seeds", [0]), ("seeds",), "seed"):
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
                raise self.fail(at, f"expected a seed, an integer in [0, 2**32), got {show(seed)}")
            if seed in first:
                raise self.fail(at, f"duplicate seed {seed} (also at {format_path(first[seed])})")
            first[seed] = at
            seeds.append(seed)
        out["seeds"] = seeds

        if "methods" not in data:
            raise self.fail(("methods",), "missing required key 'methods'")
        entries = self.list_of(data["methods"], ("methods",), "method", single_ok=False)
        out["methods"] = [self.method(item, at) for item, at in entries]
        for entry in out["methods"]:
            if entry.backbones is None and not out["backbones"]:
                raise self.fail(
                    entry.where,
                    f"no backbone for method '{entry.name}': set top-level 'backbones' or this method's 'backbones'",
                )

        out["evaluation"] = self.evaluation(data.get("evaluation"))
        out["output"] = self.output(data.get("output", "results"))
        out["resources"] = self.resources(data.get("resources"))
        out["tracking"] = self.tracking(data.get("tracking"), out["experiment"], out["output"])
        out["ray"] = self.ray(data.get("ray"), out["resources"])
        launch = {key: data[key] for key in LAUNCH_PARAMS if key in data}
        out.update(resolve_params(LAUNCH_PARAMS, self.params("the spec", LAUNCH_PARAMS, launch, ())))
        return out

    def evaluation(self, value: Any) -> dict[str, Any]:
        where = ("evaluation",)
        views = None
        if isinstance(value, dict) and isinstance(value.get("views"), dict):  # {clips, crops}; a bare int is a Param
            # lazy: harness.views imports torch, which spec loading (plan, plugins) must not pay for
            from harness.views import parse_views

            value = dict(value)
            try:
                parsed = parse_views(value.pop("views"), "views")
            except ValueError as exc:
                raise self.fail(where + ("views",), str(exc)) from None
            views = {"clips": parsed.clips, "crops": parsed.crops}
        given = self.params("evaluation", EVALUATION_PARAMS, value, where)
        if "device" in given and not DEVICE_PATTERN.fullmatch(given["device"]):
            raise self.fail(
                where + ("device",), f"expected auto, cpu, cuda, cuda:N or mps, got {show(given['device'])}"
            )
        if "light_backbone" in given:
            self.plugin_class(BACKBONES, given["light_backbone"], where + ("light_backbone",))
        return resolve_params(EVALUATION_PARAMS, given if views is None else {**given, "views": views})

    def output(self, value: Any) -> str:
        """A folder that exists or can be created: not a file or device (``/dev/null``), no NUL."""
        where = ("output",)
        output = self.string(value, where, what="a folder path")
        problem = text_problem(output)
        if problem:
            raise self.fail(where, f"the folder path {problem}")
        path = Path(output)
        for folder in [path, *path.parents]:  # the nearest part that exists must be a folder
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise self.fail(where, f"{str(folder)!r} exists and is not a folder: output must be a folder path")
                break
        return output

    def resources(self, value: Any) -> dict[str, Any]:
        where = ("resources",)
        given = resolve_params(RESOURCE_PARAMS, self.params("resources", RESOURCE_PARAMS, value, where))
        gpus = given["gpus"]
        if gpus > 1 and gpus != int(gpus):
            raise self.fail(where + ("gpus",), f"expected a fraction of one GPU or a whole number of GPUs, got {gpus}")
        return given

    def tracking(self, value: Any, experiment: str, output: str) -> dict[str, Any]:
        where = ("tracking",)
        given = resolve_params(TRACKING_PARAMS, self.params("tracking", TRACKING_PARAMS, value, where))
        uri = given["uri"] if given["uri"] is not None else f"sqlite:///{output}/mlflow.db"
        uri = self.string(uri, where + ("uri",), what="an MLflow tracking URI")
        problem = tracking_uri_problem(uri)
        if problem:
            raise self.fail(where + ("uri",), problem)
        name = given["experiment"] if given["experiment"] is not None else experiment
        name = self.string(name, where + ("experiment",), what="an MLflow experiment name")
        problem = name_problem(name)  # it names the experiment's artifact folder
        if problem:
            raise self.fail(where + ("experiment",), f"{problem}, got {show(name)}")
        return {"uri": uri, "experiment": name}

    def ray(self, value: Any, resources: dict[str, Any]) -> dict[str, Any]:
        where = ("ray",)
        given = resolve_params(RAY_PARAMS, self.params("ray", RAY_PARAMS, value, where))
        if given["address"] is not None and ray_address_problem(given["address"]):
            raise self.fail(where + ("address",), ray_address_problem(given["address"]))
        # A trial asking for more than the local Ray instance has would stay pending forever.
        num_cpus, num_gpus = given["num_cpus"], given["num_gpus"]
        if num_cpus is not None and resources["cpus"] > num_cpus:
            raise self.fail(
                ("resources", "cpus"),
                f"a trial asks for {resources['cpus']:g} CPUs but ray.num_cpus is {num_cpus}: it would never start",
            )
        if num_gpus is not None and resources["gpus"] > num_gpus:
            raise self.fail(
                ("resources", "gpus"),
                f"a trial asks for {resources['gpus']:g} GPUs but ray.num_gpus is {num_gpus}: it would never start",
            )
        return given


def tracking_uri_problem(uri: str) -> str | None:
    """Why MLflow could not use ``uri``, as far as can be told without connecting; or None."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    scheme = scheme.split("+", 1)[0]  # e.g. postgresql+psycopg2
    if scheme not in TRACKING_SCHEMES:
        return (
            f"unsupported tracking URI {uri!r}: expected a scheme among {', '.join(TRACKING_SCHEMES)} "
            "(e.g. sqlite:///results/mlflow.db)"
        )
    if scheme == "sqlite":
        path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
        if not path or path.endswith("/") or Path(path).is_dir():
            return f"expected sqlite:///RELATIVE/PATH.db or sqlite:////ABSOLUTE/PATH.db, got {uri!r}"
        return None
    if scheme in ("file", "databricks"):
        return None
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        return f"malformed tracking URI {uri!r}: {exc}"
    if not parts.hostname or not HOST_PATTERN.fullmatch(
        parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    ):
        return f"expected {scheme}://HOST[:PORT]..., got {uri!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Spec:
    """Read, parse and validate a spec file. Raises ``SpecError`` (one line) on any problem.

    ``overrides`` set dotted fields after parsing and before validation (``{"ray.address": "auto",
    "output": "/scratch/out"}``); errors in an overridden value name the override instead of a line.
    """
    file = str(path)
    raw = read_bytes(file)
    data, lines = read_yaml(file, decode(file, raw), EMPTY_SPEC)
    overridden: dict[FieldPath, str] = {}
    if overrides and isinstance(data, dict):  # a non-mapping top level is reported by the validator
        overridden = _apply_overrides(data, overrides, lines, file)
    fields = _Validator(file, lines, overridden).spec(data)
    return Spec(
        path=Path(path),
        source_hash=hashlib.sha256(raw).hexdigest(),
        overrides=dict(overrides or {}),
        lines=lines,
        overridden=overridden,
        **fields,
    )


def parse_override(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE`` -> ``(KEY, value)``: VALUE is read as YAML (``16`` an int, ``[0, 1]`` a list,
    ``null``), with the same checks as the spec file. Raises ``SpecError`` naming the option."""
    where = f"--set {text}"
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key.strip()):
        raise SpecError(where, None, "(option)", "expected KEY=VALUE with a dotted KEY, e.g. evaluation.batch_size=16")
    problem = text_problem(value)
    if problem:
        raise SpecError(where, None, key.strip(), f"the value {problem}")
    parsed, _ = read_yaml(where, value, "") if value.strip() else ("", {})
    return key.strip(), parsed


def select_methods(spec: Spec, names: Sequence[str]) -> Spec:
    """The spec with only the method entries whose name or label is in ``names`` (``--only``)."""
    known = sorted({m.name for m in spec.methods} | {m.label for m in spec.methods})
    for name in names:
        if name not in known:
            raise SpecError(
                f"--only {','.join(names)}",
                None,
                "(option)",
                f"no method entry named or labelled '{name}' in {spec.path} "
                f"(entries: {', '.join(known)}){_suggest(name, known)}",
            )
    return replace(spec, methods=[m for m in spec.methods if m.name in names or m.label in names])
