#!/usr/bin/env bash
# Real-browser check of the pack's web extension against a real ComfyUI server.
#
#   COMFYUI_DIR=/path/to/ComfyUI bash tools/browser_check/run.sh
#
# COMFYUI_DIR (or the first argument) is a ComfyUI source tree (with main.py), or a bare git snapshot of one, whose
# HEAD is exported (blob by blob, so a snapshot with an absent large file still works) into the cache. ComfyUI itself
# is not installable from a package registry, which is why this check does not run in CI.
#
# It sets up or reuses, under ${DITTO_BC_CACHE:-~/.cache/ditto-browser-check}: a venv with ComfyUI's requirements
# (minus torch/torchvision/torchaudio: torch is installed on its own, the other two are replaced by the stand-ins of
# DITTO_BC_STANDINS) and the pack's requirements.txt as a user installs them; the frontends (the
# comfyui-frontend-package version ComfyUI pins, and the newest on PyPI); playwright-core from npm; the synthetic
# model kit (python -m ditto_core.synthetic). Then it fills a ComfyUI base directory (custom_nodes/ links this
# checkout, models/ditto/ditto-talkinghead the kit, input/ the short inputs of prepare_inputs.py) and runs check.cjs:
# one ComfyUI server on 127.0.0.1 (a free port, stopped on exit or signal), Debian's Chromium, every workflows/*.json
# executed in each phase: by default the pinned frontend with the classic canvas renderer, then the newest frontend
# with the Vue node renderer (Comfy.VueNodes.Enabled). Exit status 0 when everything passed.
#
# The phase "live" (e.g. DITTO_BC_PHASES="pinned-classic live") checks Go Live and the live page the pack serves on
# ComfyUI's own server: it queues workflows/api/Live avatar from a portrait.json through ComfyUI's /prompt (once
# under another avatar name first, so that the page lists two avatars), then runs live_check.cjs against the page
# http://127.0.0.1:PORT/ditto/live/?avatar=comfyui: Chromium with a fake microphone playing 3 s of the sample speech,
# the avatar listed and selected, idle on, Talk, at least DITTO_BC_LIVE_FRAMES frames drawn (the synthetic kit's real
# renderer on the CPU: 10 s or more per frame), Stop, an upload of the sample portrait, screenshots in <out>/live/.
#
# Settings (environment):
#   COMFYUI_DIR             ComfyUI source tree or bare git dir (required)
#   DITTO_BC_CACHE          cache folder (default ~/.cache/ditto-browser-check)
#   DITTO_BC_OUT            output folder for screenshots, logs, results.json (default /tmp/ditto-browser-check-DATE)
#   DITTO_BC_STANDINS       folder put on ComfyUI's PYTHONPATH for torchvision/torchaudio stand-ins
#                           (default /work/shared/comfyui-local; empty to use the venv's own packages)
#   DITTO_BC_TORCH          pip requirement for torch (default: torch==<the version python3 has>, else "torch",
#                           which on Linux is a CUDA build of several GB; the check runs ComfyUI with --cpu)
#   DITTO_BC_KIT            an existing synthetic kit folder (ditto-talkinghead) to link instead of making one
#   DITTO_BC_PHASES         "pinned-classic latest-vue" (default); each is pinned, latest or a version (1.30.2),
#                           then -classic or -vue (e.g. "pinned-classic latest-vue latest-classic 1.30.2-classic"),
#                           or "live" (the live page on ComfyUI's server, with the frontend of the phase before it)
#   DITTO_BC_LIVE_FRAMES    frames the live phase waits for (default 2)
#   DITTO_BC_LIVE_TIMEOUT   seconds the live phase waits for them, and for each of its other steps (default 600)
#   DITTO_BC_LATEST_VERSION pin "latest" to this version (default: the newest on PyPI)
#   DITTO_BC_ONLY           run only the workflows whose file name contains this text (default: all workflows/*.json)
#   DITTO_BC_INPUTS, DITTO_BC_SAMPLES, DITTO_BC_SPEECH_SECONDS, DITTO_BC_VIDEO_FRAMES: see prepare_inputs.py
#   DITTO_BC_TIMEOUT        seconds to wait for one workflow (default 3600)
#   DITTO_BC_DPR            the browser's devicePixelRatio (default 2: HiDPI)
#   CHROMIUM                browser executable (default /usr/bin/chromium; apt-get install -y chromium)
set -euo pipefail

# (the body is a function so that bash has read all of it before running: editing this file during a run is safe)
main() {

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${DITTO_BC_CACHE:-$HOME/.cache/ditto-browser-check}"
OUT="${DITTO_BC_OUT:-/tmp/ditto-browser-check-$(date +%Y%m%d-%H%M%S)}"
STANDINS="${DITTO_BC_STANDINS-/work/shared/comfyui-local}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
COMFYUI_DIR="${1:-${COMFYUI_DIR:-}}"
PLAYWRIGHT_VERSION="1.65.1"

say() { printf '[run.sh] %s\n' "$*" >&2; }
die() { printf '[run.sh] error: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- preconditions
if [ -z "$COMFYUI_DIR" ]; then
  die "no ComfyUI: set COMFYUI_DIR (or pass it as the first argument) to a ComfyUI source tree (main.py) or a bare
  git snapshot of Comfy-Org/ComfyUI. ComfyUI cannot be installed from a package registry, so the check needs a copy."
fi
[ -e "$COMFYUI_DIR" ] || die "COMFYUI_DIR=$COMFYUI_DIR does not exist"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM: apt-get install -y chromium (never 'playwright install')"
command -v node >/dev/null || die "node is missing (apt-get install -y nodejs npm)"
command -v npm >/dev/null || die "npm is missing (apt-get install -y npm)"
if [ -n "$STANDINS" ] && [ ! -d "$STANDINS" ]; then
  die "DITTO_BC_STANDINS=$STANDINS does not exist (set it empty to use the venv's torchvision/torchaudio)"
fi
mkdir -p "$CACHE" "$OUT"
OUT="$(cd "$OUT" && pwd)"
say "output folder: $OUT"

# ---------------------------------------------------------------- ComfyUI source
if [ -f "$COMFYUI_DIR/main.py" ]; then
  COMFY_SRC="$(cd "$COMFYUI_DIR" && pwd)"
elif git --git-dir="$COMFYUI_DIR" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  commit="$(git --git-dir="$COMFYUI_DIR" rev-parse HEAD)"
  COMFY_SRC="$CACHE/comfyui-${commit:0:12}"
  if [ ! -f "$COMFY_SRC/.complete" ]; then
    say "exporting ComfyUI ${commit:0:12} from $COMFYUI_DIR"
    rm -rf "$COMFY_SRC"
    mkdir -p "$COMFY_SRC"
    git --git-dir="$COMFYUI_DIR" ls-tree -r -z HEAD | while IFS= read -r -d '' line; do
      meta="${line%%$'\t'*}"; file="${line#*$'\t'}"
      read -r _mode type sha <<<"$meta"
      [ "$type" = blob ] || continue
      mkdir -p "$COMFY_SRC/$(dirname "$file")"
      if ! git --git-dir="$COMFYUI_DIR" cat-file blob "$sha" >"$COMFY_SRC/$file" 2>/dev/null; then
        rm -f "$COMFY_SRC/$file"
        say "  (absent from the snapshot: $file)"
      fi
    done
    touch "$COMFY_SRC/.complete"
  fi
else
  die "COMFYUI_DIR=$COMFYUI_DIR is neither a ComfyUI source tree (main.py) nor a git directory"
fi
COMFY_VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMFY_SRC/comfyui_version.py" 2>/dev/null || true)"
PINNED="$(sed -n 's/^comfyui-frontend-package==\([^ ;#]*\).*/\1/p' "$COMFY_SRC/requirements.txt" | head -1)"
[ -n "$PINNED" ] || die "no comfyui-frontend-package pin in $COMFY_SRC/requirements.txt"
say "ComfyUI ${COMFY_VERSION:-?} at $COMFY_SRC (pins comfyui-frontend-package $PINNED)"

# ---------------------------------------------------------------- venv
# torch: the build this machine's python3 already has (e.g. 2.13.0+cpu from a local wheel), else PyPI's default
TORCH_REQ="${DITTO_BC_TORCH:-}"
if [ -z "$TORCH_REQ" ]; then
  TORCH_REQ="torch"
  tv="$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
  [ -n "$tv" ] && TORCH_REQ="torch==$tv"
fi
key="$( (echo "recipe 2"; cat "$COMFY_SRC/requirements.txt" "$REPO/requirements.txt"; echo "$TORCH_REQ"; python3 --version) \
  | sha256sum | cut -c1-12)"
VENV="$CACHE/venv-$key"
if [ ! -f "$VENV/.complete" ]; then
  say "creating the ComfyUI venv $VENV (a few minutes)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  grep -v -E '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([=<>!~;#].*)?$' "$COMFY_SRC/requirements.txt" >"$VENV/comfyui-requirements.txt"
  # one resolver run, so that what ComfyUI's dependencies pull in (torchvision via kornia/spandrel) fits the torch
  # asked for instead of replacing it; then the pack's requirements, as ComfyUI-Manager installs them (onnx only
  # to write the synthetic kit), with torch held where it is
  echo "$TORCH_REQ" >"$VENV/torch-constraint.txt"
  {
    "$VENV/bin/pip" install "$TORCH_REQ" -r "$VENV/comfyui-requirements.txt" requests &&
    "$VENV/bin/pip" install -c "$VENV/torch-constraint.txt" -r "$REPO/requirements.txt" onnx
  } >"$VENV/pip.log" 2>&1 || { tail -20 "$VENV/pip.log" >&2; die "pip failed; see $VENV/pip.log"; }
  touch "$VENV/.complete"
fi
PY="$VENV/bin/python"

# ---------------------------------------------------------------- frontends
frontend_dir() {  # VERSION -> static folder (installed once into the cache)
  local v="$1" d="$CACHE/frontends/$1"
  if [ ! -f "$d/.complete" ]; then
    say "installing comfyui-frontend-package==$v"
    rm -rf "$d"
    mkdir -p "$CACHE/frontends"
    "$VENV/bin/pip" install --no-deps --target "$d" "comfyui-frontend-package==$v" >"$CACHE/frontends/pip-$v.log" 2>&1 \
      || { tail -5 "$CACHE/frontends/pip-$v.log" >&2; die "cannot install comfyui-frontend-package==$v"; }
    touch "$d/.complete"
  fi
  [ -f "$d/comfyui_frontend_package/static/index.html" ] || die "no index.html in $d"
  echo "$d/comfyui_frontend_package/static"
}
latest_version() {
  if [ -n "${DITTO_BC_LATEST_VERSION:-}" ]; then echo "$DITTO_BC_LATEST_VERSION"; return; fi
  "$VENV/bin/pip" index versions comfyui-frontend-package 2>/dev/null | sed -n 's/^comfyui-frontend-package (\(.*\))$/\1/p' | head -1
}
PHASES=""
NAMES=""
LIVE_PHASE=""
last_static=""
for f in ${DITTO_BC_PHASES:-pinned-classic latest-vue}; do
  if [ "$f" = live ]; then
    # the live page needs no particular frontend: keep the one already served (no swap), else the pinned one
    [ -n "$last_static" ] || last_static="$(frontend_dir "$PINNED")"
    PHASES+="live|$last_static|live;"
    NAMES+=" live"
    LIVE_PHASE=1
    continue
  fi
  renderer="${f##*-}"
  which="${f%-*}"
  case "$renderer" in classic|vue) ;; *) die "phase $f: end it in -classic or -vue" ;; esac
  case "$which" in
    pinned) v="$PINNED" ;;
    latest) v="$(latest_version)"; [ -n "$v" ] || die "cannot find the newest comfyui-frontend-package on PyPI" ;;
    *) v="$which" ;;
  esac
  static="$(frontend_dir "$v")"
  last_static="$static"
  PHASES+="$which-$v-$renderer|$static|$renderer;"
  NAMES+=" $which-$v-$renderer"
done

# ---------------------------------------------------------------- playwright-core
NODE_DIR="$CACHE/node"
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] \
  || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
  say "installing playwright-core $PLAYWRIGHT_VERSION into $NODE_DIR (the browser is Debian's, never downloaded)"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"private": true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION")
fi

# ---------------------------------------------------------------- synthetic model kit
if [ -n "${DITTO_BC_KIT:-}" ]; then
  KIT="$DITTO_BC_KIT"
  [ -f "$KIT/SYNTHETIC_MODELS.txt" ] || die "DITTO_BC_KIT=$KIT is not a synthetic kit (no SYNTHETIC_MODELS.txt)"
else
  KIT="$CACHE/kit/ditto-talkinghead"
  if [ ! -f "$CACHE/kit/.complete" ]; then
    say "writing the synthetic model kit into $KIT (about 700 MB)"
    rm -rf "$CACHE/kit"
    mkdir -p "$CACHE/kit"
    (cd "$REPO" && "$PY" -m ditto_core.synthetic "$KIT" >"$CACHE/kit.log" 2>&1) || { tail -5 "$CACHE/kit.log" >&2; die "cannot write the kit; see $CACHE/kit.log"; }
    touch "$CACHE/kit/.complete"
  fi
fi

# ---------------------------------------------------------------- ComfyUI base directory
BASE="$OUT/comfyui-base"
mkdir -p "$BASE/custom_nodes" "$BASE/models/ditto" "$BASE/input" "$BASE/output" "$BASE/user"
PACK_NAME="ComfyUI-Ditto"
ln -sfn "$REPO" "$BASE/custom_nodes/$PACK_NAME"
ln -sfn "$KIT" "$BASE/models/ditto/ditto-talkinghead"
WORKFLOWS=()
for wf in "$REPO"/workflows/*.json; do
  [ -f "$wf" ] || continue
  if [ -n "${DITTO_BC_ONLY:-}" ] && [[ "${wf##*/}" != *"$DITTO_BC_ONLY"* ]]; then continue; fi
  WORKFLOWS+=("$wf")
done
[ "${#WORKFLOWS[@]}" -gt 0 ] || die "no workflows in $REPO/workflows${DITTO_BC_ONLY:+ matching $DITTO_BC_ONLY}"
INPUT_WORKFLOWS=("${WORKFLOWS[@]}")
if [ -n "$LIVE_PHASE" ]; then
  LIVE_WF="$REPO/workflows/Live avatar from a portrait.json"
  [ -f "$LIVE_WF" ] && [ -f "$REPO/workflows/api/${LIVE_WF##*/}" ] || die "phase live: no $LIVE_WF (or its API twin)"
  INPUT_WORKFLOWS+=("$LIVE_WF")  # its inputs too, whatever DITTO_BC_ONLY picked
  # the speech the fake microphone plays: 3 s of the sample at 16 kHz mono (as live_run.sh makes it)
  LIVE_WAV="$OUT/live-speech.wav"
  "$PY" "$HERE/mic_wav.py" "$REPO/example_inputs/ditto_speech.wav" "$LIVE_WAV"
  export DITTO_BC_LIVE_WORKFLOW="$LIVE_WF" DITTO_BC_LIVE_WAV="$LIVE_WAV" DITTO_BC_LIVE_CHECK="$HERE/live_check.cjs"
fi
"$PY" "$HERE/prepare_inputs.py" "$BASE/input" "${INPUT_WORKFLOWS[@]}"

# ---------------------------------------------------------------- the check
say "phases:$NAMES; workflows: ${#WORKFLOWS[@]}${LIVE_PHASE:+ (and the live workflow in the live phase)}"
export DITTO_BC_NODE_MODULES="$NODE_DIR/node_modules"
export DITTO_BC_COMFYUI="$COMFY_SRC" DITTO_BC_PYTHON="$PY" DITTO_BC_STANDINS="$STANDINS" DITTO_BC_BASE="$BASE"
export DITTO_BC_OUT="$OUT" DITTO_BC_CHROMIUM="$CHROMIUM" DITTO_BC_PHASE_SPECS="$PHASES" DITTO_BC_PACK_NAME="$PACK_NAME"
export DITTO_BC_API_DIR="$REPO/workflows/api"
DITTO_BC_WORKFLOWS="$(printf '%s\n' "${WORKFLOWS[@]}")"
export DITTO_BC_WORKFLOWS
# check.cjs stops its server itself; this is for the case where it is killed outright
stop_leftover_server() {
  local pid
  pid="$(cat "$OUT/server.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
}
trap stop_leftover_server EXIT
trap 'exit 130' INT TERM HUP
rc=0
node "$HERE/check.cjs" || rc=$?
say "output folder: $OUT"
return "$rc"
}

main "$@"
exit $?
