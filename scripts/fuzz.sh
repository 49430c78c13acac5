#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default 30) and fails if any
# of them finds a crash (panic, failed assertion, sanitizer report, timeout or out-of-memory).
#
# The fuzz crate is not part of the workspace (it needs nightly-only compiler flags); it uses a
# nightly toolchain when rustup has one, and otherwise the stable one with RUSTC_BOOTSTRAP=1.
# Installs cargo-fuzz if it is missing. Crash inputs land in fuzz/artifacts/<target>/; reproduce one
# with `cargo +nightly fuzz run <target> <file>`. The corpus in fuzz/corpus/ is kept between runs.
#
# Usage: [FUZZ_SECONDS=N] [FUZZ_STABLE=1] scripts/fuzz.sh [target...]   (default: every target)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "fuzz.sh: FUZZ_SECONDS must be a positive whole number of seconds, not '$seconds'" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# `cargo +nightly` when rustup has a nightly toolchain, else stable with nightly features unlocked
# (FUZZ_STABLE=1 forces the latter).
toolchains=$(rustup toolchain list 2>/dev/null || true)
if [[ ${FUZZ_STABLE:-0} != 1 ]] && grep -q nightly <<<"$toolchains"; then
  fuzz=(cargo +nightly fuzz)
  toolchain=nightly
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  toolchain="stable with RUSTC_BOOTSTRAP=1"
fi
# Debug assertions on: they check integer overflow and the crate's own debug_assert!s.
build_flags=(--debug-assertions)

if (( $# > 0 )); then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi
if (( ${#targets[@]} == 0 )); then
  echo "fuzz.sh: no fuzz targets found in $root/fuzz" >&2
  exit 1
fi

echo "==> building ${#targets[@]} fuzz targets (${targets[*]}) with $toolchain"
for target in "${targets[@]}"; do
  "${fuzz[@]}" build "${build_flags[@]}" "$target"
done

logs="$root/fuzz/target/logs"
mkdir -p "$logs"
summary=()
failed=()
for target in "${targets[@]}"; do
  log="$logs/$target.log"
  echo "==> fuzzing $target for $seconds s (log: $log)"
  started=$(date +%s)
  status=0
  "${fuzz[@]}" run "${build_flags[@]}" "$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - started ))

  # libFuzzer's final stats, or failing that its "#N DONE" line.
  execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [[ -z $execs ]]; then
    execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
  fi
  coverage=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)

  if (( status == 0 )); then
    result=ok
  else
    result="FAILED (exit $status)"
    failed+=("$target")
    echo "---- last lines of $log ----" >&2
    tail -n 60 "$log" >&2
    echo "---- crash inputs: $root/fuzz/artifacts/$target/ ----" >&2
  fi
  line=$(printf '%-10s %4d s  %12s executions  cov %6s  %s' "$target" "$elapsed" "${execs:-?}" "${coverage:-?}" "$result")
  echo "$line"
  summary+=("$line")
done

echo
echo "==> fuzz summary ($toolchain, ${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if (( ${#failed[@]} > 0 )); then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
