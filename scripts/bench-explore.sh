#!/usr/bin/env bash
# Generated scenarios per second on the simulator, end to end (generate, serialise,
# load, run, check the invariants, rerun for determinism), release build.
# Usage: scripts/bench-explore.sh [CASES] [SEED]
# Prints three lines: the default (determinism checked on every run, one worker per
# core), the same on one worker, and the default with the determinism check on one
# run in 16.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
seed="${2:-1}"
cargo build --release -p bitsim >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/bitsim"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== every run repeated for the determinism check (the default), --jobs 0 (one worker per core)"
"$bin" explore --cases "$cases" --seed "$seed" --out "$out" | tail -1
echo "== the same on one worker (--jobs 1)"
"$bin" explore --cases "$cases" --seed "$seed" --out "$out" --jobs 1 | tail -1
echo "== determinism checked on one run in 16, --jobs 0"
"$bin" explore --cases "$cases" --seed "$seed" --out "$out" --determinism-every 16 | tail -1
nproc | sed 's/^/cores: /'
uptime | sed 's/.*load average/load average/'
