/*
 * e2e_txn: transaction pooling through pglease (issue 3), with libpq.
 *
 * Plan (points are numbered as they run; the groups are):
 *   modes      pool_mode from [pgbouncer], from a [databases] entry and from a
 *              [users] entry (user beats database beats global), told apart by
 *              behaviour: session mode keeps the server while the client is
 *              connected, transaction/statement modes share it, statement mode
 *              refuses BEGIN.
 *   lease      pool_size=1: an idle client holds no server; an open (or failed)
 *              transaction holds it and a second client waits until COMMIT /
 *              ROLLBACK; a multi-statement BEGIN...COMMIT query releases at its end.
 *   load       40 forked clients x 20 transactions on pool_size=5: every
 *              transaction sees one backend pid throughout, never more than 5
 *              distinct backend pids, no client fails.
 *   params     pool_size=1, two clients alternating: a SET (not SET LOCAL) of
 *              DateStyle, TimeZone, IntervalStyle, standard_conforming_strings,
 *              application_name, client_encoding does not leak to the other
 *              client and is restored for its owner; startup parameters
 *              (application_name, client_encoding) likewise; a parameter named
 *              in track_extra_parameters (default_transaction_read_only) too.
 *   cancel     a cancel reaches the query of the client that sent it, not the
 *              query of another client on the other server, nor a query of
 *              another client that now leases the server the first one used.
 *   reset      session mode runs the configured server_reset_query (DISCARD
 *              TEMP keeps a SET, drops TEMP tables); transaction mode does not
 *              run it unless server_reset_query_always = 1, and then a client's
 *              tracked SET is still restored for it.
 *   check      server_check_query runs on a server idle longer than
 *              server_check_delay, not on one reused at once, on the leased
 *              backend, invisibly to the client; when it fails the server is
 *              closed and the client gets another one without seeing an error.
 *              Meanwhile SHOW POOLS counts it as sv_used and SHOW SERVERS as
 *              "used", and as sv_idle again once checked.
 *   end        pglease alive, exits 0 on SIGTERM without sanitizer reports.
 */
#include "harness.h"
#include "tap.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USERS "[users]\nbob = pool_mode=statement\n"

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const char *userlist(void)
{
	return h_fmt("%s%s%s", h_userlist_line("alice", "alicepw"), h_userlist_line("bob", "bobpw"),
	             h_userlist_line("trustuser", "trustpw"));
}

static const char *databases(void)
{
	return h_fmt("%s%s%s%s%s", h_db_line("testdb", "testdb", "pool_size=5"),
	             h_db_line("one", "testdb", "pool_size=1"),
	             h_db_line("two", "testdb", "pool_size=2"),
	             h_db_line("sess2", "testdb", "pool_size=2 pool_mode=session"),
	             h_db_line("stmt2", "testdb", "pool_size=2 pool_mode=statement"));
}

static void start_lease(const char *extra)
{
	h_lease_restart("trust", databases(),
	                h_fmt("pool_mode = transaction\nmax_client_conn = 200\n"
	                      "query_wait_timeout = 60\n%s\n" USERS,
	                      extra ? extra : ""),
	                userlist());
}

static PGconn *conn_as(const char *db, const char *user, const char *more)
{
	const char *ci = h_lease_conninfo(user, NULL, db);
	PGconn *c;

	if (more)
		ci = h_fmt("%s %s", ci, more);
	c = h_connect(ci);
	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login %s@%s failed: %s", user, db, PQerrorMessage(c));
	return c;
}

static PGconn *conn(const char *db)
{
	return conn_as(db, "alice", NULL);
}

/* Wait (<= 10 s) until a query containing TEXT is active on the server. */
static bool running_on_server(const char *text)
{
	for (int i = 0; i < 100; i++) {
		if (h_pg_active(text) > 0)
			return true;
		h_sleep_ms(100);
	}
	return false;
}

/* ---- pool modes -------------------------------------------------------- */

/* Which pool mode DB/USER behaves like (needs pool_size >= 2 on that entry). */
static const char *behaviour(const char *db, const char *user)
{
	PGconn *a = conn_as(db, user, NULL), *b = conn_as(db, user, NULL);
	const char *pa, *pb, *mode = "?";

	pa = h_value(a, "SELECT pg_backend_pid()");
	pb = h_value(b, "SELECT pg_backend_pid()");
	if (pa == NULL || pb == NULL) {
		mode = "broken";
	} else if (!str_eq(pa, pb)) {
		mode = "session";
	} else {
		PGresult *r = PQexec(b, "BEGIN");

		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			mode = "transaction";
			PQclear(PQexec(b, "ROLLBACK"));
		} else {
			mode = "statement";
		}
		PQclear(r);
	}
	PQfinish(a);
	PQfinish(b);
	return mode;
}

static void pool_modes(void)
{
	h_is_str(behaviour("two", "alice"), "transaction",
	         "modes: global pool_mode = transaction applies to a plain database entry");
	h_is_str(behaviour("sess2", "alice"), "session",
	         "modes: pool_mode=session in a [databases] entry overrides the global mode");
	h_is_str(behaviour("stmt2", "alice"), "statement",
	         "modes: pool_mode=statement in a [databases] entry overrides the global mode");
	h_is_str(behaviour("sess2", "bob"), "statement",
	         "modes: pool_mode in [users] overrides the database entry's pool_mode");
	h_is_str(behaviour("two", "bob"), "statement",
	         "modes: pool_mode in [users] overrides the global pool_mode");
}

/* ---- lease and release ------------------------------------------------- */

static void lease_release(void)
{
	PGconn *a = conn("one"), *b = conn("one");
	const char *pa, *pb, *v;

	pa = h_value(a, "SELECT pg_backend_pid()");
	pb = h_value(b, "SELECT pg_backend_pid()");
	h_ok(pa && str_eq(pa, pb),
	     "lease: pool_size=1, a connected idle client holds no server (same backend %s/%s)",
	     pa ? pa : "?", pb ? pb : "?");

	h_exec(a, "BEGIN");
	h_value(a, "SELECT pg_backend_pid()");
	PQsendQuery(b, "SELECT pg_backend_pid()");
	h_ok(h_still_busy_after(b, 700),
	     "lease: a second client waits while a transaction is open");
	h_exec(a, "COMMIT");
	v = h_async_value(b, 10000);
	h_ok(str_eq(v, pa), "lease: ... and gets the server after COMMIT (%s)", v);

	h_exec(a, "BEGIN");
	PQclear(PQexec(a, "SELECT 1/0"));
	PQsendQuery(b, "SELECT 'after rollback'");
	h_ok(h_still_busy_after(b, 700) && PQtransactionStatus(a) == PQTRANS_INERROR,
	     "lease: a failed transaction (status E) still holds the server");
	h_exec(a, "ROLLBACK");
	h_is_str(h_async_value(b, 10000), "after rollback",
	         "lease: ... the waiting client runs after ROLLBACK");

	h_ok(h_exec(a, "BEGIN; SELECT 1; COMMIT") && str_eq(h_value(b, "SELECT 'free'"), "free"),
	     "lease: a multi-statement BEGIN; ...; COMMIT query releases the server at its end");
	PQfinish(a);
	PQfinish(b);
}

/* ---- 40 clients x 20 transactions on a pool of 5 ---------------------- */

#define LOAD_CLIENTS 40
#define LOAD_TXNS    20

/* One forked client: exit 0 when all its transactions went right. */
static void load_child(int id)
{
	PGconn *c;
	int bad = 0;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	c = PQconnectdb(h_lease_conninfo("alice", NULL, "testdb"));
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "client %d: %s", id, PQerrorMessage(c));
		_exit(2);
	}
	for (int t = 0; t < LOAD_TXNS && bad == 0; t++) {
		char sql[7][160];

		snprintf(sql[0], sizeof(sql[0]), "BEGIN");
		snprintf(sql[1], sizeof(sql[1]),
		         "INSERT INTO txn_log VALUES (%d, %d, 1, pg_backend_pid())", id, t);
		snprintf(sql[2], sizeof(sql[2]), "SELECT pg_sleep(0.002 * %d), %d", t % 3, id);
		snprintf(sql[3], sizeof(sql[3]),
		         "INSERT INTO txn_log VALUES (%d, %d, 2, pg_backend_pid())", id, t);
		snprintf(sql[4], sizeof(sql[4]), "SELECT pg_backend_pid(), %d, %d", id, t);
		snprintf(sql[5], sizeof(sql[5]),
		         "INSERT INTO txn_log VALUES (%d, %d, 3, pg_backend_pid())", id, t);
		snprintf(sql[6], sizeof(sql[6]), "COMMIT");
		for (int s = 0; s < 7 && !bad; s++) {
			PGresult *r = PQexec(c, sql[s]);

			if (PQresultStatus(r) != PGRES_COMMAND_OK &&
			    PQresultStatus(r) != PGRES_TUPLES_OK) {
				fprintf(stderr, "client %d txn %d: %s: %s", id, t, sql[s],
				        PQresultErrorMessage(r));
				bad = 1;
			}
			PQclear(r);
		}
		/* Between transactions the client holds no server: another one runs. */
		if (t % 5 == 4)
			usleep(1000);
	}
	PQfinish(c);
	_exit(bad ? 1 : 0);
}

static void load_40x20(void)
{
	pid_t kids[LOAD_CLIENTS];
	int ok = 0;
	int64_t deadline;
	const char *v;

	h_pg_exec_db("testdb", "CREATE TABLE txn_log (client int, txn int, step int, pid int);"
	                       "GRANT ALL ON txn_log TO alice");
	fflush(stdout);
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			load_child(i);
	}
	deadline = h_now_ms() + 180000;
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		int st = -1;

		while (kids[i] > 0) {
			pid_t r = waitpid(kids[i], &st, WNOHANG);

			if (r == kids[i])
				break;
			if (h_now_ms() > deadline) {
				kill(kids[i], SIGKILL);
				waitpid(kids[i], &st, 0);
				tap_diag("client %d killed after the deadline", i);
				break;
			}
			h_sleep_ms(20);
		}
		if (kids[i] > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		else
			tap_diag("client %d ended with status 0x%x", i, st);
	}
	h_is_int(ok, LOAD_CLIENTS, "load: 40 clients each complete 20 transactions on pool_size=5");
	{
		PGconn *d = h_connect(h_pg_conninfo("alice", "alicepw", "testdb"));

		h_is_str(h_value(d, "SELECT count(*) FROM txn_log"),
		         h_fmt("%d", LOAD_CLIENTS * LOAD_TXNS * 3),
		         "load: every transaction's three rows are committed");
		v = h_value(d, "SELECT count(DISTINCT pid) FROM txn_log");
		h_ok(v != NULL && atoi(v) >= 1 && atoi(v) <= 5,
		     "load: never more than 5 distinct backend pids (saw %s)", v ? v : "?");
		h_is_str(h_value(d, "SELECT count(*) FROM (SELECT client, txn FROM txn_log "
		                    "GROUP BY client, txn HAVING count(DISTINCT pid) > 1) x"),
		         "0", "load: every transaction sees one backend pid throughout");
		PQfinish(d);
	}
}

/* ---- tracked parameters ------------------------------------------------ */

/* SET NAME = VALUE on A; B keeps its own value and A keeps VALUE. */
static void no_leak(PGconn *a, PGconn *b, const char *name, const char *value)
{
	const char *show = h_fmt("SHOW %s", name);
	const char *dflt = h_value(b, show);
	const char *a1, *b1, *a2, *b2;

	h_exec(a, h_fmt("SET %s = '%s'", name, value));
	b1 = h_value(b, show);
	a1 = h_value(a, show);
	b2 = h_value(b, show);
	a2 = h_value(a, show);
	if (!h_ok(dflt && a1 && b1 && str_eq(b1, dflt) && str_eq(b2, dflt) && str_eq(a1, value) &&
	              str_eq(a2, value),
	          "params: SET %s on one client does not leak to the other (pool_size=1)", name))
		tap_diag("default %s, other client saw %s then %s, setter saw %s then %s",
		         dflt ? dflt : "?", b1 ? b1 : "?", b2 ? b2 : "?", a1 ? a1 : "?",
		         a2 ? a2 : "?");
}

static void tracked_params(void)
{
	PGconn *a = conn("one"), *b = conn("one");
	const char *pa = h_value(a, "SELECT pg_backend_pid()");
	const char *pb = h_value(b, "SELECT pg_backend_pid()");

	if (!str_eq(pa, pb))
		tap_diag("params: the two clients do not share one server (%s, %s)", pa, pb);
	h_exec(a, "SET DateStyle = 'SQL, DMY'");
	h_is_str(h_value(b, "SELECT DATE '2024-03-05'::text"), "2024-03-05",
	         "params: a client's SET DateStyle (not LOCAL) does not change another's dates");
	h_is_str(h_value(a, "SELECT DATE '2024-03-05'::text"), "05/03/2024",
	         "params: ... and the setter's next transaction still has its DateStyle");
	h_is_str(PQparameterStatus(b, "DateStyle"), "ISO, MDY",
	         "params: the other client's DateStyle ParameterStatus is unchanged");
	h_is_str(PQparameterStatus(a, "DateStyle"), "SQL, DMY",
	         "params: the setter received the DateStyle ParameterStatus");
	h_exec(a, "BEGIN");
	h_is_str(h_value(a, "SHOW DateStyle"), "SQL, DMY",
	         "params: the first statement of the setter's transaction sees its DateStyle");
	h_exec(a, "COMMIT");
	h_exec(a, "RESET DateStyle");

	no_leak(a, b, "TimeZone", "Asia/Tokyo");
	no_leak(a, b, "IntervalStyle", "sql_standard");
	no_leak(a, b, "standard_conforming_strings", "off");
	no_leak(a, b, "application_name", "setter_app");
	no_leak(a, b, "client_encoding", "LATIN1");
	h_is_str(PQparameterStatus(b, "client_encoding"), "UTF8",
	         "params: the other client still has client_encoding UTF8 (ParameterStatus)");
	PQfinish(a);
	PQfinish(b);

	/* Startup parameters are the client's values too. */
	a = conn_as("one", "alice", "application_name=startup_app client_encoding=LATIN1");
	b = conn_as("one", "alice", "application_name=other_app");
	h_value(b, "SELECT 1");
	h_ok(str_eq(h_value(a, "SHOW application_name"), "startup_app") &&
	         str_eq(h_value(b, "SHOW application_name"), "other_app") &&
	         str_eq(h_value(a, "SHOW application_name"), "startup_app"),
	     "params: application_name from the startup packet follows each client");
	h_ok(str_eq(h_value(a, "SHOW client_encoding"), "LATIN1") &&
	         str_eq(h_value(b, "SHOW client_encoding"), "UTF8"),
	     "params: client_encoding from the startup packet follows each client");
	PQfinish(a);
	PQfinish(b);

	/* track_extra_parameters (restart with the list). */
	start_lease("track_extra_parameters = IntervalStyle, default_transaction_read_only");
	a = conn("one");
	b = conn("one");
	h_value(a, "SELECT 1");
	h_value(b, "SELECT 1");
	no_leak(a, b, "default_transaction_read_only", "on");
	h_is_str(h_exec_sqlstate(b, "CREATE TEMP TABLE rw_check (x int) ON COMMIT DROP"), "",
	         "params: the other client can still write (its transactions are read-write)");
	PQfinish(a);
	PQfinish(b);
}

/* ---- cancel ------------------------------------------------------------ */

static bool send_cancel(PGconn *c)
{
	PGcancel *k = PQgetCancel(c);
	char err[256] = "";
	bool ok = k != NULL && PQcancel(k, err, sizeof(err)) == 1;

	if (!ok)
		tap_diag("PQcancel: %s", err);
	PQfreeCancel(k);
	return ok;
}

static void cancels(void)
{
	PGconn *a = conn("two"), *b = conn("two");
	const char *va, *vb;

	PQsendQuery(a, "SELECT pg_sleep(30), 'cancel_a'");
	running_on_server("cancel_a");
	PQsendQuery(b, "SELECT 'cancel_b' FROM pg_sleep(1.5)");
	running_on_server("cancel_b");
	h_ok(send_cancel(a), "cancel: PQcancel sent for client A while A and B run queries");
	va = h_async_value(a, 10000);
	vb = h_async_value(b, 10000);
	h_is_str(va, "ERR:57014", "cancel: A's query is cancelled");
	h_is_str(vb, "cancel_b", "cancel: B's query on the other server is not cancelled");
	PQfinish(a);
	PQfinish(b);

	/* A used the only server, released it; B now runs on it; A's cancel hits nothing. */
	a = conn("one");
	b = conn("one");
	h_value(a, "SELECT 1");
	PQsendQuery(b, "SELECT 'moved_b' FROM pg_sleep(2)");
	running_on_server("moved_b");
	send_cancel(a);
	h_is_str(h_async_value(b, 10000), "moved_b",
	         "cancel: a cancel from a client holding no server does not cancel the query of "
	         "the client that now leases the server it used");
	PQsendQuery(a, "SELECT pg_sleep(30), 'own_a'");
	running_on_server("own_a");
	send_cancel(a);
	h_is_str(h_async_value(a, 10000), "ERR:57014",
	         "cancel: ... while its own later query is cancelled");
	PQfinish(a);
	PQfinish(b);
}

/* ---- server reset ------------------------------------------------------ */

static void server_resets(void)
{
	PGconn *a, *b;
	const char *p1, *p2, *wm;

	/* Session mode with a custom server_reset_query. */
	h_lease_restart("trust", h_db_line("sess1", "testdb", "pool_size=1"),
	                "pool_mode = session\nserver_reset_query = DISCARD TEMP\n", userlist());
	a = conn("sess1");
	p1 = h_value(a, "SELECT pg_backend_pid()");
	wm = h_value(a, "SHOW work_mem");
	h_exec(a, "CREATE TEMP TABLE reset_tmp (x int)");
	h_exec(a, "SET work_mem = '7MB'");
	PQfinish(a);
	a = conn("sess1");
	p2 = h_value(a, "SELECT pg_backend_pid()");
	h_ok(p1 && str_eq(p1, p2) &&
	         str_eq(h_value(a, "SELECT to_regclass('reset_tmp') IS NULL"), "t") &&
	         str_eq(h_value(a, "SHOW work_mem"), "7MB"),
	     "reset: session mode runs the configured server_reset_query (DISCARD TEMP: TEMP "
	     "table gone, SET kept)");
	PQfinish(a);

	/* Transaction mode: no reset between clients unless server_reset_query_always. */
	start_lease("server_reset_query = DISCARD ALL\nserver_reset_query_always = 0");
	a = conn("one");
	b = conn("one");
	h_exec(a, "SELECT set_config('work_mem', '7MB', false)");
	h_is_str(h_value(b, "SHOW work_mem"), "7MB",
	         "reset: transaction mode does not run server_reset_query between transactions");
	PQfinish(a);
	PQfinish(b);

	start_lease("server_reset_query = DISCARD ALL\nserver_reset_query_always = 1");
	a = conn("one");
	b = conn("one");
	h_exec(a, "SET DateStyle = 'German'");
	h_exec(a, "SELECT set_config('work_mem', '7MB', false)");
	h_is_str(h_value(b, "SHOW work_mem"), wm ? wm : "4MB",
	         "reset: server_reset_query_always = 1 resets the server after each transaction");
	h_is_str(h_value(a, "SHOW DateStyle"), "German, DMY",
	         "reset: ... and the client's tracked DateStyle is restored after the reset");
	PQfinish(a);
	PQfinish(b);
}

/* ---- server_check_query ------------------------------------------------ */

static void server_checks(void)
{
	PGconn *d = h_connect(h_pg_conninfo("alice", "alicepw", "testdb"));
	PGconn *a, *adm;
	const char *n0, *n1, *n2, *p1, *p2;

	h_exec(d, "CREATE TABLE check_log (pid int DEFAULT pg_backend_pid());"
	          "CREATE TABLE check_fail (fail bool);"
	          "CREATE FUNCTION pgl_check() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
	          "INSERT INTO check_log DEFAULT VALUES; "
	          "IF EXISTS (SELECT 1 FROM check_fail WHERE fail) THEN "
	          "RAISE EXCEPTION 'pgl_check: told to fail'; END IF; RETURN 1; END $$");
	start_lease("server_check_query = select pgl_check()\nserver_check_delay = 2\n"
	            "admin_users = alice");
	adm = h_connect(h_lease_conninfo("alice", NULL, "pgbouncer"));
	a = conn("one");
	p1 = h_value(a, "SELECT pg_backend_pid()");
	n0 = h_value(d, "SELECT count(*) FROM check_log");
	h_value(a, "SELECT 2");
	n1 = h_value(d, "SELECT count(*) FROM check_log");
	h_ok(n0 && str_eq(n0, n1),
	     "check: a server reused within server_check_delay is not checked (%s -> %s)", n0, n1);
	h_ok(str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_idle"), "1") &&
	         str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_used"), "0"),
	     "check: SHOW POOLS counts the server just released as sv_idle");
	h_sleep_ms(3500);
	h_ok(str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_idle"), "0") &&
	         str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_used"), "1"),
	     "check: idle past server_check_delay, it counts as sv_used");
	h_is_str(h_cell(adm, "SHOW SERVERS", "database", "one", "state"), "used",
	         "check: SHOW SERVERS shows its state as used");
	h_is_str(h_value(a, "SELECT 'after idle'"), "after idle",
	         "check: the client's query after the idle time gets its own answer");
	h_ok(str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_idle"), "1") &&
	         str_eq(h_cell(adm, "SHOW POOLS", "database", "one", "sv_used"), "0"),
	     "check: checked and used again, it is sv_idle once more");
	n2 = h_value(d, "SELECT count(*) FROM check_log");
	h_ok(n1 && n2 && atoi(n2) == atoi(n1) + 1,
	     "check: server_check_query ran once on the server idle longer than "
	     "server_check_delay (%s -> %s)",
	     n1, n2);
	h_is_str(h_value(d, "SELECT max(pid) FROM check_log"), p1 ? p1 : "?",
	         "check: it ran on the backend that was leased");

	h_exec(d, "INSERT INTO check_fail VALUES (true)");
	h_sleep_ms(3500);
	p2 = h_value(a, "SELECT pg_backend_pid()");
	h_ok(p2 != NULL && p1 != NULL && !str_eq(p1, p2),
	     "check: a failed check closes that server; the client gets a new one without an "
	     "error (%s -> %s)",
	     p1 ? p1 : "?", p2 ? p2 : "(error)");
	{
		const char *gone = NULL;

		for (int i = 0; i < 50; i++) {
			gone = h_pg_value(h_fmt(
			    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", p1 ? p1 : "0"));
			if (str_eq(gone, "0"))
				break;
			h_sleep_ms(100);
		}
		h_is_str(gone, "0", "check: the backend that failed its check is gone");
	}
	h_exec(d, "DELETE FROM check_fail");
	PQfinish(adm);
	PQfinish(a);
	PQfinish(d);
}

/* PGL_ONLY=group,group runs only those groups (for debugging a failure). */
static bool want(const char *group)
{
	const char *only = getenv("PGL_ONLY");

	return only == NULL || *only == '\0' || strstr(only, group) != NULL;
}

int main(void)
{
	h_init(600);
	h_pg_start();
	start_lease(NULL);

	if (want("modes"))
		pool_modes();
	if (want("lease"))
		lease_release();
	if (want("load"))
		load_40x20();
	if (want("params")) {
		tracked_params();
		start_lease(NULL);
	}
	if (want("cancel"))
		cancels();
	if (want("reset"))
		server_resets();
	if (want("check"))
		server_checks();

	h_ok(h_lease_alive(), "end: pglease is alive");
	h_lease_stop_ok("end");
	return tap_done();
}
