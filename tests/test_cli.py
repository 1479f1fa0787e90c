"""The command line: overrides and subsets (--set, --only, --seeds), discovery (plugins, methods
NAME, --version, a help text on every option), and the small errors of #16.8 (results and report of
an unknown experiment, `data` without a subcommand). In process, through ``harness.cli.main``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.registry import load_plugin_file
from harness.tracking import ensure_experiment

PLUGINS = Path(__file__).parent / "specs" / "specfix_plugins.py"
load_plugin_file(PLUGINS)

SPEC = """\
experiment: clitest
dataset: {name: specfix_digits, params: {size: tiny}}
backbones: [specfix_r3d]
seeds: [0]
methods:
  - name: specfix_uniform
    grid: {k: [1, 2]}
  - name: specfix_sampler
    label: sampler-a
"""


def main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(SPEC)
    return path


def test_plan_with_only_seeds_and_set(spec, capsys):
    code, out, _ = main(capsys, "plan", str(spec), "--plugin", str(PLUGINS))
    assert code == 0 and "3 trials" in out
    code, out, _ = main(
        capsys,
        "plan",
        str(spec),
        "--only",
        "specfix_uniform",
        "--seeds",
        "0,1,2",
        "--set",
        "evaluation.batch_size=16",
        "--set",
        "resources.cpus=2",
    )
    assert code == 0, out
    assert "experiment 'clitest', 6 trials (2 CPU, 0 GPU each)" in out
    rows = [row for row in out.splitlines()[2:] if row and not row[0].isspace() and "[" in row.split()[0]]
    assert len(rows) == 6 and all(row.startswith("specfix_uniform[") for row in rows)  # the trial table
    code, out, _ = main(capsys, "plan", str(spec), "--only", "sampler-a")  # a label selects too
    assert code == 0 and "1 trials" in out


def test_set_changes_the_trial_hash_like_the_file_would(spec, tmp_path, capsys):
    """--set evaluation.batch_size=16 gives the same trials as writing it in the spec."""
    written = tmp_path / "y.yaml"
    written.write_text(SPEC + "evaluation: {batch_size: 16}\n")
    _, by_file, _ = main(capsys, "plan", str(written))
    _, by_set, _ = main(capsys, "plan", str(spec), "--set", "evaluation.batch_size=16")
    _, default, _ = main(capsys, "plan", str(spec))
    assert by_file.splitlines()[1:] == by_set.splitlines()[1:] != default.splitlines()[1:]


def test_methods_name_prints_only_that_method(capsys):
    code, out, _ = main(capsys, "methods", "specfix_uniform")
    assert code == 0
    headers = [line for line in out.splitlines() if not line.startswith(" ")]
    assert headers == ["specfix_uniform: a baseline with a budget knob; budget knob: k"]
    assert "    k = 8  (a positive integer)  frames per video" in out


@pytest.mark.parametrize(
    "kind, name, line",
    [
        ("datasets", "specfix_digits", "    size = 'tiny'  (one of 'tiny', 'small', 'full')  how many videos"),
        ("backbones", "specfix_r3d", "    depth = 18  (one of 10, 18)  number of layers"),
        ("methods", "specfix_sampler", "    gamma = 0.5  (a number in [0.0, 1.0])  mixing weight"),
    ],
)
def test_plugins_lists_each_registry_with_parameters(capsys, kind, name, line):
    code, out, _ = main(capsys, "plugins", kind)
    assert code == 0 and f"\n{name}: " in "\n" + out
    code, out, _ = main(capsys, "plugins", kind, name)
    assert code == 0 and out.startswith(f"{name}: ") and line in out.splitlines()


def test_plugins_unknown_name_is_one_line(capsys):
    code, _, err = main(capsys, "plugins", "backbones", "specfix_r3dd")
    assert code == 2 and "unknown backbone 'specfix_r3dd'" in err and "did you mean 'specfix_r3d'?" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("skimbench ")


def test_every_option_has_a_help_text():
    def walk(parser: argparse.ArgumentParser, where: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction):
                yield where, action

    missing = [
        f"{where} {'/'.join(action.option_strings) or action.dest}"
        for where, action in walk(cli.build_parser(), "skimbench")
        if not action.help
    ]
    assert missing == []


def test_results_and_report_of_an_unknown_experiment(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ensure_experiment(uri, "exp_a")
    capsys.readouterr()  # MLflow's own messages on creating the store
    for argv in (["results", "nosuch"], ["report", "nosuch"]):
        code, _, err = main(capsys, *argv, "--tracking-uri", uri)
        assert code == 2, err
        assert err.strip() == f"skimbench: error: no experiment 'nosuch' in {uri} (experiments: exp_a)"
    code, _, err = main(capsys, "results", "nosuch", "--tracking-uri", "sqlite:///elsewhere/mlflow.db")
    assert code == 2 and "no tracking store" in err
    assert not (tmp_path / "elsewhere").exists()  # nothing written


def test_data_without_subcommand_names_no_internal_dest(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["data"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "data_command" not in err and "SUBCOMMAND" in err


def test_a_listing_cached_by_a_clean_process_never_hides_plugins_registered_here(capsys, tmp_path, monkeypatch):
    """The listing cache is keyed by the built-in and entry-point sources only: a process that registered
    plugins of its own (a --plugin file, this test module's spec fixtures) must not print a cached listing
    that lacks them."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    clean = subprocess.run([sys.executable, "-m", "harness.cli", "plugins", "methods"], env=env, capture_output=True)
    assert clean.returncode == 0 and list((cache / "skimbench" / "plugins").glob("*.txt"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    code, out, _ = main(capsys, "plugins", "methods")
    assert code == 0 and "\nspecfix_sampler: " in "\n" + out


def test_plan_of_the_quickstart_loads_neither_mlflow_nor_ray():
    """`skimbench plan` must answer fast: MLflow and Ray cost seconds to import and it needs neither
    (the built-in methods' claims import the report's reader of MLflow runs, which loads MLflow only
    where it reads them). A fresh interpreter, as the command runs."""
    root = Path(__file__).resolve().parent.parent
    probe = (
        "import contextlib, io, sys\n"
        "from harness import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = cli.main(['plan', 'experiments/quickstart.yaml'])\n"
        "print(code, sorted(m for m in ('mlflow', 'ray') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0", "[]"], proc.stdout
