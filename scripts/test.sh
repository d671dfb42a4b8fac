#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite: formatting, lints,
# unit and end-to-end tests, and the kill/resume crash test.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Mesa's Vulkan loader warns once per device when this is unset (headless machines).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
bash scripts/setup.sh

step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit, property, GPU parity on lavapipe, end-to-end)"
# A missing GPU adapter fails the parity tests here instead of skipping them.
INDM_REQUIRE_GPU=1 cargo test --locked --workspace

step "kill/resume crash test"
python3 tests/kill_resume.py --trials 20

if [ "${INDM_SKIP_WEB:-0}" = "1" ]; then
  step "browser demo build and browser test: SKIPPED (INDM_SKIP_WEB=1)"
else
  step "browser demo: trunk build --release (offline)"
  # trunk finds wasm-bindgen (0.2.130) and wasm-opt (npm binaryen 132) on PATH.
  export PATH="$PWD/tests/browser/node_modules/.bin:$PATH"
  trunk build --release
  wasm_bytes=$(stat -c %s dist/*_bg.wasm)
  js_bytes=$(stat -c %s dist/indm-demo-*.js)
  models_bytes=$(du -cb dist/models/*.safetensors | tail -n 1 | cut -f1)
  printf 'wasm bundle without weights: %s bytes (%.2f MB; goal <= 3 MB): wasm %s + js %s; weights %s bytes\n' \
    "$((wasm_bytes + js_bytes))" "$(awk "BEGIN { print ($wasm_bytes + $js_bytes) / 1048576 }")" "$wasm_bytes" "$js_bytes" "$models_bytes"

  step "browser test (headless Chromium + playwright-core; WebGPU on SwiftShader and the CPU fallback)"
  # The native reference binary (same features as the test build above: no rebuild).
  cargo build --locked --workspace --bins
  node tests/browser/demo.test.mjs --dist dist \
    --reference "${CARGO_TARGET_DIR:-target}/debug/indm-demo" \
    --artifacts tests/browser/artifacts
fi

step "all tests passed"
