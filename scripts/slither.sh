#!/usr/bin/env bash
# Static analysis of the Spotcheck contracts with slither, offline (see ../shared/TOOLCHAIN.md).
#
# slither's default mode calls `solc --combined-json`, which the solc-js shim cannot do, and then
# silently analyses 0 contracts. So we hand it a standard-JSON input (sources as `urls`) and the
# shim as `--solc`, and fail unless it reports the expected number of contracts.
#
# Usage: scripts/slither.sh [extra slither args]
# Findings are triaged in docs/security.md; each accepted one is listed, by detector and
# function, in scripts/slither-triaged.txt. Exit status: 0 when every finding is triaged,
# 1 when slither reports a finding that is not (print: NEW), 2 when the tool itself failed
# (no JSON report, or fewer than 10 contracts analysed). slither's own exit status (255 when
# it found anything) is not used.
set -euo pipefail
cd "$(dirname "$0")/.."

SOLC="${SOLC:-$HOME/.solcx/solc-v0.8.37}"
SLITHER="${SLITHER:-.venv/bin/slither}"
OUT=.build/slither
mkdir -p "$OUT"

# The contracts that hold money or define the ABI (mocks under contracts/test are excluded).
SOURCES=(
  contracts/StakeManager.sol
  contracts/ModelRegistry.sol
  contracts/JobManager.sol
  contracts/DisputeManager.sol
  contracts/CheckPool.sol
  contracts/consumer/SpotcheckConsumerBase.sol
  contracts/consumer/ExampleConsumer.sol
)

python3 - "$OUT/input.json" "${SOURCES[@]}" <<'PY'
import json, sys
out, *sources = sys.argv[1:]
json.dump({
    "language": "Solidity",
    "sources": {s: {"urls": [s]} for s in sources},
    "settings": {
        "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
        "optimizer": {"enabled": True, "runs": 200},
        "evmVersion": "cancun",
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode",
                                          "evm.methodIdentifiers"], "": ["ast"]}},
    },
}, open(out, "w"), indent=2)
PY

# Detectors excluded project-wide, each justified in docs/security.md:
#   timestamp        deadlines are minutes to days; miner drift of seconds is irrelevant
#   naming-convention immutables in camelCase follow the interface getters
EXCLUDE="timestamp,naming-convention"

rm -f "$OUT/report.json"
set +e
"$SLITHER" "$OUT/input.json" \
  --compile-force-framework solc-json --solc "$SOLC" \
  --filter-paths "node_modules" \
  --exclude "$EXCLUDE" \
  --json "$OUT/report.json" \
  "$@" 2>&1 | tee "$OUT/report.txt"
set -e

count=$(grep -Eo 'analyzed \(([0-9]+) contracts' "$OUT/report.txt" | grep -Eo '[0-9]+' | tail -1 || true)
if [[ -z "$count" || "$count" -lt 10 || ! -s "$OUT/report.json" ]]; then
  echo "slither analysed ${count:-0} contracts or wrote no report: the tool failed" >&2
  exit 2
fi
echo "slither analysed $count contracts (report: $OUT/report.txt)"

# Compare the findings with the triaged list: "<detector> <Contract.function(args)>" per line.
python3 - "$OUT/report.json" scripts/slither-triaged.txt <<'PY'
import json, re, sys
report, triaged_path = sys.argv[1:]
data = json.load(open(report))
if not data.get("success", False):
    print(f"slither failed: {data.get('error')}", file=sys.stderr)
    sys.exit(2)
triaged = set()
for line in open(triaged_path):
    line = line.split("#", 1)[0].strip()
    if line:
        triaged.add(" ".join(line.split()[:2]))
found = set()
for d in (data.get("results") or {}).get("detectors", []):
    first = d["description"].strip().splitlines()[0]
    where = re.sub(r"^Reentrancy in ", "", first).split(" (", 1)[0]
    found.add(f"{d['check']} {where}")
new = sorted(found - triaged)
stale = sorted(triaged - found)
for f in sorted(found & triaged):
    print(f"triaged: {f}")
for f in stale:
    print(f"triaged but no longer reported (remove from {triaged_path}): {f}")
for f in new:
    print(f"NEW: {f}")
print(f"{len(found)} finding(s): {len(found & triaged)} triaged, {len(new)} new")
sys.exit(1 if new else 0)
PY
