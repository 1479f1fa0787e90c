"""``skimbench new-method``: the scaffolded plugin passes its own test (run by pytest in a fresh
process, as a user would), plugs into a spec, and the scaffold refuses bad names and overwrites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.grid import expand
from harness.registry import METHODS, load_plugin_file
from harness.scaffold import class_name, scaffold_method
from harness.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
load_plugin_file(Path(__file__).parent / "specs" / "specfix_plugins.py")


def test_scaffolded_method_passes_its_own_test(tmp_path):
    written = scaffold_method("scaffold_probe", tmp_path)
    assert written == [tmp_path / "scaffold_probe.py", tmp_path / "test_scaffold_probe.py"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_scaffold_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout


def test_scaffolded_method_plugs_into_a_spec(tmp_path):
    module, _ = scaffold_method("scaffold_in_spec", tmp_path)
    load_plugin_file(module)
    cls = METHODS.get("scaffold_in_spec")
    assert cls.__name__ == "ScaffoldInSpec" and cls.budget_param == "k" and cls.summary
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "experiment: s\ndataset: specfix_digits\nbackbones: [specfix_r3d]\n"
        "methods:\n  - name: scaffold_in_spec\n    grid: {k: [2, 4]}\n"
    )
    cfgs = expand(load_spec(spec_path))
    assert [c.method.params for c in cfgs] == [{"dim": 16, "k": 2, "size": 32}, {"dim": 16, "k": 4, "size": 32}]


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "test_taken.py").write_text("# mine\n")
    with pytest.raises(FileExistsError, match="test_taken.py"):
        scaffold_method("taken", tmp_path)
    assert not (tmp_path / "taken.py").exists()  # nothing half-written
    assert (tmp_path / "test_taken.py").read_text() == "# mine\n"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("1sampler", "identifier"),
        ("my-sampler", "identifier"),
        ("class", "identifier"),
        ("", "identifier"),
        ("random", "shadow the importable module 'random'"),
        ("torch", "shadow"),
        ("test_thing", "must not start with 'test'"),
        ("specfix_uniform", "already registered"),
    ],
)
def test_rejects_bad_names(tmp_path, name, reason):
    with pytest.raises(ValueError, match=reason):
        scaffold_method(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_class_name():
    assert class_name("my_sampler") == "MySampler"
    assert class_name("x3d_skim") == "X3dSkim"


def test_packaged_plugin_installs_and_passes_its_own_test(tmp_path):
    """``new-method NAME --package``, ``pip install -e`` into a fresh venv: the scaffolded test,
    ``--plugin NAME.py`` and ``plugins methods NAME`` all work with the entry point installed (#16.2)."""
    written = scaffold_method("pkg_probe", tmp_path, package=True)
    package = tmp_path / "skimbench-pkg-probe"
    assert sorted(written) == sorted(package / name for name in ("pkg_probe.py", "test_pkg_probe.py", "pyproject.toml"))
    venv = tmp_path / "venv"
    # no pip of its own (it would bring an old setuptools): this interpreter's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the venv sees this interpreter's packages (torch, pytest, setuptools) and this checkout
    parents = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "skimbench_parent.pth").write_text("\n".join([str(REPO), *parents]) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-e",
            str(package),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    listed = subprocess.run(
        [str(python), "-m", "harness.cli", "plugins", "methods", "pkg_probe"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert listed.stdout.startswith("pkg_probe: ") and "from pkg_probe.PkgProbe" in listed.stdout
    tested = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package)],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "3 passed" in tested.stdout
    plugin = subprocess.run(
        [str(python), "-m", "harness.cli", "methods", "pkg_probe", "--plugin", str(package / "pkg_probe.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plugin.returncode == 0, plugin.stderr[-3000:]
