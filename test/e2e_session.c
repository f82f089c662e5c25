/*
 * e2e_session: session pooling through pglease.
 *
 * Plan:
 *   1-4  state kept within one session: SET application_name, a TEMP table,
 *        SET DateStyle (and its ParameterStatus reaching the client). *   5-8  server reuse across
 * sessions with pool_size=1: the second session gets the same backend, and server_reset_query
 * (DISCARD ALL) removed the first session's SET, TEMP table and client_encoding. 9-11
 * ParameterStatus after login (server_version, server_encoding) as a direct connection reports
 * them; PQbackendPID is pglease's own key. *   12-13 with pool_size=1 held by a session, a second
 * client waits, and gets the same server when the first disconnects. *   14-15 startup parameters
 * (application_name, client_encoding) reach the server session. 16   login over pglease's unix
 * socket. 17   the fallback "*" database entry. 18-19 pglease alive, clean exit on SIGTERM.
 */
#include "harness.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static PGconn *session(const char *db)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", NULL, db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login to %s failed: %s", db, PQerrorMessage(c));
	return c;
}

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void state_within_session(void)
{
	PGconn *c = session("testdb");

	h_exec(c, "SET application_name = 'e2e_session'");
	h_exec(c, "SELECT 1");
	h_is_str(h_value(c, "SHOW application_name"), "e2e_session",
	         "session: SET application_name is seen by a later query");

	h_exec(c, "CREATE TEMP TABLE sess_tmp (x int)");
	h_exec(c, "INSERT INTO sess_tmp VALUES (1), (2), (3)");
	h_is_str(h_value(c, "SELECT count(*) FROM sess_tmp"), "3",
	         "session: a TEMP table lives across queries");

	h_exec(c, "SET DateStyle = 'SQL, DMY'");
	h_is_str(h_value(c, "SHOW DateStyle"), "SQL, DMY",
	         "session: SET DateStyle is seen by a later query");
	h_is_str(PQparameterStatus(c, "DateStyle"), "SQL, DMY",
	         "session: the DateStyle ParameterStatus reaches the client");
	PQfinish(c);
}

static void reuse_across_sessions(void)
{
	PGconn *c =
	    h_connect(h_fmt("%s client_encoding=LATIN1", h_lease_conninfo("alice", NULL, "one")));
	const char *pid1, *app0, *pid2;

	pid1 = h_value(c, "SELECT pg_backend_pid()");
	app0 = h_value(c, "SHOW application_name");
	h_exec(c, "SET application_name = 'first_session'");
	h_exec(c, "CREATE TEMP TABLE leftover (x int)");
	PQfinish(c);

	/* The server is reset and released asynchronously; the login waits for it. */
	c = session("one");
	pid2 = h_value(c, "SELECT pg_backend_pid()");
	h_ok(pid1 && str_eq(pid1, pid2), "pool_size=1: the next session reuses backend %s (got %s)",
	     pid1 ? pid1 : "?", pid2 ? pid2 : "?");
	h_is_str(h_value(c, "SHOW application_name"), app0 ? app0 : "",
	         "pool_size=1: the previous session's SET is reset");
	h_is_str(h_value(c, "SELECT to_regclass('leftover') IS NULL"), "t",
	         "pool_size=1: the previous session's TEMP table is gone (DISCARD ALL)");
	h_ok(str_eq(h_value(c, "SHOW client_encoding"), PQparameterStatus(c, "client_encoding")) &&
	         str_eq(PQparameterStatus(c, "client_encoding"), "UTF8"),
	     "pool_size=1: the previous session's client_encoding=LATIN1 does not leak "
	     "(SHOW = ParameterStatus = UTF8)");
	PQfinish(c);
}

static void parameter_status(void)
{
	PGconn *d = h_connect(h_pg_conninfo("alice", "alicepw", "testdb"));
	PGconn *c = session("testdb");
	const char *v = PQparameterStatus(d, "server_version");
	const char *pid;

	h_ok(v != NULL && str_eq(PQparameterStatus(c, "server_version"), v),
	     "ParameterStatus server_version via pglease = direct (%s)", v ? v : "?");
	v = PQparameterStatus(d, "server_encoding");
	h_ok(v != NULL && str_eq(PQparameterStatus(c, "server_encoding"), v),
	     "ParameterStatus server_encoding via pglease = direct (%s)", v ? v : "?");
	pid = h_value(c, "SELECT pg_backend_pid()");
	if (!h_ok(PQbackendPID(c) != 0 && pid != NULL && atoi(pid) != PQbackendPID(c),
	          "BackendKeyData is pglease's own key, not the server's pid"))
		tap_diag("PQbackendPID %d, pg_backend_pid() %s", PQbackendPID(c), pid ? pid : "?");
	PQfinish(c);
	PQfinish(d);
}

/* A client that logs in and runs one query without blocking the test. */
struct async_q {
	PGconn *c;
	PostgresPollingStatusType ps;
	const char *sql;
	bool sent;
	bool done;
	const char *value; /* first value of the last result, or NULL */
	const char *error; /* or NULL */
};

static void aq_start(struct async_q *q, const char *conninfo, const char *sql)
{
	memset(q, 0, sizeof(*q));
	q->c = PQconnectStart(conninfo);
	q->ps = PGRES_POLLING_WRITING;
	q->sql = sql;
	if (q->c == NULL || PQstatus(q->c) == CONNECTION_BAD)
		q->ps = PGRES_POLLING_FAILED;
}

/* Drive Q for at most MS milliseconds; returns true when its query finished (or failed). */
static bool aq_run(struct async_q *q, int ms)
{
	int64_t deadline = h_now_ms() + ms;

	while (!q->done && h_now_ms() < deadline) {
		struct pollfd p = {.fd = PQsocket(q->c), .events = POLLIN};
		int left = (int)(deadline - h_now_ms());

		if (!q->sent) {
			if (q->ps == PGRES_POLLING_FAILED) {
				q->error = h_fmt("login: %s", PQerrorMessage(q->c));
				q->done = true;
				break;
			}
			if (q->ps == PGRES_POLLING_OK) {
				q->sent = PQsendQuery(q->c, q->sql) == 1;
				if (!q->sent) {
					q->error = h_fmt("send: %s", PQerrorMessage(q->c));
					q->done = true;
				}
				continue;
			}
			if (q->ps == PGRES_POLLING_WRITING)
				p.events = POLLOUT;
			if (poll(&p, 1, left > 0 ? left : 0) > 0)
				q->ps = PQconnectPoll(q->c);
			continue;
		}
		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			continue;
		if (!PQconsumeInput(q->c)) {
			q->error = h_fmt("%s", PQerrorMessage(q->c));
			q->done = true;
			break;
		}
		while (!q->done && !PQisBusy(q->c)) {
			PGresult *r = PQgetResult(q->c);

			if (r == NULL) {
				q->done = true;
				break;
			}
			if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
				q->value = h_fmt("%s", PQgetvalue(r, 0, 0));
			else if (PQresultStatus(r) != PGRES_COMMAND_OK)
				q->error = h_fmt("%s", PQresultErrorMessage(r));
			PQclear(r);
		}
	}
	return q->done;
}

static void waits_for_pool(void)
{
	PGconn *a = session("one");
	const char *pid_a = h_value(a, "SELECT pg_backend_pid()");
	struct async_q b;
	bool finished_early;

	aq_start(&b, h_lease_conninfo("alice", NULL, "one"), "SELECT pg_backend_pid()");
	finished_early = aq_run(&b, 1000);
	if (!h_ok(!finished_early, "pool_size=1: a second session waits while the first holds "
	                           "the server"))
		tap_diag("second session finished: value %s, error %s", b.value ? b.value : "-",
		         b.error ? b.error : "-");
	PQfinish(a);
	aq_run(&b, 15000);
	if (!h_ok(b.done && b.error == NULL && pid_a && str_eq(b.value, pid_a),
	          "pool_size=1: when the first session ends the waiting one gets its server"))
		tap_diag("done %d, value %s (want %s), error %s", b.done, b.value ? b.value : "-",
		         pid_a ? pid_a : "?", b.error ? b.error : "-");
	PQfinish(b.c);
}

/* Parameters a client sends in its startup packet reach its server session. */
static void startup_parameters(void)
{
	PGconn *c = h_connect(h_fmt("%s application_name=e2e_startup client_encoding=LATIN1",
	                            h_lease_conninfo("alice", NULL, "testdb")));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login failed: %s", PQerrorMessage(c));
	h_is_str(h_value(c, "SHOW application_name"), "e2e_startup",
	         "startup parameter application_name is applied on the server");
	h_is_str(h_value(c, "SHOW client_encoding"), "LATIN1",
	         "startup parameter client_encoding is applied on the server");
	PQfinish(c);
}

/* Large messages both ways, and a libpq pipeline, pass through intact. */
static void big_and_pipelined(void)
{
	PGconn *c = session("testdb");
	size_t n = 1000000;
	char *sql = malloc(n + 64);
	const char *v;
	bool ok = true;

	memcpy(sql, "SELECT length('", 15);
	memset(sql + 15, 'x', n);
	strcpy(sql + 15 + n, "')");
	h_is_str(h_value(c, sql), "1000000", "a 1 MB query passes through intact");
	free(sql);
	v = h_value(c, "SELECT repeat('abc', 1500000)");
	h_ok(v != NULL && strlen(v) == 4500000 && strncmp(v + 4499997, "abc", 3) == 0,
	     "a 4.5 MB result passes through intact");

	ok = PQenterPipelineMode(c) == 1;
	for (int i = 1; ok && i <= 3; i++)
		ok = PQsendQueryParams(c, h_fmt("SELECT %d", i), 0, NULL, NULL, NULL, NULL, 0) == 1;
	ok = ok && PQpipelineSync(c) == 1;
	for (int i = 1; ok && i <= 3; i++) {
		PGresult *r = h_wait_result_one(c, 10000);

		ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
		     strcmp(PQgetvalue(r, 0, 0), h_fmt("%d", i)) == 0;
		PQclear(r);
		r = PQgetResult(c); /* the NULL that ends each query's results */
		ok = ok && r == NULL;
		PQclear(r);
	}
	if (ok) {
		PGresult *r = h_wait_result_one(c, 10000);

		ok = r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
		PQclear(r);
	}
	ok = ok && PQexitPipelineMode(c) == 1;
	if (!h_ok(ok, "a pipeline of three queries and a Sync returns three results in order"))
		tap_diag("%s", PQerrorMessage(c));
	h_is_str(h_value(c, "SELECT 42"), "42", "the session works after the pipeline");
	PQfinish(c);
}

/*
 * 20000 simple queries written back to back on one raw connection while the
 * replies are read: every query gets its row and its ReadyForQuery, in a
 * bounded time (no stall when both directions are busy).
 */
static void raw_query_flood(void)
{
	enum { N = 20000 };
	static const char q[] = {'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
	size_t total = (size_t)N * sizeof(q), sent = 0, have = 0, cap = 1 << 16;
	char *out = malloc(total), *in = malloc(cap);
	int fd = h_raw_connect(h_lease_port()), rows = 0, ready = 0, errors = 0;
	int64_t deadline = h_now_ms() + 60000;
	char st[6];
	bool ok = fd != -1 && out && in && h_raw_login(fd, "alice", NULL, "testdb", st);

	for (size_t i = 0; out && i < N; i++)
		memcpy(out + i * sizeof(q), q, sizeof(q));
	if (ok)
		ok = fcntl(fd, F_SETFL, O_NONBLOCK) == 0;
	while (ok && ready < N && h_now_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
		size_t off = 0;
		ssize_t r;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if ((p.revents & POLLOUT) && sent < total) {
			r = send(fd, out + sent, total - sent, MSG_NOSIGNAL);
			if (r > 0)
				sent += (size_t)r;
			else if (r == -1 && errno != EAGAIN && errno != EINTR)
				ok = false;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = recv(fd, in + have, cap - have, 0);
		if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
			tap_diag("flood: connection closed after %d replies", ready);
			ok = false;
			break;
		}
		if (r > 0)
			have += (size_t)r;
		/* Count whole messages; keep a partial one for the next read. */
		while (have - off >= 5) {
			uint32_t len;

			memcpy(&len, in + off + 1, 4);
			len = ntohl(len);
			if (len < 4 || len > cap - 1) {
				ok = false;
				break;
			}
			if (have - off < 1 + (size_t)len)
				break;
			rows += in[off] == 'D';
			ready += in[off] == 'Z';
			errors += in[off] == 'E';
			off += 1 + len;
		}
		memmove(in, in + off, have - off);
		have -= off;
	}
	if (!h_ok(ok && rows == N && ready == N && errors == 0,
	          "20000 queries written back to back on one connection: 20000 rows and "
	          "ReadyForQuery, no error"))
		tap_diag("sent %zu of %zu bytes, rows %d, ready %d, errors %d", sent, total, rows,
		         ready, errors);
	if (fd != -1)
		close(fd);
	free(out);
	free(in);
}

static void unix_socket(void)
{
	h_ok(h_can_query(h_lease_conninfo_unix("alice", NULL, "testdb")),
	     "login and query over pglease's unix socket");
}

static void fallback_db(void)
{
	PGconn *c = session("postgres");

	h_is_str(PQstatus(c) == CONNECTION_OK ? h_value(c, "SELECT current_database()") : NULL,
	         "postgres", "the \"*\" entry serves a database not listed by name");
	PQfinish(c);
}

int main(void)
{
	const char *dbs;

	h_init(300);
	h_pg_start();
	dbs = h_fmt("%s%s* = host=127.0.0.1 port=%d\n", h_db_testdb(),
	            h_db_line("one", "testdb", "pool_size=1"), h_pg_port());
	h_lease_config("trust", dbs, "pool_mode = session\nserver_reset_query = DISCARD ALL\n",
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();

	state_within_session();
	reuse_across_sessions();
	parameter_status();
	waits_for_pool();
	startup_parameters();
	big_and_pipelined();
	raw_query_flood();
	unix_socket();
	fallback_db();

	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("end");
	return tap_done();
}
