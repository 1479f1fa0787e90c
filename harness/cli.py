"""The ``skimbench`` command line.

Every user-facing error (a malformed spec or override, an unknown plugin name, a broken plugin file,
an unreachable tracking server or Ray cluster, a cluster without the GPUs a spec asks for) is one
line on stderr and exit code 2 -- never a traceback -- and nothing is written before it.

Commands import what they need inside their function: ``plan`` and ``plugins`` must answer fast and
never load Ray or MLflow (``python -X importtime -m harness.cli plan SPEC`` shows what is loaded).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

from harness.registry import RegistryError
from harness.scaffold import ScaffoldError
from harness.yamlfile import SpecError

EPILOG = """examples:
  skimbench plan experiments/quickstart.yaml      show the expanded grid
  skimbench run experiments/quickstart.yaml       run it through Ray, log to MLflow, write the report
  skimbench run experiments/quickstart.yaml --local   in-process, one trial after another (debugging)
  skimbench results quickstart                    the trials' metrics as a table
  skimbench report quickstart                     Pareto plots, tables and claims in results/quickstart/
  skimbench run SPEC --only uniform --seeds 0,1 --set evaluation.batch_size=16   a subset, overridden
  skimbench plugins methods uniform               one method's parameters (also: datasets, backbones)
  skimbench new-method my_sampler [--package]     scaffold a plugin and its test (or an installable package)
  skimbench data make skim-digits --variant move4 --size small   write the quickstart's benchmark
  mlflow ui --backend-store-uri sqlite:///results/mlflow.db   browse the runs
"""


_EXIT_CODE = [1]  # what ``main`` returned, for ``_exit_without_teardown``


class UserError(Exception):
    """An error whose message is all the user needs (printed as one line, exit 2)."""


def _load_plugins(args: argparse.Namespace) -> None:
    from harness.registry import load_plugin_file

    for plugin in getattr(args, "plugin", None) or []:
        load_plugin_file(plugin)


def _overrides(args: argparse.Namespace) -> dict:
    """``--set KEY=VALUE`` (repeatable) and ``--seeds 0,1,2`` as spec overrides, validated with the spec."""
    from harness.spec import parse_override

    overrides = dict(parse_override(text) for text in args.set or [])
    if args.seeds is not None:
        items = [item.strip() for item in args.seeds.split(",")]
        overrides["seeds"] = [int(item) if item.lstrip("-").isdigit() else item for item in items]
    return overrides


def _load(args: argparse.Namespace):
    from harness.grid import check_distinct_trials, expand
    from harness.spec import load_spec, select_methods

    _load_plugins(args)
    spec = load_spec(args.spec, overrides=_overrides(args))
    if args.only:
        spec = select_methods(spec, [name.strip() for text in args.only for name in text.split(",") if name.strip()])
    check_distinct_trials(spec)
    return spec, expand(spec)


# -- commands ---------------------------------------------------------------------------------
def cmd_plan(args: argparse.Namespace) -> int:
    spec, trials = _load(args)
    rows = [
        {"trial": t.name, "dataset": t.dataset.name, "backbone": t.backbone.name, "seed": str(t.seed), "hash": t.hash}
        for t in trials
    ]
    print(
        f"{spec.path}: experiment '{spec.experiment}', {len(trials)} trials "
        f"({spec.resources['cpus']:g} CPU, {spec.resources['gpus']:g} GPU each)"
    )
    print(_text_table(rows))
    from harness.plan import build_plan, format_plan  # noqa: PLC0415 - builds the trials' contexts (torch)

    print(format_plan(build_plan(trials, Path(spec.output) / "stages"), {t.hash: t.name for t in trials}))
    return 0


def _text_table(rows: list[dict[str, str]]) -> str:
    """Rows as right-aligned columns (what ``plan`` prints; pandas would cost a second to import)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max([len(c)] + [len(row.get(c, "")) for row in rows]) for c in columns}

    def line(cells: dict[str, str]) -> str:  # the first column (the trial's name) reads left-aligned
        return " ".join(
            cells.get(c, "").ljust(widths[c]) if i == 0 else cells.get(c, "").rjust(widths[c])
            for i, c in enumerate(columns)
        )

    lines = [line({c: c for c in columns})] + [line(row) for row in rows]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.preflight import check_reachable

    spec, trials = _load(args)
    check_reachable(spec, args.address, args.connect_timeout)  # before anything is written

    from harness.results import results_table  # slow (Ray, MLflow): after the checks
    from harness.runner import run_grid

    print(
        f"skimbench: {len(trials)} trials of '{spec.experiment}' "
        f"{'in-process (--local)' if args.local else 'through Ray'}; tracking {spec.tracking['uri']}",
        file=sys.stderr,
    )
    outcome = run_grid(
        spec,
        trials,
        local=args.local,
        address=args.address,
        force=args.force,
        rerun_failed=args.rerun_failed,
        plugins=args.plugin or [],
        show_progress=not args.quiet,
    )
    for line in outcome.summary():
        print(line, file=sys.stderr)
    print(results_table(outcome.tracking_uri, spec.experiment))
    if not args.no_report:
        _report(outcome.tracking_uri, [spec.experiment], Path(spec.output))
    return 1 if outcome.failed else 0


def _check_experiments(uri: str, names: Sequence[str]) -> None:
    """Refuse experiments that the tracking store does not have, listing those it has."""
    from harness.preflight import check_tracking
    from harness.tracking import client, resolve_uri

    check_tracking(uri, float(os.environ.get("SKIMBENCH_CONNECT_TIMEOUT", "10")))
    # checked before resolve_uri, which creates the store's folder
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise UserError(f"no tracking store at {uri}: run a spec first, or give --tracking-uri")
    uri = resolve_uri(uri)
    try:
        known = sorted(e.name for e in client(uri).search_experiments() if e.name != "Default")
    except Exception as exc:  # noqa: BLE001 - e.g. a server that is not MLflow: one line, not its traceback
        first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise UserError(f"cannot list the experiments of {uri}: {first_line}") from None
    for name in names:
        if name not in known:
            raise UserError(f"no experiment '{name}' in {uri} (experiments: {', '.join(known) or 'none'})")


def cmd_results(args: argparse.Namespace) -> int:
    from harness.results import results_frame, results_table
    from harness.tracking import resolve_uri

    _check_experiments(args.tracking_uri, [args.experiment])
    uri = resolve_uri(args.tracking_uri)
    if args.csv:
        frame = results_frame(uri, args.experiment)
        frame.to_csv(args.csv, index=False)
        print(f"wrote {len(frame)} trials to {args.csv}", file=sys.stderr)
    print(results_table(uri, args.experiment))
    return 0


def _ground_truth(uri: str, experiments: list[str]):
    """Relevance and frames of the datasets the experiments' trials used (for selection quality)."""
    import json

    import numpy as np
    from mlflow.tracking import MlflowClient

    from harness.data.decoding import open_video, read_frames
    from harness.tracking import trial_runs
    from harness.trial import Trial, build_dataset

    records, seen = {}, set()
    for experiment in experiments:
        for run in trial_runs(uri, experiment):
            # the logged dataset params identify the dataset: one config download per distinct dataset
            key = json.dumps({k: v for k, v in run.data.params.items() if k.startswith("dataset.")}, sort_keys=True)
            if run.info.status != "FINISHED" or key in seen:
                continue
            seen.add(key)
            cfg = json.loads(open(MlflowClient(uri).download_artifacts(run.info.run_id, "config.json")).read())
            try:
                records.update({r.video_id: r for r in build_dataset(Trial.from_dict(cfg)).split("test")})
            except Exception as exc:  # noqa: BLE001 - the dataset may not be on this machine
                print(f"skimbench: no ground truth for {cfg['dataset']['name']}: {exc}", file=sys.stderr)
    relevance = {v: np.asarray(r.relevance) for v, r in records.items() if r.relevance is not None}

    def get_frames(video_id: str):
        path = records[video_id].path
        return read_frames(path, list(range(len(open_video(path)))))

    return relevance, get_frames


def _report(uri: str, experiments: list[str], output: Path) -> Path:
    from harness.report.build import build_report, report_dir

    print(f"skimbench: writing the report of {', '.join(experiments)} (plots, tables, claims; ~20 s)", file=sys.stderr)
    relevance, get_frames = _ground_truth(uri, experiments)
    path = build_report(uri, experiments, report_dir(output, experiments), get_frames=get_frames, relevance=relevance)
    print(f"skimbench: report written to {path}", file=sys.stderr)
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from harness.tracking import resolve_uri

    _check_experiments(args.tracking_uri, args.experiments)
    uri = resolve_uri(args.tracking_uri)
    _report(uri, args.experiments, Path(args.output))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """``plugins {methods,datasets,backbones} [NAME]`` (``methods [NAME]`` is the same as ``plugins methods``).

    Listing imports every plugin module, and with them torch (seconds), while the listing depends only
    on the code: it is printed from a cache keyed by ``registry.sources_fingerprint`` (any edit, install
    or new entry point changes the key), except with ``--plugin`` files or plugins registered in this
    process from elsewhere, whose sources the key does not track."""
    from harness.registry import registered_elsewhere, sources_fingerprint

    cache = None
    if not getattr(args, "plugin", None) and not registered_elsewhere():
        kind, verbose = getattr(args, "kind", "methods"), bool(args.verbose or args.name)
        key = f"{sources_fingerprint()}-{kind}-{args.name or ''}-{int(verbose)}"
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skimbench" / "plugins"
        cache = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.txt"
        if cache.exists():
            print(cache.read_text(), end="")
            return 0
    text = _plugins_text(args)
    print(text, end="")
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, cache)
        except OSError:
            pass  # an unwritable cache only costs the next listing its imports
    return 0


def _plugins_text(args: argparse.Namespace) -> str:
    from harness.registry import BACKBONES, DATASETS, METHODS

    _load_plugins(args)
    registry = {"methods": METHODS, "datasets": DATASETS, "backbones": BACKBONES}[getattr(args, "kind", "methods")]
    names = [args.name] if args.name else registry.names()
    lines = []
    for name in names:
        cls = registry.get(name)  # an unknown name: one line with the registered ones
        flags = [
            f
            for f, on in (
                ("dynamic cost", getattr(cls, "dynamic", False)),
                ("NOT deployable", not getattr(cls, "deployable", True)),
            )
            if on
        ]
        budget = f"; budget knob: {cls.budget_param}" if getattr(cls, "budget_param", None) else ""
        summary = getattr(cls, "summary", "") or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        lines.append(f"{name}: {summary}{budget}{' (' + ', '.join(flags) + ')' if flags else ''}")
        if args.verbose or args.name:
            lines.append(f"    from {registry.origin(name)}")
        for pname, p in getattr(cls, "params", {}).items():
            lines.append(f"    {pname} = {p.default!r}  ({p.describe_type()})  {p.doc}")
    return "".join(line + "\n" for line in lines)


def cmd_new_method(args: argparse.Namespace) -> int:
    from harness.scaffold import scaffold_method

    written = scaffold_method(args.name, args.dest, package=args.package)
    for path in written:
        print(f"wrote {path}")
    folder = written[0].parent
    if args.package:
        print(
            f"next: `pip install -e {folder}`, then `python -m pytest {folder}` and "
            f"`skimbench plugins methods {args.name}`; specs use it without --plugin"
        )
    else:
        print(
            f"next: edit {folder}/{args.name}.py, then run `python -m pytest {folder}/test_{args.name}.py` and "
            f"use it with `skimbench run SPEC --plugin {folder}/{args.name}.py`"
        )
    return 0


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skimbench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Fair accuracy-versus-compute benchmarks of efficient video recognition methods.",
    )
    parser.add_argument(
        "--version", action="version", version=f"skimbench {_version()}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def plugin_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugin", action="append", metavar="FILE.py", help="load a local plugin file (repeatable)")

    def spec_command(name: str, help_text: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("spec", help="experiment spec (YAML), e.g. experiments/quickstart.yaml")
        plugin_option(p)
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a spec field, VALUE read as YAML, checked like the file "
            "(e.g. evaluation.batch_size=16; repeatable)",
        )
        p.add_argument(
            "--only",
            action="append",
            metavar="NAME[,NAME]",
            help="keep only the method entries with these names or labels (repeatable)",
        )
        p.add_argument("--seeds", metavar="S[,S]", help="replace the spec's seeds, e.g. 0,1,2")
        p.set_defaults(func=func)
        return p

    spec_command("plan", "show the trials a spec expands to and the shared stages they need", cmd_plan)
    run = spec_command(
        "run", "run a spec's grid (on Ray by default), log every trial to MLflow, write the report", cmd_run
    )
    run.add_argument(
        "--local", action="store_true", help="run trials in this process, one after another (same results)"
    )
    run.add_argument(
        "--address",
        help="connect to an existing Ray cluster, HOST:PORT or auto "
        "(else the spec's ray.address, else RAY_ADDRESS, else a local Ray)",
    )
    run.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        default=float(os.environ.get("SKIMBENCH_CONNECT_TIMEOUT", "10")),
        help="give up reaching the tracking server or Ray cluster after this long "
        "(default 10, or SKIMBENCH_CONNECT_TIMEOUT)",
    )
    run.add_argument("--force", action="store_true", help="rerun every trial, even those already FINISHED")
    run.add_argument(
        "--rerun-failed", action="store_true", help="rerun trials whose last run FAILED (finished ones stay skipped)"
    )
    run.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    run.add_argument("--quiet", action="store_true", help="no progress view")

    uri_default = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db")
    results = sub.add_parser("results", help="the trials' metrics of an experiment as a table")
    results.add_argument("experiment", help="experiment name (the spec's experiment or tracking.experiment)")
    results.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    results.add_argument("--tracking-uri", default=uri_default, help=f"MLflow tracking URI (default {uri_default})")
    results.set_defaults(func=cmd_results)

    report = sub.add_parser("report", help="Pareto plots, tables, cost distributions and the claims check")
    report.add_argument(
        "experiments", nargs="+", metavar="EXPERIMENT", help="one experiment, or several to compare on the same axes"
    )
    report.add_argument("--tracking-uri", default=uri_default, help=f"MLflow tracking URI (default {uri_default})")
    report.add_argument("--output", default="results", help="folder for the report (default results/)")
    report.set_defaults(func=cmd_report)

    plugins = sub.add_parser("plugins", help="registered methods, datasets or backbones with their parameters")
    plugins.add_argument("kind", choices=("methods", "datasets", "backbones"), help="which registry to list")
    plugins.add_argument("name", nargs="?", help="show only this one, and where it comes from")
    plugin_option(plugins)
    plugins.add_argument("-v", "--verbose", action="store_true", help="also show each plugin's module")
    plugins.set_defaults(func=cmd_plugins)

    methods = sub.add_parser("methods", help="registered methods with their parameters (= plugins methods)")
    methods.add_argument("name", nargs="?", help="show only this method, and where it comes from")
    plugin_option(methods)
    methods.add_argument("-v", "--verbose", action="store_true", help="also show each method's module")
    methods.set_defaults(func=cmd_plugins, kind="methods")

    new = sub.add_parser("new-method", help="scaffold a working method plugin and its test")
    new.add_argument("name", help="method name (a Python identifier)")
    new.add_argument("--dest", default=".", help="folder to write NAME.py and test_NAME.py into (default: here)")
    new.add_argument(
        "--package",
        action="store_true",
        help="write an installable distribution DEST/skimbench-NAME/ (pyproject with the entry point)",
    )
    new.set_defaults(func=cmd_new_method)

    try:
        from harness.data.commands import add_commands as add_data_commands
    except ImportError:
        pass
    else:
        add_data_commands(sub)
    return parser


def _version() -> str:
    try:
        return version("skimbench")
    except PackageNotFoundError:  # run from a checkout that was never installed
        from harness import __version__

        return __version__


def _quiet_libraries() -> None:
    """MLflow and alembic log schema migrations at INFO on every fresh store: noise for users."""
    import logging
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # inherited by Ray workers too
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per artifact read
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is all the user needs. Those of slow modules count only once the
    module is loaded (it must have been, to raise them): the fast commands never import them."""
    errors: list[type[BaseException]] = [RegistryError, ScaffoldError, UserError, FileExistsError, FileNotFoundError]
    for module, name in (
        ("harness.launchers", "LaunchError"),
        ("harness.report.collect", "ReportError"),
        ("harness.params", "ParamError"),
        ("harness.preflight", "PreflightError"),
        ("harness.data.dataset", "DatasetError"),
    ):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command itself (not a caller in this process, such as a test)
        atexit.register(_exit_without_teardown)  # registered first: runs after every other exit handler
    code = 1  # an uncaught exception (its traceback is printed)
    try:
        code = _main(argv)
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    finally:
        _EXIT_CODE[0] = code
    return code


def _main(argv: Sequence[str] | None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecError as exc:  # already "FILE:LINE: FIELD: message"
        print(exc, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `skimbench plan ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("skimbench: interrupted; finished trials are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"skimbench: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def _exit_without_teardown() -> None:
    """End the command once the exit handlers (Ray's disconnect, MLflow's, logging's) have run, without
    the interpreter's teardown of every module, which takes seconds once torch, MLflow and Ray are loaded
    and does nothing a finished command needs."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_EXIT_CODE[0])


if __name__ == "__main__":
    sys.exit(main())
