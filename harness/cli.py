"""The ``skimbench`` command line.

Every user-facing error (a malformed spec, an unknown plugin name, a cluster without the GPUs a spec
asks for) is one line on stderr and exit code 2 -- never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

EPILOG = """examples:
  skimbench plan experiments/quickstart.yaml      show the expanded grid
  skimbench run experiments/quickstart.yaml       run it through Ray, log to MLflow, write the report
  skimbench run experiments/quickstart.yaml --local   in-process, one trial after another (debugging)
  skimbench results quickstart                    the trials' metrics as a table
  skimbench report quickstart                     Pareto plots, tables and claims in results/quickstart/
  skimbench methods                               registered methods and their parameters
  skimbench new-method my_sampler                 scaffold a plugin and its test
  skimbench data make skim-digits --size small    write the built-in benchmark
  mlflow ui --backend-store-uri sqlite:///results/mlflow.db   browse the runs
"""


class UserError(Exception):
    """An error whose message is all the user needs (printed as one line, exit 2)."""


def _load_plugins(args: argparse.Namespace) -> None:
    from harness.registry import load_plugin_file

    for plugin in getattr(args, "plugin", None) or []:
        load_plugin_file(plugin)


def _load(args: argparse.Namespace):
    from harness.grid import expand
    from harness.spec import load_spec

    _load_plugins(args)
    spec = load_spec(args.spec)
    return spec, expand(spec)


# -- commands ---------------------------------------------------------------------------------
def cmd_plan(args: argparse.Namespace) -> int:
    import pandas as pd

    spec, trials = _load(args)
    rows = [{"trial": t.name, "dataset": t.dataset.name, "backbone": t.backbone.name, "seed": t.seed, "hash": t.hash}
            for t in trials]
    print(f"{spec.path}: experiment '{spec.experiment}', {len(trials)} trials "
          f"({spec.resources.get('cpus', 1)} CPU, {spec.resources.get('gpus', 0)} GPU each)")
    frame = pd.DataFrame(rows)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame.to_string(index=False, formatters={"trial": f"{{:<{frame['trial'].str.len().max()}}}".format}))
    from harness.plan import build_plan, format_plan  # noqa: PLC0415 - builds the trials' contexts (torch)

    print(format_plan(build_plan(trials, Path(spec.output) / "stages"), {t.hash: t.name for t in trials}))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.results import results_table
    from harness.runner import run_grid

    spec, trials = _load(args)
    print(f"skimbench: {len(trials)} trials of '{spec.experiment}' "
          f"{'in-process (--local)' if args.local else 'through Ray'}; tracking {spec.tracking['uri']}", file=sys.stderr)
    outcome = run_grid(spec, trials, local=args.local, address=args.address, force=args.force,
                       rerun_failed=args.rerun_failed, plugins=args.plugin or [], show_progress=not args.quiet)
    print(f"skimbench: {len(outcome.finished)} finished, {len(outcome.failed)} failed, "
          f"{len(outcome.skipped)} skipped (already finished) in {outcome.seconds:.0f}s"
          + (f"; parent run {outcome.parent_run_id}" if outcome.parent_run_id else ""),
          file=sys.stderr)
    for h, error in outcome.failed.items():
        print(f"  FAILED {h}: {error}", file=sys.stderr)
    print(results_table(outcome.tracking_uri, spec.experiment))
    if not args.no_report:
        _report(outcome.tracking_uri, [spec.experiment], Path(spec.output))
    return 1 if outcome.failed else 0


def cmd_results(args: argparse.Namespace) -> int:
    from harness.results import results_frame, results_table
    from harness.tracking import resolve_uri

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

    _report(resolve_uri(args.tracking_uri), args.experiments, Path(args.output))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from harness.registry import METHODS

    _load_plugins(args)
    for name in METHODS.names():
        cls = METHODS.get(name)
        flags = [f for f, on in (("dynamic cost", cls.dynamic), ("NOT deployable", not cls.deployable)) if on]
        budget = f"; budget knob: {cls.budget_param}" if cls.budget_param else ""
        print(f"{name}: {cls.summary or (cls.__doc__ or '').strip().splitlines()[0] if (cls.summary or cls.__doc__) else ''}"
              f"{budget}{' (' + ', '.join(flags) + ')' if flags else ''}")
        if args.verbose or args.name == name:
            print(f"    from {METHODS.origin(name)}")
        for pname, p in cls.params.items():
            print(f"    {pname} = {p.default!r}  ({p.describe_type()})  {p.doc}")
    return 0


def cmd_new_method(args: argparse.Namespace) -> int:
    from harness.scaffold import scaffold_method

    for path in scaffold_method(args.name, args.dest):
        print(f"wrote {path}")
    print(f"next: edit {args.dest}/{args.name}.py, then run `python -m pytest {args.dest}/test_{args.name}.py` and "
          f"use it with `skimbench run SPEC --plugin {args.dest}/{args.name}.py`")
    return 0


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skimbench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Fair accuracy-versus-compute benchmarks of efficient video recognition methods.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def spec_command(name: str, help_text: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("spec", help="experiment spec (YAML), e.g. experiments/quickstart.yaml")
        p.add_argument("--plugin", action="append", metavar="FILE.py", help="load a local plugin file (repeatable)")
        p.set_defaults(func=func)
        return p

    spec_command("plan", "show the trials a spec expands to and the shared stages they need, without running anything", cmd_plan)
    run = spec_command("run", "run a spec's grid (Ray Tune by default), log every trial to MLflow, write the report", cmd_run)
    run.add_argument("--local", action="store_true", help="run trials in this process, one after another (same results)")
    run.add_argument("--address", help="connect to an existing Ray cluster (else RAY_ADDRESS, else the spec's ray.address, else local)")
    run.add_argument("--force", action="store_true", help="rerun every trial, even those already FINISHED")
    run.add_argument("--rerun-failed", action="store_true", help="rerun trials whose last run FAILED (finished ones stay skipped)")
    run.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    run.add_argument("--quiet", action="store_true", help="no progress view")

    uri_default = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db")
    results = sub.add_parser("results", help="the trials' metrics of an experiment as a table")
    results.add_argument("experiment")
    results.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    results.add_argument("--tracking-uri", default=uri_default, help=f"MLflow tracking URI (default {uri_default})")
    results.set_defaults(func=cmd_results)

    report = sub.add_parser("report", help="Pareto plots, tables, cost distributions and the claims check")
    report.add_argument("experiments", nargs="+", metavar="EXPERIMENT", help="one experiment, or several to compare on the same axes")
    report.add_argument("--tracking-uri", default=uri_default, help=f"MLflow tracking URI (default {uri_default})")
    report.add_argument("--output", default="results", help="folder for the report (default results/)")
    report.set_defaults(func=cmd_report)

    methods = sub.add_parser("methods", help="registered methods with their parameters and defaults")
    methods.add_argument("name", nargs="?", help="show where one method comes from")
    methods.add_argument("--plugin", action="append", metavar="FILE.py", help="load a local plugin file (repeatable)")
    methods.add_argument("-v", "--verbose", action="store_true", help="also show each method's module")
    methods.set_defaults(func=cmd_methods)

    new = sub.add_parser("new-method", help="scaffold a working method plugin and its test")
    new.add_argument("name", help="method name (a Python identifier)")
    new.add_argument("--dest", default=".", help="folder to write NAME.py and test_NAME.py into")
    new.set_defaults(func=cmd_new_method)

    try:
        from harness.data.commands import add_commands as add_data_commands
    except ImportError:
        pass
    else:
        add_data_commands(sub)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    from harness.registry import RegistryError

    _quiet_libraries()

    args = build_parser().parse_args(argv)
    try:
        from harness.spec import SpecError
    except ImportError:  # pragma: no cover
        SpecError = UserError  # type: ignore[misc,assignment]
    from harness.launchers import LaunchError
    from harness.report.collect import ReportError
    from harness.scaffold import ScaffoldError

    try:
        return int(args.func(args) or 0)
    except SpecError as exc:  # already "FILE:LINE: FIELD: message"
        print(exc, file=sys.stderr)
        return 2
    except (RegistryError, LaunchError, ScaffoldError, ReportError, UserError, FileExistsError, FileNotFoundError) as exc:
        print(f"skimbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `skimbench plan ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("skimbench: interrupted; finished trials are kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
