#!/usr/bin/env bash
# scripts/instructions.sh [REQUESTS]
#
# Instructions per request, counted by valgrind's callgrind, for the three page
# scenarios of ../shared/bench (S1 signed-in dashboard, S2 anonymous redirect
# to sign-in, S3 sign-in form), for Gatehouse and for the bare actix-web peer
# `../shared/peers/actix-limit`. Instruction counts do not depend on what else
# the machine is doing, so anyone can check the performance table without a
# quiet machine.
#
# Each server runs under callgrind twice per scenario: once answering REQUESTS
# keep-alive requests (default 1000) and once 2 × REQUESTS; the difference
# divided by REQUESTS is the cost of one request, without start-up, sign-in
# and shutdown. Gatehouse runs with its default settings (access log on at
# `info`, SQLite in a temporary directory) and BCRYPT_COST=4 (only
# the sign-in that makes the S1 cookie hashes).
#
# KEEP=DIR keeps the callgrind files there, for callgrind_annotate.
#
# Needs: valgrind, curl, a release build (`cargo build --release`; the peer is
# built here if missing). Prints one line per target and scenario, then the
# ratios.
set -euo pipefail

N=${1:-1000}
[[ $N =~ ^[0-9]+$ ]] && (( N >= 100 )) || { echo "instructions.sh: REQUESTS must be a number ≥ 100" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
BIN=${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}
PEER_DIR=$SHARED/peers/actix-limit
PEER_BIN=$PEER_DIR/target/release/actix-limit

command -v valgrind >/dev/null || { echo "instructions.sh: valgrind not found" >&2; exit 1; }
[[ -x $BIN ]] || { echo "instructions.sh: $BIN not found; run cargo build --release" >&2; exit 1; }
if [[ ! -x $PEER_BIN ]]; then
  echo "instructions.sh: building actix-limit" >&2
  cargo build --release --quiet --manifest-path "$PEER_DIR/Cargo.toml" >&2
fi

WORK=$(mktemp -d)
SERVER_PID=''
cleanup() {
  [[ -z $SERVER_PID ]] || kill -KILL "$SERVER_PID" 2>/dev/null || true
  if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP" && cp "$WORK"/*.callgrind "$KEEP"/
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start TARGET PORT RUN: starts the server under callgrind, waits until it answers.
start() {
  local target=$1 port=$2 run=$3
  local out=$WORK/$run.callgrind
  case $target in
    gatehouse)
      mkdir -p "$WORK/$run"
      (cd "$WORK/$run" && exec env -i PATH="$PATH" HOME="$WORK" PORT="$port" HOST=127.0.0.1 \
        BCRYPT_COST=4 DATABASE_URL="$WORK/$run/bench.db" \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" serve \
        >"$WORK/$run.log" 2>&1) &
      ;;
    actix-limit)
      env -i PATH="$PATH" PORT="$port" WORKERS=1 \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$PEER_BIN" \
        >"$WORK/$run.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/login" || true) == 000 ]] || return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "instructions.sh: $target exited; its log:" >&2; tail -20 "$WORK/$run.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "instructions.sh: $target did not answer" >&2
  exit 1
}

stop() {
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=''
}

# The cookie S1 sends: Gatehouse signs a new account in; the peer only looks
# for a `token` cookie.
session_cookie() {
  local target=$1 port=$2
  local base="http://127.0.0.1:$port" jar=$WORK/jar
  if [[ $target == actix-limit ]]; then
    echo "token=instructions"
    return
  fi
  rm -f "$jar"
  local csrf
  csrf=$(curl -s -c "$jar" -b "$jar" "$base/register" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
  curl -s -o /dev/null -c "$jar" -b "$jar" "$base/register" \
    --data-urlencode "name=Instruction Count" --data-urlencode "email=count-$RANDOM@example.com" \
    --data-urlencode "password=counting instructions on a page" --data-urlencode "csrf_token=$csrf"
  awk '!/^#/ || /^#HttpOnly_/ { sub(/^#HttpOnly_/, ""); if (NF >= 7) printf "%s%s=%s", (n++ ? "; " : ""), $6, $7 }' "$jar"
}

# requests PORT SCENARIO COOKIE COUNT: COUNT keep-alive requests on one connection.
requests() {
  local port=$1 scenario=$2 cookie=$3 count=$4
  local config=$WORK/curl.cfg path=/dashboard
  [[ $scenario == S3 ]] && path=/login
  : >"$config"
  for _ in $(seq "$count"); do
    echo "url = \"http://127.0.0.1:$port$path\"" >>"$config"
    echo "output = \"/dev/null\"" >>"$config"
  done
  if [[ $scenario == S1 ]]; then
    curl -s -K "$config" -H "Cookie: $cookie"
  else
    curl -s -K "$config"
  fi
}

total() { awk '/^summary:/ { print $2 }' "$1"; }

# measure TARGET SCENARIO: prints instructions per request.
measure() {
  local target=$1 scenario=$2 run port cookie
  local -A totals
  for run in 1 2; do
    port=$(free_port)
    start "$target" "$port" "$target-$scenario-$run"
    cookie=''
    [[ $scenario == S1 ]] && cookie=$(session_cookie "$target" "$port")
    requests "$port" "$scenario" "$cookie" $(( N * run ))
    stop
    totals[$run]=$(total "$WORK/$target-$scenario-$run.callgrind")
  done
  echo $(( (totals[2] - totals[1]) / N ))
}

declare -A COUNT
for scenario in S1 S2 S3; do
  for target in gatehouse actix-limit; do
    COUNT[$target.$scenario]=$(measure "$target" "$scenario")
    printf '%-12s %s %9d instructions/request\n' "$target" "$scenario" "${COUNT[$target.$scenario]}"
  done
done
echo
for scenario in S1 S2 S3; do
  awk -v s="$scenario" -v g="${COUNT[gatehouse.$scenario]}" -v p="${COUNT[actix-limit.$scenario]}" \
    'BEGIN { printf "%s gatehouse/actix-limit: %.2fx\n", s, g / p }'
done
