# Sourced by scale-up.sh and scale-down.sh: where the scaled setup lives and how its parts
# reach each other. Every value can be set in the environment first.
#   SPOJIT_SCALE_DIR          state: pid files, logs, env file   (default ~/.spojit/scale)
#   SPOJIT_SCALE_PG           PostgreSQL server, no database      (default postgresql://postgres@127.0.0.1:5432)
#   SPOJIT_SCALE_PREFECT_DB   Prefect's database                  (default spojit_prefect)
#   SPOJIT_SCALE_LEDGER_DB    the ledger's database               (default spojit_ledger)
#   SPOJIT_SCALE_PREFECT_PORT Prefect API port                    (default 4200)
#   SPOJIT_SCALE_SERVE_PORT   `spojit serve` port                 (default 8000)
#   SPOJIT_PUBLIC_URL         where `spojit serve` is reached     (default http://127.0.0.1:SERVE_PORT)
#   SPOJIT_SCALE_WORKERS      how many process workers            (default 2)
#   SPOJIT_SCALE_WORKER_LIMIT flow runs each worker runs at once  (default: no limit)
#   SPOJIT_SCALE_POOL         the process work pool               (default: SPOJIT_WORK_POOL or spojit)
#   SPOJIT_SCALE_HEARTBEAT_SECONDS  a flow run's heartbeat (Prefect's minimum, 30, is the default)
#   SPOJIT_SCALE_ZOMBIE_SECONDS     no heartbeat for this long: Prefect marks the run Crashed (90)
#   SPOJIT_SCALE_STOP_SECONDS       scale-down: a worker's grace after SIGINT (default 5)
#   SPOJIT_SCALE_RUN_STOP_SECONDS   scale-down: flow runs' and servers' grace after SIGTERM (30)
#   SPOJIT_SCALE_BIN          where `prefect` and `spojit` are    (default: this checkout's .venv/bin, else PATH)

SCALE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPOJIT_SCALE_DIR="${1:-${SPOJIT_SCALE_DIR:-$HOME/.spojit/scale}}"
SPOJIT_SCALE_PG="${SPOJIT_SCALE_PG:-postgresql://postgres@127.0.0.1:5432}"
SPOJIT_SCALE_PREFECT_DB="${SPOJIT_SCALE_PREFECT_DB:-spojit_prefect}"
SPOJIT_SCALE_LEDGER_DB="${SPOJIT_SCALE_LEDGER_DB:-spojit_ledger}"
SPOJIT_SCALE_PREFECT_PORT="${SPOJIT_SCALE_PREFECT_PORT:-4200}"
SPOJIT_SCALE_SERVE_PORT="${SPOJIT_SCALE_SERVE_PORT:-8000}"
SPOJIT_SCALE_WORKERS="${SPOJIT_SCALE_WORKERS:-2}"
SPOJIT_SCALE_WORKER_LIMIT="${SPOJIT_SCALE_WORKER_LIMIT:-}"
SPOJIT_SCALE_POOL="${SPOJIT_SCALE_POOL:-${SPOJIT_WORK_POOL:-spojit}}"
if [[ -z "${SPOJIT_SCALE_BIN:-}" ]]; then
  if [[ -x "$SCALE_ROOT/.venv/bin/spojit" ]]; then SPOJIT_SCALE_BIN="$SCALE_ROOT/.venv/bin"
  else SPOJIT_SCALE_BIN="$(dirname "$(command -v spojit)")"; fi
fi

PG_HOSTPART="${SPOJIT_SCALE_PG#*://}"
export PREFECT_HOME="${PREFECT_HOME:-$SPOJIT_SCALE_DIR/prefect}"
export PREFECT_API_URL="http://127.0.0.1:$SPOJIT_SCALE_PREFECT_PORT/api"
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT="$SPOJIT_SCALE_PREFECT_PORT"
export PREFECT_SERVER_DATABASE_CONNECTION_URL="postgresql+asyncpg://$PG_HOSTPART/$SPOJIT_SCALE_PREFECT_DB"
export SPOJIT_DATABASE_URL="postgresql://$PG_HOSTPART/$SPOJIT_SCALE_LEDGER_DB"
export SPOJIT_WORK_POOL="$SPOJIT_SCALE_POOL"
# Where `spojit serve` is reached: the hook URLs `spojit deploy --webhook` prints, sign-in links.
export SPOJIT_PUBLIC_URL="${SPOJIT_PUBLIC_URL:-http://127.0.0.1:$SPOJIT_SCALE_SERVE_PORT}"
# Workers and their runs all talk to one server: Prefect's default pool (5 + 10 connections)
# times out under load and answers 500s; 20 + 20 fits PostgreSQL's default max_connections (100).
export PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE="${PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE:-20}"
export PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW="${PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW:-20}"
# Flow runs send heartbeats; the "Crash zombie flows" automation (scale-up.sh) marks a run whose
# heartbeats stop Crashed, and spojit-renewals then releases what it held (guards/runs/crashed.py).
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${SPOJIT_SCALE_HEARTBEAT_SECONDS:-30}"
SPOJIT_SCALE_ZOMBIE_SECONDS="${SPOJIT_SCALE_ZOMBIE_SECONDS:-90}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"

pidfile() { echo "$SPOJIT_SCALE_DIR/$1.pid"; }

# running NAME: true when NAME's recorded process is alive.
running() {
  local file; file="$(pidfile "$1")"
  [[ -f "$file" ]] && kill -0 "$(cat "$file")" 2>/dev/null
}
