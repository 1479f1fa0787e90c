"""Name -> plugin registries for methods, datasets and backbones.

Built-ins register themselves with a decorator when their module is imported (timm's pattern);
third-party packages expose modules through entry points (groups ``skimbench.methods``,
``skimbench.datasets``, ``skimbench.backbones``) that are imported the same way; a local file can
be loaded with ``--plugin FILE.py``. Registering a name twice is an error, never a silent override,
unless both registrations come from the same source file (an installed plugin whose file is also
loaded with ``--plugin``, or imported by its own test): the same origin reached twice, the first kept.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterator


class RegistryError(Exception):
    """A registry problem with a user-facing, one-line message."""


class UnknownNameError(RegistryError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}' (registered: {', '.join(sorted(known)) or 'none'}){hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry:
    """A named collection of plugins of one kind."""

    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_modules = builtin_modules
        self._items: dict[str, Any] = {}
        self._origins: dict[str, str] = {}
        self._files: dict[str, Path | None] = {}  # name -> the resolved source file that registered it
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator: ``@METHODS.register("uniform")``. Sets ``obj.name`` when it is a class."""

        def decorate(obj: Any) -> Any:
            key = name or getattr(obj, "name", None) or obj.__name__
            origin = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', key)}"
            file = source_file(obj)
            if key in self._items:
                same_file = file is not None and file == self._files[key]
                same_object = getattr(obj, "__qualname__", None) == getattr(self._items[key], "__qualname__", None)
                if self._origins[key] != origin and not (same_file and same_object):
                    raise RegistryError(
                        f"duplicate {self.kind} name '{key}': registered by {self._origins[key]} "
                        f"and by {origin} (files {self._files[key]} and {file})"
                    )
                if self._origins[key] != origin:  # the same source file reached twice: keep the first
                    if isinstance(obj, type):
                        obj.name = key
                    return obj
            if isinstance(obj, type):
                obj.name = key
            self._items[key] = obj
            self._origins[key] = origin
            self._files[key] = file
            return obj

        return decorate

    def load(self) -> None:
        """Import built-ins and installed entry points once, so their decorators run."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtin_modules:
            importlib.import_module(module)
        for ep in entry_points(group=self.entry_point_group):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken third-party plugin must name itself
                raise RegistryError(
                    f"{self.kind} plugin entry point '{ep.name}' ({ep.value}) failed to load: {exc}"
                ) from exc
            # an entry point may name a module (decorators ran on import) or a class/function
            if not isinstance(loaded, type(sys)) and ep.name not in self._items:
                self.register(ep.name)(loaded)

    def get(self, name: str) -> Any:
        self.load()
        if name not in self._items:
            raise UnknownNameError(self.kind, name, list(self._items))
        return self._items[name]

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def names(self) -> list[str]:
        self.load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


METHODS = Registry("method", "skimbench.methods", ("methods",))
DATASETS = Registry("dataset", "skimbench.datasets", ("harness.data.formats", "harness.data.synthetic"))
BACKBONES = Registry("backbone", "skimbench.backbones", ("harness.backbones",))

register_method = METHODS.register
register_dataset = DATASETS.register
register_backbone = BACKBONES.register


def _listed_sources() -> tuple[set[str], list[str]]:
    """The top-level packages the registries' listings come from (built-ins and installed entry points),
    and the entry points themselves, found without importing a plugin."""
    tops = {module.split(".")[0] for registry in (METHODS, DATASETS, BACKBONES) for module in registry.builtin_modules}
    facts = []
    for registry in (METHODS, DATASETS, BACKBONES):
        for ep in sorted(entry_points(group=registry.entry_point_group), key=lambda ep: (ep.name, ep.value)):
            facts.append(f"{registry.entry_point_group} {ep.name} {ep.value} {ep.dist.version if ep.dist else ''}")
            tops.add(ep.value.split(":")[0].split(".")[0])
    return tops, facts


def registered_elsewhere() -> bool:
    """Whether this process registered a plugin from outside the fingerprinted packages (a ``--plugin``
    file, a test, a notebook): then a listing cached by ``sources_fingerprint`` would miss it."""
    tops, _ = _listed_sources()
    return any(
        str(getattr(obj, "__module__", "")).split(".")[0] not in tops
        for registry in (METHODS, DATASETS, BACKBONES)
        for obj in registry._items.values()
    )


def sources_fingerprint() -> str:
    """A hash of everything the three registries' listings come from, found without importing a plugin:
    the path, size and modification time of every Python file of the built-in packages and of the
    installed entry points' top-level packages, the entry points themselves, and the interpreter."""
    tops, entries = _listed_sources()
    facts = [sys.executable, sys.version, *entries]
    for top in sorted(tops):
        spec = importlib.util.find_spec(top)  # a top-level name: finds it without importing it
        if spec is None:
            continue
        roots = [Path(p) for p in (spec.submodule_search_locations or [])] or [Path(str(spec.origin))]
        for root in roots:
            files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
            for file in files:
                stat = file.stat()
                facts.append(f"{file} {stat.st_size} {stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:20]


def source_file(obj: Any) -> Path | None:
    """The resolved file that defines ``obj`` (None for objects made at run time)."""
    try:
        file = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        return None
    return Path(file).resolve() if file else None


def load_plugin_file(path: str | Path) -> None:
    """Import a local ``.py`` file so that its ``@register_*`` decorators run (``--plugin``).
    Any problem (missing file, syntax error, failing import) is a one-line ``RegistryError``."""
    shown = str(path)
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise RegistryError(
            f"plugin file not found: {shown} (expected a .py file)"
            if not path.is_file()
            else f"plugin file {shown} is not a .py file"
        )
    module_name = f"skimbench_plugin_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"plugin file {shown} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise RegistryError(f"{shown}:{exc.lineno}: syntax error in plugin file: {exc.msg}") from None
    except RegistryError:
        del sys.modules[module_name]
        raise
    except Exception as exc:  # noqa: BLE001 - a failing plugin import names itself and its line
        del sys.modules[module_name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path]
        where = f"{shown}:{frames[-1].lineno}" if frames else shown
        raise RegistryError(f"{where}: plugin file failed to import: {type(exc).__name__}: {exc}") from None
