#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target for a fixed budget and prints, per target, the
# executions, the time and the crashes found (issue 6).
#
#   bash scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# What works here: cargo-fuzz needs nightly rustc flags. The machine has a rustup `nightly`
# toolchain, so the targets are built with `cargo +nightly fuzz`. Without one, stable works
# with RUSTC_BOOTSTRAP=1 (set FUZZ_TOOLCHAIN=bootstrap). The default sanitizer is none
# (pure-Rust code: panics and aborts are what we look for, and it runs ~2x faster);
# FUZZ_SANITIZER=address turns AddressSanitizer on.
#
# Corpora: fuzz/seeds/<target>/ (committed, written by `cargo run --manifest-path
# fuzz/Cargo.toml --example seeds`) plus fuzz/corpus/<target>/ (grows; git-ignored).
# Crashes land in fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/crash-...
# and add it as a regression unit test.
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
SAN="${FUZZ_SANITIZER:-none}"
ALL_TARGETS=(weights_loader image_input share_state)
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked || { echo "error: cannot install cargo-fuzz" >&2; exit 1; }
fi
if [ "${FUZZ_TOOLCHAIN:-}" = "bootstrap" ]; then
  FUZZ=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
elif rustup run nightly rustc --version >/dev/null 2>&1; then
  FUZZ=(cargo +nightly fuzz)
else
  echo "no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
  FUZZ=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi

if [ ! -f web/src/state.rs ]; then
  echo "note: web/src/state.rs is missing; skipping share_state"
  TARGETS=("${TARGETS[@]/share_state}")
fi

echo "==> building fuzz targets (${FUZZ[*]} build -s $SAN)"
(cd fuzz && "${FUZZ[@]}" build -s "$SAN") || { echo "error: fuzz build failed" >&2; exit 1; }

status=0
summary=()
for t in "${TARGETS[@]}"; do
  [ -z "$t" ] && continue
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  log="fuzz/artifacts/$t.log"
  echo "==> $t for ${SECONDS_PER_TARGET}s"
  start=$(date +%s)
  (cd fuzz && "${FUZZ[@]}" run -s "$SAN" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
      -max_len=8192 -print_final_stats=1) >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  after=$(ls "fuzz/artifacts/$t" | wc -l)
  crashes=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="? (exit $rc, see $log)"; fi
  if [ "$rc" -ne 0 ]; then status=1; tail -30 "$log"; fi
  line=$(printf '%-16s executions %-10s time %4ss  crashes %s' "$t" "${execs:-?}" "$((end - start))" "$crashes")
  echo "$line"
  summary+=("$line")
done

echo
echo "==> fuzz summary (sanitizer: $SAN, budget ${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
