# Sourced by deploy/check-pooler.sh and .ci/run: a PgBouncer in transaction
# mode in front of the local PostgreSQL (127.0.0.1:5432, trust), serving
# every database under its own name.
#
#   start_pgbouncer DIR PORT   starts it (as `postgres` when run as root:
#                              PgBouncer refuses to run as root), config, log
#                              and pid file in DIR; sets PGBOUNCER_PID
#   stop_pgbouncer DIR         stops the one started in DIR

install_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >/dev/null; }
}

start_pgbouncer() {
  local dir=$1 port=$2
  install_pgbouncer || { echo "pooler: cannot install pgbouncer" >&2; return 1; }
  mkdir -p "$dir"
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
auth_type = trust
auth_file = $dir/userlist.txt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" pgbouncer -d "$dir/pgbouncer.ini" || { echo "pooler: pgbouncer did not start" >&2; return 1; }
  for _ in $(seq 1 50); do
    [ -s "$dir/pgbouncer.pid" ] && pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  PGBOUNCER_PID=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
  [ -n "$PGBOUNCER_PID" ] && pg_isready -q -h 127.0.0.1 -p "$port" ||
    { echo "pooler: pgbouncer does not answer on 127.0.0.1:$port" >&2; tail -n 5 "$dir/pgbouncer.log" >&2; return 1; }
}

stop_pgbouncer() {
  local dir=$1 pid
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  # Gone: a second call must not signal whatever reuses the PID.
  rm -f "$dir/pgbouncer.pid"
}
