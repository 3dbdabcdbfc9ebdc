#!/usr/bin/env bash
# Usage: scripts/scale-down.sh [STATE_DIR]
# Stops what scripts/scale-up.sh started, workers and their flow runs first, the server last, in
# seconds. A worker is stopped as Prefect's worker is built to stop: SIGTERM (it turns that into
# its graceful SIGINT and stops taking runs), and if it has not exited after
# SPOJIT_SCALE_STOP_SECONDS (default 5), a second SIGTERM, on which it kills itself (the signal
# goes to the worker alone, not its flow runs; a bare SIGINT's second stage is lost once asyncio
# restores Python's own handler on the way out). Then its flow runs get SIGTERM (Prefect marks
# them crashed) and, if still there after SPOJIT_SCALE_RUN_STOP_SECONDS (default 30), SIGKILL.
# The other processes: SIGTERM, SIGKILL after that wait ("killed" in the output says which did
# not stop as asked). Idempotent; the databases are kept.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0
fi
source "$(dirname "$0")/scale-env.sh"
STOP_SECONDS="${SPOJIT_SCALE_STOP_SECONDS:-5}"
RUN_STOP_SECONDS="${SPOJIT_SCALE_RUN_STOP_SECONDS:-30}"  # a flow run reports its crash first

# gone PID SECONDS: wait until PID has exited (true) or SECONDS have passed (false).
gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  ! kill -0 "$1" 2>/dev/null
}

# group_gone PGID SECONDS: as gone, for every process of the group.
group_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.1; done
  ! kill -0 -- "-$1" 2>/dev/null
}

# stop NAME [worker]: stop NAME's process (the leader of its own session) and its group.
stop() {
  local name="$1" kind="${2:-}" file pid
  file="$(pidfile "$name")"
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    local how=stopped
    if [[ "$kind" == worker ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      gone "$pid" "$STOP_SECONDS" || kill -TERM "$pid" 2>/dev/null || true
      gone "$pid" "$STOP_SECONDS" || { how="killed (it ignored SIGTERM)"; kill -KILL "$pid" || true; }
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    group_gone "$pid" "$RUN_STOP_SECONDS" \
      || { how="killed (a process of its group ignored SIGTERM)"; kill -KILL -- "-$pid" || true; }
    echo "  $name: $how (pid $pid)"
  fi
  rm -f "$file"
}

echo "stopping the scaled setup in $SPOJIT_SCALE_DIR"
for file in "$SPOJIT_SCALE_DIR"/worker-*.pid; do
  [[ -e "$file" ]] && stop "$(basename "$file" .pid)" worker &
done
wait
stop spojit-serve
stop prefect-server
echo "stopped."
