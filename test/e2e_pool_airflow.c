/*
 * e2e_pool_airflow: an Airflow-like burst through pglease.
 *
 * test/clients/airflow_burst.py (Debian's python3-sqlalchemy and
 * python3-psycopg2, run with /usr/bin/python3) makes one SQLAlchemy engine
 * with pool_size=20, max_overflow=20 and runs 60 threads x 20 short
 * transactions through pglease, which has pool_size=5, max_overflow=5 in
 * transaction mode.
 *
 * Plan:
 *   1 the script runs to the end (exit status 0)
 *   2 every one of the 1200 transactions commits, none fails
 *   3 each transaction sees one backend pid throughout
 *   4 at most 10 distinct backend pids (pool_size + max_overflow) over the burst
 *   5 after the burst the server connection count (pg_stat_activity of the
 *     role) returns to 5 (pool_size) within 10 s
 *   6-7 pglease alive, exits 0 on SIGTERM without sanitizer reports
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PYTHON  "/usr/bin/python3"
#define THREADS 60
#define TXNS    20

#ifndef PGL_SRCDIR
#define PGL_SRCDIR "."
#endif

struct summary {
	int ok, failed, mixed, distinct;
};

static bool read_summary(const char *path, struct summary *s)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int seen = 0;

	s->ok = s->failed = s->mixed = s->distinct = -1;
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f)) {
		seen += sscanf(line, "transactions_ok %d", &s->ok) == 1;
		seen += sscanf(line, "transactions_failed %d", &s->failed) == 1;
		seen += sscanf(line, "mixed_pids %d", &s->mixed) == 1;
		seen += sscanf(line, "distinct_pids %d", &s->distinct) == 1;
	}
	fclose(f);
	return seen == 4;
}

int main(void)
{
	const char *script = PGL_SRCDIR "/test/clients/airflow_burst.py";
	const char *check[] = {PYTHON, "-c", "import sqlalchemy, psycopg2", NULL};
	const char *out, *url;
	struct summary s;
	bool have;
	int rc, n;

	if (access(PYTHON, X_OK) != 0 || h_run(check, NULL, NULL, 60000) != 0) {
		tap_skip_all(PYTHON " with sqlalchemy and psycopg2 (python3-sqlalchemy, "
		                    "python3-psycopg2) is not available");
		return 0;
	}
	h_init(400);
	h_pg_start();
	if (!h_pg_exec("CREATE ROLE p_air LOGIN PASSWORD 'pw'"))
		h_bail("cannot create role p_air");
	h_lease_config("trust", h_db_line("testdb", "testdb", "pool_size=5 max_overflow=5"),
	               "pool_mode = transaction\nmax_client_conn = 200\nquery_wait_timeout = 60\n",
	               h_userlist_line("p_air", "pw"));
	h_lease_start();

	out = h_fmt("%s/airflow_burst.out", h_tmpdir());
	url = h_fmt("postgresql+psycopg2://p_air:pw@127.0.0.1:%d/testdb?sslmode=disable",
	            h_lease_port());
	{
		const char *argv[] = {PYTHON,
		                      script,
		                      "--url",
		                      url,
		                      "--threads",
		                      h_fmt("%d", THREADS),
		                      "--txns",
		                      h_fmt("%d", TXNS),
		                      "--pool-size",
		                      "20",
		                      "--max-overflow",
		                      "20",
		                      NULL};

		rc = h_run(argv, NULL, out, 240000);
	}
	have = read_summary(out, &s);
	if (!h_ok(rc == 0 && have, "the burst script ran to the end (status %d)", rc))
		h_diag_file("airflow_burst.py output", out, 40);
	if (!h_ok(s.ok == THREADS * TXNS && s.failed == 0,
	          "all %d transactions of %d threads committed, none failed", THREADS * TXNS,
	          THREADS)) {
		tap_diag("ok %d, failed %d", s.ok, s.failed);
		h_diag_file("airflow_burst.py output", out, 40);
	}
	if (!h_ok(s.mixed == 0, "each transaction saw one backend pid throughout"))
		tap_diag("transactions with two pids: %d", s.mixed);
	if (!h_ok(s.distinct >= 1 && s.distinct <= 10,
	          "at most 10 distinct backend pids (pool_size 5 + max_overflow 5)"))
		tap_diag("distinct backend pids: %d", s.distinct);
	n = h_pg_wait_backends("testdb", "p_air", 5, 10000);
	if (!h_ok(n == 5, "after the burst the server connections return to pool_size=5"))
		tap_diag("backends of p_air: %d", n);

	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("end");
	return tap_done();
}
