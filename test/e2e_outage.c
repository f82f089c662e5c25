/*
 * e2e_outage: PostgreSQL going away under pglease, and coming back.
 *
 * One pglease (transaction mode, server_login_retry = 2) runs through all of
 * it; it is never restarted.  Waits are bounded polls.
 *
 * Plan:
 *   baseline   after a warm-up client, pglease's descriptors minus its server
 *              connections (pg_stat_activity) are the baseline.
 *   restart    pg_ctl restart -m fast while clients are connected: the client
 *              inside a transaction gets an error; the idle client keeps its
 *              connection and its next query succeeds.
 *   terminate  pg_terminate_backend() of every pooled idle server: the next
 *              transaction succeeds, on a new backend.
 *   stop       pg_ctl stop -m fast: a new client of an existing pool, a second
 *              one during the retry wait, and a client of a pool never used all
 *              get an error within 5 s instead of hanging.
 *   start      PostgreSQL started again: within 10 s new clients of both
 *              databases succeed, and the client that stayed connected
 *              throughout runs a query; no pglease restart.
 *   fds        all clients gone: pglease's descriptor count returns to the
 *              baseline plus its remaining server connections.
 *   end        pglease alive, exits 0 on SIGTERM without sanitizer reports.
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static PGconn *client(const char *db)
{
	return h_connect(h_lease_conninfo("alice", NULL, db));
}

/*
 * Run SQL on C waiting at most MS: 1 success (*VAL its first value, may be
 * NULL), 0 error (*VAL the message), -1 no answer in time.
 */
static int timed_query(PGconn *c, const char *sql, int ms, const char **val)
{
	PGresult *r;
	int ret;

	*val = NULL;
	if (PQstatus(c) != CONNECTION_OK || PQsendQuery(c, sql) != 1) {
		*val = h_fmt("%s", PQerrorMessage(c));
		return 0;
	}
	r = h_wait_result(c, ms);
	if (r == NULL) {
		if (PQstatus(c) == CONNECTION_BAD) {
			*val = h_fmt("%s", PQerrorMessage(c));
			return 0;
		}
		return -1;
	}
	ret = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
	if (ret && PQntuples(r) > 0)
		*val = h_fmt("%s", PQgetvalue(r, 0, 0));
	else if (!ret)
		*val = h_fmt("%s%s", PQresultErrorMessage(r), PQerrorMessage(c));
	PQclear(r);
	return ret;
}

/* pglease's descriptors not used by server connections (PostgreSQL counts those). */
static int fds_minus_servers(void)
{
	int before = h_pg_backends(NULL, NULL);
	int fds = h_lease_fd_count();
	int after = h_pg_backends(NULL, NULL);

	if (before < 0 || fds < 0 || before != after)
		return -1;
	return fds - before;
}

/* Wait up to MS for fds_minus_servers() to equal WANT (and stay so 300 ms); the last value. */
static int wait_fds(int want, int ms)
{
	int64_t deadline = h_now_ms() + ms;
	int n;

	for (;;) {
		n = fds_minus_servers();
		if (n == want) {
			h_sleep_ms(300);
			n = fds_minus_servers();
			if (n == want)
				return n;
		}
		if (h_now_ms() >= deadline)
			return n;
		h_sleep_ms(200);
	}
}

/* fds_minus_servers() once two reads 300 ms apart agree (at most MS). */
static int stable_fds(int ms)
{
	int64_t deadline = h_now_ms() + ms;
	int prev = fds_minus_servers(), n;

	for (;;) {
		h_sleep_ms(300);
		n = fds_minus_servers();
		if ((n == prev && n > 0) || h_now_ms() >= deadline)
			return n;
		prev = n;
	}
}

/* A new client of DB: login and SELECT 1 must end within MS; true when it failed in time. */
static bool fails_within(const char *db, int ms, const char **why)
{
	int64_t start = h_now_ms();
	PGconn *c = client(db);
	int r = 0;

	*why = NULL;
	if (PQstatus(c) != CONNECTION_OK) {
		*why = h_fmt("login failed: %s", PQerrorMessage(c));
	} else {
		int left = ms - (int)(h_now_ms() - start);

		r = timed_query(c, "SELECT 1", left > 0 ? left : 1, why);
	}
	PQfinish(c);
	if (r == 1)
		*why = "the query succeeded";
	else if (r == -1)
		*why = "no answer";
	return r == 0 && h_now_ms() - start <= ms;
}

/* Try a new client of DB every 300 ms for up to MS until one runs SELECT 1. */
static bool recovers_within(const char *db, int ms)
{
	int64_t deadline = h_now_ms() + ms;
	const char *v;

	do {
		PGconn *c = client(db);
		int r = timed_query(c, "SELECT 1", 5000, &v);

		PQfinish(c);
		if (r == 1)
			return true;
		h_sleep_ms(300);
	} while (h_now_ms() < deadline);
	tap_diag("last attempt: %s", v ? v : "(no message)");
	return false;
}

int main(void)
{
	PGconn *idle, *intx, *c;
	const char *v, *pid, *why;
	int base, r, n;

	h_init(400);
	h_pg_start();
	h_lease_config("trust",
	               h_fmt("%s%s", h_db_line("testdb", "testdb", "pool_size=5"),
	                     h_db_line("pgdb", "postgres", "pool_size=5")),
	               "pool_mode = transaction\nserver_login_retry = 2\nquery_wait_timeout = 20\n"
	               "max_client_conn = 100\n",
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();

	/* ---- baseline */
	c = client("testdb");
	h_ok(timed_query(c, "SELECT 1", 10000, &v) == 1, "warm-up client runs a query");
	PQfinish(c);
	base = stable_fds(5000);
	h_ok(base > 0, "baseline: pglease has %d descriptors besides its server connections", base);

	/* ---- (a) PostgreSQL restarted under connected clients */
	idle = client("testdb");
	intx = client("testdb");
	h_ok(timed_query(idle, "SELECT 1", 10000, &v) == 1 && h_exec(intx, "BEGIN") &&
	         timed_query(intx, "SELECT 1", 10000, &v) == 1,
	     "restart: one client idle, one inside a transaction");
	h_ok(h_pg_restart(), "restart: pg_ctl restart -m fast");
	r = timed_query(intx, "SELECT 2", 15000, &v);
	if (!h_ok(r == 0, "restart: the client inside a transaction gets an error"))
		tap_diag("result %d: %s", r, v ? v : "-");
	else
		tap_diag("it was told: %s", v ? v : "-");
	PQfinish(intx);
	r = timed_query(idle, "SELECT 3", 15000, &v);
	if (!h_ok(r == 1 && str_eq(v, "3"),
	          "restart: the idle client kept its connection and its next query succeeds"))
		tap_diag("result %d: %s", r, v ? v : "-");

	/* ---- (b) pooled idle servers terminated */
	r = timed_query(idle, "SELECT pg_backend_pid()", 15000, &pid);
	n = h_pg_terminate("testdb", "alice");
	h_ok(r == 1 && n >= 1, "terminate: pg_terminate_backend() of the %d idle server(s)", n);
	h_pg_wait_backends("testdb", "alice", 0, 5000);
	h_sleep_ms(200);
	r = timed_query(idle, "SELECT pg_backend_pid()", 15000, &v);
	if (!h_ok(r == 1 && v && pid && !str_eq(v, pid),
	          "terminate: the next transaction succeeds, on a new backend"))
		tap_diag("result %d: %s (terminated %s)", r, v ? v : "-", pid ? pid : "-");
	c = client("testdb");
	r = timed_query(c, "SELECT 4", 15000, &v);
	h_ok(r == 1 && str_eq(v, "4"), "terminate: a new client runs a query too");
	PQfinish(c);

	/* ---- PostgreSQL stopped */
	h_ok(h_pg_stop(), "stop: pg_ctl stop -m fast");
	if (!h_ok(fails_within("testdb", 5000, &why),
	          "stop: a new client of a pool in use gets an error within 5 s"))
		tap_diag("%s", why ? why : "-");
	else
		tap_diag("it was told: %s", why ? why : "-");
	if (!h_ok(fails_within("testdb", 5000, &why),
	          "stop: a second client during the server_login_retry wait gets an error within "
	          "5 s"))
		tap_diag("%s", why ? why : "-");
	if (!h_ok(fails_within("pgdb", 5000, &why),
	          "stop: a client of a pool never used gets an error within 5 s"))
		tap_diag("%s", why ? why : "-");
	h_ok(h_lease_alive(), "stop: pglease is alive");

	/* ---- PostgreSQL back */
	h_ok(h_pg_start_again(), "start: PostgreSQL started again");
	h_ok(recovers_within("testdb", 10000),
	     "start: within 10 s a new client of the pool in use succeeds (no pglease restart)");
	h_ok(recovers_within("pgdb", 10000), "start: within 10 s a new client of the other "
	                                     "database succeeds");
	r = timed_query(idle, "SELECT 5", 15000, &v);
	if (!h_ok(r == 1 && str_eq(v, "5"),
	          "start: the client connected throughout the outage runs a query"))
		tap_diag("result %d: %s", r, v ? v : "-");
	PQfinish(idle);

	/* ---- no descriptor leaked */
	n = wait_fds(base, 15000);
	if (!h_ok(n == base, "fds: with all clients gone pglease's descriptors return to the "
	                     "baseline (besides its server connections)"))
		tap_diag("descriptors besides servers: %d, baseline %d (fds %d, servers %d)", n,
		         base, h_lease_fd_count(), h_pg_backends(NULL, NULL));

	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("end");
	return tap_done();
}
