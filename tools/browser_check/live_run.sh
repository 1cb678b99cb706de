#!/usr/bin/env bash
# Real-browser check of the Ditto Live page (ditto_core/live/static/) against a live server:
#
#   bash tools/browser_check/live_run.sh
#
# It starts `python tests/live_server.py` (serve's own code with the benchmarks' stand-in renderer, --device cpu, a
# random --token, the example portrait as avatar) on a free port of 127.0.0.1 in the background (stopped on exit or
# signal), writes a 3 s 16 kHz speech WAV from example_inputs/ditto_speech.wav, and runs live_check.cjs: Debian's
# Chromium (headless, a fake microphone playing that WAV) opens http://127.0.0.1:PORT/?token=..., picks the avatar,
# Talks (frames arrive and are drawn, stats shown), Interrupts, Stops, plays the WAV as a file (its audio returned and
# scheduled), uploads avatars, checks tooltips and labels, a wrong token, the page under /ditto/live/ (the ComfyUI
# mount, through a proxy route) and that the page logs no console errors. Prints PASS/FAIL lines; exit status 0 when
# everything passed. Screenshots and results.json go to $OUT_DIR.
#
# playwright-core comes from npm into the cache run.sh uses (the browser is Debian's, never downloaded).
#
# Settings (environment):
#   DITTO_TEST_KIT   the synthetic model kit (default /tmp/kit/ditto-talkinghead; python -m ditto_core.synthetic DIR)
#   OUT_DIR          screenshots, server.log, results.json (default /tmp/ditto-live-check)
#   DITTO_BC_CACHE   cache folder with node/ (default ~/.cache/ditto-browser-check)
#   CHROMIUM         browser executable (default /usr/bin/chromium; apt-get install -y chromium)
#   PYTHON           the Python with ditto_core's requirements (default python, else python3)
#   DITTO_LC_TIMEOUT seconds to wait for frames in each step (default 120)
#   DITTO_LC_PREFIX  1 (default) also checks the page under /ditto/live/; 0 skips it
set -euo pipefail

main() {

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${DITTO_BC_CACHE:-$HOME/.cache/ditto-browser-check}"
OUT="${OUT_DIR:-/tmp/ditto-live-check}"
KIT="${DITTO_TEST_KIT:-/tmp/kit/ditto-talkinghead}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
PLAYWRIGHT_VERSION="1.65.1"

say() { printf '[live_run.sh] %s\n' "$*" >&2; }
die() { printf '[live_run.sh] error: %s\n' "$*" >&2; exit 2; }

[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM: apt-get install -y chromium (never 'playwright install')"
command -v node >/dev/null || die "node is missing (apt-get install -y nodejs npm)"
[ -d "$KIT" ] || die "no model kit at $KIT: python -m ditto_core.synthetic $KIT (or set DITTO_TEST_KIT)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# ---------------------------------------------------------------- playwright-core (as run.sh installs it)
NODE_DIR="$CACHE/node"
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] \
  || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
  command -v npm >/dev/null || die "npm is missing (apt-get install -y npm)"
  say "installing playwright-core $PLAYWRIGHT_VERSION into $NODE_DIR (the browser is Debian's, never downloaded)"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"private": true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION")
fi

# ---------------------------------------------------------------- inputs: the speech the fake microphone plays
WAV="$OUT/speech.wav"
"$PY" "$HERE/mic_wav.py" "$REPO/example_inputs/ditto_speech.wav" "$WAV"

# another portrait to upload as a new avatar: the example mirrored
PORTRAIT2="$OUT/portrait_mirrored.jpg"
"$PY" -c 'import sys, cv2; cv2.imwrite(sys.argv[2], cv2.imread(sys.argv[1])[:, ::-1])' \
  "$REPO/example_inputs/ditto_portrait.jpg" "$PORTRAIT2"

# ---------------------------------------------------------------- the server
TOKEN="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(16))')"
LOG="$OUT/server.log"
say "starting the live server (models from $KIT; log $LOG)"
(cd "$REPO" && exec "$PY" tests/live_server.py --models "$KIT" --standin --device cpu --port 0 \
  --avatar example_inputs/ditto_portrait.jpg --token "$TOKEN") >"$LOG" 2>&1 </dev/null &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true  # the server is one process (exec above): SIGTERM stops it
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM HUP

URL=""
for _ in $(seq 600); do
  URL="$(sed -n 's|^serving on \(http://[^ ]*\)/.*|\1|p' "$LOG" | head -1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$LOG" >&2; die "the server exited; see $LOG"; }
  sleep 0.5
done
[ -n "$URL" ] || { tail -20 "$LOG" >&2; die "the server did not listen within 300 s; see $LOG"; }
AVATAR="$(sed -n 's|^avatar \([0-9a-f]*\): .*|\1|p' "$LOG" | head -1)"
[ -n "$AVATAR" ] || die "no avatar id in $LOG"
say "server $URL, avatar $AVATAR"

# ---------------------------------------------------------------- the check
NODE_FLAGS=()
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null \
  && node --experimental-websocket -e 0 2>/dev/null; then
  NODE_FLAGS=(--experimental-websocket)
fi
rc=0
DITTO_LC_URL="$URL" DITTO_LC_TOKEN="$TOKEN" DITTO_LC_AVATAR="$AVATAR" DITTO_LC_WAV="$WAV" \
  DITTO_LC_PORTRAIT="$REPO/example_inputs/ditto_portrait.jpg" DITTO_LC_PORTRAIT2="$PORTRAIT2" DITTO_LC_OUT="$OUT" DITTO_LC_CHROMIUM="$CHROMIUM" \
  DITTO_LC_NODE_MODULES="$NODE_DIR/node_modules" \
  node "${NODE_FLAGS[@]}" "$HERE/live_check.cjs" || rc=$?
say "output folder: $OUT (server log: $LOG)"
return "$rc"
}

main "$@"
exit $?
