#!/usr/bin/env bash
# Many Gatehouse instances through PgBouncer in transaction mode: a fresh
# database, `gatehouse migrate` over the direct URL, INSTANCES instances
# (default 20) with DB_POOLER=transaction and a 1 s revocation poll, no
# LISTEN: a sign-out on one must reach every other within 1.25 s (poll +
# margin), ROUNDS times (default 10). Then the same instances once more with
# REVOCATION_LISTEN_URL set (a direct connection each): within 250 ms.
# LISTEN_INSTANCES (default INSTANCES; 0 skips) sets how many take part in
# that second part: each holds a direct connection, which PostgreSQL's
# max_connections must allow beside the pooler's.
# One line per check; exits non-zero on the first failure and always stops
# what it started (by PID) and drops its database.
#
# Needs PostgreSQL at $PG_URL, python3 and a built binary (`cargo build`);
# installs pgbouncer when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/pooler.sh

GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/debug/gatehouse}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
INSTANCES=${INSTANCES:-20}
ROUNDS=${ROUNDS:-10}
LISTEN_INSTANCES=${LISTEN_INSTANCES:-$INSTANCES}

started=$SECONDS
pass() { echo "ok   $*"; }
fail() {
  echo "FAIL $*" >&2
  exit 1
}

[ -x "$GATEHOUSE_BIN" ] || fail "no gatehouse binary at $GATEHOUSE_BIN (run cargo build first)"
work=$(mktemp -d)
chmod 755 "$work"
db="gatehouse_pooler_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
pids=()

stop_instances() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  local status=$?
  stop_instances
  stop_pgbouncer "$work/pgbouncer"
  psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pooler_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_pgbouncer "$work/pgbouncer" "$pooler_port" || fail "PgBouncer did not start"
pass "PgBouncer $(pgbouncer --version | head -n 1 | cut -d ' ' -f 2) in transaction mode on 127.0.0.1:$pooler_port (pid $PGBOUNCER_PID)"

psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $db" >/dev/null ||
  fail "cannot create a database on $PG_URL"
direct="$PG_URL/$db"
pooled="postgres://postgres@127.0.0.1:$pooler_port/$db"
pass "database $db created"

export DATABASE_URL="$pooled" DB_POOLER=transaction
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export JWT_SECRET HOST=127.0.0.1 BCRYPT_COST=4 RUST_LOG=info NO_COLOR=1
export REVOCATION_POLL_INTERVAL=1s LOGIN_MAX_FAILURES_PER_IP=10000

if out=$("$GATEHOUSE_BIN" migrate 2>&1); then
  fail "gatehouse migrate over the pooler alone was accepted: $out"
fi
grep -q MIGRATION_DATABASE_URL <<<"$out" || fail "gatehouse migrate over the pooler: $out"
pass "gatehouse migrate refuses the pooler's URL, naming MIGRATION_DATABASE_URL"
MIGRATION_DATABASE_URL="$direct" "$GATEHOUSE_BIN" migrate >"$work/migrate.log" 2>&1 ||
  fail "gatehouse migrate over the direct URL: $(cat "$work/migrate.log")"
pass "gatehouse migrate over the direct URL: $(grep -c '^applied' "$work/migrate.log") migrations"

if out=$(PORT=0 timeout 20 "$GATEHOUSE_BIN" serve 2>&1); then
  fail "start-up with MIGRATE_ON_START=true through the pooler was accepted"
fi
grep -q 'gatehouse migrate' <<<"$out" && grep -q 'MIGRATE_ON_START=false' <<<"$out" ||
  fail "start-up with migrations through the pooler: $(tail -n 3 <<<"$out")"
pass "start-up refuses to migrate through the pooler, naming gatehouse migrate and MIGRATE_ON_START=false"
export MIGRATE_ON_START=false

# start_instances LABEL COUNT [VAR=VALUE...]: COUNT instances on free ports;
# fills URLS. Fails if any exits or does not answer within 60 s.
URLS=()
start_instances() {
  local label=$1 count=$2 i port
  shift 2
  URLS=()
  for i in $(seq 1 "$count"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env "$@" PORT="$port" "$GATEHOUSE_BIN" serve >"$work/$label-$i.log" 2>&1 &
    pids+=($!)
    URLS+=("http://127.0.0.1:$port")
  done
  local deadline=$((SECONDS + 60))
  for i in $(seq 1 "$count"); do
    until curl -fsS -o /dev/null --max-time 1 "${URLS[i - 1]}/readyz" 2>/dev/null; do
      kill -0 "${pids[i - 1]}" 2>/dev/null ||
        fail "$label instance $i exited during start-up: $(tail -n 3 "$work/$label-$i.log")"
      [ $SECONDS -lt $deadline ] || fail "$label instance $i did not answer within 60 s"
      sleep 0.1
    done
  done
  pass "$count instances up ($label)"
}

rss_total() {
  local pid kb=0 rss
  for pid in "${pids[@]}"; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    kb=$((kb + ${rss:-0}))
  done
  echo "$((kb / 1024)) MB"
}

start_instances poll "$INSTANCES"
grep -q 'revocations made elsewhere: polled' "$work/poll-1.log" ||
  fail "the log does not say revocations are polled: $(grep -i revocation "$work/poll-1.log" | head -n 3)"
figures=$(python3 deploy/revocation_probe.py 1.25 "$ROUNDS" "${URLS[@]}") ||
  fail "a sign-out did not reach every instance by the poll within 1.25 s"
server=$(psql "$PG_URL/postgres" -qAtc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'") ||
  fail "cannot count the server connections on $PG_URL"
pass "poll alone: $figures; instances' memory $(rss_total); server connections $server"
stop_instances

if [ "$LISTEN_INSTANCES" -eq 0 ]; then
  echo "$INSTANCES instances through PgBouncer: all checks passed in $((SECONDS - started)) s (LISTEN part skipped)"
  exit 0
fi
start_instances listen "$LISTEN_INSTANCES" REVOCATION_LISTEN_URL="$direct"
for i in $(seq 1 "$LISTEN_INSTANCES"); do
  for _ in $(seq 1 100); do
    grep -q 'listening for revocations' "$work/listen-$i.log" && break
    sleep 0.1
  done
  grep -q 'listening for revocations' "$work/listen-$i.log" ||
    fail "listen instance $i is not listening after 10 s: $(grep -i revocation "$work/listen-$i.log" | tail -n 2)"
done
grep -q 'pushed over LISTEN' "$work/listen-1.log" ||
  fail "the log does not say revocations are pushed: $(grep -i revocation "$work/listen-1.log" | head -n 3)"
figures=$(python3 deploy/revocation_probe.py 0.25 1 "${URLS[@]}") ||
  fail "a sign-out did not reach every instance over LISTEN within 250 ms"
pass "with REVOCATION_LISTEN_URL: $figures"
stop_instances

echo "$INSTANCES instances through PgBouncer ($LISTEN_INSTANCES with LISTEN): all checks passed in $((SECONDS - started)) s"
