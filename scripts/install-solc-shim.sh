#!/usr/bin/env bash
# Install scripts/solc-shim.js where py-solc-x and svm look for a native solc.
# Never overwrites a compiler that is not ours (ours carry the marker below).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MARKER="spotcheck-solc-shim"
VERSION="$(node "$ROOT/scripts/solc-shim.js" --version | sed -n 's/^Version: \([0-9.]*\)+.*/\1/p')"
SOLCX_DIR="${SOLCX_BINARY_PATH:-$HOME/.solcx}"
SVM_DIR="${SVM_HOME:-$HOME/.svm}"

install_one() {
  local target="$1"
  if [[ -e "$target" ]] && ! grep -q "$MARKER" "$target" 2>/dev/null; then
    echo "[solc-shim] keeping existing compiler at $target (not ours)" >&2
    return
  fi
  mkdir -p "$(dirname "$target")"
  local tmp="$target.tmp.$$"
  # The shim runs the solc-js of the checkout that installed it last; if that checkout is gone,
  # it says so in one line instead of node's stack trace.
  local js="$ROOT/scripts/solc-shim.js"
  cat > "$tmp" <<EOF
#!/bin/sh
# $MARKER: solc-js $VERSION behind a native-solc interface
if [ ! -f "$js" ]; then
  echo "spotcheck solc shim: $js is gone (the checkout that installed this shim moved or was deleted); run 'make setup' in your checkout" >&2
  exit 1
fi
exec node "$js" "\$@"
EOF
  chmod +x "$tmp"
  mv -f "$tmp" "$target"
}

install_one "$SOLCX_DIR/solc-v$VERSION"          # py-solc-x / ape-solidity
install_one "$SVM_DIR/0.8.20/solc-0.8.20"         # svm / ezkl create_evm_verifier
echo "[solc-shim] solc $VERSION shim ready ($SOLCX_DIR, $SVM_DIR)" >&2
