#!/usr/bin/env bash
# Export shown working with Arize Phoenix: install Phoenix in a throwaway venv, start it, point a
# real `steward dev` at it with the standard OTEL_EXPORTER_OTLP_* variables, run the support
# agent, and read the run's spans back through Phoenix's REST API
# (GET /v1/projects/default/spans). Out of the default test run: the install is ~800 MB.
#
#   bash scripts/phoenix_check.sh            # uses .venv/bin/steward and python3
#   PHOENIX_VENV=/tmp/phx bash scripts/phoenix_check.sh   # reuse an existing Phoenix venv
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEWARD="${STEWARD:-$ROOT/.venv/bin/steward}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
PHOENIX_VENV="${PHOENIX_VENV:-$WORK/phoenix-venv}"
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PHOENIX_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
STEWARD_PORT="$(free_port)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
  echo "installing arize-phoenix into $PHOENIX_VENV" >&2
  python3 -m venv "$PHOENIX_VENV"
  "$PHOENIX_VENV/bin/pip" install -q arize-phoenix
fi

PHOENIX_WORKING_DIR="$WORK/phoenix" PHOENIX_PORT="$PHOENIX_PORT" PHOENIX_GRPC_PORT="$GRPC_PORT" \
  PHOENIX_HOST=127.0.0.1 "$PHOENIX_VENV/bin/phoenix" serve >"$WORK/phoenix.log" 2>&1 &
PIDS+=($!)
PHOENIX="http://127.0.0.1:$PHOENIX_PORT"
for _ in $(seq 1 240); do
  curl -fsS "$PHOENIX/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$PHOENIX/healthz" >/dev/null || { tail -50 "$WORK/phoenix.log"; echo "Phoenix did not start" >&2; exit 1; }

mkdir -p "$WORK/home"
env -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  STEWARD_HOME="$WORK/home" STEWARD_MODEL=local STEWARD_SANDBOX_POOL_SIZE=0 \
  OTEL_EXPORTER_OTLP_ENDPOINT="$PHOENIX" OTEL_SERVICE_NAME=steward \
  "$STEWARD" dev "$ROOT/examples/support.py" --port "$STEWARD_PORT" >"$WORK/steward.log" 2>&1 &
PIDS+=($!)
STEWARD_URL="http://127.0.0.1:$STEWARD_PORT"
for _ in $(seq 1 120); do
  curl -fsS "$STEWARD_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
KEY="$(cd "$ROOT" && STEWARD_HOME="$WORK/home" "$STEWARD" keys create --name phoenix | tail -1)"

RUN_ID="$(curl -fsS -D - -o "$WORK/answer.json" -H "x-api-key: $KEY" -H 'content-type: application/json' \
  "$STEWARD_URL/runs/wait" -d '{"assistant_id": "support", "input": {"message": "Where is my order 42?"}}' \
  | tr -d '\r' | awk -F/ 'tolower($0) ~ /^content-location:/ {print $NF}')"
echo "run $RUN_ID: $(cat "$WORK/answer.json")"
TRACE_ID="$(echo "$RUN_ID" | tr -d '-')"

for _ in $(seq 1 60); do
  curl -fsS "$PHOENIX/v1/projects/default/spans?limit=100" >"$WORK/spans.json" 2>/dev/null || true
  "$PYTHON" - "$WORK/spans.json" "$TRACE_ID" <<'EOF' && exit 0
import json, sys
try:
    spans = json.load(open(sys.argv[1]))["data"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
mine = [s for s in spans if s["context"]["trace_id"] == sys.argv[2]]
names = sorted(s["name"] for s in mine)
if not {"invoke_agent support", "chat dev", "execute_tool lookup_order"} <= set(names):
    sys.exit(1)
chat = next(s for s in mine if s["name"] == "chat dev")
attributes = json.dumps(chat.get("attributes", {}))
assert "gen_ai" in attributes, attributes
print(f"Phoenix holds the run's {len(mine)} spans: {names}")
print(f"chat attributes as Phoenix stores them: {attributes[:400]}")
EOF
  sleep 1
done
echo "Phoenix never showed the run's spans; last answer:" >&2
head -c 2000 "$WORK/spans.json" >&2 || true
tail -20 "$WORK/phoenix.log" >&2
exit 1
