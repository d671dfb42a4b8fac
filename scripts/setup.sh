#!/usr/bin/env bash
# Idempotent setup for a fresh machine that has rustup (Rust 1.95), gcc and python3
# (Debian 12; apt is used for Mesa's software Vulkan driver).
# Safe to run again: every step checks first and is quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust toolchain components (rustfmt, clippy)"
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install rustup with Rust 1.95 first (https://rustup.rs)" >&2
  exit 1
fi
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    rustup component add "$c"
  fi
done

step "Software Vulkan adapter (Mesa lavapipe) for the GPU parity tests"
# The WGSL kernels are tested on a real Vulkan driver that runs on the CPU, so the
# parity tests need no GPU. Skipped when a Vulkan ICD is already installed.
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

step "Fashion-MNIST (Debian package dataset-fashion-mnist) for the IDX loader"
# Installs /usr/share/datasets/fashion-mnist/*-ubyte.gz; the loader's test of the real
# files runs only when they are there. Skipped when the package is already installed.
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

step "Fetching crates (crates.io)"
# All targets, wasm32 included, so the offline trunk build below finds every crate.
cargo fetch --locked

# ---- Browser demo (web/): wasm target, wasm-bindgen-cli, trunk, Chromium, npm tools ----
# INDM_SKIP_WEB=1 skips these (about 25 minutes of compiling on a fresh 2-core machine);
# scripts/test.sh then skips the demo build and the browser test and says so.
if [ "${INDM_SKIP_WEB:-0}" = "1" ]; then
  step "Browser demo tools: skipped (INDM_SKIP_WEB=1)"
else
  step "wasm32 target"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi

  # wasm-bindgen-cli must be exactly Cargo.lock's wasm-bindgen (pinned in Cargo.toml).
  wbg="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
  step "wasm-bindgen-cli $wbg"
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg" ]; then
    # No --locked: the crate's own lockfile pins webpki-roots 1.0.11, which the
    # registry does not have.
    cargo install wasm-bindgen-cli --version "$wbg"
  fi

  step "trunk 0.21.14"
  # 0.22 needs rustc >= 1.96.1.
  if [ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "0.21.14" ]; then
    cargo install trunk --version 0.21.14 --locked
  fi

  step "Chromium (headless browser test) and Node.js"
  pkgs=""
  [ -x /usr/lib/chromium/chromium ] || pkgs="$pkgs chromium"
  command -v chromedriver >/dev/null 2>&1 || pkgs="$pkgs chromium-driver"
  command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
  command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
  if [ -n "$pkgs" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
  fi

  step "npm tools for the demo (playwright-core, binaryen 132's wasm-opt)"
  # Pinned in tests/browser/package-lock.json; Debian's binaryen 108 breaks the wasm.
  if ! [ -x tests/browser/node_modules/.bin/wasm-opt ] \
    || ! [ -d tests/browser/node_modules/playwright-core ] \
    || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
  fi
fi

echo "setup done"
