#!/usr/bin/env bash
# Usage: scripts/scale-down.sh [STATE_DIR]
# Stops what scripts/scale-up.sh started (workers and their flow runs first, the server last):
# SIGTERM to each process group, SIGKILL after 30 s. Idempotent; the databases are kept.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0
fi
source "$(dirname "$0")/scale-env.sh"

stop() {
  local name="$1" file pid
  file="$(pidfile "$name")"
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "  $name: stopped (pid $pid)"
  fi
  rm -f "$file"
}

echo "stopping the scaled setup in $SPOJIT_SCALE_DIR"
for file in "$SPOJIT_SCALE_DIR"/worker-*.pid; do
  [[ -e "$file" ]] && stop "$(basename "$file" .pid)"
done
stop spojit-serve
stop prefect-server
echo "stopped."
