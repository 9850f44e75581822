#!/usr/bin/env bash
# The HTML report as a person sees it (issue 12): renders reports for a few corpus
# scenarios with `bitsim run --report`, opens every page in headless Chromium, and
# checks the DOM after the page's script ran (lanes, spans, markers and the in-flight
# chart against each run's trace) and that the screenshots are not blank.
# Installs Debian's chromium if missing (needs root and apt).
# Usage: scripts/report-browser-test.sh [--update-screenshots]
#   --update-screenshots also copies the two README screenshots to docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
update=${1:-}

find_chromium() {
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}

chrome=$(find_chromium || true)
if [ -z "$chrome" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || true
  chrome=$(find_chromium || true)
fi
if [ -z "$chrome" ]; then
  echo "report-browser-test: chromium is missing and could not be installed here; install it by hand (Debian: sudo apt-get install -y chromium) and rerun" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "report-browser-test: python3 is missing; install it by hand (Debian: sudo apt-get install -y python3) and rerun" >&2
  exit 1
fi

echo "== build bitsim"
cargo build -q -p bitsim
out=target/report-browser-test
rm -rf "$out"
mkdir -p "$out/dom" "$out/png"

# A 403 with retried JobError; the four-slot limit with two users; 14 days of
# retries (compressed axis); environment events; a command line; an upload;
# and a deliberately failing scenario (its page marks the failed step).
scenarios=(
  fixtures/scenarios/errors/http-403-on-head.json
  fixtures/scenarios/notifications/four-in-flight-limit.json
  fixtures/scenarios/timers/no-progress-timeout-default-14-days.json
  fixtures/scenarios/environment/network-lost-and-restored.json
  fixtures/scenarios/notifications/cmdline-fallback.json
  fixtures/scenarios/uploads/upload-reply-success.json
  fixtures/invalid/failing.json
)
echo "== render"
status=0
target/debug/bitsim run "${scenarios[@]}" --report "$out/site" --trace-dir "$out/traces" >"$out/run.log" || status=$?
if [ "$status" != 1 ]; then
  echo "report-browser-test: bitsim run exited $status, expected 1 (one deliberately failing scenario); see $out/run.log" >&2
  exit 1
fi

chromium() {
  local profile
  profile=$(mktemp -d)
  "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@" 2>>"$out/chromium.log"
  rm -rf "$profile"
}

echo "== chromium: DOM after the script, and screenshots"
for page in "$out"/site/runs/*.html "$out/site/index.html"; do
  name=$(basename "$page" .html)
  url="file://$(realpath "$page")"
  if [ "$name" != index ]; then
    chromium --dump-dom --window-size=1400,1000 "$url" >"$out/dom/$name.html"
  fi
  chromium --screenshot="$out/png/$name.png" --window-size=1400,1000 "$url" >/dev/null
done
# Links into pages: a trace line's anchor places the cursor; the index's filters
# can be preset from the URL.
mkdir -p "$out/hash"
chromium --dump-dom "file://$(realpath "$out/site/runs/http-403-on-head.bits.html")#L15" >"$out/hash/http-403-on-head.bits.L15.html"
chromium --dump-dom "file://$(realpath "$out/site/index.html")#verdict=fail" >"$out/hash/index.verdict-fail.html"

echo "== check"
python3 scripts/report_browser_check.py "$out" four-in-flight-limit.bits

if [ "$update" = --update-screenshots ]; then
  cp "$out/png/http-403-on-head.bits.png" docs/report-403-jobError.png
  cp "$out/png/four-in-flight-limit.bits.png" docs/report-four-slots.png
  echo "screenshots copied to docs/"
fi
