"""The plugin registry: entry-point discovery from a really installed distribution, local plugin
files, duplicate names as errors, and unknown names that list what exists and suggest the closest."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.method import Method
from harness.registry import METHODS, Registry, RegistryError, UnknownNameError, load_plugin_file, register_method

REPO = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = '''\
from harness.method import Method
from harness.params import Param
from harness.registry import register_method


@register_method("epdemo_skim")
class EpdemoSkim(Method):
    summary = "registered when the skimbench.methods entry point imports this module"
    params = {"k": Param(3, "frames", low=1)}


class EpdemoByClass(Method):
    """Registered under the entry point's own name (the entry point names a class)."""
    params = {}
'''


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory) -> Path:
    """A tiny third-party distribution built and installed with pip into its own folder."""
    root = tmp_path_factory.mktemp("epdemo")
    source, site = root / "src", root / "site"
    source.mkdir()
    (source / "epdemo_plugin.py").write_text(PLUGIN_MODULE)
    (source / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "epdemo-skimbench-plugin"
        version = "0.1"

        [project.entry-points."skimbench.methods"]
        epdemo = "epdemo_plugin"
        epdemo_by_class = "epdemo_plugin:EpdemoByClass"

        [tool.setuptools]
        py-modules = ["epdemo_plugin"]
        """)
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert list(site.glob("epdemo_skimbench_plugin-0.1.dist-info/entry_points.txt"))
    return site


def test_entry_point_plugin_found_by_methods(installed_site):
    """The real ``METHODS`` registry in a fresh interpreter that sees the installed distribution."""
    code = (
        "from harness.registry import METHODS; import harness.params as p; "
        "print(METHODS.origin('epdemo_skim')); print(METHODS.get('epdemo_skim').params['k'].default); "
        "print(METHODS.origin('epdemo_by_class'))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed_site), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["epdemo_plugin.EpdemoSkim", "3", "epdemo_plugin.EpdemoByClass"]


def test_entry_point_discovery_in_process(installed_site):
    sys.path.insert(0, str(installed_site))
    importlib.invalidate_caches()
    try:
        registry = Registry("method", "skimbench.methods")  # no built-ins: only what is installed
        # a class entry point lands in the loading registry under the entry point's name ...
        assert "epdemo_by_class" in registry.names() and "epdemo_skim" not in registry.names()
        assert registry.get("epdemo_by_class").name == "epdemo_by_class"
        # ... a module entry point was imported, so its @register_method decorator ran
        assert METHODS.get("epdemo_skim").__module__ == "epdemo_plugin"
    finally:
        sys.path.remove(str(installed_site))
        sys.modules.pop("epdemo_plugin", None)
        importlib.invalidate_caches()


def test_broken_entry_point_names_itself(tmp_path):
    site = tmp_path / "site"
    (site / "broken_ep-0.1.dist-info").mkdir(parents=True)
    (site / "broken_ep-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ep\nVersion: 0.1\n")
    (site / "broken_ep-0.1.dist-info" / "entry_points.txt").write_text(
        "[skimbench.test_broken]\nbroken = no_such_module_xyz\n"
    )
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        with pytest.raises(
            RegistryError, match=r"method plugin entry point 'broken' \(no_such_module_xyz\) failed to load"
        ):
            Registry("method", "skimbench.test_broken").load()
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()


def test_duplicate_registration_is_an_error():
    registry = Registry("method", "skimbench.test_none")

    class First(Method):
        pass

    class Second(Method):
        pass

    registry.register("dup")(First)
    registry.register("dup")(First)  # the same class again (a module re-imported): harmless
    with pytest.raises(RegistryError, match=r"duplicate method name 'dup': registered by .*First and by .*Second"):
        registry.register("dup")(Second)
    assert registry.get("dup") is First


def test_duplicate_in_global_registry():
    @register_method("regtest_dup_global")
    class One(Method):
        pass

    with pytest.raises(RegistryError, match="duplicate method name 'regtest_dup_global'"):

        @register_method("regtest_dup_global")
        class Other(Method):
            pass

    assert METHODS.get("regtest_dup_global") is One


def test_unknown_name_lists_and_suggests():
    registry = Registry("backbone", "skimbench.test_none")
    for name in ("resnet18", "resnet50", "r3d_18"):
        registry.register(name)(type(name, (), {}))
    with pytest.raises(UnknownNameError) as info:
        registry.get("resnet_18")
    assert (
        str(info.value)
        == "unknown backbone 'resnet_18' (registered: r3d_18, resnet18, resnet50); did you mean 'resnet18'?"
    )
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownNameError, match=r"\(registered: r3d_18, resnet18, resnet50\)$"):
        registry.get("zzz")


def test_load_plugin_file(tmp_path):
    with pytest.raises(RegistryError, match="plugin file not found"):
        load_plugin_file(tmp_path / "missing.py")
    plugin = tmp_path / "regtest_local_plugin.py"
    plugin.write_text(PLUGIN_MODULE.replace("epdemo_skim", "regtest_local").replace("EpdemoSkim", "RegtestLocal"))
    load_plugin_file(plugin)
    load_plugin_file(plugin)  # a second --plugin of the same file is a no-op, not a duplicate
    assert METHODS.get("regtest_local").params["k"].default == 3


SAME_ORIGIN_PLUGIN = """\
from harness.method import Method
from harness.registry import register_method


@register_method("regtest_same_origin")
class SameOrigin(Method):
    params = {}
"""


def test_same_source_file_reached_twice_is_one_origin(tmp_path):
    """An installed plugin module imported by its entry point AND loaded with --plugin (or by its own
    test) was "duplicate method name ... registered by X and by skimbench_plugin_X" (#16.2)."""
    (tmp_path / "regtest_origin_mod.py").write_text(SAME_ORIGIN_PLUGIN)
    sys.path.insert(0, str(tmp_path))
    try:
        first = importlib.import_module("regtest_origin_mod").SameOrigin  # as an entry point imports it
        load_plugin_file(tmp_path / "regtest_origin_mod.py")  # as --plugin does: another module, same file
        assert METHODS.get("regtest_same_origin") is first
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "regtest_origin_other.py").write_text(SAME_ORIGIN_PLUGIN)
        with pytest.raises(RegistryError, match="duplicate method name 'regtest_same_origin'"):
            load_plugin_file(tmp_path / "elsewhere" / "regtest_origin_other.py")  # another file: a real clash
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("regtest_origin_mod", None)
