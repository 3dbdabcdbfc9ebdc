#!/usr/bin/env bash
# Usage: scripts/scale-up.sh [STATE_DIR]
# The scaled setup on one machine: a Prefect server on PostgreSQL, a process work pool, two
# workers, the ledger on the same PostgreSQL, and `spojit serve`. Idempotent: whatever already
# runs is left alone, whatever is missing (a database, the pool, a dead worker) is started.
# Settings: see scripts/scale-env.sh. Stop it all with scripts/scale-down.sh.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0
fi
source "$(dirname "$0")/scale-env.sh"
mkdir -p "$SPOJIT_SCALE_DIR"

# start NAME COMMAND...: run COMMAND in its own session (so scale-down stops its children too),
# logging to STATE_DIR/NAME.log, unless NAME already runs.
start() {
  local name="$1"; shift
  if running "$name"; then echo "  $name: running (pid $(cat "$(pidfile "$name")"))"; return; fi
  setsid "$@" >>"$SPOJIT_SCALE_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$(pidfile "$name")"
  echo "  $name: started (pid $!, log $SPOJIT_SCALE_DIR/$name.log)"
}

# wait_for WHAT URL SECONDS
wait_for() {
  for _ in $(seq "$3"); do curl -fs -o /dev/null "$2" && return 0; sleep 1; done
  echo "scale-up: $1 did not answer at $2 within $3 s (see $SPOJIT_SCALE_DIR/*.log)" >&2; exit 1
}

echo "databases on $SPOJIT_SCALE_PG"
for db in "$SPOJIT_SCALE_PREFECT_DB" "$SPOJIT_SCALE_LEDGER_DB"; do
  if psql "$SPOJIT_SCALE_PG/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    echo "  $db: exists"
  else
    psql "$SPOJIT_SCALE_PG/postgres" -qc "CREATE DATABASE \"$db\"" && echo "  $db: created"
  fi
done
"$SPOJIT_SCALE_BIN/spojit" ledger verify --json >/dev/null  # migrates the ledger's schema

echo "Prefect server at $PREFECT_API_URL"
start prefect-server "$SPOJIT_SCALE_BIN/prefect" server start
wait_for "the Prefect server" "$PREFECT_API_URL/health" 300

echo "work pool $SPOJIT_SCALE_POOL"
if "$SPOJIT_SCALE_BIN/prefect" work-pool inspect "$SPOJIT_SCALE_POOL" >/dev/null 2>&1; then
  echo "  exists"
else
  "$SPOJIT_SCALE_BIN/prefect" work-pool create "$SPOJIT_SCALE_POOL" --type process >/dev/null
  echo "  created (process)"
fi

echo "zombie runs"
zombie="Crash zombie flows"  # Prefect's documented automation (docs: detect-zombie-flows)
if COLUMNS=300 "$SPOJIT_SCALE_BIN/prefect" automation ls 2>/dev/null | grep -q "$zombie"; then
  echo "  automation '$zombie': exists"
else
  "$SPOJIT_SCALE_BIN/prefect" automation create --from-json "$(cat <<JSON
{"name": "$zombie",
 "description": "A flow run with no heartbeat for $SPOJIT_SCALE_ZOMBIE_SECONDS s is Crashed.",
 "trigger": {"type": "event", "posture": "Proactive", "threshold": 1,
             "within": $SPOJIT_SCALE_ZOMBIE_SECONDS,
             "after": ["prefect.flow-run.heartbeat"],
             "expect": ["prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                        "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                        "prefect.flow-run.Crashed"],
             "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
             "for_each": ["prefect.resource.id"]},
 "actions": [{"type": "change-flow-run-state", "state": "CRASHED",
              "message": "No heartbeat for $SPOJIT_SCALE_ZOMBIE_SECONDS s: its process died."}]}
JSON
)" >/dev/null
  echo "  automation '$zombie': created"
fi

echo "workers"
limit=()
[[ -n "$SPOJIT_SCALE_WORKER_LIMIT" ]] && limit=(--limit "$SPOJIT_SCALE_WORKER_LIMIT")
for i in $(seq "$SPOJIT_SCALE_WORKERS"); do
  start "worker-$i" "$SPOJIT_SCALE_BIN/prefect" worker start --pool "$SPOJIT_SCALE_POOL" \
    --name "spojit-worker-$i" "${limit[@]}"
done

echo "spojit serve"
start spojit-serve "$SPOJIT_SCALE_BIN/spojit" serve --host 127.0.0.1 --port "$SPOJIT_SCALE_SERVE_PORT"
wait_for "spojit serve" "http://127.0.0.1:$SPOJIT_SCALE_SERVE_PORT/openapi.json" 120

cat >"$SPOJIT_SCALE_DIR/env" <<ENV
export PREFECT_HOME='$PREFECT_HOME'
export PREFECT_API_URL='$PREFECT_API_URL'
export SPOJIT_DATABASE_URL='$SPOJIT_DATABASE_URL'
export SPOJIT_WORK_POOL='$SPOJIT_SCALE_POOL'
export SPOJIT_PUBLIC_URL='$SPOJIT_PUBLIC_URL'
ENV
echo "ready. In your shell: source $SPOJIT_SCALE_DIR/env"
