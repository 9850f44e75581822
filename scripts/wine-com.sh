#!/usr/bin/env bash
# bitsim behind BITS's own COM API, under Wine: any Windows BITS client, unchanged,
# runs against the model (bitsim com-server) instead of Wine's qmgr.
#
#   scripts/wine-com.sh [OPTIONS] CLIENT.exe [ARGS...]   run one client against the facade
#   scripts/wine-com.sh --selftest                        the CI lane (see below)
#
# OPTIONS
#   --time-scale N   virtual seconds per wall second (default 600: a 600 s retry
#                    delay takes about one second)
#   --trace FILE     the facade's trace (default target/wine-com/trace.txt); the DO
#                    service's goes next to it (FILE with .do before the extension)
#   --plan FILE      the mock server's fault plan (default: built-in routes, no faults)
#   --qmgr           run the client against Wine's own qmgr instead (for contrast)
# In ARGS, {server} becomes the mock server's URL (http://127.0.0.1:PORT) and
# {control} the facade's control endpoint; both are also exported to the client
# as BITSIM_SERVER and BITSIM_CONTROL. Faults: PUT {server}/_bitsim/plan.
# Environment events and "jump ahead": POST {control}/_bitsim/env | jump
# (docs/conformance/bitsim-com.md).
#
# What Wine needs (found by trying; details in docs/conformance/bitsim-com.md):
#  - CLSID_BackgroundCopyManager is registered with AppID -> LocalService=BITS
#    (Wine's qmgr). Removing the AppID value and adding LocalServer32 =
#    "bitsim.exe com-server ..." makes activation start bitsim instead; the
#    versioned CLSIDs (1_5 ... 10_3) and CLSID_DeliveryOptimization,
#    unregistered in Wine, get the same entry (only a fallback: activation of
#    an unregistered CLSID reaches the running server through rpcss).
#  - Marshalling: Wine's qmgrprxy.dll registers proxy/stubs for
#    IBackgroundCopyManager, Job, Job2-4, File, File2, Error, the enumerators,
#    HttpOptions and Callback/Callback2, so nothing else is registered. Job5,
#    File3+ and Callback3 have no proxy in Wine: a client cannot reach them
#    across processes there.
#  - The facade is started before the client (and told to quit after it), so
#    its trace and control endpoint are known; LocalServer32 is the fallback.
#  - A killed server leaves its class registration in rpcss: always quit it
#    through the control endpoint, or `wineserver -k`.
#
# --selftest (run by .ci/run through scripts/wine-conformance.sh):
#  1. bits_client.exe (crates/bitsim-com/tests/clients/bits_client.c, mingw-w64's
#     stock bits.h) against Wine's qmgr: what Wine does (recorded, not checked);
#  2. the same client and probe.exe against the facade: a 403 gives ERROR with
#     BG_E_HTTP_ERROR_403 / REMOTE_FILE, JobError returning E_FAIL is called
#     again until S_OK, a 500 gives TRANSIENT_ERROR, the fifth blocked callback
#     waits for a slot, JobTransferred arrives (each checked);
#  3. `bitsim.exe conform --backend bits --facade` on fixtures/scenarios at
#     --time-scale 1 with jumps: the matrix goes to docs/conformance/bitsim-com.md,
#     and an unexpected difference fails the lane; then, against the same server,
#     `conform --backend do-bits --facade` (the DO flavor through
#     CLSID_DeliveryOptimization): docs/conformance/bitsim-com-do.md, known
#     differences in fixtures/conformance/bitsim-com-do.json.
# BITSIM_COM_SELFTEST_PARTS picks parts (default "1 2 3 3do"), e.g. "3do" alone
# while working on the DO lane.
# Output: target/wine-com/. Exit 0 iff everything asked for passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=check-windows.sh
source "$ROOT/scripts/check-windows.sh"

OUT="$ROOT/target/wine-com"
SCALE=600
TRACE="$OUT/trace.txt"
PLAN=""
QMGR=0
SELFTEST=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --time-scale) SCALE="$2"; shift 2 ;;
    --trace) TRACE="$2"; shift 2 ;;
    --plan) PLAN="$2"; shift 2 ;;
    --qmgr) QMGR=1; shift ;;
    --selftest) SELFTEST=1; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "wine-com: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ "$SELFTEST" == 0 && $# -lt 1 ]]; then
  echo "usage: scripts/wine-com.sh [--time-scale N] [--trace FILE] [--plan FILE] [--qmgr] CLIENT.exe [ARGS...] | --selftest" >&2
  exit 2
fi
[[ "$SCALE" =~ ^[0-9]+$ && "$SCALE" -ge 1 ]] || { echo "wine-com: --time-scale must be a whole number >= 1" >&2; exit 2; }
if [[ -n "$PLAN" && ! -f "$PLAN" ]]; then
  echo "wine-com: --plan $PLAN: no such file" >&2
  exit 2
fi
mkdir -p "$OUT"

# ---- builds ------------------------------------------------------------------------
ensure_wine
echo "== build bitsim (Linux) for bitsim serve" >&2
(cd "$ROOT" && cargo build -q -p bitsim)
BITSIM_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bitsim"
win_env
echo "== cross-build bitsim.exe and probe.exe for $WIN_TARGET" >&2
win_cargo build -q -p bitsim --bin bitsim
win_cargo build -q -p bitsim-windows --example probe
BITSIM_EXE="$CARGO_TARGET_DIR/$WIN_TARGET/debug/bitsim.exe"
PROBE_EXE="$CARGO_TARGET_DIR/$WIN_TARGET/debug/examples/probe.exe"

# ---- a fresh prefix, cleaned up on any exit ------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bitsim-wine-com.XXXXXX")"
export WINEPREFIX="$WORK/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64
unset DISPLAY WAYLAND_DISPLAY
HTTP_PID=""
FACADE_PID=""
CONTROL=""
cleanup() {
  local rc=$?
  set +e
  [[ -n "$FACADE_PID" ]] && facade_stop
  [[ -n "$HTTP_PID" ]] && { kill "$HTTP_PID" 2>/dev/null; wait "$HTTP_PID" 2>/dev/null; }
  if [[ -d "$WINEPREFIX" ]]; then
    wineserver -k 2>/dev/null
    wineserver -w 2>/dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wine_prefix_boot "$WORK"

# wait_for FILE SED-EXPR [PID]: the first match in FILE (20 s at most).
wait_for() {
  local v=""
  for _ in $(seq 1 200); do
    v="$(sed -n "$2" "$1" 2>/dev/null | head -n1)"
    [[ -n "$v" ]] && break
    [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null && break
    sleep 0.1
  done
  printf '%s' "$v"
}

# The mock server on loopback (Linux side).
plan_args=()
[[ -n "$PLAN" ]] && plan_args=(--plan "$PLAN")
"$BITSIM_BIN" serve --addr 127.0.0.1:0 --seed 7 "${plan_args[@]}" >"$WORK/http.out" 2>"$WORK/http.log" &
HTTP_PID=$!
SERVER="$(wait_for "$WORK/http.out" 's|^listening on \(http://127\.0\.0\.1:[0-9]*\).*|\1|p' "$HTTP_PID")"
[[ -n "$SERVER" ]] || { echo "wine-com: bitsim serve did not start" >&2; cat "$WORK/http.log" >&2; exit 1; }
echo "== mock server $SERVER" >&2

winpath() { printf 'Z:%s' "${1//\//\\}"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
post() { # post URL [BODY]: prints the response body; fails on a non-2xx status
  python3 - "$1" "${2:-}" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST")
print(urllib.request.urlopen(req, timeout=120).read().decode().strip())
PY
}

CLSIDS=(
  4991D34B-80A1-4291-83B6-3328366B9097 F087771F-D74F-4C1A-BB8A-E16ACA9124EA 6D18AD12-BDE3-4393-B311-099C346E6DF9
  03CA98D6-FF5D-49B8-ABC6-03DD84127020 659CDEA7-489E-11D9-A9CD-000D56965251 BB6DF56B-CACE-11DC-9992-0019B93A3A84
  1ECCA34C-E88A-44E3-8D6A-8921BDE9E452 4BD3E4E1-7BD4-4A2B-9964-496400DE5193 4575438F-A6C8-4976-B0FE-2F26B80D959E
  5FD42AD5-C04E-4D36-ADC7-E08FF15737AD
  # CLSID_DeliveryOptimization: not registered in Wine at all. Activation
  # reaches the running server's CoRegisterClassObject through rpcss without
  # any key (found by trying); the entry is only the fallback, as for the others.
  5B99FA76-721C-423C-ADAC-56D03C8A8007
)

# trace_do TRACE: where the DO service's trace goes (a.txt -> a.do.txt).
trace_do() {
  case "$1" in
    *.*) printf '%s.do.%s' "${1%.*}" "${1##*.}" ;;
    *) printf '%s.do' "$1" ;;
  esac
}

# override SCALE TRACE PORT: the stock CLSIDs activate bitsim's server.
override() {
  local cmd
  cmd="$(winpath "$BITSIM_EXE") com-server --time-scale $1 --trace $(winpath "$2") --trace-do $(winpath "$(trace_do "$2")") --control 127.0.0.1:$3"
  wine reg delete "HKLM\\Software\\Classes\\CLSID\\{${CLSIDS[0]}}" /v AppID /f >/dev/null 2>&1 || true
  for c in "${CLSIDS[@]}"; do
    wine reg add "HKLM\\Software\\Classes\\CLSID\\{$c}\\LocalServer32" /ve /d "$cmd" /f >/dev/null
  done
}

# facade_start SCALE TRACE: starts bitsim com-server; sets CONTROL.
facade_start() {
  local port
  port="$(free_port)"
  override "$1" "$2" "$port"
  wine "$BITSIM_EXE" com-server --time-scale "$1" --trace "$(winpath "$2")" --trace-do "$(winpath "$(trace_do "$2")")" \
    --control "127.0.0.1:$port" \
    >"$WORK/facade.out" 2>"$OUT/facade.err" &
  FACADE_PID=$!
  CONTROL="$(wait_for "$WORK/facade.out" 's|^bitsim com-server ready control=\(http://[0-9.:]*\).*|\1|p' "$FACADE_PID")"
  [[ -n "$CONTROL" ]] || { echo "wine-com: the facade did not start" >&2; cat "$OUT/facade.err" >&2; exit 1; }
  echo "== bitsim com-server (time scale $1) control $CONTROL, trace $2" >&2
}

facade_stop() {
  post "$CONTROL/_bitsim/quit" >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    kill -0 "$FACADE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$FACADE_PID" 2>/dev/null || true
  wait "$FACADE_PID" 2>/dev/null || true
  FACADE_PID=""
}

# run_client EXE ARGS...: {server} / {control} substituted; output on stdout.
run_client() {
  local exe="$1"
  shift
  local args=()
  for a in "$@"; do
    a="${a//\{server\}/$SERVER}"
    a="${a//\{control\}/$CONTROL}"
    args+=("$a")
  done
  BITSIM_SERVER="$SERVER" BITSIM_CONTROL="$CONTROL" WINEDEBUG=-all \
    timeout "${BITSIM_CLIENT_TIMEOUT:-300}" wine "$exe" "${args[@]}" 2>&1 | tr -d '\r'
}

if [[ "$SELFTEST" == 0 ]]; then
  if [[ "$QMGR" == 0 ]]; then
    facade_start "$SCALE" "$TRACE"
  fi
  set +e
  run_client "$@"
  rc=${PIPESTATUS[0]}
  set -e
  exit "$rc"
fi

# ---- --selftest ----------------------------------------------------------------------
PARTS=" ${BITSIM_COM_SELFTEST_PARTS:-1 2 3 3do} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
passed=0
failed=0
CLIENT="$WORK/bits_client.exe"
"$WIN_LINKER" -municode -O2 -Wall -o "$CLIENT" "$ROOT/crates/bitsim-com/tests/clients/bits_client.c" -lole32 -luuid
MODES=(transfer error403 error500 slots)

if part 1; then
echo "== 1. bits_client.exe against Wine's own qmgr (recorded, not checked)" >&2
: >"$OUT/client-wine-qmgr.txt"
for m in "${MODES[@]}"; do
  echo "## $m" >>"$OUT/client-wine-qmgr.txt"
  BITSIM_CLIENT_TIMEOUT=60 run_client "$CLIENT" "$m" "$SERVER" 'C:\' >>"$OUT/client-wine-qmgr.txt" || true
done
cat "$OUT/client-wine-qmgr.txt" >&2
# Wine's BITS service keeps its class registered while wineserver lives.
wineserver -k 2>/dev/null || true
wineserver -w 2>/dev/null || true
fi

if part 2; then
echo "== 2. bits_client.exe and probe.exe against bitsim's facade" >&2
facade_start 600 "$OUT/trace-clients.txt"
: >"$OUT/client-bitsim-com.txt"
expect() { # expect MODE LINE...: every LINE among the mode's CHECK lines
  local mode="$1"
  shift
  local got
  got="$(run_client "$CLIENT" "$mode" "$SERVER" 'C:\' || true)"
  printf '## %s\n%s\n' "$mode" "$got" >>"$OUT/client-bitsim-com.txt"
  for want in "$@"; do
    if grep -qxF "CHECK $want" <<<"$got"; then
      echo "  pass  $mode: $want"
      passed=$((passed + 1))
    else
      echo "  FAIL  $mode: $want (got: $(grep CHECK <<<"$got" | tr '\n' ' '))"
      failed=$((failed + 1))
    fi
  done
}
expect transfer "job_transferred_calls=1" "state_after_callback=ACKNOWLEDGED"
expect error403 "state=ERROR" "error=0x80190193 context=5" "job_error_calls=3" "job_error_code=0x80190193 context=5"
expect error500 "state=TRANSIENT_ERROR" "job_error_calls=0"
expect slots "job_transferred_calls=5" "max_in_flight=4"
probe="$(run_client "$PROBE_EXE" "$SERVER/bytes/1048576" 'C:\bitsim-probe.bin' --timeout 30 || true)"
printf '%s\n' "$probe" >"$OUT/probe-bitsim-com.txt"
if grep -q '^RESULT ok=true' <<<"$probe"; then
  echo "  pass  probe.exe: JobTransferred, Complete, 1 MiB intact"
  passed=$((passed + 1))
else
  echo "  FAIL  probe.exe (see $OUT/probe-bitsim-com.txt)"
  failed=$((failed + 1))
fi
facade_stop
fi

if part 3 || part 3do; then
facade_start 1 "$OUT/trace-conform.txt"
fi
if part 3; then
echo "== 3. the corpus through the facade: bitsim.exe conform --facade" >&2
set +e
rm -rf "$OUT/traces"
(cd "$ROOT" && WINEDEBUG=-all timeout "${BITSIM_COM_CONFORM_TIMEOUT:-2400}" wine "$BITSIM_EXE" conform --backend bits --facade "$CONTROL" --label bitsim-com --retries 2 \
  --expected fixtures/conformance/bitsim-com.json --out target/wine-com/traces \
  --report docs/conformance/bitsim-com.md fixtures/scenarios) 2>&1 | tr -d '\r' >"$OUT/conform.txt"
conform_rc=${PIPESTATUS[0]}
set -e
tail -n 4 "$OUT/conform.txt"
if [[ "$conform_rc" == 0 ]]; then
  passed=$((passed + 1))
else
  echo "  FAIL  conform through the facade (exit $conform_rc; see $OUT/conform.txt)"
  failed=$((failed + 1))
fi
fi
if part 3do; then
# The DO flavor through CLSID_DeliveryOptimization on the same server: its own
# driver, so the BITS run above left nothing behind in its model.
echo "== 3do. the corpus's DO scenarios through the facade: conform --backend do-bits --facade" >&2
do_start=$SECONDS
set +e
rm -rf "$OUT/traces-do"
(cd "$ROOT" && WINEDEBUG=-all timeout "${BITSIM_COM_CONFORM_TIMEOUT:-2400}" wine "$BITSIM_EXE" conform --backend do-bits --facade "$CONTROL" --label bitsim-com-do --retries 2 \
  --expected fixtures/conformance/bitsim-com-do.json --out target/wine-com/traces-do \
  --report docs/conformance/bitsim-com-do.md fixtures/scenarios) 2>&1 | tr -d '\r' >"$OUT/conform-do.txt"
conform_rc=${PIPESTATUS[0]}
set -e
tail -n 4 "$OUT/conform-do.txt"
echo "  (the DO run took $((SECONDS - do_start)) s)"
if [[ "$conform_rc" == 0 ]]; then
  passed=$((passed + 1))
else
  echo "  FAIL  conform --backend do-bits through the facade (exit $conform_rc; see $OUT/conform-do.txt)"
  failed=$((failed + 1))
fi
fi
if part 3 || part 3do; then
facade_stop
fi
echo "wine-com: $passed passed, $failed failed"
[[ "$failed" == 0 ]]
