#!/usr/bin/env bash
# Idempotent set-up: Python venv, npm packages (solc-js, anvil, OpenZeppelin), solc shim.
# Each step is skipped when its inputs have not changed since the last run (hash stamps).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. Python virtual environment
py_stamp="$(hash_of pyproject.toml requirements.lock)"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
fi
if [[ "$(cat "$VENV/.spotcheck-stamp" 2>/dev/null || true)" != "$py_stamp" ]]; then
  log "installing Python dependencies (first run takes about a minute)"
  # setuptools' build-time banners (editable install of a flat layout) are UserWarnings in
  # the build subprocess: hidden here, so the first `make demo` prints only our lines
  PYTHONWARNINGS="ignore::UserWarning" "$VENV/bin/python" -m pip install --quiet --upgrade pip
  PYTHONWARNINGS="ignore::UserWarning" \
    "$VENV/bin/python" -m pip install --quiet -c requirements.lock -e ".[dev]"
  echo "$py_stamp" > "$VENV/.spotcheck-stamp"
else
  log "Python dependencies up to date"
fi

# 2. npm packages: solc-js, anvil, OpenZeppelin
npm_stamp="$(hash_of package.json package-lock.json)"
if [[ "$(cat node_modules/.spotcheck-stamp 2>/dev/null || true)" != "$npm_stamp" ]]; then
  command -v npm >/dev/null || { log "error: npm not found; install Node.js >= 18"; exit 1; }
  log "installing npm packages"
  # `npm ci` rejects lockfiles that omit other platforms' optional anvil binaries (npm 11)
  npm install --no-audit --no-fund --loglevel=error
  echo "$npm_stamp" > node_modules/.spotcheck-stamp
else
  log "npm packages up to date"
fi

# 3. the offline Solidity compiler shim for py-solc-x (ape-solidity) and svm (ezkl)
"$ROOT/scripts/install-solc-shim.sh"

# 4. Debian's Chromium for the dashboard's browser test (tests/e2e/test_dashboard_browser.py);
#    only when asked (SPOTCHECK_BROWSER=1, set by `make test`): `make demo` does not need it
if [[ "${SPOTCHECK_BROWSER:-0}" == 1 ]]; then
  "$ROOT/scripts/install-chromium.sh"
fi
