#!/bin/sh
# Model throughput (issue 2): 10,000 download jobs through create → add files → resume →
# transfer events with transient errors and retries → callbacks (some failing) → complete.
# Prints model events (inputs) per second with the trace on and off.
# Usage: scripts/bench-model.sh            (summary only, ~1 min incl. the release build)
#        scripts/bench-model.sh --criterion (also criterion's full measurement)
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--criterion" ]; then
    exec cargo bench -p bitsim-model --bench model
fi
BITSIM_BENCH_SUMMARY_ONLY=1 cargo bench -p bitsim-model --bench model 2>/dev/null | grep 'events/s'
