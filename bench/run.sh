#!/usr/bin/env bash
# run.sh: the pglease benchmark suite, pglease vs PgBouncer vs PostgreSQL direct.
#
# Usage: bench/run.sh [--quick] [--perf] [--rev REV] [--bin PATH] [--keep]
#   --quick     1 round of 5 s runs (about 2 minutes) instead of 3 rounds of 15 s
#   --perf      afterwards, perf-profile both poolers during workload 1
#   --rev REV   build git revision REV instead of the working tree
#   --bin PATH  use this pglease binary instead of building one
#   --keep      keep the work directory's PostgreSQL data and sources
#
# Installs what is missing (as root: pgbouncer, gnuplot, PostgreSQL 15,
# the build dependencies), raises the descriptor limit and runs
# bench/bench.py, which builds pglease out of tree into a temporary
# directory, starts a throwaway PostgreSQL cluster and writes
# bench/results/<date>-<sha>.md (+ .png; the full run also latest.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in
-h | --help)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

# package -> a file it installs
need() {
	command -v "$2" >/dev/null 2>&1 || [ -e "$2" ] || missing="$missing $1"
}
missing=""
need pgbouncer pgbouncer
need gnuplot-nox gnuplot
need postgresql-15 /usr/lib/postgresql/15/bin/postgres
need postgresql-client-15 /usr/lib/postgresql/15/bin/pgbench
need build-essential cc
need make make
need autoconf autoreconf
need automake automake
need pkg-config pkg-config
need git git
case " $* " in *" --perf "*) need linux-perf perf ;; esac
for p in libevent-dev libc-ares-dev libssl-dev libpq-dev; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "run.sh: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "run.sh: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends $missing >&2
fi

# The Debian packages may start their own services where an init system
# runs; this suite starts its own throwaway PostgreSQL and poolers on free
# ports and does not touch those.

# 10,000 idle clients and pgbench -c 1000 need descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 "$HERE/bench.py" "$@"
