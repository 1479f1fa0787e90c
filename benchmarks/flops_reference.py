"""Reference table: each built-in backbone at its reference shape -- our fvcore GFLOPs, the
published figure and their ratio -- and, for each dynamic method with a case in
``tests/test_flops_proof.py::PROOF_CASES``, the mean accounted GFLOPs per video next to the mean
brute-force count on the same videos.

    .venv/bin/python benchmarks/flops_reference.py [--names resnet18,r3d_18] [--latency] [--device auto]

``--latency`` adds the measured batch-1 latency at the reference shape (FLOPs do not predict speed).
``--methods all`` (or a comma-separated list) also builds each registered dynamic method the way a
trial does on the built-in benchmark (skim-digits, size tiny), trains it briefly (1 epoch) and
compares accounted and brute-force GFLOPs on 10 test videos: minutes on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.backbones import build_backbone  # noqa: E402
from harness.compute import FLOP_CONVENTION, count_flops, verify_accounting  # noqa: E402
from harness.registry import BACKBONES  # noqa: E402
from harness.runtime import measure_latency, pick_device  # noqa: E402

CLASSES_2D, CLASSES_VIDEO = 1000, 400  # the published models' classifier widths (ImageNet, Kinetics)


def backbone_rows(names: list[str], latency: bool, device: torch.device) -> list[dict]:
    rows = []
    for name in names:
        cls = BACKBONES.get(name)
        model = build_backbone(name, {}, CLASSES_2D if cls.input_kind == "2d" else CLASSES_VIDEO)
        shape = model.reference_input_shape()
        count = count_flops(model, torch.randn(shape))
        row = {
            "backbone": name,
            "shape": "x".join(map(str, shape[1:])),
            "gflops": count.gflops,
            "published": cls.published_gflops,
            "params_m": count.params / 1e6,
            "source": cls.published_source,
        }
        row["ratio"] = count.gflops / cls.published_gflops if cls.published_gflops else float("nan")
        if latency:
            model = model.to(device).eval()
            x = torch.randn(shape, device=device)
            row["latency_ms"] = measure_latency(model, (x,), warmup=2, repeats=5, device=device)["latency_ms"]
        rows.append(row)
    return rows


def _proof_module():
    """tests/test_flops_proof.py: where the proof cases live."""
    if "flops_proof_cases" not in sys.modules:
        spec = importlib.util.spec_from_file_location("flops_proof_cases", ROOT / "tests" / "test_flops_proof.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules["flops_proof_cases"]


def dynamic_rows() -> list[dict]:
    rows = []
    for name, case in sorted(_proof_module().PROOF_CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            method, records = case(Path(tmp))
            pairs = np.asarray(verify_accounting(method, records))
        rows.append(_pair_row(name, pairs))
    return rows


def method_rows(names: list[str], videos: int = 10) -> list[dict]:
    """Each method built, trained 1 epoch and proven on skim-digits tiny, as the generic proof does."""
    from harness.data.synthetic import make
    from harness.stages import StageStore

    build_small_method = _proof_module().build_small_method
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "skim-digits"
        make(size="tiny", variant="longrange", seed=0, root=str(root))
        store = StageStore(Path(tmp) / "stages")
        for name in names:
            try:
                ctx, method = build_small_method(name, root, store, Path(tmp) / "work")
                pairs = np.asarray(verify_accounting(method, ctx.dataset.split("test")[:videos]))
            except Exception as exc:  # one broken method must not hide the others' rows
                print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            rows.append(_pair_row(name, pairs))
    return rows


def _pair_row(name: str, pairs: np.ndarray) -> dict:
    return {
        "method": name,
        "videos": len(pairs),
        "accounted": pairs[:, 0].mean(),
        "brute": pairs[:, 1].mean(),
        "max_rel_err": float(np.max(np.abs(pairs[:, 0] - pairs[:, 1]) / pairs[:, 1])),
        "min": pairs[:, 0].min(),
        "max": pairs[:, 0].max(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default="", help="comma-separated backbones (default: all built-ins)")
    parser.add_argument("--latency", action="store_true", help="also time batch-1 inference at the reference shape")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-dynamic", action="store_true")
    parser.add_argument(
        "--methods", default="", help="'all' or comma-separated dynamic methods to build, train briefly and prove"
    )
    parser.add_argument("--skip-backbones", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.names.split(",") if n] or [
        n for n in BACKBONES.names() if BACKBONES.origin(n).startswith("harness.")
    ]
    device = pick_device(args.device)

    print(FLOP_CONVENTION)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}\n")
    if not args.skip_backbones:
        rows = backbone_rows(names, args.latency, device)
        header = "| backbone | input (CxTxHxW) | GFLOPs | published | ratio | params (M) |" + (
            " latency ms |" if args.latency else ""
        )
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in rows:
            published = f"{r['published']:.2f}" if r["published"] else "-"
            ratio = f"{r['ratio']:.4f}" if r["published"] else "-"
            line = (
                f"| {r['backbone']} | {r['shape']} | {r['gflops']:.3f} | {published} | {ratio} | {r['params_m']:.2f} |"
            )
            print(line + (f" {r['latency_ms']:.1f} |" if args.latency else ""))
        print("\nsources: " + "; ".join(f"{r['backbone']}: {r['source']}" for r in rows if r["source"]))

    if not args.skip_dynamic:
        print(
            "\n| dynamic method | videos | accounted mean GFLOPs | brute-force mean GFLOPs | max rel. error | per-video min..max |"  # noqa: E501
        )
        print("|---|---|---|---|---|---|")
        from harness.registry import METHODS

        dynamic = [n for n in METHODS.names() if getattr(METHODS.get(n), "dynamic", False)]
        chosen = dynamic if args.methods == "all" else [n for n in args.methods.split(",") if n]
        for r in dynamic_rows() + method_rows(chosen):
            print(
                f"| {r['method']} | {r['videos']} | {r['accounted']:.6f} | {r['brute']:.6f} | {r['max_rel_err']:.2e} | "
                f"{r['min']:.6f}..{r['max']:.6f} |"
            )


if __name__ == "__main__":
    main()
