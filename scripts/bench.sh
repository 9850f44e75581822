#!/usr/bin/env bash
# Simulator benchmarks (issue 4), release build:
#  (a) the whole corpus: wall time and total virtual time simulated;
#  (b) 10,000 concurrent 64 KiB download jobs through the in-memory server: wall, peak RSS;
#  (c) how (b) grows: 1,000 / 10,000 / 100,000 jobs.
# Usage: scripts/bench.sh [--quick]   (--quick skips the 100,000-job run)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}

cargo build --release -q -p bitsim
cargo build --release -q -p bitsim-engine --example load
bin=target/release/bitsim
load=target/release/examples/load
timev() { if [ -x /usr/bin/time ]; then /usr/bin/time -f '%e %M' "$@"; else "$@"; fi; }

echo "== (a) corpus"
out=$(mktemp)
start=$(date +%s.%N)
"$bin" run fixtures/scenarios --json >"$out" || true
end=$(date +%s.%N)
python3 - "$out" "$start" "$end" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
virt = sum(r["virtual_ms"] for r in runs) / 1000
wall = float(sys.argv[3]) - float(sys.argv[2])
passed = sum(r["verdict"] == "pass" for r in runs)
print(f"corpus: {len(runs)} runs ({passed} passed), wall {wall:.2f} s, virtual {virt:,.0f} s "
      f"({virt / 86400:.1f} days), speed-up {virt / max(wall, 1e-9):,.0f}x")
PY
rm -f "$out"

if [ ! -x /usr/bin/time ]; then
  echo "(install GNU time for peak RSS: apt-get install -y time)"
fi
for jobs in 1000 10000 100000; do
  if [ "$jobs" = 100000 ] && [ "$quick" = "--quick" ]; then continue; fi
  echo "== (b/c) $jobs concurrent 64 KiB downloads"
  res=$( { timev "$load" "$jobs" 65536 ; } 2>&1 )
  echo "$res" | grep 'jobs='
  if [ -x /usr/bin/time ]; then
    echo "$res" | tail -n 1 | awk '{printf "process: %.2f s elapsed (incl. scratch-dir cleanup), peak RSS %.0f MB\n", $1, $2/1024}'
  fi
done
