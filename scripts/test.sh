#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole test suite: formatting, lints,
# unit and end-to-end tests, and the kill/resume crash test.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh

step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit, property, end-to-end)"
cargo test --locked --workspace

step "kill/resume crash test"
python3 tests/kill_resume.py --trials 20

step "all tests passed"
