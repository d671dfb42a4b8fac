#!/usr/bin/env bash
# Trains the browser demo's shipped 2D models and copies their weights to web/models/:
# checkerboard, 8gaussians, moons, swissroll, each as INDM (coupling flow) and as the
# identity-flow baseline, same seed and settings: the trainer's default budget (DEMO_STEPS,
# default 25 000 steps of batch 512, train only), so checkerboard-indm is the README's
# default run. All eight take about 35 minutes on an idle 2-core machine (INDM ~6 min,
# baseline ~2 min each). Shorter budgets visibly blur the samples (at 3000 steps the
# checkerboard baseline is a fuzzy square), and the demo is where people look at them.
#
#   bash scripts/demo_models.sh              # all eight
#   DEMO_STEPS=1000 bash scripts/demo_models.sh moons   # one data set, faster
#   TRAINER=target/debug/trainer bash scripts/demo_models.sh   # an already built trainer
#
# The weights are committed in web/models/ (290 KB per INDM model, 145 KB per
# baseline, 1.7 MB in all), so the demo and its tests work without training; web/tests/shipped_models.rs
# says when they no longer match the architecture the trainer writes. The committed set was
# trained with DEMO_STEPS=3000 (seed 0); retraining it at the default budget is still to do.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${DEMO_STEPS:-25000}"
seed="${DEMO_SEED:-0}"
datasets=("$@")
if [ ${#datasets[@]} -eq 0 ]; then datasets=(checkerboard 8gaussians moons swissroll); fi
# The dev profile builds the model code and its dependencies at opt-level 3 (see
# Cargo.toml), so the test build's binary trains at full speed.
if [ -n "${TRAINER:-}" ]; then
  trainer="$TRAINER"
else
  cargo build --locked -p trainer
  trainer="${CARGO_TARGET_DIR:-target}/debug/trainer"
fi
mkdir -p web/models runs/demo
start=$(date +%s)
for d in "${datasets[@]}"; do
  for pair in "indm coupling" "baseline identity"; do
    set -- $pair
    name="$d-$1"
    out="runs/demo/$name"
    want="$d $2 vp $steps $seed"
    t0=$(date +%s)
    if [ -f "$out/done" ] && [ "$(cat "$out/done")" = "$want" ]; then
      : # trained by an earlier, interrupted invocation
    elif [ -f "$out/checkpoint.safetensors" ] && [ "$(cat "$out/settings" 2>/dev/null)" = "$want" ]; then
      # Interrupted: continue from the last checkpoint (bit-identical to an uninterrupted run).
      "$trainer" train --resume "$out" --steps "$steps" --skip-eval --quiet \
        >>"runs/demo/$name.log" 2>&1 || { cat "runs/demo/$name.log" >&2; exit 1; }
      echo "$want" >"$out/done"
    else
      rm -rf "$out"
      mkdir -p "$out"
      echo "$want" >"$out/settings"
      "$trainer" train --dataset "$d" --flow "$2" --sde vp --steps "$steps" --seed "$seed" \
        --skip-eval --quiet --out "$out" >"runs/demo/$name.log" 2>&1 \
        || { cat "runs/demo/$name.log" >&2; exit 1; }
      echo "$want" >"$out/done"
    fi
    cp "$out/model.safetensors" "web/models/$name.safetensors"
    printf '%-24s %6d bytes  %4ds\n' "$name" "$(stat -c %s "web/models/$name.safetensors")" "$(( $(date +%s) - t0 ))"
  done
done
echo "trained ${#datasets[@]} data sets x 2 models in $(( $(date +%s) - start ))s (steps=$steps seed=$seed)"
