/*
 * e2e_timeouts_server: which idle server a pool leases, and when pglease
 * closes server connections or gives up on them.
 *
 * Each group runs pglease with its own configuration (transaction mode).
 * Backend counts and pids are read directly from PostgreSQL's
 * pg_stat_activity; waits are bounded polls.
 *
 * Plan:
 *   LIFO                 two idle servers: sequential clients keep getting the
 *                        most recently released one.
 *   server_round_robin=1 the same set-up: two sequential transactions run on
 *                        the two different servers.
 *   server_idle_timeout=2  idle servers are closed (count 0); on a database
 *                        entry with min_pool_size=1 the count stops at 1; with
 *                        two idle servers and a client querying every 0.5 s the
 *                        client always gets the warm one and the other is closed.
 *   server_lifetime=2    a young server is reused; once older than 2 s it is
 *                        closed and a later transaction gets a new backend.
 *   server_connect_timeout=2  a database entry pointing at a port where nobody
 *                        answers: the client gets an error within 8 s, and
 *                        other databases are served meanwhile.
 *   server_connect_timeout=2 with server_reset_query = SELECT pg_sleep(30)
 *                        on a session-mode pool of 1: the reset is running,
 *                        is given up (its server closed, its backend gone)
 *                        and the next client's query is answered within 10 s.
 *   autodb_idle_timeout=2  a pool made from the "*" entry is freed after its
 *                        client left (backend count 0) while a listed database
 *                        keeps its server; a new client of it works again.
 *   end                  each configuration (phase) ends with pglease exiting 0 on
 *                        SIGTERM without sanitizer reports; the last is checked alive.
 */
#include "harness.h"
#include "tap.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const char *userlist(void)
{
	return h_fmt("%s%s", h_userlist_line("alice", "alicepw"), h_userlist_line("bob", "bobpw"));
}

static void settle(void);

/* Stop the running pglease, wait until its servers are gone, start with the new config. */
static bool restart(const char *databases, const char *extra, const char *what)
{
	h_lease_phase_stop();
	settle();
	return h_lease_phase(what, "trust", databases,
	                     h_fmt("pool_mode = transaction\nmax_client_conn = 100\n"
	                           "query_wait_timeout = 15\n%s\n",
	                           extra),
	                     userlist());
}

/* Between configurations: the previous pglease's servers are gone. */
static void settle(void)
{
	if (h_pg_wait_backends(NULL, NULL, 0, 10000) != 0)
		tap_diag("backends left over: %d", h_pg_backends(NULL, NULL));
}

static PGconn *client(const char *db, const char *user)
{
	PGconn *c = h_connect(h_lease_conninfo(user, NULL, db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login %s@%s failed: %s", user, db, PQerrorMessage(c));
	return c;
}

/* A new client of DB runs one transaction and leaves: the backend pid it saw. */
static const char *one_txn(const char *db, const char *user)
{
	PGconn *c = client(db, user);
	const char *pid =
	    PQstatus(c) == CONNECTION_OK ? h_value(c, "SELECT pg_backend_pid()") : NULL;

	PQfinish(c);
	return pid;
}

/*
 * Make two idle servers in DB's pool: two concurrent transactions, the one on
 * *FIRST commits first, the one on *LAST last (the most recently used).
 */
static bool two_idle(const char *db, const char *user, const char **first, const char **last)
{
	PGconn *a = client(db, user), *b = client(db, user);

	*first = h_exec(a, "BEGIN") ? h_value(a, "SELECT pg_backend_pid()") : NULL;
	*last = h_exec(b, "BEGIN") ? h_value(b, "SELECT pg_backend_pid()") : NULL;
	h_exec(a, "COMMIT");
	h_exec(b, "COMMIT");
	PQfinish(a);
	PQfinish(b);
	if (*first == NULL || *last == NULL || str_eq(*first, *last)) {
		tap_diag("two concurrent transactions ran on %s and %s", *first ? *first : "-",
		         *last ? *last : "-");
		return false;
	}
	return true;
}

static void lifo(void)
{
	const char *first, *last, *got[5];
	bool all = true;

	if (!restart(h_db_line("lifo", "testdb", "pool_size=2"), "", "the default LIFO order"))
		return;
	h_ok(two_idle("lifo", "alice", &first, &last), "LIFO: two servers, both idle");
	for (int i = 0; i < 5; i++) {
		got[i] = one_txn("lifo", "alice");
		all = all && str_eq(got[i], last);
	}
	if (!h_ok(all, "LIFO: five sequential clients all run on the most recently released "
	               "server"))
		tap_diag("released %s then %s; clients got %s %s %s %s %s", first, last,
		         got[0] ? got[0] : "-", got[1] ? got[1] : "-", got[2] ? got[2] : "-",
		         got[3] ? got[3] : "-", got[4] ? got[4] : "-");
}

static void round_robin(void)
{
	const char *first, *last, *got[4];

	if (!restart(h_db_line("rr", "testdb", "pool_size=2"), "server_round_robin = 1",
	             "server_round_robin = 1"))
		return;
	h_ok(two_idle("rr", "alice", &first, &last), "round robin: two servers, both idle");
	for (int i = 0; i < 4; i++)
		got[i] = one_txn("rr", "alice");
	if (!h_ok(got[0] && got[1] && !str_eq(got[0], got[1]) &&
	              (str_eq(got[0], first) || str_eq(got[0], last)) &&
	              (str_eq(got[1], first) || str_eq(got[1], last)) && !str_eq(got[2], got[1]),
	          "server_round_robin=1: sequential transactions alternate between the two "
	          "servers"))
		tap_diag("released %s then %s; clients got %s %s %s %s", first, last,
		         got[0] ? got[0] : "-", got[1] ? got[1] : "-", got[2] ? got[2] : "-",
		         got[3] ? got[3] : "-");
}

static void idle_timeout(void)
{
	const char *first, *last, *dbs;
	PGconn *c;
	int n, other = 0, queries = 0;
	int64_t end;

	dbs = h_fmt("%s%s", h_db_line("idl", "testdb", "pool_size=3"),
	            h_db_line("idlmin", "testdb", "pool_size=3 min_pool_size=1"));
	if (!restart(dbs, "server_idle_timeout = 2", "server_idle_timeout = 2"))
		return;

	h_ok(two_idle("idl", "alice", &first, &last), "server_idle_timeout=2: two servers");
	n = h_pg_wait_backends("testdb", "alice", 0, 10000);
	if (!h_ok(n == 0, "server_idle_timeout=2: idle servers are closed (0 backends)"))
		tap_diag("backends of alice: %d", n);

	h_ok(two_idle("idlmin", "bob", &first, &last),
	     "server_idle_timeout=2, min_pool_size=1: two servers");
	n = h_pg_wait_backends("testdb", "bob", 1, 10000);
	h_sleep_ms(3000);
	if (!h_ok(n == 1 && h_pg_backends("testdb", "bob") == 1,
	          "server_idle_timeout=2, min_pool_size=1: idle servers are closed down to 1"))
		tap_diag("backends of bob: %d, 3 s later %d", n, h_pg_backends("testdb", "bob"));

	/* The warmest server is reused first, so the other one ages and is closed. */
	h_ok(two_idle("idl", "alice", &first, &last), "server_idle_timeout=2: two servers again");
	c = client("idl", "alice");
	end = h_now_ms() + 5000;
	while (h_now_ms() < end) {
		const char *pid = h_value(c, "SELECT pg_backend_pid()");

		queries++;
		other += !str_eq(pid, last);
		h_sleep_ms(500);
	}
	if (!h_ok(other == 0, "server_idle_timeout=2: a client querying every 0.5 s always gets "
	                      "the most recently used server"))
		tap_diag("%d of %d queries ran elsewhere than %s", other, queries, last);
	n = h_pg_wait_backends("testdb", "alice", 1, 5000);
	if (!h_ok(n == 1 && str_eq(h_pg_backend_pids("testdb", "alice"), last),
	          "server_idle_timeout=2: meanwhile the unused server was closed, the warm one "
	          "kept"))
		tap_diag("backends of alice: %d (%s), warm %s", n,
		         h_pg_backend_pids("testdb", "alice"), last);
	PQfinish(c);
}

static void lifetime(void)
{
	PGconn *c;
	const char *p1, *p2, *pids = NULL, *later[3] = {NULL, NULL, NULL};
	bool renewed = false, gone = false;
	int64_t deadline;

	if (!restart(h_db_line("life", "testdb", "pool_size=1"), "server_lifetime = 2",
	             "server_lifetime = 2"))
		return;
	c = client("life", "alice");
	p1 = h_value(c, "SELECT pg_backend_pid()");
	p2 = h_value(c, "SELECT pg_backend_pid()");
	h_ok(p1 && str_eq(p1, p2), "server_lifetime=2: a young server is reused");
	h_sleep_ms(2500);
	for (int i = 0; i < 3 && !renewed; i++) {
		later[i] = h_value(c, "SELECT pg_backend_pid()");
		renewed = later[i] && !str_eq(later[i], p1);
	}
	if (!h_ok(renewed, "server_lifetime=2: once older than 2 s the server is closed and a "
	                   "later transaction runs on a new backend"))
		tap_diag("first %s, later %s %s %s", p1 ? p1 : "-", later[0] ? later[0] : "-",
		         later[1] ? later[1] : "-", later[2] ? later[2] : "-");
	deadline = h_now_ms() + 10000;
	while (!gone && h_now_ms() < deadline) {
		pids = h_pg_backend_pids("testdb", "alice");
		gone = pids && p1 && strstr(h_fmt(",%s,", pids), h_fmt(",%s,", p1)) == NULL;
		if (!gone)
			h_sleep_ms(200);
	}
	if (!h_ok(gone, "server_lifetime=2: the old backend is gone from pg_stat_activity"))
		tap_diag("backends of alice: %s, old %s", pids ? pids : "?", p1 ? p1 : "?");
	PQfinish(c);
}

/* Drive an asynchronous login until it ends or DEADLINE; the final polling status. */
static PostgresPollingStatusType drive_login(PGconn *c, int64_t deadline)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (PQstatus(c) == CONNECTION_BAD)
		return PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd p = {.fd = PQsocket(c),
		                   .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int64_t left = deadline - h_now_ms();

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) > 0)
			st = PQconnectPoll(c);
	}
	return st;
}

static void connect_timeout(void)
{
	int port, hole = h_blackhole_listen(&port);
	const char *dbs =
	    h_fmt("%shole = host=127.0.0.1 port=%d dbname=testdb\n", h_db_testdb(), port);
	PGconn *c;
	PostgresPollingStatusType st;
	int64_t deadline;
	bool other;

	if (!restart(dbs, "server_connect_timeout = 2\nserver_login_retry = 1",
	             "server_connect_timeout = 2")) {
		close(hole);
		return;
	}
	deadline = h_now_ms() + 8000;
	c = PQconnectStart(h_lease_conninfo("alice", NULL, "hole"));
	st = drive_login(c, h_now_ms() + 300);
	other = h_can_query(h_lease_conninfo("bob", NULL, "testdb"));
	h_ok(other, "server_connect_timeout=2: another database is served while a server "
	            "connection hangs");
	if (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED)
		st = drive_login(c, deadline);
	if (st == PGRES_POLLING_OK) {
		/* Logged in without a server: the first query must fail instead. */
		PGresult *r = PQsendQuery(c, "SELECT 1") == 1
		                  ? h_wait_result(c, (int)(deadline - h_now_ms()))
		                  : NULL;

		st = r && PQresultStatus(r) == PGRES_TUPLES_OK ? PGRES_POLLING_OK
		     : r || PQstatus(c) == CONNECTION_BAD      ? PGRES_POLLING_FAILED
		                                               : PGRES_POLLING_ACTIVE;
		PQclear(r);
	}
	if (!h_ok(st == PGRES_POLLING_FAILED && h_now_ms() <= deadline + 100,
	          "server_connect_timeout=2: a client of a database whose server never answers "
	          "gets an error within 8 s"))
		tap_diag("state %d; %s", (int)st, PQerrorMessage(c));
	else
		tap_diag("client was told: %s", PQerrorMessage(c));
	PQfinish(c);
	h_ok(h_can_query(h_lease_conninfo("bob", NULL, "testdb")),
	     "server_connect_timeout=2: the other database still works afterwards");
	close(hole);
}

static void reset_timeout(void)
{
	const char *dbs = h_fmt("%s%s", h_db_testdb(),
	                        h_db_line("slow", "testdb", "pool_size=1 pool_mode=session"));
	PGconn *c;
	PGresult *r = NULL;
	int n = -1;

	/* The check interval lets the backend notice at once that pglease left. */
	if (!restart(dbs,
	             "server_connect_timeout = 2\nserver_reset_query = SET "
	             "client_connection_check_interval = 200; SELECT pg_sleep(30)",
	             "server_connect_timeout = 2, slow server_reset_query"))
		return;
	c = client("slow", "alice");
	h_value(c, "SELECT 1");
	PQfinish(c);
	for (int i = 0; i < 50 && n != 1; i++) {
		h_sleep_ms(100);
		n = h_pg_active("pg_sleep(30)");
	}
	h_is_int(n, 1, "slow reset: the reset query runs after the client left");
	c = client("slow", "alice");
	if (PQstatus(c) == CONNECTION_OK && PQsendQuery(c, "SELECT 'after reset'") == 1)
		r = h_wait_result(c, 10000);
	if (!h_ok(r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK,
	          "slow reset: the reset is given up after server_connect_timeout and the next "
	          "client of the pool of 1 is answered within 10 s"))
		tap_diag("%s", r ? PQresultErrorMessage(r) : "no answer");
	PQclear(r);
	PQfinish(c);
	for (int i = 0; i < 50 && n != 0; i++) {
		n = h_pg_active("pg_sleep(30)");
		if (n != 0)
			h_sleep_ms(100);
	}
	h_is_int(n, 0, "slow reset: the backend of the abandoned reset is gone");
}

static void autodb(void)
{
	const char *dbs =
	    h_fmt("%s* = host=127.0.0.1 port=%d\n", h_db_line("kept", "testdb", NULL), h_pg_port());
	int n, kept;

	if (!restart(dbs, "autodb_idle_timeout = 2", "autodb_idle_timeout = 2"))
		return;
	h_ok(one_txn("testdb", "alice") != NULL,
	     "autodb_idle_timeout=2: a client of testdb (not listed, via \"*\") runs a query");
	h_ok(one_txn("kept", "bob") != NULL, "autodb_idle_timeout=2: a client of a listed "
	                                     "database runs a query");
	n = h_pg_wait_backends("testdb", "alice", 0, 10000);
	kept = h_pg_backends("testdb", "bob");
	if (!h_ok(n == 0, "autodb_idle_timeout=2: the unused automatic pool is freed, its server "
	                  "closed"))
		tap_diag("backends of alice: %d", n);
	if (!h_ok(kept == 1, "autodb_idle_timeout=2: the listed database keeps its server"))
		tap_diag("backends of bob: %d", kept);
	h_ok(one_txn("testdb", "alice") != NULL,
	     "autodb_idle_timeout=2: a new client of the freed database works");
}

int main(void)
{
	h_init(400);
	h_pg_start();

	lifo();
	round_robin();
	idle_timeout();
	lifetime();
	connect_timeout();
	reset_timeout();
	autodb();

	h_lease_phase_end();
	return tap_done();
}
