#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job: the trainer's default run
# (INDM on the checkerboard, default budget), writing a run folder under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --locked -p trainer -- "$@"
