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
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_scaffold_probe.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout


def test_scaffolded_method_plugs_into_a_spec(tmp_path):
    module, _ = scaffold_method("scaffold_in_spec", tmp_path)
    load_plugin_file(module)
    cls = METHODS.get("scaffold_in_spec")
    assert cls.__name__ == "ScaffoldInSpec" and cls.budget_param == "k" and cls.summary
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("experiment: s\ndataset: specfix_digits\nbackbones: [specfix_r3d]\n"
                         "methods:\n  - name: scaffold_in_spec\n    grid: {k: [2, 4]}\n")
    cfgs = expand(load_spec(spec_path))
    assert [c.method.params for c in cfgs] == [{"dim": 16, "k": 2, "size": 32}, {"dim": 16, "k": 4, "size": 32}]


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "test_taken.py").write_text("# mine\n")
    with pytest.raises(FileExistsError, match="test_taken.py"):
        scaffold_method("taken", tmp_path)
    assert not (tmp_path / "taken.py").exists()  # nothing half-written
    assert (tmp_path / "test_taken.py").read_text() == "# mine\n"


@pytest.mark.parametrize("name, reason", [
    ("1sampler", "identifier"), ("my-sampler", "identifier"), ("class", "identifier"), ("", "identifier"),
    ("random", "shadow the importable module 'random'"), ("torch", "shadow"), ("test_thing", "must not start with 'test'"),
    ("specfix_uniform", "already registered"),
])
def test_rejects_bad_names(tmp_path, name, reason):
    with pytest.raises(ValueError, match=reason):
        scaffold_method(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_class_name():
    assert class_name("my_sampler") == "MySampler"
    assert class_name("x3d_skim") == "X3dSkim"
