#!/usr/bin/env bash
# Benchmark `bitsim serve` against nginx on loopback, same client, one run:
#   (a) one 1 GiB download (curl to /dev/null), best of $RUNS;
#   (b) $REQS small range requests (100 bytes each, varying offsets) over one
#       keep-alive connection (wrk, Lua script), best of $RUNS.
# Prints both numbers and the ratio bitsim/nginx (target: >= 0.8).
#
# Installs nginx, wrk and curl from Debian's packages when missing (needs root
# or sudo). Builds `bitsim` in release mode. Usage: scripts/bench-server.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
REQS=${REQS:-10000}
SIZE=$((1024 * 1024 * 1024))

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need curl; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nginx-light wrk curl >/dev/null \
    || $SUDO apt-get install -y -qq --no-install-recommends nginx wrk curl >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "== building bitsim (release)"
cargo build --release -q -p bitsim
BITSIM="${CARGO_TARGET_DIR:-target}/release/bitsim"

WORK=$(mktemp -d /tmp/bitsim-bench.XXXXXX)
chmod 755 "$WORK"
BITSIM_PID=""
NGINX_PID=""
cleanup() {
  [ -n "$BITSIM_PID" ] && kill "$BITSIM_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting bitsim serve"
"$BITSIM" serve --addr 127.0.0.1:0 --seed 1 >"$WORK/bitsim.out" 2>"$WORK/bitsim.err" &
BITSIM_PID=$!
for _ in $(seq 1 100); do
  [ -s "$WORK/bitsim.out" ] && break
  sleep 0.1
done
BITSIM_URL=$(sed -n 's/^listening on //p' "$WORK/bitsim.out" | head -1)
[ -n "$BITSIM_URL" ] || { echo "bitsim serve did not start" >&2; cat "$WORK/bitsim.err" >&2; exit 1; }

# nginx serves the very same bytes: fetch them from bitsim once.
mkdir -p "$WORK/www"
curl -sf -o "$WORK/www/big.bin" "$BITSIM_URL/bytes/$SIZE"
chmod 644 "$WORK/www/big.bin"

NGINX_PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
user root;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK/tmp-body;
  proxy_temp_path $WORK/tmp-proxy;
  fastcgi_temp_path $WORK/tmp-fcgi;
  uwsgi_temp_path $WORK/tmp-uwsgi;
  scgi_temp_path $WORK/tmp-scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
  }
}
EOF
echo "== starting nginx on port $NGINX_PORT"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$NGINX_URL/big.bin" -r 0-0 && break
  sleep 0.1
done

best_download() { # url -> best seconds
  local best="" t
  curl -s -o /dev/null "$1" # warm up
  for _ in $(seq 1 "$RUNS"); do
    t=$(curl -s -o /dev/null -w '%{time_total}' "$1")
    best=$(awk -v a="$best" -v b="$t" 'BEGIN{ if (a=="" || b<a) print b; else print a }')
  done
  echo "$best"
}

# (b) exactly $REQS ranged GETs on one keep-alive connection: one curl
# process, one config block per request (curl reuses the connection).
make_cfg() { # url file
  awk -v url="$1" -v n="$REQS" -v size="$SIZE" 'BEGIN{
    for (i = 0; i < n; i++) {
      off = (i * 7919 * 4099) % (size - 100)
      printf "url = \"%s\"\nrange = \"%d-%d\"\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code} %%{num_connects}\\n\"\n", url, off, off + 99
      if (i < n - 1) print "next"
    }}' >"$2"
}

best_ranges() { # url -> best seconds for $REQS requests
  local best="" t0 t1 t out
  make_cfg "$1" "$WORK/ranges.cfg"
  curl -s -K "$WORK/ranges.cfg" >/dev/null # warm up
  for _ in $(seq 1 "$RUNS"); do
    t0=$(date +%s.%N)
    out=$(curl -s -K "$WORK/ranges.cfg")
    t1=$(date +%s.%N)
    if [ "$(echo "$out" | grep -c '^206 ')" -ne "$REQS" ]; then echo "not all 206 from $1" >&2; exit 1; fi
    if [ "$(echo "$out" | awk '{c += $2} END {print c}')" -ne 1 ]; then echo "connection not reused for $1" >&2; exit 1; fi
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN{ print b - a }')
    best=$(awk -v a="$best" -v b="$t" 'BEGIN{ if (a=="" || b<a) print b; else print a }')
  done
  echo "$best"
}

# (b') the same request mix from wrk: one connection, 5 s, requests/second.
cat >"$WORK/ranges.lua" <<EOF
local n = 0
local size = $SIZE
request = function()
  local off = (n * 7919 * 4099) % (size - 100)
  n = n + 1
  return wrk.format("GET", wrk.path, { ["Range"] = "bytes=" .. off .. "-" .. (off + 99) })
end
EOF

best_wrk() { # url -> best requests/second
  local best="" rps
  for _ in $(seq 1 "$RUNS"); do
    rps=$(wrk -t1 -c1 -d5s -s "$WORK/ranges.lua" "$1" | awk '/^Requests\/sec:/{printf "%.0f", $2}')
    best=$(awk -v a="$best" -v b="$rps" 'BEGIN{ if (a=="" || b>a) print b; else print a }')
  done
  echo "$best"
}

echo "== (a) one 1 GiB download, best of $RUNS"
N_DL=$(best_download "$NGINX_URL/big.bin")
B_DL=$(best_download "$BITSIM_URL/bytes/$SIZE")
echo "== (b) $REQS range requests of 100 bytes over one keep-alive connection (curl), best of $RUNS"
N_RQ=$(best_ranges "$NGINX_URL/big.bin")
B_RQ=$(best_ranges "$BITSIM_URL/bytes/$SIZE")
echo "== (b2) the same mix from wrk, 1 connection, 5 s, best of $RUNS"
N_WRK=$(best_wrk "$NGINX_URL/big.bin")
B_WRK=$(best_wrk "$BITSIM_URL/bytes/$SIZE")

echo
awk -v n="$N_DL" -v b="$B_DL" -v s="$SIZE" 'BEGIN{
  printf "(a)  1 GiB download         nginx %.3f s (%.0f MiB/s)   bitsim %.3f s (%.0f MiB/s)   ratio %.2f\n",
    n, s/n/1048576, b, s/b/1048576, n/b }'
awk -v n="$N_RQ" -v b="$B_RQ" -v r="$REQS" 'BEGIN{
  printf "(b)  %d range requests  nginx %.3f s (%.0f req/s)   bitsim %.3f s (%.0f req/s)   ratio %.2f\n",
    r, n, r/n, b, r/b, n/b }'
awk -v n="$N_WRK" -v b="$B_WRK" 'BEGIN{
  printf "(b2) wrk, 1 connection      nginx %d req/s   bitsim %d req/s   ratio %.2f\n", n, b, b/n }'
echo "(ratio = bitsim throughput / nginx throughput; target >= 0.8)"
echo "machine: $(nproc) CPUs, $(uname -sr)"
