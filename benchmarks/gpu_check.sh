#!/usr/bin/env bash
# GPU check in one command (`make gpu-check`): on one CUDA GPU, in under 8 minutes,
#   1. the gpu-marked tests;
#   2. a streaming extraction of the shared per-timestep features on the GPU (in process, then as a
#      Ray Data job with one actor holding the GPU), videos per second;
#   3. a small grid with `resources: {gpus: 0.5}` (two trials share the GPU) through `skimbench run`;
#   4. loader throughput (benchmarks/scale.py part b) with 8 workers;
# and prints its figures. Without a GPU it prints one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu-check: no CUDA GPU visible to torch: nothing to check"
  exit 0
fi
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
START=$(date +%s)
status=0
step() { echo; echo "== $1 ($(( $(date +%s) - START )) s elapsed)"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

step "1. gpu-marked tests"
timeout 180 "$PY" -m pytest -q -m gpu tests/ || status=1

step "2. streaming extraction on the GPU"
timeout 180 "$PY" - "$WORK" <<'PY' || status=1
import os, sys, time
from functools import partial
from pathlib import Path
import torch
from harness.backbones import build_backbone
from harness.data.streaming import open_frames
from harness.data.synthetic import make
from harness.features.shards import NetworkOnClips, extract
from harness.registry import DATASETS
from harness.stages import StageStore

work = Path(sys.argv[1])
folder, _ = make(size="small", variant="move4", root=str(work / "data"), resolution=112, num_train=24,
                 workers=os.cpu_count())
ds = DATASETS.get("generic")(root=str(folder))
frames = open_frames(ds, "test", StageStore(work / "stages"), budget_bytes=None)
factory = NetworkOnClips(partial(build_backbone, "r3d_18", {}, len(ds.class_names)), clip_len=4)
for label, options in [("in process", {"device": "cuda", "workers": 8}),
                       ("Ray Data, 1 actor x 1 GPU", {"ray_actors": 1, "gpus_per_actor": 1, "workers": 8})]:
    started = time.perf_counter()
    arrays = extract(work / label.replace(" ", "_").replace(",", ""), frames, factory, shard_size=32, **options)
    seconds = time.perf_counter() - started
    print(f"extraction {label}: {len(arrays)} videos, {int(arrays.lengths.sum())} r3d_18 clips at 112 px "
          f"in {seconds:.1f} s = {len(arrays) / seconds:.1f} videos/s")
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
PY

step "3. small grid with resources.gpus: 0.5 (the shared stages streamed)"
cat > "$WORK/grid.yaml" <<YAML
experiment: gpu_check
dataset:
  name: skim-digits
  params: {variant: move4, size: tiny, root: "$WORK/data"}
backbones: [resnet18]
seeds: [0]
methods:
  - name: quick_centroid
    grid: {k: [2, 4]}
  - {name: uniform, grid: {k: [2, 4]}}       # the shared classifier trained on the GPU: streamed, bf16, channels-last
evaluation: {batch_size: 8, latency_warmup: 1, latency_repeats: 3, device: auto, frame_bank_gb: 0, heavy_epochs: 1}
resources: {cpus: 1, gpus: 0.5}
tracking: {uri: "sqlite:///$WORK/mlflow.db"}
output: "$WORK/results"
YAML
timeout 240 "$PY" -m harness.cli run "$WORK/grid.yaml" --plugin tests/plugins/quick_methods.py || status=1

step "4. loader throughput"
timeout 120 "$PY" benchmarks/scale.py --parts b --videos 40 --workers 8 --root "$WORK/scale" || status=1

echo
echo "gpu-check: done in $(( $(date +%s) - START )) s, status $status (figures above)"
rm -rf "$WORK"
exit $status
