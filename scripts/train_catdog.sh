#!/usr/bin/env bash
# Trains the CIFAR-10 cat/dog image models on the CPU, as far as a budget allows:
#   1. cat-id:   the linear baseline (identity flow, U-Net score net) on cats
#   2. cat-indm: INDM (Glow-lite flow) on cats, score net warm-started from cat-id (spec 2.5)
#   3. cat-id continues to the same total number of score-net steps as cat-indm
#      (warm start + INDM steps): the equal-budget baseline
#   4. dog-indm: INDM on dogs, warm-started from the cat baseline's score net
# Every run checkpoints; re-running the script resumes whatever is unfinished.
# Usage (from the workspace root): bash scripts/train_catdog.sh [STEPS_BASE] [STEPS_INDM] [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-500}
indm=${2:-500}
runs=${3:-runs/catdog}
bin=${TRAINER:-target/debug/trainer}
common=(--quiet --batch 64 --lr-score 5e-4 --checkpoint-every 50
        --nelbo-images 200 --nll-points 16 --sample-count 36 --sample-steps 100)
mkdir -p "$runs"
step_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" "$1/summary.json" 2>/dev/null || echo 0; }
train() { # dir steps args...
  local dir=$1 steps=$2; shift 2
  if [ "$(step_of "$dir")" = "$steps" ]; then echo "$dir: done ($steps steps)"; return; fi
  if [ -f "$dir/checkpoint.safetensors" ]; then
    nice -n 5 "$bin" train --resume "$dir" --steps "$steps" --quiet
  else
    nice -n 5 "$bin" train --out "$dir" --steps "$steps" "${common[@]}" "$@"
  fi
}
t0=$(date +%s)
train "$runs/cat-id" "$base" --class cat --flow identity
[ -d "$runs/cat-id-at-$base" ] || cp -r "$runs/cat-id" "$runs/cat-id-at-$base"
train "$runs/cat-indm" "$indm" --class cat --flow glow --warm-start "$runs/cat-id-at-$base"
train "$runs/dog-indm" "$indm" --class dog --flow glow --warm-start "$runs/cat-id-at-$base"
train "$runs/cat-id" "$((base + indm))"
echo "all runs finished in $(( $(date +%s) - t0 )) s"
