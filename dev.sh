#!/usr/bin/env bash
# Set-up and entry points on a fresh machine (Python 3.11+; nothing else needed for the demo).
#   ./dev.sh demo   installs into .venv and runs the embedded demo (`triage demo`)
#   ./dev.sh test   installs into .venv, makes sure Redis answers, runs lint, types and tests
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

install() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
  python -m pip install -qq --upgrade pip
  # CPU torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
  python -m pip install -qq "torch==2.13.0"
  python -m pip install -qq -e ".[dev]"
}

ensure_redis() {
  local url=${TRIAGE_TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
  if python - "$url" <<'PY'
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
  then return; fi
  echo "no Redis answers at $url: starting redis-server on 127.0.0.1:6379" >&2
  command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/triage-ci-redis.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start; see /tmp/triage-ci-redis.log" >&2; exit 1
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
    shift
    ruff check .
    mypy
    pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo [--limit N] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
