/*
 * e2e_clients: the client libraries users run, through pglease in
 * transaction mode (issue 3).
 *
 * Each script in test/clients/ gets the connection in environment variables
 * (PGL_HOST, PGL_PORT, PGL_USER, PGL_PASSWORD, PGL_DB, PGL_POOL_SIZE) and
 * prints "ok - ..." / "not ok - ..." lines, which become this program's test
 * points, and "# ..." diagnostics; one more point per script says it exited 0
 * after at least one check.
 *   psycopg2_sqlalchemy.py  psycopg2 and SQLAlchemy engine queries (Debian
 *                           python3-psycopg2, python3-sqlalchemy; /usr/bin/python3)
 *   psycopg3_prepared.py    psycopg 3 with prepare_threshold=0, one parameterised
 *                           query many times across leases (python3-psycopg)
 *   node_pg_named.js        node-postgres named queries from several clients on
 *                           a small pool (npm "pg", installed into
 *                           test/clients/node_modules when missing)
 * A library that is not installed (and cannot be) is reported as a skipped
 * point with the reason.  Then libpq: PQprepare / PQexecPrepared across
 * transactions on servers other than the one that prepared.
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PGL_SRCDIR
#define PGL_SRCDIR "."
#endif

#define PYTHON "/usr/bin/python3"

static void skip(const char *what, const char *reason)
{
	tap_ok(true, "%s # SKIP %s", what, reason);
}

/* Run SCRIPT with INTERP and the connection env; turn its output into points. */
static void run_script(const char *interp, const char *script, const char *db, int pool_size)
{
	const char *path = h_fmt("%s/test/clients/%s", PGL_SRCDIR, script);
	const char *out = h_fmt("%s/%s.out", h_tmpdir(), script);
	const char *env[] = {"PGL_HOST=127.0.0.1",
	                     h_fmt("PGL_PORT=%d", h_lease_port()),
	                     "PGL_USER=alice",
	                     "PGL_PASSWORD=alicepw",
	                     h_fmt("PGL_DB=%s", db),
	                     h_fmt("PGL_POOL_SIZE=%d", pool_size),
	                     "PYTHONDONTWRITEBYTECODE=1",
	                     "PYTHONPATH=",
	                     NULL};
	const char *argv[] = {interp, path, NULL};
	FILE *f;
	char line[4096];
	int rc, checks = 0;

	rc = h_run(argv, env, out, 300000);
	f = fopen(out, "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "ok - ", 5) == 0) {
			h_ok(true, "%s", line + 5);
			checks++;
		} else if (strncmp(line, "not ok - ", 9) == 0) {
			h_ok(false, "%s", line + 9);
			checks++;
		} else if (line[0] != '\0') {
			tap_diag("%s: %s", script, line[0] == '#' ? line + 1 : line);
		}
	}
	if (f)
		fclose(f);
	h_ok(rc == 0 && checks > 0, "%s exits 0 after %d checks (status %d)", script, checks, rc);
}

static bool have_python_modules(const char *modules)
{
	const char *argv[] = {PYTHON, "-c", h_fmt("import %s", modules), NULL};

	return access(PYTHON, X_OK) == 0 && h_run(argv, NULL, NULL, 60000) == 0;
}

/* node and test/clients/node_modules/pg, installing pg with npm when missing. */
static const char *node_problem(void)
{
	const char *dir = h_fmt("%s/test/clients", PGL_SRCDIR);
	const char *pg = h_fmt("%s/node_modules/pg/package.json", dir);
	const char *which[] = {"node", "--version", NULL};

	if (h_run(which, NULL, NULL, 30000) != 0)
		return "node is not installed";
	if (access(pg, R_OK) != 0) {
		const char *log = h_fmt("%s/npm-install.log", h_tmpdir());
		const char *npm[] = {"npm",      "install", "--no-save", "--no-audit", "--no-fund",
		                     "--prefix", dir,       "pg",        NULL};
		int rc = h_run(npm, NULL, log, 240000);

		if (access(pg, R_OK) != 0) {
			h_diag_file("npm install", log, 20);
			return h_fmt("npm install pg failed (status %d; registry unreachable?)",
			             rc);
		}
	}
	return NULL;
}

static const char *row_value(PGresult *r, int col)
{
	const char *v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0
	                    ? h_fmt("%s", PQgetvalue(r, 0, col))
	                    : h_fmt("ERR:%s", PQresultErrorMessage(r));

	PQclear(r);
	return v;
}

static void libpq_prepared(void)
{
	PGconn *a = h_connect(h_lease_conninfo("alice", NULL, "txn2"));
	PGconn *b = h_connect(h_lease_conninfo("alice", NULL, "txn2"));
	PGresult *r;
	bool ok = true;
	const char *pids = "";
	int distinct = 0;

	r = PQprepare(a, "lp1", "SELECT $1::int + 1000, pg_backend_pid()", 0, NULL);
	h_ok(PQresultStatus(r) == PGRES_COMMAND_OK, "libpq: PQprepare through pglease");
	PQclear(r);
	for (int t = 0; t < 12; t++) {
		const char *v = h_fmt("%d", t);
		const char *p1, *p2;

		if (t % 2 == 1) {
			h_exec(b, "BEGIN");
			h_value(b, "SELECT 1");
		}
		h_exec(a, "BEGIN");
		p1 = row_value(PQexecPrepared(a, "lp1", 1, &v, NULL, NULL, 0), 1);
		r = PQexecPrepared(a, "lp1", 1, &v, NULL, NULL, 0);
		ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK &&
		     atoi(PQgetvalue(r, 0, 0)) == 1000 + t;
		PQclear(r);
		p2 = row_value(PQexecPrepared(a, "lp1", 1, &v, NULL, NULL, 0), 1);
		h_exec(a, "COMMIT");
		if (t % 2 == 1)
			h_exec(b, "COMMIT");
		ok = ok && strcmp(p1, p2) == 0 && strncmp(p1, "ERR", 3) != 0;
		if (strstr(pids, p1) == NULL) {
			pids = h_fmt("%s %s", pids, p1);
			distinct++;
		}
	}
	h_ok(ok, "libpq: PQexecPrepared in 12 transactions, one backend within each");
	h_ok(distinct == 2, "libpq: ... on both servers of the pool (%s)", pids);
	PQfinish(a);
	PQfinish(b);
}

/* The premise of the scripts: the pools lease per transaction. */
static void premise(void)
{
	PGconn *a = h_connect(h_lease_conninfo("alice", NULL, "txn2"));
	PGconn *b = h_connect(h_lease_conninfo("alice", NULL, "txn2"));
	const char *pa = h_value(a, "SELECT pg_backend_pid()"), *pb;

	h_exec(b, "BEGIN");
	pb = h_value(b, "SELECT pg_backend_pid()");
	h_ok(pa != NULL && pb != NULL && strcmp(pa, pb) == 0,
	     "setup: transaction pooling is in effect (a second client gets the server the "
	     "first one released)");
	h_exec(b, "COMMIT");
	PQfinish(a);
	PQfinish(b);
}

/* PGL_ONLY=psycopg2,psycopg3,node,libpq runs only those (for debugging a failure). */
static bool want(const char *what)
{
	const char *only = getenv("PGL_ONLY");

	return only == NULL || *only == '\0' || strstr(only, what) != NULL;
}

int main(void)
{
	const char *why;

	h_init(900);
	h_pg_start();
	h_lease_config("trust",
	               h_fmt("%s%s", h_db_line("txn2", "testdb", "pool_size=2"),
	                     h_db_line("txn3", "testdb", "pool_size=3")),
	               "pool_mode = transaction\nmax_client_conn = 100\n",
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();
	premise();

	if (!want("psycopg2"))
		;
	else if (have_python_modules("psycopg2, sqlalchemy"))
		run_script(PYTHON, "psycopg2_sqlalchemy.py", "txn3", 3);
	else
		skip(
		    "psycopg2 + SQLAlchemy",
		    "python3-psycopg2 or python3-sqlalchemy is not installed for /usr/bin/python3");
	if (!want("psycopg3"))
		;
	else if (have_python_modules("psycopg"))
		run_script(PYTHON, "psycopg3_prepared.py", "txn2", 2);
	else
		skip("psycopg 3", "python3-psycopg is not installed for /usr/bin/python3");
	if (want("node")) {
		why = node_problem();
		if (why == NULL)
			run_script("node", "node_pg_named.js", "txn2", 2);
		else
			skip("node-postgres", why);
	}
	if (want("libpq"))
		libpq_prepared();

	if (getenv("PGL_PAUSE")) { /* debugging: keep the world up for a while */
		tap_diag("pausing: pglease on port %d, PostgreSQL on %d", h_lease_port(),
		         h_pg_port());
		sleep((unsigned)atoi(getenv("PGL_PAUSE")));
	}
	h_ok(h_lease_alive(), "end: pglease is alive");
	h_lease_stop_ok("end");
	return tap_done();
}
