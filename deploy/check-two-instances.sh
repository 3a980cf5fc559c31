#!/usr/bin/env bash
# Two Gatehouse instances on one PostgreSQL database behind nginx
# (deploy/nginx.conf): register through nginx, open a reset link and find its
# token nowhere in nginx's access log (PREFIX/logs/access.log, under this run's
# directory), stop one instance the hard way, and stay signed in through the
# other. One line per check; exits non-zero on
# the first failure and always removes its processes, files and database.
#
# Needs PostgreSQL at $PG_URL and a built binary (`cargo build`); installs
# nginx when missing. Uses ports 18480-18482, fixed in deploy/nginx.conf.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/debug/gatehouse}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
NGINX_PORT=18480
APP_PORTS=(18481 18482)
ORIGIN="http://127.0.0.1:$NGINX_PORT"
# curl speaks from this loopback address: nginx sees it, the instances only see
# nginx (127.0.0.1) and must find the client in X-Forwarded-For.
CLIENT_IP=127.0.0.2

started=$SECONDS
pass() { echo "ok   $*"; }
fail() {
  echo "FAIL $*" >&2
  failed=1
  exit 1
}

[ -x "$GATEHOUSE_BIN" ] || fail "no gatehouse binary at $GATEHOUSE_BIN (run cargo build first)"
if ! command -v nginx >/dev/null 2>&1; then
  apt-get install -y nginx >/dev/null
fi

work=$(mktemp -d)
db="gatehouse_check_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
pids=()
failed=0

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
    for log in "$work"/app1.log "$work"/app2.log "$work"/nginx/logs/error.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $(basename "$log") ---" >&2
      tail -n 15 "$log" >&2
    done
  fi
  psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $db" >/dev/null ||
  fail "cannot create a database on $PG_URL"
pass "database $db created"

# The settings every instance shares (see deploy/nginx.conf).
export DATABASE_URL="$PG_URL/$db"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export JWT_SECRET
export PUBLIC_URL="$ORIGIN" TRUSTED_PROXIES=127.0.0.1 HOST=127.0.0.1
export BCRYPT_COST=4 RUST_LOG=info NO_COLOR=1

for i in 1 2; do
  PORT=${APP_PORTS[i - 1]} "$GATEHOUSE_BIN" serve >"$work/app$i.log" 2>&1 &
  pids+=($!)
done
app1_pid=${pids[0]}

mkdir -p "$work/nginx/logs" "$work/nginx/temp"
nginx -p "$work/nginx/" -e "$work/nginx/logs/error.log" -c "$PWD/deploy/nginx.conf" \
  >"$work/nginx/logs/stdout.log" 2>&1 &
pids+=($!)

# Wait for all three to answer (migrations run at start-up, under a lock).
wait_ready() {
  local name=$1 url=$2 pid=$3
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name exited during start-up"
    sleep 0.1
  done
  fail "$name did not answer $url within 10 s"
}
wait_ready "instance 1" "http://127.0.0.1:${APP_PORTS[0]}/readyz" "${pids[0]}"
wait_ready "instance 2" "http://127.0.0.1:${APP_PORTS[1]}/readyz" "${pids[1]}"
wait_ready "nginx" "$ORIGIN/readyz" "${pids[2]}"
pass "two instances and nginx are up"

jar="$work/cookies"
through_nginx() {
  curl -sS --max-time 5 --interface "$CLIENT_IP" -b "$jar" -c "$jar" "$@"
}

suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
name="Ada Check $suffix"
email="ada.$suffix@example.com"
password="$(head -c 18 /dev/urandom | base64 | tr -d '\n')"

form=$(through_nginx "$ORIGIN/register")
csrf=$(grep -o 'name="csrf_token" value="[^"]*"' <<<"$form" | head -n 1 | sed 's/.*value="//; s/"$//')
[ -n "$csrf" ] || fail "GET /register has no csrf_token field"
pass "GET /register through nginx carries a CSRF token"

headers=$(through_nginx -o /dev/null -D - -H "Origin: $ORIGIN" \
  --data-urlencode "name=$name" --data-urlencode "email=$email" \
  --data-urlencode "password=$password" --data-urlencode "csrf_token=$csrf" \
  "$ORIGIN/register" | tr -d '\r')
status=$(head -n 1 <<<"$headers" | cut -d ' ' -f 2)
location=$(grep -i '^location:' <<<"$headers" | cut -d ' ' -f 2 || true)
[ "$status" = 303 ] && [ "$location" = /dashboard ] ||
  fail "POST /register answered $status ${location:-(no Location)}, expected 303 to /dashboard"
pass "POST /register through nginx: 303 to /dashboard"

# GET /dashboard through nginx: 200 and the user's name on the page.
check_dashboard() {
  local page status
  page=$(through_nginx -w '\n%{http_code}' "$ORIGIN/dashboard")
  status=${page##*$'\n'}
  [ "$status" = 200 ] || fail "GET /dashboard $1 answered $status, expected 200"
  grep -qF "$name" <<<"$page" || fail "GET /dashboard $1 does not show \"$name\""
}
check_dashboard "after registering"
pass "GET /dashboard: 200 with the user's name"

# A reset link through nginx: its token (a one-time password) must not reach
# nginx's access log, nor the query string, whichever way the path is spelt.
access_log="$work/nginx/logs/access.log"
token="CHECK$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 37)A"
encoded="CHECK$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 37)A"
query="QUERY$suffix"
[ ${#token} = 43 ] || fail "made a token of ${#token} characters, expected 43"
headers=$(through_nginx -o /dev/null -D - "$ORIGIN/password/reset/$token?q=$query" | tr -d '\r')
status=$(head -n 1 <<<"$headers" | cut -d ' ' -f 2)
location=$(grep -i '^location:' <<<"$headers" | cut -d ' ' -f 2 || true)
[ "$status" = 303 ] && [ "$location" = /password/reset ] ||
  fail "GET /password/reset/TOKEN answered $status ${location:-(no Location)}, expected 303 to /password/reset"
through_nginx -o /dev/null "$ORIGIN/password/reset%2F$encoded" ||
  fail "GET /password/reset%2FTOKEN through nginx failed"
[ -s "$access_log" ] || fail "nginx wrote no access log at $access_log"
for secret in "$token" "$encoded" "$query"; do
  ! grep -qF "$secret" "$access_log" ||
    fail "nginx's access log contains a reset token or query string: $(grep -F "$secret" "$access_log")"
done
grep -q '"GET /password/reset/\.\.\. HTTP/1.1" 303 ' "$access_log" ||
  fail "nginx's access log has no redacted line for the reset link: $(tail -n 3 "$access_log")"
grep -q '"GET /dashboard HTTP/1.1" 200 ' "$access_log" ||
  fail "nginx's access log does not show other paths: $(tail -n 3 "$access_log")"
pass "nginx's access log names the reset link without its token or query string"

dashboard_lines() {
  grep -c 'method=GET path=/dashboard status=200' "$work/app2.log" || true
}
# Lines of requests served before the kill may still be on their way to the log.
sleep 0.1
before=$(dashboard_lines)

kill -KILL "$app1_pid" # as a crash would
wait "$app1_pid" 2>/dev/null || true
pass "instance 1 killed (pid $app1_pid)"

rounds=6
for i in $(seq 1 "$rounds"); do
  check_dashboard "after instance 1 died (request $i)"
done
pass "GET /dashboard x$rounds after the kill: all 200, still signed in"

grep -q "connect() failed .*upstream: \"http://127.0.0.1:${APP_PORTS[0]}/" "$work/nginx/logs/error.log" ||
  fail "nginx's error log shows no refused connection to instance 1"
pass "nginx found instance 1 down and passed its requests to instance 2"

# The log is written in batches (within about 10 ms): wait up to a second.
for _ in $(seq 1 20); do
  after=$(dashboard_lines)
  [ $((after - before)) -ge "$rounds" ] && break
  sleep 0.05
done
[ $((after - before)) -ge "$rounds" ] ||
  fail "instance 2 logged $((after - before)) GET /dashboard requests after the kill, expected $rounds"
pass "instance 2's access log shows the $((after - before)) requests it served"

session_ips=$(psql "$DATABASE_URL" -qAtc "SELECT DISTINCT ip FROM sessions")
[ -n "$session_ips" ] || fail "no session recorded in the database"
[ "$session_ips" = "$CLIENT_IP" ] ||
  fail "sessions record IP '$session_ips', expected the client's $CLIENT_IP from X-Forwarded-For"
pass "the session records the client's IP $CLIENT_IP (from X-Forwarded-For), not nginx's"

echo "two instances behind nginx: all checks passed in $((SECONDS - started)) s"
