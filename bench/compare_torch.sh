#!/usr/bin/env bash
# Back-to-back training speed of the default 2D INDM model (71,186 parameters, batch 512):
# burn flex, burn ndarray and the PyTorch twin (bench/torch_indm2d.py), same thread count.
# Usage: bench/compare_torch.sh [threads] [rounds]   (needs python3 with torch importable,
# or PYTHON=/path/to/venv/bin/python). Prints one JSON line per measurement and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
rounds="${2:-2}"
py="${PYTHON:-python3}"
cargo build --quiet --locked -p trainer
exe="${CARGO_TARGET_DIR:-target}/debug/trainer"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
out=$(mktemp)
for r in $(seq "$rounds"); do
  "$exe" bench --backend flex --steps 300 --warmup 30 | tee -a "$out"
  "$exe" bench --backend ndarray --steps 300 --warmup 30 | tee -a "$out"
  "$py" bench/torch_indm2d.py --steps 300 --warmup 30 --threads "$threads" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = collections.defaultdict(list)
for r in rows:
    by[r["framework"]].append(r["steps_per_second"])
torch = max(by.get("pytorch", [float("nan")]))
for k, v in by.items():
    best = max(v)
    print(f"{k:14s} best {best:7.1f} steps/s  runs {['%.1f' % x for x in v]}  ratio vs PyTorch {best / torch:.2f}")
PY
uptime
