"""``skimbench data check`` and ``skimbench data make``.

``data check SPEC_OR_DATASET`` scans every video of every split in parallel (threads: the decoders
release the GIL) with a progress bar, and lists each unreadable file with its reason; exit code 1
if any file is unreadable, so it can gate a CI job or a cluster submission.
``data make skim-digits --size small`` writes the built-in benchmark with a progress bar.
A dataset that cannot be read as given (unknown or out-of-range parameter, missing or empty root,
missing annotation file, empty split) is one line on stderr and exit code 2, before anything is
scanned or written.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.data.dataset import DatasetError
from harness.params import ParamError


def _parse_params(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise DatasetError(f"--param expects KEY=VALUE, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _build_datasets(target: str, params: dict[str, Any], plugins: list[str] | None = None) -> list[Any]:
    from harness.params import resolve_params, validate
    from harness.registry import DATASETS, load_plugin_file

    for plugin in plugins or []:
        load_plugin_file(plugin)
    if target.endswith((".yaml", ".yml")) and Path(target).is_file():
        from harness.spec import load_spec

        refs = [(ref.name, {**ref.params, **params}) for ref in load_spec(target).datasets]
    else:
        refs = [(target, params)]
    datasets = []
    for name, given in refs:
        cls = DATASETS.get(name)
        given = validate(f"dataset '{name}'", cls.params, given)  # ParamError: one line, exit 2
        datasets.append(cls(**resolve_params(cls.params, given)))
    return datasets


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


def check_dataset(dataset: Any, workers: int, full: bool, min_frames: int, backend: str, console: Console) -> list[dict[str, str]]:
    """Scan every video of every split; return one row per unreadable file."""
    from harness.data.decoding import VideoDecodeError, check_video

    items: dict[str, tuple[str, str]] = {}  # path -> (split, video_id); a file listed by two splits is checked once
    for split in dataset.split_names():
        for record in dataset.split(split):
            items.setdefault(record.path, (split, record.video_id))

    def check(path: str) -> dict[str, str] | None:
        try:
            check_video(path, min_frames=min_frames, backend=backend, full=full)
            return None
        except VideoDecodeError as exc:
            split, video_id = items[path]
            return {"split": split, "video_id": video_id, "path": path, "reason": exc.reason, "detail": exc.detail}

    bad = []
    with _progress(console) as progress, ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(f"checking {dataset.name}", total=len(items))
        for result in pool.map(check, sorted(items)):
            progress.advance(task)
            if result:
                bad.append(result)
    console.print(f"{dataset.name}: {len(items)} videos checked, {len(bad)} unreadable")
    for row in bad:
        console.print(f"  [{row['split']}] {row['path']}: {row['reason']}" + (f" ({row['detail']})" if row["detail"] else ""),
                      markup=False, highlight=False, soft_wrap=True)
    return bad


def cmd_check(args: argparse.Namespace) -> int:
    console = Console(stderr=False, highlight=False)
    try:
        datasets = _build_datasets(args.target, _parse_params(args.param), args.plugin)
        for dataset in datasets:  # every split parsed before anything is scanned: a bad root fails first
            for split in dataset.split_names():
                dataset.split(split)
    except (DatasetError, ParamError) as exc:
        print(f"skimbench: error: {exc}", file=sys.stderr)
        return 2
    bad = []
    for dataset in datasets:
        for note in getattr(dataset, "notes", []):
            console.print(f"{dataset.name}: {note}", markup=False, highlight=False, soft_wrap=True)
        bad += check_dataset(dataset, args.workers, args.full, args.min_frames, args.backend, console)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["split", "video_id", "path", "reason", "detail"])
            writer.writeheader()
            writer.writerows(bad)
    return 1 if bad else 0


GENERATOR_KNOBS = ("informative_fraction", "num_segments", "num_frames", "resolution", "num_train", "num_test")


def _generator_config(args: argparse.Namespace) -> dict[str, Any]:
    """skim-digits' configuration from the command line; a bad knob is a DatasetError (one line, exit 2)."""
    from harness.data import synthetic

    knobs = _parse_params(args.param)
    unknown = sorted(set(knobs) - set(GENERATOR_KNOBS))
    if unknown:
        raise DatasetError(f"skim-digits has no generator knob(s) {unknown}; it has {list(GENERATOR_KNOBS)}")
    try:
        return synthetic.resolve_config(args.variant, args.size, args.seed, **knobs)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"skim-digits: {exc}") from None


def cmd_make(args: argparse.Namespace) -> int:
    from harness.data import synthetic

    try:
        if args.name != "skim-digits":
            raise DatasetError(f"only the built-in 'skim-digits' can be made, not '{args.name}'")
        cfg = _generator_config(args)
    except DatasetError as exc:
        print(f"skimbench: error: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    with _progress(console) as progress:
        task = progress.add_task(f"skim-digits {args.variant} {args.size}", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        knobs = {k: v for k, v in cfg.items() if k in GENERATOR_KNOBS}
        folder, seconds = synthetic.make(size=args.size, variant=args.variant, seed=args.seed, root=args.root,
                                         progress=update, workers=args.workers, **knobs)
    state = f"generated in {seconds:.1f} s" if seconds else "already present"
    print(f"skim-digits {args.variant}/{args.size} seed {args.seed}: {folder} ({state})")
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from harness.data import coverage, synthetic

    try:
        cfg = _generator_config(args)
        ks = [int(k) for k in args.k.split(",")]
        if min(ks) < 1:
            raise ValueError
    except ValueError:
        print(f"skimbench: error: --k expects positive integers separated by commas, got '{args.k}'", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"skimbench: error: {exc}", file=sys.stderr)
        return 2
    folder = synthetic.ensure_generated(args.root, cfg)
    relevances = coverage.split_relevance(folder, args.split)
    print(f"skim-digits {args.variant}/{args.size} seed {args.seed}, {args.split} split: {len(relevances)} videos "
          f"of {cfg['num_frames'] // synthetic.CLIP_LEN} clips ({folder})")
    print(coverage.format_rows(coverage.coverage_rows(relevances, ks)))
    return 0


def add_commands(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="check datasets for unreadable videos; generate the built-in benchmark")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    check = sub.add_parser("check", help="scan a dataset (a spec's or a registered one) and report every unreadable file")
    check.add_argument("target", metavar="SPEC_OR_DATASET", help="a spec YAML file, or a registered dataset name")
    check.add_argument("--param", action="append", metavar="KEY=VALUE",
                       help="dataset parameter, checked against its declaration (repeatable)")
    check.add_argument("--plugin", action="append", metavar="FILE.py", help="load a local plugin file (repeatable)")
    check.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel checks (default: CPU count)")
    check.add_argument("--full", action="store_true", help="decode every frame (default: open, decode first and last frames)")
    check.add_argument("--min-frames", type=int, default=1, help="report videos with fewer frames as too short")
    check.add_argument("--backend", default="auto", choices=("auto", "decord", "pyav"),
                       help="video decoder (default auto: decord, PyAV where decord fails)")
    check.add_argument("--csv", metavar="FILE", help="also write the unreadable files to a CSV")
    check.set_defaults(func=cmd_check)

    make = sub.add_parser("make", help="write the built-in benchmark skim-digits")
    make.add_argument("name", help="skim-digits")
    make.add_argument("--size", default="small", choices=("tiny", "small", "full"),
                      help="how many videos (default small)")
    make.add_argument("--variant", default="longrange", choices=("move4", "longrange", "multilabel", "digit4"),
                      help="which benchmark: move4 is the quickstart's (default longrange)")
    make.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    make.add_argument("--root", default="data/skim-digits", help="folder to write into (default data/skim-digits)")
    make.add_argument("--workers", type=int, default=None, help="processes (default: 1 for tiny/small, all CPUs for full)")
    make.add_argument("--param", action="append", metavar="KEY=VALUE",
                      help="generator knob: informative_fraction, num_segments, num_frames, resolution, num_train, num_test")
    make.set_defaults(func=cmd_make)

    cover = sub.add_parser("coverage",
                           help="what uniform, random and dense sampling see of skim-digits' informative clips")
    cover.add_argument("--size", default="small", choices=("tiny", "small", "full"),
                       help="benchmark size, as for data make (default: small)")
    cover.add_argument("--variant", default="move4", choices=("move4", "longrange", "multilabel", "digit4"),
                       help="benchmark variant (default: move4, the quickstart's)")
    cover.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    cover.add_argument("--root", default="data/skim-digits",
                       help="where the benchmark is (generated there if missing; default: data/skim-digits)")
    cover.add_argument("--split", default="test", choices=("train", "test"), help="split to measure (default: test)")
    cover.add_argument("--k", default="1,2,3,4,6,8,12", help="comma-separated numbers of clips")
    cover.add_argument("--param", action="append", metavar="KEY=VALUE", help="generator knob, as for data make")
    cover.set_defaults(func=cmd_coverage)


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.data.commands ...`` (the same as ``skimbench data ...``)."""
    parser = argparse.ArgumentParser(prog="skimbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    code = args.func(args)
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
