/*
 * e2e_cancel: query cancellation through pglease.
 *
 * Plan:
 *   1-5  PQcancel of a running SELECT pg_sleep(30) through pglease: accepted,
 *        the query ends with 57014 within a bounded wait, and the session
 *        (same backend, its SET state) still works.
 *   6-11 a CancelRequest with the right pid but a wrong key, and one with an
 *        unknown pid, cancel nothing: the query keeps running; a proper
 *        PQcancel then ends it with 57014 and the session still works.
 *   12-13 the same over pglease's unix socket.
 *   14   a cancel never ends the next client's query when the server is
 *        handed over right after the cancel (pool_size=1, 10 rounds).
 *   15   a cancel for an idle session is harmless.
 *   16-20 while a cancel is in flight (the postmaster stopped with SIGSTOP,
 *        so it cannot take the cancel yet), SHOW POOLS counts it in
 *        cl_active_cancel_req, sv_active_cancel and sv_being_canceled;
 *        after SIGCONT the query ends with 57014 and the counts return to 0.
 *   21-22 pglease alive, clean exit on SIGTERM.
 */
#include "harness.h"
#include "tap.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *session(void)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", NULL, "testdb"));

	if (PQstatus(c) != CONNECTION_OK)
		h_bail("login through pglease failed: %s", PQerrorMessage(c));
	return c;
}

/* Wait (<= 10 s) until the server runs SQL; true when it does. */
static bool running_on_server(const char *sql)
{
	const char *q = h_fmt("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
	                      "AND query = '%s'",
	                      sql);

	for (int i = 0; i < 100; i++) {
		const char *n = h_pg_value(q);

		if (n && strcmp(n, "1") == 0)
			return true;
		h_sleep_ms(100);
	}
	return false;
}

/* PQcancel on C; true when libpq reports the request as sent. */
static bool libpq_cancel(PGconn *c)
{
	PGcancel *k = PQgetCancel(c);
	char err[256] = "";
	bool ok = k != NULL && PQcancel(k, err, sizeof(err)) == 1;

	if (!ok)
		tap_diag("PQcancel: %s", err);
	PQfreeCancel(k);
	return ok;
}

/* Wait (<= 10 s) for the query on C; its SQLSTATE ("" success, "timeout" if still running). */
static const char *result_state(PGconn *c, int timeout_ms)
{
	PGresult *r = h_wait_result(c, timeout_ms);
	const char *st;

	if (r == NULL)
		return "timeout";
	st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	st = h_fmt("%s", st ? st : "");
	PQclear(r);
	return st;
}

static void cancel_running_query(void)
{
	static const char sql[] = "SELECT pg_sleep(30) AS a";
	PGconn *c = session();
	const char *pid = h_value(c, "SELECT pg_backend_pid()");

	h_exec(c, "SET application_name = 'cancel_me'");
	h_ok(PQsendQuery(c, sql) == 1 && running_on_server(sql),
	     "pg_sleep(30) through pglease is running on the server");
	h_ok(libpq_cancel(c), "PQcancel through pglease is sent");
	h_is_str(result_state(c, 10000), "57014", "the cancelled query ends with 57014");
	h_is_str(h_value(c, "SELECT pg_backend_pid()"), pid ? pid : "?",
	         "after the cancel the session keeps its backend");
	h_is_str(h_value(c, "SHOW application_name"), "cancel_me",
	         "after the cancel the session keeps its state");
	PQfinish(c);
}

static void cancel_with_wrong_key(void)
{
	static const char sql[] = "SELECT pg_sleep(30) AS b";
	PGconn *c = session();
	uint32_t pid = (uint32_t)PQbackendPID(c);

	h_ok(PQsendQuery(c, sql) == 1 && running_on_server(sql),
	     "second pg_sleep(30) through pglease is running");
	h_ok(h_raw_cancel(h_lease_port(), pid, 0x5eed1234u) &&
	         h_raw_cancel(h_lease_port(), pid + 7919u, 0x5eed1234u),
	     "cancel requests with a wrong key and with an unknown pid are sent");
	h_is_str(result_state(c, 2000), "timeout",
	         "a wrong key cancels nothing: the query is still running");
	h_ok(libpq_cancel(c), "a proper PQcancel afterwards is sent");
	h_is_str(result_state(c, 10000), "57014", "... and ends the query with 57014");
	h_ok(h_value(c, "SELECT 1") != NULL, "the session still works after the cancel");
	PQfinish(c);
}

/* psql over the unix socket + Ctrl-C: the CancelRequest arrives on the unix socket. */
static void cancel_over_unix_socket(void)
{
	static const char sql[] = "SELECT pg_sleep(30) AS c";
	PGconn *c = h_connect(h_lease_conninfo_unix("alice", NULL, "testdb"));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("unix socket login failed: %s", PQerrorMessage(c));
	h_ok(PQstatus(c) == CONNECTION_OK && PQsendQuery(c, sql) == 1 && running_on_server(sql),
	     "pg_sleep(30) over pglease's unix socket is running");
	h_is_str(libpq_cancel(c) ? result_state(c, 10000) : "not sent", "57014",
	         "PQcancel over the unix socket ends it with 57014");
	PQfinish(c);
}

/*
 * A cancel must end the query it was sent for, never the next client's: the
 * server (pool_size=1) is handed to client B right after A's query was
 * cancelled; B's short query must succeed.  Repeated, as the window is small.
 */
static void cancel_then_handover(void)
{
	static const char sql[] = "SELECT pg_sleep(30) AS h";
	int bad = 0, rounds = 10;

	for (int i = 0; i < rounds; i++) {
		PGconn *a = h_connect(h_lease_conninfo("alice", NULL, "one"));
		PGconn *b;
		const char *st_a, *st_b;

		if (PQstatus(a) != CONNECTION_OK || PQsendQuery(a, sql) != 1 ||
		    !running_on_server(sql) || !libpq_cancel(a)) {
			tap_diag("round %d: could not run and cancel a query", i);
			bad++;
			PQfinish(a);
			continue;
		}
		st_a = result_state(a, 10000);
		PQfinish(a);
		b = h_connect(h_lease_conninfo("alice", NULL, "one"));
		st_b = PQstatus(b) == CONNECTION_OK ? h_exec_sqlstate(b, "SELECT pg_sleep(0.05)")
		                                    : "login";
		if (strcmp(st_a, "57014") != 0 || st_b[0] != '\0') {
			tap_diag("round %d: A got '%s', then B's query got '%s'", i, st_a, st_b);
			bad++;
		}
		PQfinish(b);
	}
	h_is_int(bad, 0,
	         "a cancel never ends the next client's query on the same server "
	         "(10 rounds, pool_size=1)");
}

static void cancel_idle_session(void)
{
	PGconn *c = session();
	bool sent = libpq_cancel(c);

	h_sleep_ms(200);
	h_ok(sent && h_value(c, "SELECT 1") != NULL, "a cancel for an idle session is harmless");
	PQfinish(c);
}

static void *cancel_thread(void *arg)
{
	/* PQcancel blocks until pglease closes the cancel connection. */
	return libpq_cancel(arg) ? arg : NULL;
}

/* The parent process (postmaster) of backend PID, or 0. */
static pid_t parent_of(const char *pid)
{
	FILE *f = fopen(h_fmt("/proc/%s/stat", pid ? pid : "0"), "re");
	int ppid = 0;

	if (f != NULL) {
		if (fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1)
			ppid = 0;
		fclose(f);
	}
	return (pid_t)ppid;
}

/* "cl_active_cancel_req/sv_active_cancel/sv_being_canceled" of pool testdb. */
static const char *cancel_counts(PGconn *adm)
{
	const char *cols[] = {"cl_active_cancel_req", "sv_active_cancel", "sv_being_canceled"};
	const char *out = "";

	for (int i = 0; i < 3; i++) {
		const char *v = h_cell(adm, "SHOW POOLS", "database", "testdb", cols[i]);

		out = h_fmt("%s%s%s", out, i ? "/" : "", v ? v : "?");
	}
	return out;
}

static void cancel_in_show_pools(void)
{
	static const char sql[] = "SELECT pg_sleep(30) AS counted";
	PGconn *adm = h_connect(h_lease_conninfo("alice", NULL, "pgbouncer"));
	PGconn *c = session();
	const char *during = "", *after = "";
	pthread_t th;
	void *sent = NULL;
	pid_t pm = 0;

	h_is_str(cancel_counts(adm), "0/0/0", "SHOW POOLS: no cancel in flight at first");
	if (PQsendQuery(c, sql) == 1 && running_on_server(sql))
		pm = parent_of(h_pg_value("SELECT pid FROM pg_stat_activity WHERE query = "
		                          "'SELECT pg_sleep(30) AS counted'"));
	if (pm <= 1 || kill(pm, SIGSTOP) != 0) {
		tap_diag("cannot stop the postmaster (pid %d)", (int)pm);
		pm = 0;
	}
	if (pm != 0 && pthread_create(&th, NULL, cancel_thread, c) == 0) {
		/* Until SIGCONT nothing here may bail out: the cluster is stopped. */
		for (int i = 0; i < 50 && strcmp(during, "1/1/1") != 0; i++) {
			h_sleep_ms(100);
			during = cancel_counts(adm);
		}
		kill(pm, SIGCONT);
		pthread_join(th, &sent);
	} else if (pm != 0) {
		kill(pm, SIGCONT);
	}
	h_is_str(during, "1/1/1",
	         "SHOW POOLS: a cancel in flight counts in cl_active_cancel_req, "
	         "sv_active_cancel and sv_being_canceled");
	h_ok(sent != NULL, "the cancel completes once the postmaster runs again");
	h_is_str(result_state(c, 10000), "57014", "and the query ends with 57014");
	for (int i = 0; i < 50 && strcmp(after, "0/0/0") != 0; i++) {
		after = cancel_counts(adm);
		if (strcmp(after, "0/0/0") != 0)
			h_sleep_ms(100);
	}
	h_is_str(after, "0/0/0", "SHOW POOLS: the cancel counts return to 0");
	PQfinish(c);
	PQfinish(adm);
}

int main(void)
{
	h_init(300);
	h_pg_start();
	h_lease_config("trust",
	               h_fmt("%s%s", h_db_testdb(), h_db_line("one", "testdb", "pool_size=1")),
	               "admin_users = alice\n", h_userlist_line("alice", "alicepw"));
	h_lease_start();

	cancel_running_query();
	cancel_with_wrong_key();
	cancel_over_unix_socket();
	cancel_then_handover();
	cancel_idle_session();
	cancel_in_show_pools();

	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("end");
	return tap_done();
}
