#!/usr/bin/env bash
# Generated scenarios per second on the simulator, end to end (generate, serialise,
# load, run, check the invariants, rerun for determinism), release build.
# Usage: scripts/bench-explore.sh [CASES] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
seed="${2:-1}"
cargo build --release -p bitsim >/dev/null
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== every run repeated for the determinism check (the default)"
./target/release/bitsim explore --cases "$cases" --seed "$seed" --out "$out" | tail -1
echo "== determinism checked on one run in 16"
./target/release/bitsim explore --cases "$cases" --seed "$seed" --out "$out" --determinism-every 16 | tail -1
nproc | sed 's/^/cores: /'
