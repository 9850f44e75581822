#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets from fixtures/ (issue 13):
#   corpus/scenario_load   every fixture scenario (valid and invalid)
#   corpus/plan_load       every fixture plan
#   corpus/diff            pairs of fixture scenarios and plans, NUL-separated
#   corpus/server_request  a plan index byte + HTTP requests the simulator sends
# Run from anywhere; re-running refreshes the seeds and keeps what fuzzing found.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="$here/../fixtures"
corpus="$here/corpus"
mkdir -p "$corpus"/{scenario_load,plan_load,diff,server_request}

n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  cp "$f" "$corpus/scenario_load/seed-$n.json"
done < <(find "$fixtures/scenarios" "$fixtures/invalid" -name '*.json' -print0 | sort -z)

for f in "$fixtures"/plans/*.json; do
  [ "$(basename "$f")" = plan.schema.json ] && continue
  cp "$f" "$corpus/plan_load/seed-$(basename "$f")"
done

# diff: consecutive fixture files against each other, and one against itself.
prev=""
i=0
while IFS= read -r -d '' f; do
  i=$((i + 1))
  if [ -n "$prev" ] && [ $((i % 7)) -eq 0 ]; then
    { cat "$prev"; printf '\0'; cat "$f"; } > "$corpus/diff/seed-$i"
  fi
  prev="$f"
done < <(find "$fixtures/scenarios" -name '*.json' -print0 | sort -z)
{ cat "$prev"; printf '\0'; cat "$prev"; } > "$corpus/diff/seed-same"

req() { # name, plan index (0..6), request bytes (printf format)
  { printf "\\x$(printf %02x "$2")"; printf "$3"; } > "$corpus/server_request/seed-$1"
}
req get 0 'GET /bytes/1024 HTTP/1.1\r\nHost: bitsim.test\r\n\r\n'
req head 1 'HEAD /bytes/50000 HTTP/1.1\r\nHost: bitsim.test\r\n\r\n'
req range 2 'GET /bytes/8192 HTTP/1.1\r\nHost: bitsim.test\r\nRange: bytes=100-\r\n\r\nGET /bytes/8 HTTP/1.1\r\nHost: x\r\n\r\n'
req create 3 'BITS_POST /upload/a.bin HTTP/1.1\r\nHost: bitsim.test\r\nBITS-Packet-Type: Create-Session\r\nBITS-Supported-Protocols: {7df0354d-249b-430f-820d-3d2a9bef4931}\r\nContent-Length: 0\r\n\r\n'
req fragment 4 'BITS_POST /upload/a.bin HTTP/1.1\r\nHost: bitsim.test\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {00000000-0000-0000-0000-000000000001}\r\nContent-Range: bytes 0-3/4\r\nContent-Length: 4\r\n\r\nabcd'
req ping 5 'BITS_POST /upload/a.bin HTTP/1.1\r\nHost: bitsim.test\r\nBITS-Packet-Type: Ping\r\nContent-Length: 0\r\n\r\n'
req control 6 'PUT /_bitsim/plan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}GET /_bitsim/log HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
req chunked 0 'BITS_POST /upload/b.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nBITS-Packet-Type: Fragment\r\n\r\n4\r\nabcd\r\n0\r\n\r\n'
echo "seeded: $(find "$corpus" -type f | wc -l) files under $corpus"
