#!/usr/bin/env bash
# The Wine lane: run the Windows adapter on Linux against Wine's own BITS
# implementation (qmgr.dll), an independent implementation nobody here wrote.
#
# 1. installs what it needs unless already there (scripts/toolchain.sh: the
#    pinned rustup toolchain with the x86_64-pc-windows-gnu std; Debian's
#    gcc-mingw-w64-x86-64, wine, wine64);
# 2. cross-builds for x86_64-pc-windows-gnu with the project's toolchain
#    (scripts/check-windows.sh; target dir target/windows, kept between runs);
# 3. creates a fresh headless Wine prefix in a temporary directory
#    (WINEDEBUG=-all, no mono/gecko prompts, no X server) and puts the
#    ProcessPrng stand-in (scripts/wine/bcryptprimitives.c, built with
#    mingw-w64) into its system32: Rust's std for this target needs it and
#    Wine 8.0 lacks it (see scripts/check-windows.sh);
# 4. serves a 1 MiB file on 127.0.0.1 (loopback only) with `bitsim serve`
#    (its /bytes/N route; BITSIM_WINE_SERVER=python uses python3 -m
#    http.server instead, as does a tree whose CLI has no `serve` yet) and
#    runs the probe (crates/bitsim-windows/examples/probe.rs) under Wine: the
#    downloaded file must be byte-identical and JobTransferred must arrive;
#    bitsim-windows' unit tests also run under Wine;
# 5. runs `bitsim.exe conform --backend bits --label wine-qmgr` on the corpus
#    (fixtures/scenarios) under Wine: bitsim.exe starts its own mock server on
#    127.0.0.1 inside the Wine process, replays every scenario whose model run
#    fits in BITSIM_WINE_MAX_SECONDS (default 35) of real time against Wine's
#    qmgr, and compares each with the model; the known, explained deviations
#    are in fixtures/conformance/wine-qmgr.json, and only unexpected
#    differences fail. The matrix is written to docs/conformance/wine-qmgr.md
#    (links relative to it), traces to target/wine-conformance/traces/;
# 6. cleans up on every exit path: the HTTP server, `wineserver -k`, and the
#    temporary directory with the prefix.
#
# Recipe and the known deviations of Wine's BITS: ../shared/reference/wine.md.
# BITSIM_WINE_CONFORM=0 skips step 5 (probe and unit tests only).
#
# Output: target/wine-conformance/ (probe log, summary); exit 0 iff all passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=check-windows.sh
source "$ROOT/scripts/check-windows.sh"

OUT="$ROOT/target/wine-conformance"
T_START=$SECONDS
phase_start=$SECONDS
timings=()
phase() { # phase NAME: record the time since the previous phase
  timings+=("$1=$((SECONDS - phase_start))s")
  phase_start=$SECONDS
}

# ---- 1. packages ---------------------------------------------------------------
ensure_wine
phase packages

# ---- 2. builds -------------------------------------------------------------------
# The loopback server runs on Linux: built with the project's own toolchain
# (win_env below points CARGO_TARGET_DIR at the Windows build's own dir).
SERVER_KIND="${BITSIM_WINE_SERVER:-bitsim}"
BITSIM_BIN=""
if [[ "$SERVER_KIND" == bitsim ]]; then
  echo "== build bitsim (Linux) for bitsim serve" >&2
  (cd "$ROOT" && cargo build -q -p bitsim)
  BITSIM_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bitsim"
  if ! "$BITSIM_BIN" serve --help >/dev/null 2>&1; then
    echo "== this bitsim has no 'serve' subcommand: using python3 -m http.server" >&2
    SERVER_KIND=python
  fi
fi
phase server-build

win_env
echo "== cross-build probe.exe for $WIN_TARGET" >&2
win_cargo build -p bitsim-windows --example probe
EXE="$CARGO_TARGET_DIR/$WIN_TARGET/debug/examples/probe.exe"
[[ -f "$EXE" ]] || { echo "wine-conformance: $EXE was not built" >&2; exit 1; }
# bitsim-windows' unit tests (policy, HRESULTs, conversions) run under Wine too.
echo "== cross-build the bitsim-windows unit tests" >&2
TEST_EXE="$(win_cargo test --no-run -p bitsim-windows --lib --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "bitsim_windows":
        print(m["executable"])')"
[[ -f "$TEST_EXE" ]] || { echo "wine-conformance: the unit-test exe was not built" >&2; exit 1; }
RUN_CONFORM="${BITSIM_WINE_CONFORM:-1}"
MAX_SECONDS="${BITSIM_WINE_MAX_SECONDS:-35}"
if [[ "$RUN_CONFORM" != 0 ]]; then
  # Debug: cold it builds faster than release here (deps get opt-level 1, see
  # Cargo.toml), and it shares the probe's and the unit tests' artefacts.
  echo "== cross-build bitsim.exe for $WIN_TARGET" >&2
  win_cargo build -p bitsim --bin bitsim
  BITSIM_EXE="$CARGO_TARGET_DIR/$WIN_TARGET/debug/bitsim.exe"
  [[ -f "$BITSIM_EXE" ]] || { echo "wine-conformance: $BITSIM_EXE was not built" >&2; exit 1; }
fi
phase build

# ---- 3. fresh prefix, cleaned up on any exit --------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bitsim-wine.XXXXXX")"
SERVER_PID=""
export WINEPREFIX="$WORK/prefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEARCH=win64
unset DISPLAY WAYLAND_DISPLAY

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
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

mkdir -p "$OUT" "$WORK/www"
wine_prefix_boot "$WORK"
phase prefix

# ---- 4. loopback server + probe -----------------------------------------------------
SIZE=1048576
# wait_for_line FILE SED-EXPR: the first match of SED-EXPR (-n ... p) in FILE
# once the server wrote it (10 s at most).
wait_for_line() {
  local v=""
  for _ in $(seq 1 100); do
    v="$(sed -n "$2" "$1" | head -n1)"
    [[ -n "$v" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  printf '%s' "$v"
}
if [[ "$SERVER_KIND" == bitsim ]]; then
  # Built-in routes, no faults: /bytes/N is N bytes of seeded pattern.
  "$BITSIM_BIN" serve --addr 127.0.0.1:0 --seed 7 >"$WORK/http.out" 2>"$WORK/http.log" &
  SERVER_PID=$!
  BASE="$(wait_for_line "$WORK/http.out" 's|^listening on \(http://127\.0\.0\.1:[0-9]*\).*|\1|p')"
  [[ -n "$BASE" ]] || { echo "wine-conformance: bitsim serve did not start" >&2; cat "$WORK/http.log" >&2; exit 1; }
  URL="$BASE/bytes/$SIZE"
  # The reference bytes, fetched on the Linux side from the same server.
  python3 -c 'import sys,urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$URL" >"$WORK/www/probe.bin"
  [[ "$(stat -c %s "$WORK/www/probe.bin")" == "$SIZE" ]] || { echo "wine-conformance: reference fetch failed" >&2; exit 1; }
else
  # 1 MiB of deterministic bytes.
  python3 -c 'import hashlib,sys
out=bytearray(); i=0
while len(out) < 1<<20:
    out+=hashlib.sha256(b"bitsim-%d" % i).digest(); i+=1
sys.stdout.buffer.write(bytes(out[:1<<20]))' >"$WORK/www/probe.bin"
  # Port 0: the OS picks a free port; http.server prints it on its first line.
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
  SERVER_PID=$!
  PORT="$(wait_for_line "$WORK/http.log" 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p')"
  [[ -n "$PORT" ]] || { echo "wine-conformance: HTTP server did not start" >&2; cat "$WORK/http.log" >&2; exit 1; }
  URL="http://127.0.0.1:$PORT/probe.bin"
fi
echo "== loopback server on $URL" >&2

passed=0
failed=0
check() { # check NAME COMMAND...: one conformance check
  local name="$1"
  shift
  if "$@"; then
    echo "  pass  $name"
    passed=$((passed + 1))
  else
    echo "  FAIL  $name"
    failed=$((failed + 1))
  fi
}

echo "== wine probe.exe $URL" >&2
set +e
timeout 120 wine "$EXE" "$URL" 'C:\bitsim-probe.bin' --sweep --timeout 30 >"$WORK/probe.out" 2>"$WORK/probe.err"
probe_rc=$?
set -e
tr -d '\r' <"$WORK/probe.out" >"$OUT/probe.out"
cp "$WORK/probe.err" "$OUT/probe.err"
cp "$WORK/http.log" "$OUT/http.log"
cat "$OUT/probe.out"
phase run

echo "== wine $(basename "$TEST_EXE") (unit tests)" >&2
set +e
timeout 120 wine "$TEST_EXE" >"$WORK/unit.out" 2>&1
unit_rc=$?
set -e
tr -d '\r' <"$WORK/unit.out" >"$OUT/unit-tests.out"
grep -E '^test result' "$OUT/unit-tests.out" || tail -n 20 "$OUT/unit-tests.out"
phase unit-tests

conform_rc=0
if [[ "$RUN_CONFORM" != 0 ]]; then
  # Relative paths: wine starts bitsim.exe in the repo (Z:\...), so the
  # report's trace links come out relative to docs/conformance/.
  REPORT=docs/conformance/wine-qmgr.md
  EXPECTED=fixtures/conformance/wine-qmgr.json
  TRACES=target/wine-conformance/traces
  rm -rf "${ROOT:?}/$TRACES"
  mkdir -p "$ROOT/docs/conformance"
  echo "== wine bitsim.exe conform --backend bits --label wine-qmgr --max-seconds $MAX_SECONDS fixtures/scenarios" >&2
  set +e
  (cd "$ROOT" && timeout "${BITSIM_WINE_CONFORM_TIMEOUT:-1800}" wine "$BITSIM_EXE" conform --backend bits \
    --label wine-qmgr --expected "$EXPECTED" --report "$REPORT" --out "$TRACES" \
    --max-seconds "$MAX_SECONDS" --sweep fixtures/scenarios) >"$WORK/conform.out" 2>"$WORK/conform.err"
  conform_rc=$?
  set -e
  tr -d '\r' <"$WORK/conform.out" >"$OUT/conform.out"
  tr -d '\r' <"$WORK/conform.err" >"$OUT/conform.err"
  grep -Ev '^(match|known|n/a|differs) ' "$OUT/conform.out" | grep -E '^[0-9]+ ' || true
  grep -E '^differs ' -A 12 "$OUT/conform.out" | head -n 200 || true
  n_scenarios="$(find "$ROOT/fixtures/scenarios" -name '*.json' | wc -l)"
  n_rows="$(grep -c '^| [a-zA-Z]' "$ROOT/$REPORT" 2>/dev/null || echo 0)"
  n_compared="$(grep -cE '^(match|known|differs) ' "$OUT/conform.out" || true)"
  phase conform
fi

result="$(grep '^RESULT ' "$OUT/probe.out" | tail -n1 || true)"
echo "== checks"
check "bitsim-windows unit tests pass under Wine (rc=$unit_rc)" test "$unit_rc" -eq 0
check "probe exits 0 (rc=$probe_rc)" test "$probe_rc" -eq 0
check "job reaches ACKNOWLEDGED after Complete -> S_OK" \
  grep -q 'ok=true final=ACKNOWLEDGED complete=0x00000000' <<<"$result"
check "JobTransferred callback delivered" grep -Eq 'callbacks=([A-Za-z]+,)*JobTransferred' <<<"$result"
check "downloaded file is byte-identical" cmp -s "$WINEPREFIX/drive_c/bitsim-probe.bin" "$WORK/www/probe.bin"
if [[ "$SERVER_KIND" == python ]]; then
  check "server saw the GET" grep -q '"GET /probe.bin HTTP/1.1" 200' "$WORK/http.log"
fi

if [[ "$RUN_CONFORM" != 0 ]]; then
  check "conform: no unexpected differences under Wine (rc=$conform_rc)" test "$conform_rc" -eq 0
  # The header row counts too: scenarios + 1.
  check "conform: the report lists every scenario ($((n_rows - 1))/$n_scenarios)" test "$((n_rows - 1))" -eq "$n_scenarios"
  check "conform: scenarios were really compared against Wine ($n_compared)" test "${n_compared:-0}" -gt 0
fi

phase checks
summary="wine lane ($SERVER_KIND server): $passed passed, $failed failed (${timings[*]} total=$((SECONDS - T_START))s)"
echo "$summary" | tee "$OUT/summary.txt"
[[ "$failed" -eq 0 ]]
