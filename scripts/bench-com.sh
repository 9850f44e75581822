#!/usr/bin/env bash
# Benchmarks of bitsim's COM facade under Wine (figures: docs/benchmarks.md#com-facade):
#  1. COM calls per second through the facade, cross-process: 2,000
#     IBackgroundCopyJob::GetState calls from bits_client.exe (mingw-w64, stock
#     bits.h) into `bitsim com-server`;
#  2. how close the observed wall time of a 600 s retry delay is to 600 s / N
#     at --time-scale N = 60, 600, 6000 (the mock server answers the first HEAD
#     with 503; the client polls GetState every millisecond).
# Each measurement runs in a fresh Wine prefix through scripts/wine-com.sh.
# Usage: scripts/bench-com.sh [SCALES...]   (default: 60 600 6000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/wine-com/bench"
mkdir -p "$OUT"
CLIENT="$OUT/bits_client.exe"
x86_64-w64-mingw32-gcc -municode -O2 -o "$CLIENT" "$ROOT/crates/bitsim-com/tests/clients/bits_client.c" -lole32 -luuid
PLAN="$OUT/first-head-503.json"
echo '{"rules": [{"match": {"method": "HEAD", "path": "/bytes/1000", "to": 1}, "fault": {"kind": "status", "status": 503}}]}' >"$PLAN"
scales=("$@")
[[ ${#scales[@]} -gt 0 ]] || scales=(60 600 6000)

echo "| measurement | result |"
echo "|---|---|"
line="$("$ROOT/scripts/wine-com.sh" --time-scale 1 "$CLIENT" calls {server} 'C:\' 2>/dev/null | grep '^BENCH' || true)"
echo "| GetState calls per second (cross-process, Wine) | ${line#BENCH } |"
for n in "${scales[@]}"; do
  line="$("$ROOT/scripts/wine-com.sh" --time-scale "$n" --plan "$PLAN" "$CLIENT" retry {server} 'C:\' 2>/dev/null | grep '^BENCH' || true)"
  ms="$(sed -n 's/.*retry_wall_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  ideal="$(python3 -c "print(f'{600000/$n:.1f}')")"
  echo "| 600 s retry at --time-scale $n: wall ms (ideal $ideal) | ${ms:-failed: $line} |"
done
