#!/usr/bin/env bash
# Evaluates the runs of scripts/train_catdog.sh: test bits/dim with 1000 images x 4 NELBO
# draws and the PF-ODE NLL on 32 images (nll.json in each run), sample grids at several
# sampler step counts, and dog<->cat translation (16 test images, SDEdit at t0 = 0.3, 0.5,
# 0.7, DDIB there and back).
# Usage (from the workspace root): bash scripts/eval_catdog.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/catdog}
bin=${TRAINER:-target/debug/trainer}
for r in cat-id cat-indm dog-indm; do
  [ -f "$runs/$r/model.safetensors" ] || { echo "skipping $r: not trained"; continue; }
  nice -n 5 "$bin" nll --run "$runs/$r" --points 32 --tol 1e-3 --nelbo-images 1000 --nelbo-draws 4 \
    > "$runs/$r/nll.log" 2>&1 || echo "nll of $r failed (see $runs/$r/nll.log)"
  for s in 10 30 100 300; do
    nice -n 5 "$bin" sample --run "$runs/$r" --sampler em --steps $s --count 16 --seed 1 \
      --out "$runs/$r/samples-em-$s.png"
  done
done
if [ -f "$runs/dog-indm/model.safetensors" ] && [ -f "$runs/cat-indm/model.safetensors" ]; then
  nice -n 5 "$bin" translate --source "$runs/dog-indm" --target "$runs/cat-indm" --count 16 \
    --t0 0.3,0.5,0.7 --steps 100 --out "$runs/dog2cat" > "$runs/dog2cat.log" 2>&1
  # SDEdit only: the DDIB cycle of dog2cat already goes cat -> dog (and costs ~40 CPU minutes).
  nice -n 5 "$bin" translate --source "$runs/cat-indm" --target "$runs/dog-indm" --count 16 \
    --t0 0.3,0.5,0.7 --steps 100 --method sdedit --out "$runs/cat2dog" > "$runs/cat2dog.log" 2>&1
fi
echo "evaluation written under $runs"
