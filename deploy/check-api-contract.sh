#!/usr/bin/env bash
# The JSON API against its own OpenAPI document: schemathesis sends generated
# and malformed requests to every operation of GET /api/openapi.json on a
# fresh server, and fails on any 5xx and on any answer the document does not
# describe (status code, content type, body schema).
#
# Needs a built binary (`cargo build`); installs schemathesis from PyPI into
# target/ci-tools/schemathesis when missing (a few seconds). Uses one free
# loopback port and a throw-away SQLite file; always stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEHOUSE_BIN=${GATEHOUSE_BIN:-target/debug/gatehouse}
SCHEMATHESIS_VERSION=4.32.5
# Test cases per operation and phase, at most: the whole check takes seconds.
MAX_EXAMPLES=${MAX_EXAMPLES:-100}

started=$SECONDS
fail() {
  echo "FAIL $*" >&2
  exit 1
}

[ -x "$GATEHOUSE_BIN" ] || fail "no gatehouse binary at $GATEHOUSE_BIN (run cargo build first)"

venv=target/ci-tools/schemathesis
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- last lines of the server's log ---" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE_URL="http://127.0.0.1:$PORT"
export DATABASE_URL="$work/gatehouse.db" HOST=127.0.0.1 PORT BCRYPT_COST=4 NO_COLOR=1
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
export JWT_SECRET
# Thousands of failed sign-ins from one address are the point here: without
# these, the throttle answers (a documented) 429 to nearly every sign-in.
export LOGIN_MAX_FAILURES=100000 LOGIN_MAX_FAILURES_PER_IP=100000

# The account the checks sign in with.
CHECK_EMAIL=contract@example.com
CHECK_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '\n')"
"$GATEHOUSE_BIN" migrate >/dev/null
printf '%s\n' "$CHECK_PASSWORD" |
  "$GATEHOUSE_BIN" user create --email "$CHECK_EMAIL" --name "Contract Check" >/dev/null

"$GATEHOUSE_BIN" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$BASE_URL/api/openapi.json" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || fail "gatehouse exited at start-up"
  sleep 0.1
done
curl -fsS -o /dev/null "$BASE_URL/api/openapi.json" || fail "gatehouse does not answer at $BASE_URL"
echo "ok   gatehouse answers at $BASE_URL ($((SECONDS - started)) s)"

# What the document cannot tell schemathesis, given as hooks:
# - the account above, as the sign-in example, so that a sign-in succeeds and
#   its 200 answer is checked too;
# - a session: every other test case carries the cookies of a fresh sign-in,
#   so /api/me, /api/refresh and /api/logout are checked signed in and out.
cat >"$work/hooks.py" <<'PY'
import collections
import itertools
import json
import os
import threading
import urllib.request

import schemathesis

BASE_URL = os.environ["CHECK_BASE_URL"]
ACCOUNT = {
    "email": os.environ["CHECK_EMAIL"],
    "password": os.environ["CHECK_PASSWORD"],
    "remember": True,
}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    login = raw_schema["paths"]["/api/login"]["post"]
    login["requestBody"]["content"]["application/json"]["example"] = ACCOUNT


_turns = collections.defaultdict(itertools.count)
_turns_lock = threading.Lock()


@schemathesis.auth(refresh_interval=None)
class EveryOtherCaseSignedIn:
    def get(self, case, context):
        with _turns_lock:
            signed_out = next(_turns[case.operation.label]) % 2
        if signed_out:
            return None
        request = urllib.request.Request(
            BASE_URL + "/api/login",
            data=json.dumps(ACCOUNT).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            cookies = response.headers.get_all("Set-Cookie") or []
        return dict(c.split(";", 1)[0].split("=", 1) for c in cookies)

    def set(self, case, data, context):
        case.cookies = {**(case.cookies or {}), **data}

PY

echo "schemathesis $SCHEMATHESIS_VERSION: every operation, at most $MAX_EXAMPLES cases each per phase"
# Run from the scratch directory: schemathesis and hypothesis keep state in
# the working directory (.schemathesis/, .hypothesis/).
schemathesis="$PWD/$venv/bin/schemathesis"
(
  cd "$work"
  CHECK_BASE_URL="$BASE_URL" CHECK_EMAIL="$CHECK_EMAIL" CHECK_PASSWORD="$CHECK_PASSWORD" \
    SCHEMATHESIS_HOOKS="$work/hooks.py" \
    "$schemathesis" run "$BASE_URL/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --mode all --max-examples "$MAX_EXAMPLES" --workers 2 \
    --generation-database none --no-color --request-timeout 10
) || fail "the API does not match its OpenAPI document (see above)"
echo "ok   the API matches its OpenAPI document ($((SECONDS - started)) s)"
