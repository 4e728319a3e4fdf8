#!/usr/bin/env bash
# The whole mission on the committed sample, step by step, with the embedded defaults:
# sample data -> validate -> train -> design -> daily score-and-send to the local CAPI sandbox -> status.
# Models go to the default MLflow store (./mlruns); the spec, ledger and sandbox log go to demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

OUT=demo-out
SOURCE=data/sample
DAYS=(2026-10-29 2026-10-30 2026-10-31 2026-11-01)  # the sample's data ends 2026-11-01 00:00 UTC
rm -rf "$OUT" && mkdir -p "$OUT"
export META_ACCESS_TOKEN=sandbox-demo-token  # the sandbox accepts any non-empty token; never a real one here
PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GRAPH="http://127.0.0.1:$PORT"

step "1. The source: $SOURCE (a 20k-user warehouse export), checked against the data contract"
pltv inspect --source "$SOURCE"

step "2. Train one pLTV model per send day (0, 1, 3, 7), evaluate out of time, register in MLflow (./mlruns)"
pltv train --source "$SOURCE"

step "3. Design the event Meta will optimize on (candidates x Meta's rules -> EventSpec)"
pltv design --source "$SOURCE" --out "$OUT/eventspec.json"

step "4. Start the local CAPI sandbox on $GRAPH (replaying the sample's last days)"
pltv sandbox --port "$PORT" --now "${DAYS[0]}T01:00:00" >"$OUT/sandbox.log" 2>&1 &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null || true' EXIT
python - "$GRAPH" <<'PY'
import sys, time, requests
for _ in range(100):
    try:
        requests.get(sys.argv[1] + "/_sandbox/summary", timeout=1); break
    except requests.RequestException:
        time.sleep(0.1)
PY

for D in "${DAYS[@]}"; do
  step "5. Daily run for $D (as_of $D 00:00 UTC; the job would run at 01:00)"
  python -c "import requests, sys; requests.post(sys.argv[1] + '/_sandbox/clock', json={'now': sys.argv[2]}, timeout=5)" \
    "$GRAPH" "${D}T01:00:00"
  pltv score-and-send --source "$SOURCE" --date "$D" --spec "$OUT/eventspec.json" --pixel-id 1234567890 \
    --graph-url "$GRAPH" --ledger "$OUT/ledger.duckdb" --now "${D}T01:00:00"
done

step "6. Re-run the last day: effectively exactly once, nothing is sent twice"
pltv score-and-send --source "$SOURCE" --date "${DAYS[-1]}" --spec "$OUT/eventspec.json" --pixel-id 1234567890 \
  --graph-url "$GRAPH" --ledger "$OUT/ledger.duckdb" --now "${DAYS[-1]}T01:05:00"

step "7. What the ledger says (pltv status)"
pltv status --ledger "$OUT/ledger.duckdb"

step "8. What the sandbox received (pltv sandbox --show)"
pltv sandbox --show --port "$PORT"

kill "$SANDBOX" && wait "$SANDBOX" 2>/dev/null || true
trap - EXIT

step "9. Readout: the values sent against the revenue that followed (none matured yet: these users signed up last week)"
pltv readout calibration --source "$SOURCE" --ledger "$OUT/ledger.duckdb"

step "10. Readout: an acquisition experiment (a sample whose pLTV arm earns +25 %), lift with its 95 % interval"
pltv sample-data --out "$OUT/experiment" --experiment-lift 0.25
pltv readout experiment --source "$OUT/experiment" --arm-column acq_arm --treatment treatment --control control
step "11. One page for the team (pltv report): self-contained HTML, open it from disk in any browser"
pltv report --source "$SOURCE" --ledger "$OUT/ledger.duckdb" --spec "$OUT/eventspec.json" --out "$OUT/report.html"
step "Done. What the demo left behind:"
echo "  spec:        $OUT/eventspec.json"
echo "  ledger:      $OUT/ledger.duckdb   (pltv status --ledger $OUT/ledger.duckdb)"
echo "  sandbox log: $OUT/sandbox.log"
echo "  experiment:  $OUT/experiment   (pltv readout experiment --source $OUT/experiment --arm-column acq_arm ...)"
echo "  models:      ./mlruns             (browse: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db)"
echo "  report:      $(pwd)/$OUT/report.html   (open it in a browser)"
