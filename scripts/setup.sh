#!/usr/bin/env bash
# Idempotent setup for a fresh machine that has rustup (Rust 1.95), gcc and python3.
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

step "Fetching crates (crates.io)"
cargo fetch --locked

echo "setup done"
