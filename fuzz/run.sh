#!/usr/bin/env bash
# Runs each cargo-fuzz target for a number of executions, one target at a time
# (CPU is shared), and prints libFuzzer's final count for each.
#   fuzz/run.sh                 # 1,000,000 executions per target
#   fuzz/run.sh 50000 diff      # 50,000 executions of one target
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# A crash leaves its input in fuzz/artifacts/TARGET/ and stops the script.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-1000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(scenario_load plan_load diff server_request)
./seed-corpus.sh >/dev/null
for t in "${targets[@]}"; do
  echo "== $t: $runs runs"
  # -timeout: one input may take at most 10 s; -rss_limit_mb: memory is bounded.
  cargo +nightly fuzz run "$t" "corpus/$t" -- \
    -runs="$runs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)' || true
  test "${PIPESTATUS[0]}" -eq 0
done
