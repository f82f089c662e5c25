#!/usr/bin/env bash
# quickstart.sh: install what pglease needs, build it, and run it in front of
# a PostgreSQL -- a throwaway local cluster unless one is named.
#
# Usage: etc/quickstart.sh [HOST PORT DBNAME USER PASSWORD]
#   no arguments: start a PostgreSQL 15 cluster in a temporary directory
#   (as the postgres OS user when run as root) with role "app"/"apppw" and
#   database "appdb", and pool it.
# pglease then listens on 127.0.0.1:${PGLEASE_PORT:-6432} in the foreground
# (Ctrl-C stops it and the throwaway cluster).  Connect with:
#   PGPASSWORD=apppw psql -h 127.0.0.1 -p 6432 -U app appdb
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PGLEASE_PORT:-6432}
PGBIN=/usr/lib/postgresql/15/bin

need="build-essential autoconf automake pkg-config libevent-dev libc-ares-dev libssl-dev libpq-dev"
[ $# -eq 0 ] && need="$need postgresql-15 postgresql-client-15"
missing=""
for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "run as root to install:$missing" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

BUILD=${BUILD_DIR:-/tmp/pglease-quickstart-build}
(cd "$ROOT" && autoreconf -fi >/dev/null)
mkdir -p "$BUILD"
(cd "$BUILD" && "$ROOT/configure" CFLAGS="-O2 -g" >/dev/null && make -j"$(nproc)" pglease >/dev/null)

WORK=$(mktemp -d /tmp/pglease-quickstart.XXXXXX)
cleanup() {
	[ -n "${PGLEASE_PID:-}" ] && kill "$PGLEASE_PID" 2>/dev/null || true
	if [ -d "$WORK/data" ]; then
		if [ "$(id -u)" -eq 0 ]; then
			runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
		else
			"$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
		fi
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ $# -eq 0 ]; then
	HOST=127.0.0.1 DBNAME=appdb USER=app PASSWORD=apppw
	PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
	[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
	as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
		-o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
	as_pg "$PGBIN/psql" -h "$WORK" -p "$PGPORT" -U postgres -qc "CREATE ROLE app LOGIN PASSWORD 'apppw'"
	as_pg "$PGBIN/psql" -h "$WORK" -p "$PGPORT" -U postgres -qc "CREATE DATABASE appdb OWNER app"
	echo "==> throwaway PostgreSQL on 127.0.0.1:$PGPORT (data in $WORK/data)"
else
	[ $# -eq 5 ] || { sed -n '5,12p' "$0"; exit 2; }
	HOST=$1 PGPORT=$2 DBNAME=$3 USER=$4 PASSWORD=$5
fi

cat >"$WORK/pglease.ini" <<INI
[databases]
$DBNAME = host=$HOST port=$PGPORT dbname=$DBNAME

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $WORK
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_overflow = 10
max_client_conn = 1000
admin_users = $USER
INI
printf '"%s" "%s"\n' "$USER" "$PASSWORD" >"$WORK/userlist.txt"
echo "==> pglease on 127.0.0.1:$PORT; try: PGPASSWORD=$PASSWORD psql -h 127.0.0.1 -p $PORT -U $USER $DBNAME"
"$BUILD/pglease" "$WORK/pglease.ini" &
PGLEASE_PID=$!
wait "$PGLEASE_PID"
