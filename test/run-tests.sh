#!/usr/bin/env bash
# run-tests.sh: build pglease out of tree and run every test program.
#
# Usage: test/run-tests.sh [--asan]
#   --asan   build with AddressSanitizer + UBSan (configure --enable-asan)
# Environment:
#   BUILD_DIR  build directory (default /tmp/pglease-build, -asan suffixed);
#              it is emptied first and kept afterwards for inspection.
#   JOBS       parallel make jobs (default 2)
#   CHECK_TIMEOUT  seconds allowed for make check (default 1500)
#
# Installs the Debian packages it needs when they are missing (as root),
# runs autoreconf, configure --enable-werror, make, make check, prints the
# log of every failing test, and ends with one line "N passed, N failed"
# counting TAP test points over all test programs; a program that did not
# build, crashed, bailed out or exited non-zero counts as at least one
# failure.  Exits non-zero when anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ASAN=no
for arg in "$@"; do
	case "$arg" in
	--asan) ASAN=yes ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run-tests.sh: unknown argument $arg" >&2
		exit 2
		;;
	esac
done
JOBS=${JOBS:-2}
if [ -z "${BUILD_DIR:-}" ]; then
	BUILD_DIR=/tmp/pglease-build
	[ "$ASAN" = yes ] && BUILD_DIR=/tmp/pglease-build-asan
fi

# One final line, always: a failure before any test ran counts as one.
finish() {
	echo "$1 passed, $2 failed"
	[ "$2" -eq 0 ] && [ "$1" -gt 0 ]
	exit $?
}

# ---- packages ---------------------------------------------------------------
PACKAGES="build-essential autoconf automake pkg-config libevent-dev libc-ares-dev libssl-dev
	libpq-dev postgresql-15 postgresql-client-15"
# The client libraries test/e2e_clients drives: psycopg2, psycopg 3 and
# SQLAlchemy for /usr/bin/python3, and node + npm for node-postgres (a node
# that already brings its npm, as NodeSource's does, is kept).
PACKAGES="$PACKAGES python3-psycopg2 python3-psycopg python3-sqlalchemy"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PACKAGES="$PACKAGES nodejs npm"
fi
missing=""
for p in $PACKAGES; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "run-tests.sh: missing packages:$missing (run as root to install them)" >&2
		finish 0 1
	fi
	echo "==> installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	if ! { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; }; then
		echo "run-tests.sh: apt-get failed" >&2
		finish 0 1
	fi
fi

# node-postgres (npm "pg") for test/e2e_clients, into test/clients/node_modules
# (ignored by git).  Without the registry e2e_clients reports node-postgres as
# skipped, with the reason, instead of failing.
if [ ! -f "$ROOT/test/clients/node_modules/pg/package.json" ] && command -v npm >/dev/null 2>&1; then
	echo "==> npm install pg (into test/clients)"
	npmlog="${TMPDIR:-/tmp}/pglease-npm.$$.log"
	if ! timeout 300 npm install --no-save --no-audit --no-fund --prefix "$ROOT/test/clients" pg \
		>"$npmlog" 2>&1; then
		tail -5 "$npmlog"
		echo "run-tests.sh: npm install pg failed; e2e_clients will skip node-postgres" >&2
	fi
	rm -f "$npmlog"
fi

# ---- build ------------------------------------------------------------------
echo "==> autoreconf"
if ! (cd "$ROOT" && autoreconf -fi) >"${TMPDIR:-/tmp}/pglease-autoreconf.$$.log" 2>&1; then
	cat "${TMPDIR:-/tmp}/pglease-autoreconf.$$.log"
	rm -f "${TMPDIR:-/tmp}/pglease-autoreconf.$$.log"
	echo "run-tests.sh: autoreconf failed" >&2
	finish 0 1
fi
rm -f "${TMPDIR:-/tmp}/pglease-autoreconf.$$.log"

rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR" || finish 0 1
CONFIGURE_ARGS=(--enable-werror)
[ "$ASAN" = yes ] && CONFIGURE_ARGS+=(--enable-asan)
echo "==> configure ${CONFIGURE_ARGS[*]} (in $BUILD_DIR)"
if ! "$ROOT/configure" "${CONFIGURE_ARGS[@]}" >configure.out 2>&1; then
	tail -40 configure.out
	echo "run-tests.sh: configure failed (see $BUILD_DIR/config.log)" >&2
	finish 0 1
fi

# The list of test programs, as the Makefile has it.
TESTS=$(printf 'pgl-print-tests:\n\t@echo $(TESTS)\n' |
	make -s --no-print-directory -f Makefile -f - pgl-print-tests)
ntests=$(echo "$TESTS" | wc -w)

echo "==> make"
if ! make -j"$JOBS" >make.out 2>&1; then
	tail -60 make.out
	echo "run-tests.sh: the build failed; no test ran" >&2
	finish 0 "$ntests"
fi

# Build the test programs one by one (keep going), so one that does not
# compile fails alone instead of hiding all the others.
echo "==> make the $ntests test programs"
scripts=""
programs=""
for t in $TESTS; do
	case "$t" in
	*.sh) scripts="$scripts $t" ;; # run from the source tree, nothing to build
	*) programs="$programs $t" ;;
	esac
done
make -k -j"$JOBS" $programs >make-tests.out 2>&1
built=""
notbuilt=""
for t in $programs; do
	if [ -x "$t" ]; then built="$built $t"; else notbuilt="$notbuilt $t"; fi
done
if [ -n "$notbuilt" ]; then
	echo "==> did not build:$notbuilt"
	grep -E 'error|Error|No rule' make-tests.out | head -40
fi

echo "==> make check"
if [ -n "$built" ]; then
	# Sanitizers: leaks are checked too; an error makes the program exit non-zero.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
	# Each e2e program has its own alarm; this bounds a hung unit test too.
	timeout --kill-after=30 "${CHECK_TIMEOUT:-1500}" \
		make -j"$JOBS" check TESTS="$built$scripts" check_PROGRAMS="$built" >make-check.out 2>&1 ||
		[ $? -ne 124 ] || echo "run-tests.sh: make check timed out" >&2
	grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|# )' make-check.out | grep -vE '^(PASS|SKIP):' | head -40
fi

# ---- count ------------------------------------------------------------------
passed=0
failed=0
skipped=0
failing_logs=""
for t in $TESTS; do
	trs="$t.trs"
	if [ ! -f "$trs" ]; then
		echo "FAIL: $t did not build or did not run"
		failed=$((failed + 1))
		continue
	fi
	# Failed test points; a crash, bail-out, missing plan or bad exit status
	# (an ERROR) with no failed point still counts as one failure.
	read -r p f s <<<"$(awk '
		/^:test-result: (PASS|XFAIL)/ { p++ }
		/^:test-result: SKIP/ { s++ }
		/^:test-result: (FAIL|XPASS)/ { f++ }
		/^:test-result: ERROR/ { g = 1 }
		/^:global-test-result: (FAIL|ERROR|XPASS)/ { g = 1 }
		END { if (g && f == 0) f = 1; printf "%d %d %d\n", p, f, s }' "$trs")"
	printf '%-24s %4d passed, %d failed%s\n' "$(basename "$t")" "$p" "$f" \
		"$([ "$s" -gt 0 ] && echo ", $s skipped")"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	[ "$f" -gt 0 ] && failing_logs="$failing_logs $t.log"
done

for log in $failing_logs; do
	echo
	echo "======== $log ========"
	cat "$log"
done
[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "(build and logs kept in $BUILD_DIR)"
finish "$passed" "$failed"
