#!/usr/bin/env bash
# Idempotent: Debian's chromium + chromium-driver for the dashboard's browser test
# (tests/e2e/test_dashboard_browser.py drives it through Playwright; nothing is downloaded by
# Playwright itself). Skips when /usr/bin/chromium already runs. Needs root or passwordless
# sudo and a Debian/Ubuntu apt; anywhere else it says so and exits non-zero.
set -euo pipefail
log() { printf '[install-chromium] %s\n' "$*" >&2; }

if [[ -x /usr/bin/chromium ]] && /usr/bin/chromium --version >/dev/null 2>&1; then
  log "chromium present: $(/usr/bin/chromium --version 2>/dev/null)"
  exit 0
fi
command -v apt-get >/dev/null || { log "error: apt-get not found; install Chromium at /usr/bin/chromium by hand"; exit 1; }
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || { log "error: not root and no sudo; run: apt-get install -y chromium chromium-driver"; exit 1; }
  SUDO="sudo -n"
fi
log "installing Debian's chromium and chromium-driver (about 100 MB)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >/dev/null
log "chromium installed: $(/usr/bin/chromium --version 2>/dev/null)"
