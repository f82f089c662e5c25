/*
 * e2e_timeouts: timeouts on the client side of pglease.
 *
 * Each group runs pglease with its own configuration (transaction mode,
 * database "one" with pool_size=1).  Waits are bounded polls; nothing asserts
 * how long something took beyond "within N s" or "not within N s".
 *
 * Plan:
 *   query_wait_timeout=2     a client waiting for the only server gets an
 *                            error naming query_wait_timeout and is
 *                            disconnected; the client holding the server is
 *                            not affected.
 *   query_wait_notify=1      a waiting client receives a NOTICE containing
 *                            "waiting" while it waits, then gets the server
 *                            when it is released.
 *   client_login_timeout=1   a socket that sends nothing, and one that sends a
 *                            startup packet and never answers the password
 *                            request, are closed; a logged-in client is not.
 *   client_idle_timeout=2    idle logged-in clients are disconnected, in
 *                            transaction and in session mode; clients sending a
 *                            query every 0.4 s are not.
 *   idle_transaction_timeout=1  BEGIN, then silence: the client gets an error
 *                            naming idle_transaction_timeout; the server is not
 *                            handed on inside that transaction (the next client
 *                            runs outside any transaction), no backend is left
 *                            idle in transaction.
 *   query_timeout=1          SELECT pg_sleep(10) is cancelled (57014) and the
 *                            session keeps working.
 *   transaction_timeout=2    a transaction of pg_sleep(0.8) statements ends with
 *                            an error after its first statements; the pool
 *                            still serves the next client outside any
 *                            transaction.
 *   end                      each configuration (phase) ends with pglease exiting 0 on
 *                            SIGTERM without sanitizer reports; the last is checked alive.
 */
#include "harness.h"
#include "tap.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *userlist(void)
{
	return h_fmt("%s%s", h_userlist_line("alice", "alicepw"), h_userlist_line("bob", "bobpw"));
}

static const char *databases(void)
{
	return h_fmt("%s%s%s", h_db_testdb(), h_db_line("one", "testdb", "pool_size=1"),
	             h_db_line("sess", "testdb", "pool_size=2 pool_mode=session"));
}

static bool restart(const char *auth, const char *extra, const char *what)
{
	return h_lease_phase(what, auth, databases(),
	                     h_fmt("pool_mode = transaction\nmax_client_conn = 100\n%s\n", extra),
	                     userlist());
}

static PGconn *client(const char *db)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", "alicepw", db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login to %s failed: %s", db, PQerrorMessage(c));
	return c;
}

/* Text of the result R's error, or of C's error when R is NULL. */
static const char *errtext(PGconn *c, const PGresult *r)
{
	const char *m = r ? PQresultErrorMessage(r) : "";

	return h_fmt("%s%s", m, m[0] ? "" : PQerrorMessage(c));
}

/*
 * A new client of DB runs outside any earlier transaction: now() =
 * statement_timestamp(), and ReadyForQuery says idle afterwards.
 */
static bool fresh_transaction(const char *db)
{
	PGconn *c = client(db);
	const char *v = NULL;

	if (PQstatus(c) == CONNECTION_OK &&
	    PQsendQuery(c, "SELECT now() = statement_timestamp()")) {
		PGresult *r = h_wait_result(c, 15000);

		if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    PQtransactionStatus(c) == PQTRANS_IDLE)
			v = h_fmt("%s", PQgetvalue(r, 0, 0));
		else if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
			tap_diag("next client: transaction status %d after its query",
			         (int)PQtransactionStatus(c));
		else
			tap_diag("next client: %s", r ? errtext(c, r) : "no answer within 15 s");
		PQclear(r);
	}
	PQfinish(c);
	return v != NULL && strcmp(v, "t") == 0;
}

/* Wait up to MS until no backend of alice is idle in a transaction. */
static bool no_idle_in_transaction(int ms)
{
	int64_t deadline = h_now_ms() + ms;
	const char *v;

	do {
		v = h_pg_value("SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' "
		               "AND state LIKE 'idle in transaction%'");
		if (v && strcmp(v, "0") == 0)
			return true;
		h_sleep_ms(200);
	} while (h_now_ms() < deadline);
	tap_diag("backends idle in transaction: %s", v ? v : "?");
	return false;
}

/*
 * Wait up to MS for the query sent on C to end; the error messages of all its
 * results and of the connection (libpq reports a FATAL error and the closed
 * connection after it as two results), "" when it succeeded; NULL when it did
 * not end in time.
 */
static const char *query_errors(PGconn *c, int ms)
{
	int64_t deadline = h_now_ms() + ms;
	const char *all = "";
	bool failed = false;

	for (;;) {
		PGresult *r;

		while (PQisBusy(c)) {
			struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
			int64_t left = deadline - h_now_ms();

			if (left <= 0)
				return NULL;
			if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
				break;
			if (!PQconsumeInput(c))
				break;
		}
		r = PQgetResult(c);
		if (r == NULL)
			break;
		if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
			failed = true;
			all = h_fmt("%s%s", all, PQresultErrorMessage(r));
		}
		PQclear(r);
		if (PQstatus(c) == CONNECTION_BAD && !PQisBusy(c) && failed)
			break;
	}
	return failed ? h_fmt("%s%s", all, PQerrorMessage(c)) : "";
}

static void query_wait_timeout(void)
{
	PGconn *holder, *waiter;
	const char *msg = NULL;
	bool closed;

	if (!restart("trust", "query_wait_timeout = 2\nquery_wait_notify = 0",
	             "query_wait_timeout = 2"))
		return;
	holder = client("one");
	waiter = client("one");
	h_exec(holder, "BEGIN");
	h_value(holder, "SELECT pg_backend_pid()");
	if (PQsendQuery(waiter, "SELECT 1") == 1)
		msg = query_errors(waiter, 10000);
	if (!h_ok(msg != NULL && strstr(msg, "query_wait_timeout") != NULL,
	          "query_wait_timeout=2: a client waiting for the only server gets an error "
	          "naming query_wait_timeout"))
		tap_diag("%s", msg == NULL ? "no answer within 10 s"
		               : msg[0]    ? msg
		                           : "it succeeded");
	else
		tap_diag("it was told: %s", msg);
	closed = h_wait_conn_closed(waiter, 5000);
	h_ok(closed, "query_wait_timeout=2: that client is disconnected");
	h_is_str(h_value(holder, "SELECT 42"), "42",
	         "query_wait_timeout=2: the client holding the server is not affected");
	h_exec(holder, "COMMIT");
	PQfinish(waiter);
	PQfinish(holder);
}

struct notices {
	int n;
	bool waiting;
	char last[512];
};

static void on_notice(void *arg, const PGresult *res)
{
	struct notices *s = arg;
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	s->n++;
	snprintf(s->last, sizeof(s->last), "%s", m ? m : "");
	if (m && strcasestr(m, "waiting"))
		s->waiting = true;
}

static void query_wait_notify(void)
{
	struct notices seen = {0};
	PGconn *holder, *waiter;
	PGresult *r = NULL;
	const char *pid;
	int64_t deadline;
	bool early = false;

	if (!restart("trust", "query_wait_notify = 1\nquery_wait_timeout = 30",
	             "query_wait_notify = 1"))
		return;
	holder = client("one");
	waiter = client("one");
	PQsetNoticeReceiver(waiter, on_notice, &seen);
	h_exec(holder, "BEGIN");
	pid = h_value(holder, "SELECT pg_backend_pid()");
	if (PQsendQuery(waiter, "SELECT pg_backend_pid()") != 1)
		tap_diag("send: %s", PQerrorMessage(waiter));
	deadline = h_now_ms() + 6000;
	while (!seen.waiting && h_now_ms() < deadline && PQstatus(waiter) == CONNECTION_OK) {
		r = h_wait_result(waiter, 200);
		if (r != NULL) {
			early = true;
			break;
		}
	}
	if (!h_ok(seen.waiting && !early,
	          "query_wait_notify=1: a client waiting for the server receives a NOTICE "
	          "containing \"waiting\""))
		tap_diag("notices %d (last \"%s\"), query finished early: %s", seen.n, seen.last,
		         early ? errtext(waiter, r) : "no");
	h_exec(holder, "COMMIT");
	if (!early)
		r = h_wait_result(waiter, 10000);
	if (!h_ok(r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
	              strcmp(PQgetvalue(r, 0, 0), pid ? pid : "?") == 0,
	          "query_wait_notify=1: then it runs on the released server"))
		tap_diag("result %s: %s (want pid %s)",
		         r ? PQresStatus(PQresultStatus(r)) : "none within 10 s",
		         r && PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0)
		                                                   : errtext(waiter, r),
		         pid ? pid : "?");
	PQclear(r);
	PQfinish(waiter);
	PQfinish(holder);
}

static void client_login_timeout(void)
{
	PGconn *in;
	struct h_msg *m = malloc(sizeof(*m));
	int silent, mute, rr = 0;
	int64_t start;

	if (!restart("md5", "client_login_timeout = 1", "client_login_timeout = 1 (auth_type md5)"))
		goto out;
	start = h_now_ms();
	in = client("testdb");
	silent = h_raw_connect(h_lease_port());
	h_ok(silent != -1 && h_raw_wait_close(silent, 8000),
	     "client_login_timeout=1: a socket that sends nothing is closed");
	mute = h_raw_connect(h_lease_port());
	if (mute != -1 && h_raw_send_startup(mute, H_PROTO_V3, "alice", "testdb"))
		rr = h_raw_read_msg(mute, m, 5000);
	if (!h_ok(rr == 1 && m->type == 'R' && h_be32(m->data) != 0 && h_raw_wait_close(mute, 8000),
	          "client_login_timeout=1: a client that never answers the password request is "
	          "closed"))
		tap_diag("read %d, message type %c", rr, rr == 1 ? m->type : '-');
	if (h_now_ms() - start < 3000)
		h_sleep_ms((int)(3000 - (h_now_ms() - start)));
	h_is_str(PQstatus(in) == CONNECTION_OK ? h_value(in, "SELECT 7") : NULL, "7",
	         "client_login_timeout=1: a logged-in client is not closed");
	PQfinish(in);
	if (silent != -1)
		close(silent);
	if (mute != -1)
		close(mute);
out:
	free(m);
}

/* Raw: send SQL and read until ReadyForQuery (3 s); true with a row and no error. */
static bool raw_query_ok(int fd, const char *sql)
{
	struct h_msg *m = malloc(sizeof(*m));
	bool row = false, err = false, ready = false;

	if (m != NULL && h_raw_send_query(fd, sql))
		while (!ready && h_raw_read_msg(fd, m, 3000) == 1) {
			row = row || m->type == 'D';
			err = err || m->type == 'E';
			ready = m->type == 'Z';
		}
	free(m);
	return row && !err && ready;
}

/* True when the peer of FD closed it (without waiting; reads and drops what came). */
static bool raw_closed_now(int fd)
{
	char junk[4096];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 0) <= 0)
			return false;
		n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0)
			return true;
		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
	}
}

static int raw_client(const char *db)
{
	int fd = h_raw_connect(h_lease_port());
	char st[6];

	if (fd != -1 && !h_raw_login(fd, "alice", NULL, db, st)) {
		tap_diag("raw login to %s failed (%s)", db, st);
		close(fd);
		fd = -1;
	}
	return fd;
}

static void client_idle_timeout(void)
{
	static const char *const dbs[2] = {"testdb", "sess"};
	static const char *const mode[2] = {"transaction", "session"};
	int idle[2], busy[2], fails[2] = {0, 0}, queries = 0;
	bool closed[2] = {false, false};
	int64_t end;

	if (!restart("trust", "client_idle_timeout = 2", "client_idle_timeout = 2"))
		return;
	for (int i = 0; i < 2; i++) {
		idle[i] = raw_client(dbs[i]);
		busy[i] = raw_client(dbs[i]);
	}
	end = h_now_ms() + 6000;
	while (h_now_ms() < end) {
		for (int i = 0; i < 2; i++) {
			if (busy[i] != -1 && !raw_query_ok(busy[i], "SELECT 1"))
				fails[i]++;
			if (idle[i] != -1 && !closed[i])
				closed[i] = raw_closed_now(idle[i]);
		}
		queries++;
		h_sleep_ms(400);
	}
	for (int i = 0; i < 2; i++) {
		if (idle[i] != -1 && !closed[i])
			closed[i] = h_raw_wait_close(idle[i], 6000);
		h_ok(idle[i] != -1 && closed[i],
		     "client_idle_timeout=2: an idle client is disconnected (%s mode)", mode[i]);
		if (!h_ok(busy[i] != -1 && fails[i] == 0,
		          "client_idle_timeout=2: a client querying every 0.4 s stays (%s mode)",
		          mode[i]))
			tap_diag("%d of %d queries failed", fails[i], queries);
		if (idle[i] != -1)
			close(idle[i]);
		if (busy[i] != -1)
			close(busy[i]);
	}
}

/* Read messages for up to MS: appends error texts to *ERRS, sets *ROW on a DataRow; 1 on
 * ReadyForQuery, 0 on EOF, -1 on timeout. */
static int raw_collect(int fd, int ms, const char **errs, bool *row)
{
	struct h_msg *m = malloc(sizeof(*m));
	int64_t deadline = h_now_ms() + ms;
	int ret = -1;

	while (m != NULL) {
		int64_t left = deadline - h_now_ms();
		int r = left > 0 ? h_raw_read_msg(fd, m, (int)left) : -1;

		if (r != 1) {
			ret = r == 0 ? 0 : -1;
			break;
		}
		if (m->type == 'E' || m->type == 'N') {
			const char *t = h_msg_field(m, 'M');

			*errs = h_fmt("%s[%c %s] ", *errs, m->type, t ? t : "");
		}
		*row = *row || m->type == 'D';
		if (m->type == 'Z') {
			ret = 1;
			break;
		}
	}
	free(m);
	return ret;
}

static void idle_transaction_timeout(void)
{
	const char *errs = "";
	bool row = false;
	int fd, r;

	if (!restart("trust", "idle_transaction_timeout = 1\nquery_wait_timeout = 15",
	             "idle_transaction_timeout = 1"))
		return;
	fd = raw_client("one");
	h_ok(fd != -1 && raw_query_ok(fd, "BEGIN; SELECT 1"),
	     "idle_transaction_timeout=1: BEGIN on a client");
	h_sleep_ms(3000);
	/* Whatever pglease sent meanwhile, then (if still open) the next query. */
	r = fd != -1 ? raw_collect(fd, 500, &errs, &row) : 0;
	if (r == -1 && h_raw_send_query(fd, "SELECT 1"))
		raw_collect(fd, 5000, &errs, &row);
	if (!h_ok(strstr(errs, "idle_transaction_timeout") != NULL && !row,
	          "idle_transaction_timeout=1: after 3 s of silence in a transaction the client "
	          "gets an error naming idle_transaction_timeout, not a result"))
		tap_diag("messages: %s, row %d", errs[0] ? errs : "(none)", row);
	if (fd != -1)
		close(fd);
	h_ok(fresh_transaction("one"), "idle_transaction_timeout=1: the next client of the pool "
	                               "(pool_size=1) runs outside that transaction");
	h_ok(no_idle_in_transaction(10000),
	     "idle_transaction_timeout=1: no backend is left idle in transaction");
}

static void query_timeout(void)
{
	PGconn *c;
	PGresult *r = NULL;
	const char *st = NULL;

	if (!restart("trust", "query_timeout = 1\nquery_wait_timeout = 15", "query_timeout = 1"))
		return;
	c = client("testdb");
	if (PQsendQuery(c, "SELECT pg_sleep(10)") == 1)
		r = h_wait_result(c, 8000);
	if (r != NULL)
		st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (!h_ok(r != NULL && st != NULL && strcmp(st, "57014") == 0,
	          "query_timeout=1: SELECT pg_sleep(10) is cancelled with 57014 within 8 s"))
		tap_diag("result %s: %s", r ? PQresStatus(PQresultStatus(r)) : "none within 8 s",
		         r ? errtext(c, r) : "");
	PQclear(r);
	if (r == NULL) { /* still running: do not pile the next query on it */
		PQfinish(c);
		c = client("testdb");
	}
	h_is_str(h_value(c, "SELECT 5"), "5", "query_timeout=1: the session keeps working");
	h_is_str(h_value(c, "SELECT 6 FROM pg_sleep(0.2)"), "6",
	         "query_timeout=1: a query shorter than the limit completes");
	PQfinish(c);
}

static void transaction_timeout(void)
{
	PGconn *c;
	int ok = 0, i;
	const char *why = "";

	if (!restart("trust", "transaction_timeout = 2\nquery_wait_timeout = 15",
	             "transaction_timeout = 2"))
		return;
	c = client("one");
	if (!h_exec(c, "BEGIN"))
		why = "BEGIN failed";
	for (i = 0; i < 8 && !why[0]; i++) {
		PGresult *r = NULL;

		if (PQsendQuery(c, "SELECT pg_sleep(0.8)") == 1)
			r = h_wait_result(c, 6000);
		if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK)
			ok++;
		else
			why = r ? errtext(c, r) : h_fmt("no result: %s", PQerrorMessage(c));
		PQclear(r);
	}
	if (!h_ok(ok >= 1 && ok < 8 && why[0],
	          "transaction_timeout=2: a transaction of pg_sleep(0.8) statements ends with an "
	          "error after its first statement"))
		tap_diag("%d statements succeeded; error: %s", ok, why[0] ? why : "(none)");
	else
		tap_diag("after %d statements: %s", ok, why);
	PQfinish(c);
	h_ok(fresh_transaction("one"), "transaction_timeout=2: the next client of the pool "
	                               "(pool_size=1) runs outside that transaction");
	h_ok(no_idle_in_transaction(10000),
	     "transaction_timeout=2: no backend is left idle in transaction");
}

int main(void)
{
	h_init(400);
	h_pg_start();

	query_wait_timeout();
	query_wait_notify();
	client_login_timeout();
	client_idle_timeout();
	idle_transaction_timeout();
	query_timeout();
	transaction_timeout();

	h_lease_phase_end();
	return tap_done();
}
