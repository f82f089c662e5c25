/*
 * e2e_admin: the admin console, RELOAD, statistics and /metrics.
 *
 * One pglease with admin_users = alice, stats_users = bob, databases
 * sessdb (session, pool_size 2), txdb (transaction, pool_size 1), gonedb,
 * and metrics_listen on a free port.
 *
 *   access      alice runs everything, bob only SHOW, pwuser is refused, the
 *               OS user over the unix socket logs in without a password,
 *               psql -c 'SHOW POOLS' as operators run it
 *   columns     every SHOW command returns the columns listed below, in order
 *               (PgBouncer 1.25's, then pglease's), with PgBouncer's types
 *   probes      SHOW client_encoding / SET ... as drivers send them
 *   control     PAUSE holds queries until RESUME (and waits for a session's
 *               server), SUSPEND, KILL, KILL_CLIENT, DISABLE/ENABLE,
 *               RECONNECT replaces servers, WAIT_CLOSE returns once the old
 *               server is gone, SET
 *   stats       SHOW STATS / STATS_TOTALS / TOTALS count the queries run
 *   metrics     /metrics parses as Prometheus text and agrees with SHOW POOLS
 *   reload      RELOAD with a changed pool_size, an added and a removed
 *               database, a broken file (old config kept, file:line in the
 *               error); SIGHUP
 *   shutdown    SHUTDOWN WAIT_FOR_CLIENTS waits for the last client;
 *               SHUTDOWN exits; SIGINT waits for the servers; SIGQUIT exits
 */
#include "harness.h"
#include "tap.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int metrics_port;

/* ---- small helpers ----------------------------------------------------- */

static PGconn *admin_as(const char *user, const char *pw)
{
	return h_connect(h_lease_conninfo(user, pw, "pgbouncer"));
}

static PGconn *admin(void)
{
	PGconn *c = admin_as("alice", "alicepw");

	if (PQstatus(c) != CONNECTION_OK)
		h_bail("admin login failed: %s", PQerrorMessage(c));
	return c;
}

static PGconn *client_app(const char *db, const char *app)
{
	PGconn *c = h_connect(
	    h_fmt("%s application_name=%s", h_lease_conninfo("alice", "alicepw", db), app));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login to %s failed: %s", db, PQerrorMessage(c));
	return c;
}

static PGconn *client(const char *db)
{
	return client_app(db, "e2e_admin");
}

/* Run SQL on the console; the result (caller clears) or NULL with a diag. */
static PGresult *run(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		tap_diag("%s: %s", sql, PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Column COL of the row whose column KEYCOL equals KEY (and KEYCOL2 KEY2, if given). */
static const char *cell(PGresult *r, const char *keycol, const char *key, const char *keycol2,
                        const char *key2, const char *col)
{
	int k = PQfnumber(r, keycol), k2 = keycol2 ? PQfnumber(r, keycol2) : -1;
	int c = PQfnumber(r, col), i;

	if (r == NULL || k < 0 || c < 0)
		return NULL;
	for (i = 0; i < PQntuples(r); i++) {
		if (strcmp(PQgetvalue(r, i, k), key) != 0)
			continue;
		if (k2 >= 0 && strcmp(PQgetvalue(r, i, k2), key2) != 0)
			continue;
		return h_fmt("%s", PQgetvalue(r, i, c));
	}
	return NULL;
}

/* One cell of SHOW WHAT on a fresh console query (harness-owned string or NULL). */
static const char *show_cell(PGconn *a, const char *what, const char *keycol, const char *key,
                             const char *keycol2, const char *key2, const char *col)
{
	PGresult *r = run(a, h_fmt("SHOW %s", what));
	const char *v = r ? cell(r, keycol, key, keycol2, key2, col) : NULL;

	PQclear(r);
	return v;
}

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* True when CONN's connection is broken (a query fails with a closed connection). */
static bool conn_dead(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT 1");
	bool dead = PQresultStatus(r) != PGRES_TUPLES_OK;

	PQclear(r);
	return dead;
}

/* The current config file with the [databases] body replaced by DBS and EXTRA appended. */
static void write_config(const char *dbs, const char *extra)
{
	FILE *f = fopen(h_lease_config_path(), "r");
	static char buf[65536];
	size_t n;
	char *a, *b;
	const char *rest;

	if (f == NULL)
		h_bail("cannot read %s", h_lease_config_path());
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	a = strstr(buf, "[databases]\n");
	b = strstr(buf, "[pgbouncer]\n");
	if (a == NULL || b == NULL)
		h_bail("unexpected config layout");
	*a = '\0';
	rest = h_fmt("%s", b);
	f = fopen(h_lease_config_path(), "w");
	if (f == NULL)
		h_bail("cannot write %s", h_lease_config_path());
	fprintf(f, "%s[databases]\n%s\n%s%s\n", buf, dbs, rest, extra ? extra : "");
	fclose(f);
}

static const char *db_lines(const char *txdb_extra, bool gonedb, bool newdb)
{
	return h_fmt("%s\n%s\n%s%s%s", h_db_line("sessdb", "testdb", "pool_size=2"),
	             h_db_line("txdb", "testdb", h_fmt("pool_mode=transaction %s", txdb_extra)),
	             gonedb ? h_db_line("gonedb", "testdb", "") : "", gonedb ? "\n" : "",
	             newdb ? h_db_line("newdb", "postgres", "") : "");
}

/* ---- access -------------------------------------------------------------- */

static void test_access(void)
{
	PGconn *a = admin_as("alice", "alicepw");
	PGconn *b = admin_as("bob", "bobpw");
	PGconn *p = admin_as("pwuser", "pwpw");
	PGconn *w = admin_as("alice", "wrong");
	PGconn *alias = h_connect(h_lease_conninfo("alice", "alicepw", "pglease"));
	PGconn *u = h_connect(h_lease_conninfo_unix("root", NULL, "pgbouncer"));
	const char *out = h_fmt("%s/psql.out", h_tmpdir());
	const char *env[] = {"PGPASSWORD=alicepw", NULL};
	const char *argv[] = {h_fmt("%s/psql", h_pg_bindir()),
	                      "-h",
	                      "127.0.0.1",
	                      "-p",
	                      h_fmt("%d", h_lease_port()),
	                      "-U",
	                      "alice",
	                      "-X",
	                      "-c",
	                      "SHOW POOLS",
	                      "pgbouncer",
	                      NULL};
	char buf[4096] = "";
	FILE *f;

	h_ok(PQstatus(a) == CONNECTION_OK, "admin_users: alice logs in to the console");
	h_ok(PQstatus(alias) == CONNECTION_OK, "the console is also reachable as \"pglease\"");
	h_ok(PQstatus(b) == CONNECTION_OK, "stats_users: bob logs in to the console");
	h_ok(PQstatus(p) != CONNECTION_OK && str_eq(h_conn_sqlstate(p), "28000"),
	     "a user in neither list is refused with 28000 (%s)", h_conn_sqlstate(p));
	h_ok(PQstatus(w) != CONNECTION_OK, "admin login with a wrong password fails");
	h_ok(PQstatus(u) == CONNECTION_OK && h_exec_sqlstate(u, "RECONNECT sessdb")[0] == '\0',
	     "the OS user over the unix socket logs in without a password, as admin");
	h_is_str(h_exec_sqlstate(b, "PAUSE"), "42501", "stats user: PAUSE refused (42501)");
	h_is_str(h_exec_sqlstate(b, "SET default_pool_size = 3"), "42501",
	         "stats user: SET of a setting refused (42501)");
	h_ok(h_exec(b, "SHOW POOLS") && h_exec(b, "SHOW STATS"), "stats user: SHOW works");
	h_is_str(h_exec_sqlstate(a, "FROB"), "42601", "unknown command: syntax error 42601");
	h_is_str(h_exec_sqlstate(a, "SHOW nonsense"), "42601", "unknown SHOW: 42601");
	if (h_ok(h_run(argv, env, out, 20000) == 0, "psql -c 'SHOW POOLS' exits 0")) {
		f = fopen(out, "r");
		if (f != NULL) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);

			buf[n] = '\0';
			fclose(f);
		}
	}
	h_ok(strstr(buf, "cl_active") != NULL && strstr(buf, "maxwait_us") != NULL,
	     "psql prints the SHOW POOLS header");
	PQfinish(a);
	PQfinish(b);
	PQfinish(p);
	PQfinish(w);
	PQfinish(alias);
	PQfinish(u);
}

/* ---- columns --------------------------------------------------------------- */

struct show_spec {
	const char *cmd;
	const char *cols; /* space separated, in order */
};

#define SOCKET_COLS                                                                                \
	"type user database replication state addr port local_addr local_port connect_time "       \
	"request_time wait wait_us close_needed ptr link remote_pid tls application_name "         \
	"prepared_statements id"

static const struct show_spec specs[] = {
    {"POOLS", "database user cl_active cl_waiting cl_active_cancel_req cl_waiting_cancel_req "
              "sv_active sv_active_cancel sv_being_canceled sv_idle sv_used sv_tested sv_login "
              "maxwait maxwait_us pool_mode load_balance_hosts "
              "pool_size max_overflow sv_overflow paused"},
    {"STATS", "database total_server_assignment_count total_xact_count total_query_count "
              "total_received total_sent total_xact_time total_query_time total_wait_time "
              "total_client_parse_count total_server_parse_count total_bind_count "
              "avg_server_assignment_count avg_xact_count avg_query_count avg_recv avg_sent "
              "avg_xact_time avg_query_time avg_wait_time avg_client_parse_count "
              "avg_server_parse_count avg_bind_count "
              "total_client_connect_count avg_client_connect_count"},
    {"STATS_TOTALS", "database server_assignment_count xact_count query_count bytes_received "
                     "bytes_sent xact_time query_time wait_time client_parse_count "
                     "server_parse_count bind_count client_connect_count"},
    {"STATS_AVERAGES", "database server_assignment_count xact_count query_count bytes_received "
                       "bytes_sent xact_time query_time wait_time client_parse_count "
                       "server_parse_count bind_count client_connect_count"},
    {"TOTALS", "name value"},
    {"CLIENTS", SOCKET_COLS},
    {"SERVERS", SOCKET_COLS},
    {"SOCKETS", SOCKET_COLS " recv_pos pkt_pos pkt_remain send_pos send_remain pkt_avail "
                            "send_avail"},
    {"DATABASES", "name host port database force_user pool_size min_pool_size "
                  "reserve_pool_size server_lifetime pool_mode load_balance_hosts "
                  "max_connections current_connections max_client_connections "
                  "current_client_connections paused disabled max_overflow "
                  "overflow_connections"},
    {"USERS", "name pool_size reserve_pool_size pool_mode max_user_connections "
              "current_connections max_user_client_connections current_client_connections"},
    {"PEERS", "peer_id host port pool_size"},
    {"CONFIG", "key value default changeable"},
    {"MEM", "name size used free memtotal"},
    {"LISTS", "list items"},
    {"VERSION", "version"},
    {"STATE", "key value"},
    {"DNS_HOSTS", "hostname ttl addrs"},
    {"DNS_ZONES", "zonename serial count"},
};

/* PgBouncer's type of a column: int4 for counts, numeric for statistics, text else. */
static unsigned want_type(const char *cmd, const char *col)
{
	static const char *const int4[] = {"cl_active", "cl_waiting", "sv_active",
	                                   "sv_idle",   "sv_used",    "sv_tested",
	                                   "sv_login",  "maxwait",    "maxwait_us",
	                                   "port",      "wait",       "wait_us",
	                                   "id",        "items",      "paused",
	                                   "disabled",  "pool_size",  "current_connections"};
	size_t i;

	if (strncmp(cmd, "STATS", 5) == 0 && strcmp(col, "database") != 0)
		return 1700;
	if (strcmp(cmd, "TOTALS") == 0 && strcmp(col, "value") == 0)
		return 1700;
	if (strcmp(cmd, "USERS") == 0 && strcmp(col, "pool_size") == 0)
		return 25;
	if ((strcmp(col, "ttl") == 0 || strcmp(col, "serial") == 0))
		return 20;
	for (i = 0; i < sizeof(int4) / sizeof(int4[0]); i++)
		if (strcmp(col, int4[i]) == 0)
			return 23;
	if (strcmp(col, "user") == 0 || strcmp(col, "database") == 0 || strcmp(col, "name") == 0 ||
	    strcmp(col, "pool_mode") == 0 || strcmp(col, "addr") == 0 ||
	    strcmp(col, "version") == 0 || strcmp(col, "key") == 0)
		return 25;
	return 0; /* not checked */
}

static void test_columns(void)
{
	PGconn *a = admin();
	PGconn *c = client("sessdb");
	size_t i;

	h_exec(c, "SELECT 1");
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		PGresult *r = run(a, h_fmt("SHOW %s", specs[i].cmd));
		char got[2048] = "", badtype[256] = "";
		int j;

		for (j = 0; r != NULL && j < PQnfields(r); j++) {
			unsigned t = want_type(specs[i].cmd, PQfname(r, j));

			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", j ? " " : "",
			         PQfname(r, j));
			if (t != 0 && PQftype(r, j) != t && badtype[0] == '\0')
				snprintf(badtype, sizeof(badtype), "%s is type %u, want %u",
				         PQfname(r, j), PQftype(r, j), t);
		}
		h_is_str(got, specs[i].cols, h_fmt("SHOW %s: columns in order", specs[i].cmd));
		if (badtype[0] != '\0')
			h_ok(false, "SHOW %s: column types (%s)", specs[i].cmd, badtype);
		PQclear(r);
	}
	h_ok(str_eq(show_cell(a, "POOLS", "database", "sessdb", "user", "alice", "cl_active"), "1"),
	     "SHOW POOLS: sessdb/alice has our client active");
	h_ok(str_eq(show_cell(a, "CLIENTS", "database", "sessdb", NULL, NULL, "application_name"),
	            "e2e_admin"),
	     "SHOW CLIENTS: our client with its application_name");
	h_ok(str_eq(show_cell(a, "SERVERS", "database", "sessdb", NULL, NULL, "state"), "active"),
	     "SHOW SERVERS: the session's server is active");
	h_ok(str_eq(show_cell(a, "CONFIG", "key", "default_pool_size", NULL, NULL, "changeable"),
	            "yes") &&
	         str_eq(show_cell(a, "CONFIG", "key", "listen_port", NULL, NULL, "changeable"),
	                "no"),
	     "SHOW CONFIG: changeable yes/no");
	h_ok(str_eq(show_cell(a, "DATABASES", "name", "txdb", NULL, NULL, "pool_mode"),
	            "transaction") &&
	         str_eq(show_cell(a, "DATABASES", "name", "sessdb", NULL, NULL, "pool_size"), "2"),
	     "SHOW DATABASES: per-database pool_mode and pool_size");
	h_ok(str_eq(show_cell(a, "STATE", "key", "active", NULL, NULL, "value"), "yes"),
	     "SHOW STATE: active");
	h_ok(strstr(h_value(a, "SHOW VERSION") ? h_value(a, "SHOW VERSION") : "", "pglease") !=
	         NULL,
	     "SHOW VERSION names pglease");
	h_ok(h_exec(a, "SHOW HELP;"), "SHOW HELP (a notice) with a trailing ';'");
	PQfinish(c);
	PQfinish(a);
}

static void test_probes(void)
{
	PGconn *a = admin();
	PGresult *r;

	h_is_str(h_value(a, "SHOW client_encoding"), "UTF8", "driver probe: SHOW client_encoding");
	h_is_str(h_value(a, "show standard_conforming_strings"), "on",
	         "driver probe: SHOW standard_conforming_strings");
	h_ok(h_exec(a, "SET client_encoding = 'UTF8'") && h_exec(a, "SET DateStyle TO ISO"),
	     "driver probe: SET of session settings answers SET");
	h_ok(h_exec(a, "BEGIN") && h_exec(a, "COMMIT"), "BEGIN/COMMIT are answered");
	r = PQexecParams(a, "SHOW POOLS", 0, NULL, NULL, NULL, NULL, 0);
	h_ok(PQresultStatus(r) == PGRES_FATAL_ERROR, "the extended protocol gets an error");
	PQclear(r);
	h_ok(h_exec(a, "SHOW STATE"), "the console still answers after that");
	PQfinish(a);
}

/* ---- control -------------------------------------------------------------- */

/* Send SQL without waiting; false and a diag when it could not be sent. */
static bool send_q(PGconn *c, const char *sql)
{
	if (PQsendQuery(c, sql))
		return true;
	tap_diag("send %s: %s", sql, PQerrorMessage(c));
	return false;
}

/* True when the query sent on C is still running after MS milliseconds. */
static bool still_running(PGconn *c, int ms)
{
	PGresult *r = h_wait_result(c, ms);

	if (r == NULL)
		return true;
	PQclear(r);
	return false;
}

/* Wait for the sent query; true when it succeeded. */
static bool finished_ok(PGconn *c, int ms)
{
	PGresult *r = h_wait_result(c, ms);
	bool ok = r != NULL &&
	          (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK);

	if (r != NULL && !ok)
		tap_diag("%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static void test_pause(void)
{
	PGconn *a = admin(), *a2 = admin();
	PGconn *t = client("txdb"), *s = client("sessdb");

	h_exec(t, "SELECT 1");
	h_exec(s, "SELECT 1");
	h_ok(h_exec(a, "PAUSE txdb"), "PAUSE txdb returns (transaction pool: idle servers close)");
	h_is_str(show_cell(a, "DATABASES", "name", "txdb", NULL, NULL, "paused"), "1",
	         "SHOW DATABASES: txdb paused");
	h_is_str(show_cell(a, "POOLS", "database", "txdb", "user", "alice", "sv_idle"), "0",
	         "PAUSE closed txdb's idle server");
	if (send_q(t, "SELECT 42"))
		h_ok(still_running(t, 500), "a query to the paused database waits");
	h_ok(h_value(s, "SELECT 7") != NULL, "other databases keep working");
	h_ok(h_exec(a, "RESUME txdb"), "RESUME txdb");
	h_ok(finished_ok(t, 5000), "the held query runs after RESUME");

	/* a session holds its server: PAUSE answers once the session ends */
	if (send_q(a2, "PAUSE sessdb")) {
		h_ok(still_running(a2, 500), "PAUSE sessdb waits while a session holds a server");
		PQfinish(s);
		s = NULL;
		h_ok(finished_ok(a2, 5000), "PAUSE sessdb returns once the session ends");
	}
	h_is_str(h_exec_sqlstate(a, "PAUSE sessdb"), "55000", "PAUSE twice: already paused");
	h_ok(h_exec(a, "RESUME sessdb"), "RESUME sessdb");
	h_is_str(h_exec_sqlstate(a, "RESUME sessdb"), "55000", "RESUME when not paused: 55000");
	h_is_str(h_exec_sqlstate(a, "PAUSE nosuchdb"), "3D000", "PAUSE of an unknown database");

	h_ok(h_exec(a, "PAUSE"), "PAUSE (every database)");
	h_is_str(show_cell(a, "STATE", "key", "paused", NULL, NULL, "value"), "yes",
	         "SHOW STATE: paused yes");
	if (send_q(t, "SELECT 43"))
		h_ok(still_running(t, 400), "a query waits during a global PAUSE");
	h_ok(h_exec(a, "RESUME"), "RESUME (every database)");
	h_ok(finished_ok(t, 5000), "the query runs after RESUME");

	/* SIGUSR1 / SIGUSR2 */
	kill(h_lease_pid(), SIGUSR1);
	h_sleep_ms(200);
	h_is_str(show_cell(a, "STATE", "key", "paused", NULL, NULL, "value"), "yes",
	         "SIGUSR1 pauses");
	kill(h_lease_pid(), SIGUSR2);
	h_sleep_ms(200);
	h_is_str(show_cell(a, "STATE", "key", "paused", NULL, NULL, "value"), "no",
	         "SIGUSR2 resumes");

	h_ok(h_exec(a, "SUSPEND"), "SUSPEND returns once buffers are flushed");
	h_is_str(show_cell(a, "STATE", "key", "suspended", NULL, NULL, "value"), "yes",
	         "SHOW STATE: suspended yes");
	if (send_q(t, "SELECT 44"))
		h_ok(still_running(t, 400), "a query waits while suspended");
	h_ok(h_exec(a, "RESUME"), "RESUME after SUSPEND");
	h_ok(finished_ok(t, 5000), "the query runs after RESUME");
	PQfinish(t);
	PQfinish(s);
	PQfinish(a2);
	PQfinish(a);
}

static void test_kill(void)
{
	PGconn *a = admin();
	PGconn *c1 = client("sessdb"), *c2 = client("txdb");
	PGconn *v = client_app("txdb", "victim");
	PGconn *late;
	const char *id;

	h_exec(c1, "SELECT 1");
	h_exec(c2, "SELECT 1");
	h_exec(v, "SELECT 1");
	id = show_cell(a, "CLIENTS", "application_name", "victim", NULL, NULL, "id");
	h_ok(id != NULL && h_exec(a, h_fmt("KILL_CLIENT %s", id)), "KILL_CLIENT %s", id ? id : "?");
	h_ok(conn_dead(v), "the killed client's connection is gone");
	h_ok(!conn_dead(c2), "other clients of the database stay");
	h_is_str(h_exec_sqlstate(a, "KILL_CLIENT 999999"), "42704", "KILL_CLIENT of no client");

	h_ok(h_exec(a, "KILL sessdb"), "KILL sessdb");
	h_ok(conn_dead(c1), "KILL dropped the sessdb client");
	h_is_str(show_cell(a, "POOLS", "database", "sessdb", "user", "alice", "sv_active"), "0",
	         "KILL closed sessdb's servers");
	late = h_connect(h_lease_conninfo("alice", "alicepw", "sessdb"));
	if (PQstatus(late) == CONNECTION_OK && send_q(late, "SELECT 5"))
		h_ok(still_running(late, 400), "after KILL a new client's query waits (paused)");
	else
		h_ok(PQstatus(late) != CONNECTION_OK,
		     "after KILL a new client waits or is refused");
	h_ok(h_exec(a, "RESUME sessdb"), "RESUME after KILL");
	if (PQstatus(late) == CONNECTION_OK)
		h_ok(finished_ok(late, 5000), "the waiting client runs after RESUME");
	PQfinish(late);

	h_ok(h_exec(a, "DISABLE txdb"), "DISABLE txdb");
	late = h_connect(h_lease_conninfo("alice", "alicepw", "txdb"));
	h_ok(PQstatus(late) != CONNECTION_OK && str_eq(h_conn_sqlstate(late), "57P03"),
	     "a new client of a disabled database is refused (57P03, got %s)",
	     h_conn_sqlstate(late));
	PQfinish(late);
	h_ok(!conn_dead(c2), "existing clients of the disabled database keep working");
	h_is_str(show_cell(a, "DATABASES", "name", "txdb", NULL, NULL, "disabled"), "1",
	         "SHOW DATABASES: disabled 1");
	h_ok(h_exec(a, "ENABLE txdb"), "ENABLE txdb");
	h_ok(h_can_query(h_lease_conninfo("alice", "alicepw", "txdb")),
	     "new clients are accepted again after ENABLE");
	h_is_str(h_exec_sqlstate(a, "DISABLE"), "42601", "DISABLE needs a database");
	PQfinish(c1);
	PQfinish(c2);
	PQfinish(v);
	PQfinish(a);
}

static void test_reconnect(void)
{
	PGconn *a = admin(), *a2 = admin();
	PGconn *t = client("txdb"), *s = client("sessdb");
	const char *pid1, *pid2, *spid;

	pid1 = h_value(t, "SELECT pg_backend_pid()");
	h_ok(h_exec(a, "RECONNECT txdb"), "RECONNECT txdb");
	pid2 = h_value(t, "SELECT pg_backend_pid()");
	h_ok(pid1 != NULL && pid2 != NULL && !str_eq(pid1, pid2),
	     "after RECONNECT the transaction pool uses a new server (%s -> %s)", pid1 ? pid1 : "?",
	     pid2 ? pid2 : "?");

	spid = h_value(s, "SELECT pg_backend_pid()");
	h_ok(h_exec(a, "RECONNECT sessdb"), "RECONNECT sessdb");
	h_is_str(show_cell(a, "SERVERS", "database", "sessdb", NULL, NULL, "close_needed"), "1",
	         "SHOW SERVERS: the session's server has close_needed 1");
	h_is_str(h_value(s, "SELECT pg_backend_pid()"), spid ? spid : "?",
	         "the session keeps its server until it ends");
	if (send_q(a2, "WAIT_CLOSE sessdb")) {
		h_ok(still_running(a2, 400), "WAIT_CLOSE waits while the old server is in use");
		PQfinish(s);
		s = NULL;
		h_ok(finished_ok(a2, 5000), "WAIT_CLOSE returns once the old server is gone");
	}
	h_ok(show_cell(a, "SERVERS", "database", "sessdb", NULL, NULL, "close_needed") == NULL,
	     "no sessdb server left with close_needed");
	h_ok(h_exec(a, "WAIT_CLOSE"), "WAIT_CLOSE with nothing stale returns at once");
	PQfinish(t);
	PQfinish(s);
	PQfinish(a2);
	PQfinish(a);
}

static void test_set(void)
{
	PGconn *a = admin();

	h_ok(h_exec(a, "SET server_idle_timeout = 500"), "SET server_idle_timeout = 500");
	h_is_str(show_cell(a, "CONFIG", "key", "server_idle_timeout", NULL, NULL, "value"), "500",
	         "SHOW CONFIG shows the SET value");
	h_ok(h_exec(a, "SET log_connections = '0'") && h_exec(a, "SET log_connections TO 1"),
	     "SET with a quoted value and with TO");
	h_is_str(h_exec_sqlstate(a, "SET listen_port = 1"), "55P02",
	         "SET of a restart-only key is refused");
	h_is_str(h_exec_sqlstate(a, "SET no_such_key = 1"), "42704", "SET of an unknown key");
	h_is_str(h_exec_sqlstate(a, "SET default_pool_size = many"), "22023",
	         "SET with an invalid value");
	h_is_str(show_cell(a, "CONFIG", "key", "server_idle_timeout", NULL, NULL, "value"), "500",
	         "a failed SET changes nothing");
	PQfinish(a);
}

/* ---- statistics --------------------------------------------------------------- */

static long long num(const char *s)
{
	return s != NULL ? atoll(s) : -1;
}

static void test_stats(void)
{
	PGconn *a = admin();
	PGconn *t = client("txdb");
	long long q0 =
	    num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_query_count"));
	long long x0 =
	    num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_xact_count"));
	long long q1, x1;
	int i;

	for (i = 0; i < 10; i++)
		h_exec(t, "SELECT 1");
	h_exec(t, "BEGIN");
	h_exec(t, "SELECT 1");
	h_exec(t, "COMMIT");
	q1 = num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_query_count"));
	x1 = num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_xact_count"));
	h_ok(q0 >= 0 && q1 - q0 == 13, "SHOW STATS: 13 more queries (%lld -> %lld)", q0, q1);
	h_ok(x0 >= 0 && x1 - x0 == 11, "SHOW STATS: 11 more transactions (%lld -> %lld)", x0, x1);
	h_ok(num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_received")) > 0 &&
	         num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_sent")) > 0,
	     "SHOW STATS: bytes received and sent");
	h_is_str(show_cell(a, "STATS_TOTALS", "database", "txdb", NULL, NULL, "query_count"),
	         h_fmt("%lld", q1), "SHOW STATS_TOTALS agrees with SHOW STATS");
	h_ok(num(show_cell(a, "TOTALS", "name", "total_query_count", NULL, NULL, "value")) >= q1,
	     "SHOW TOTALS: total_query_count covers txdb's");
	h_ok(num(show_cell(a, "STATS", "database", "txdb", NULL, NULL, "avg_query_count")) >= 0,
	     "SHOW STATS: averages present");
	PQfinish(t);
	PQfinish(a);
}

/* ---- metrics -------------------------------------------------------------- */

struct sample {
	char name[128];
	char labels[256]; /* as written between the braces, le="..." included */
	double value;
};

static struct sample samples[4096];
static size_t n_samples;

static bool valid_name(const char *s, size_t n, bool label)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = isalpha((unsigned char)ch) || ch == '_' || (!label && ch == ':') ||
		          (i > 0 && isdigit((unsigned char)ch));

		if (!ok)
			return false;
	}
	return true;
}

/* Family a sample belongs to (histogram suffixes stripped when TYPE says so). */
static const char *family_of(const char *name, char types[][2][128], size_t n_types)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	static char fam[128];
	size_t i, j;

	for (i = 0; i < n_types; i++)
		if (strcmp(types[i][0], name) == 0)
			return name;
	for (j = 0; j < 3; j++) {
		size_t nl = strlen(name), sl = strlen(sfx[j]);

		if (nl > sl && strcmp(name + nl - sl, sfx[j]) == 0) {
			snprintf(fam, sizeof(fam), "%.*s", (int)(nl - sl), name);
			for (i = 0; i < n_types; i++)
				if (strcmp(types[i][0], fam) == 0 &&
				    (strcmp(types[i][1], "histogram") == 0 ||
				     strcmp(types[i][1], "summary") == 0))
					return fam;
		}
	}
	return NULL;
}

/* A diag; false (for "return fail_diag(...)"). */
static bool fail_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool fail_diag(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tap_diag("%s", msg);
	return false;
}

/* Parse Prometheus text format 0.0.4; false with a diag at the first problem. */
static bool parse_metrics(char *text)
{
	static char types[512][2][128];
	size_t n_types = 0;
	char last_family[128] = "";
	char *line, *save = NULL;
	int lineno = 0;

	n_samples = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct sample *s;
		char *p = line, *end;
		const char *fam;
		size_t nl;

		lineno++;
		if (line[0] == '#') {
			char kw[16], name[128], rest[64];

			if (sscanf(line, "# %15s %127s %63s", kw, name, rest) >= 2 &&
			    strcmp(kw, "TYPE") == 0) {
				size_t i;

				if (strcmp(rest, "counter") && strcmp(rest, "gauge") &&
				    strcmp(rest, "histogram") && strcmp(rest, "summary") &&
				    strcmp(rest, "untyped"))
					return fail_diag("line %d: bad TYPE %s", lineno, rest);
				for (i = 0; i < n_types; i++)
					if (strcmp(types[i][0], name) == 0)
						return fail_diag("line %d: second TYPE for %s",
						                 lineno, name);
				if (n_types == 512)
					return false;
				snprintf(types[n_types][0], 128, "%s", name);
				snprintf(types[n_types][1], 128, "%s", rest);
				n_types++;
			}
			continue;
		}
		if (n_samples == sizeof(samples) / sizeof(samples[0]))
			return fail_diag("too many samples");
		s = &samples[n_samples];
		nl = strcspn(p, "{ ");
		if (!valid_name(p, nl, false) || nl >= sizeof(s->name))
			return fail_diag("line %d: bad metric name: %s", lineno, line);
		snprintf(s->name, sizeof(s->name), "%.*s", (int)nl, p);
		p += nl;
		s->labels[0] = '\0';
		if (*p == '{') {
			char *start = ++p;

			for (;;) {
				size_t ln = strcspn(p, "=");

				if (!valid_name(p, ln, true) || p[ln] != '=' || p[ln + 1] != '"')
					return fail_diag("line %d: bad label: %s", lineno, line);
				p += ln + 2;
				while (*p && *p != '"') {
					if (*p == '\\') {
						if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
							return fail_diag("line %d: bad escape",
							                 lineno);
						p++;
					}
					p++;
				}
				if (*p != '"')
					return fail_diag("line %d: unterminated label", lineno);
				p++;
				if (*p == ',') {
					p++;
					continue;
				}
				if (*p == '}')
					break;
				return fail_diag("line %d: bad label list", lineno);
			}
			snprintf(s->labels, sizeof(s->labels), "%.*s", (int)(p - start), start);
			p++;
		}
		if (*p != ' ')
			return fail_diag("line %d: no value: %s", lineno, line);
		p++;
		if (strncmp(p, "+Inf", 4) == 0 || strncmp(p, "-Inf", 4) == 0 ||
		    strncmp(p, "NaN", 3) == 0) {
			s->value = strncmp(p, "NaN", 3) == 0 ? NAN
			           : p[0] == '+'             ? INFINITY
			                                     : -INFINITY;
			end = p + (p[0] == 'N' ? 3 : 4);
		} else {
			s->value = strtod(p, &end);
			if (end == p)
				return fail_diag("line %d: bad value: %s", lineno, line);
		}
		if (*end == ' ') {
			strtoll(end + 1, &p, 10);
			end = p;
		}
		if (*end != '\0')
			return fail_diag("line %d: trailing text: %s", lineno, line);
		fam = family_of(s->name, types, n_types);
		if (fam == NULL)
			return fail_diag("line %d: %s has no TYPE before it", lineno, s->name);
		if (strcmp(fam, last_family) != 0) {
			char this_family[128];
			size_t i;

			snprintf(this_family, sizeof(this_family), "%s", fam);
			for (i = 0; i < n_samples; i++) {
				const char *f2 = family_of(samples[i].name, types, n_types);

				if (f2 != NULL && strcmp(f2, this_family) == 0)
					return fail_diag("line %d: family %s is split", lineno,
					                 this_family);
			}
			snprintf(last_family, sizeof(last_family), "%s", this_family);
		}
		n_samples++;
	}
	return n_samples > 0;
}

static const struct sample *find_sample(const char *name, const char *labels)
{
	size_t i;

	for (i = 0; i < n_samples; i++)
		if (strcmp(samples[i].name, name) == 0 && strcmp(samples[i].labels, labels) == 0)
			return &samples[i];
	return NULL;
}

/* Every histogram series: buckets rise with le, +Inf bucket = _count. */
static bool histograms_ok(const char *name, const char *pool_labels)
{
	char bucket[160], count[160];
	double prev_le = -1, prev = 0, inf = -1;
	const struct sample *c;
	size_t i, n = 0;
	size_t pl = strlen(pool_labels);

	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	snprintf(count, sizeof(count), "%s_count", name);
	for (i = 0; i < n_samples; i++) {
		const struct sample *s = &samples[i];
		const char *le;

		if (strcmp(s->name, bucket) != 0 || strncmp(s->labels, pool_labels, pl) != 0)
			continue;
		le = strstr(s->labels, "le=\"");
		if (le == NULL)
			return fail_diag("%s without le", bucket);
		if (strncmp(le + 4, "+Inf", 4) == 0) {
			inf = s->value;
		} else {
			double v = strtod(le + 4, NULL);

			if (v <= prev_le)
				return fail_diag("%s: le not increasing", bucket);
			prev_le = v;
		}
		if (s->value < prev)
			return fail_diag("%s: buckets not cumulative", bucket);
		prev = s->value;
		n++;
	}
	c = find_sample(count, pool_labels);
	if (n < 2 || inf < 0 || c == NULL || c->value != inf)
		return fail_diag("%s{%s}: %zu buckets, +Inf %g, count %g", name, pool_labels, n,
		                 inf, c ? c->value : -1);
	return true;
}

/* GET PATH from the metrics port; the body (harness-owned) and *STATUS. */
static char *http_get(const char *path, int *status, char *ctype, size_t ctlen)
{
	int fd = h_raw_connect(metrics_port);
	static char resp[1 << 20];
	size_t n = 0;
	char *body, *ct;

	*status = 0;
	ctype[0] = '\0';
	if (fd == -1)
		return NULL;
	h_raw_send(fd, h_fmt("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path),
	           strlen(h_fmt("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path)));
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0 || n + 1 >= sizeof(resp))
			break;
		r = read(fd, resp + n, sizeof(resp) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	resp[n] = '\0';
	sscanf(resp, "HTTP/1.%*d %d", status);
	ct = strcasestr(resp, "\r\nContent-Type: ");
	if (ct != NULL)
		snprintf(ctype, ctlen, "%.*s", (int)strcspn(ct + 16, "\r"), ct + 16);
	body = strstr(resp, "\r\n\r\n");
	return body ? body + 4 : NULL;
}

static void test_metrics(void)
{
	PGconn *a = admin();
	PGconn *t = client("txdb"), *s = client("sessdb");
	const char *labels = "database=\"txdb\",user=\"alice\"";
	const char *slabels = "database=\"sessdb\",user=\"alice\"";
	static const struct {
		const char *metric, *column;
	} pairs[] = {
	    {"pglease_pools_client_active_connections", "cl_active"},
	    {"pglease_pools_client_waiting_connections", "cl_waiting"},
	    {"pglease_pools_server_active_connections", "sv_active"},
	    {"pglease_pools_server_idle_connections", "sv_idle"},
	    {"pglease_pools_server_used_connections", "sv_used"},
	    {"pglease_pools_server_testing_connections", "sv_tested"},
	    {"pglease_pools_server_login_connections", "sv_login"},
	};
	char ctype[128];
	char *body;
	int status;
	size_t i;
	PGresult *pools;
	bool agree = true;

	h_exec(t, "SELECT 1");
	h_exec(s, "SELECT 1");
	h_sleep_ms(100);
	body = http_get("/metrics", &status, ctype, sizeof(ctype));
	pools = run(a, "SHOW POOLS");
	h_is_int(status, 200, "GET /metrics: 200");
	h_ok(strncmp(ctype, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s", ctype);
	if (!h_ok(body != NULL && parse_metrics(body),
	          "/metrics parses as Prometheus text format")) {
		PQclear(pools);
		PQfinish(t);
		PQfinish(s);
		PQfinish(a);
		return;
	}
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const char *pools_labels[2] = {labels, slabels};
		const char *dbs[2] = {"txdb", "sessdb"};
		int k;

		for (k = 0; k < 2; k++) {
			const struct sample *m = find_sample(pairs[i].metric, pools_labels[k]);
			const char *v =
			    cell(pools, "database", dbs[k], "user", "alice", pairs[i].column);

			if (m == NULL || v == NULL || m->value != atof(v)) {
				tap_diag("%s{%s} = %g, SHOW POOLS %s = %s", pairs[i].metric,
				         pools_labels[k], m ? m->value : -1, pairs[i].column,
				         v ? v : "?");
				agree = false;
			}
		}
	}
	h_ok(agree, "pool gauges agree with SHOW POOLS for txdb and sessdb");
	h_ok(find_sample("pglease_pools_client_active_connections", slabels) != NULL &&
	         find_sample("pglease_pools_client_active_connections", slabels)->value == 1,
	     "sessdb shows our one active client");
	h_ok(histograms_ok("pglease_query_duration_seconds", labels) &&
	         histograms_ok("pglease_transaction_duration_seconds", labels) &&
	         histograms_ok("pglease_pool_wait_duration_seconds", labels),
	     "histograms: buckets cumulative, +Inf equals _count");
	{
		const struct sample *q = find_sample("pglease_stats_queries_total", labels);
		const struct sample *qc =
		    find_sample("pglease_query_duration_seconds_count", labels);
		const char *sq =
		    show_cell(a, "STATS", "database", "txdb", NULL, NULL, "total_query_count");

		h_ok(q != NULL && qc != NULL && sq != NULL && q->value == atof(sq) &&
		         qc->value == q->value,
		     "queries_total = query histogram count = SHOW STATS total_query_count");
	}
	h_ok(find_sample("process_open_fds", "") != NULL &&
	         find_sample("process_open_fds", "")->value > 0 &&
	         find_sample("process_resident_memory_bytes", "") != NULL &&
	         find_sample("pglease_uptime_seconds", "") != NULL,
	     "process gauges: open fds, resident memory, uptime");
	http_get("/other", &status, ctype, sizeof(ctype));
	h_is_int(status, 404, "another path: 404");
	PQclear(pools);
	PQfinish(t);
	PQfinish(s);
	PQfinish(a);
}

/* ---- reload ---------------------------------------------------------------- */

static void test_reload(void)
{
	PGconn *a = admin();
	PGconn *t = client("txdb"), *g = client("gonedb");
	PGconn *n;
	char *err;
	PGresult *r;

	h_exec(t, "SELECT 1");
	h_exec(g, "SELECT 1");
	write_config(db_lines("pool_size=3", false, true), NULL);
	h_ok(h_exec(a, "RELOAD"), "RELOAD of a changed file");
	h_is_str(show_cell(a, "POOLS", "database", "txdb", "user", "alice", "pool_size"), "3",
	         "txdb's pool took pool_size 3 without dropping its client");
	h_ok(!conn_dead(t), "txdb's client is still connected and works");
	h_ok(show_cell(a, "DATABASES", "name", "newdb", NULL, NULL, "name") != NULL,
	     "the added database is listed");
	h_ok(show_cell(a, "DATABASES", "name", "gonedb", NULL, NULL, "name") == NULL,
	     "the removed database is gone from SHOW DATABASES");
	h_ok(conn_dead(g), "the removed database's client was disconnected");
	n = client("newdb");
	h_is_str(h_value(n, "SELECT current_database()"), "postgres",
	         "a client of the added database reaches its target");
	PQfinish(n);
	n = h_connect(h_lease_conninfo("alice", "alicepw", "gonedb"));
	h_is_str(h_conn_sqlstate(n), "3D000", "the removed database refuses new clients");
	PQfinish(n);

	/* a broken file: the old configuration stays, the error names file and line */
	write_config(h_fmt("%s\nthis line is broken", db_lines("pool_size=4", false, true)), NULL);
	r = PQexec(a, "RELOAD");
	err = PQresultErrorMessage(r);
	h_ok(PQresultStatus(r) == PGRES_FATAL_ERROR, "RELOAD of a broken file fails");
	h_ok(strstr(err, "pglease.ini:") != NULL && strstr(err, "syntax error") != NULL,
	     "the error names file:line (%s)", err);
	PQclear(r);
	h_is_str(show_cell(a, "POOLS", "database", "txdb", "user", "alice", "pool_size"), "3",
	         "the old configuration keeps running");
	h_ok(!conn_dead(t), "clients keep working after a failed RELOAD");
	{
		FILE *f = fopen(h_lease_logfile(), "r");
		char line[1024];
		bool found = false;

		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			found = found || (strstr(line, "RELOAD failed") != NULL &&
			                  strstr(line, "pglease.ini:") != NULL);
		if (f != NULL)
			fclose(f);
		h_ok(found, "the log says why RELOAD failed, with file:line");
	}

	/* SIGHUP */
	write_config(db_lines("pool_size=5", true, true), NULL);
	kill(h_lease_pid(), SIGHUP);
	{
		const char *v = NULL;
		int i;

		for (i = 0; i < 50 && !str_eq(v, "5"); i++) {
			h_sleep_ms(100);
			v = show_cell(a, "POOLS", "database", "txdb", "user", "alice", "pool_size");
		}
		h_is_str(v, "5", "SIGHUP reloads (pool_size 5)");
	}
	h_ok(show_cell(a, "DATABASES", "name", "gonedb", NULL, NULL, "name") != NULL,
	     "SIGHUP: a database added back is listed again");
	PQfinish(t);
	PQfinish(g);
	PQfinish(a);
}

/* ---- shutdown -------------------------------------------------------------- */

static void test_shutdown(void)
{
	PGconn *a = admin();
	PGconn *t = client("txdb");
	int i;

	h_exec(t, "SELECT 1");
	h_ok(h_exec(a, "SHUTDOWN WAIT_FOR_CLIENTS"), "SHUTDOWN WAIT_FOR_CLIENTS answers");
	h_ok(h_value(t, "SELECT 3") != NULL, "an existing client keeps working meanwhile");
	h_sleep_ms(200);
	h_ok(h_lease_alive(), "pglease waits while a client is connected");
	PQfinish(t);
	for (i = 0; i < 50 && h_lease_alive(); i++)
		h_sleep_ms(100);
	h_ok(!h_lease_alive(), "pglease exits once the last client left");
	h_is_int(h_lease_stop(), 0, "  with exit status 0");
	PQfinish(a);

	/* immediate SHUTDOWN from the console */
	h_lease_start();
	a = admin();
	t = client("txdb");
	h_exec(t, "SELECT 1");
	PQclear(PQexec(a, "SHUTDOWN"));
	for (i = 0; i < 50 && h_lease_alive(); i++)
		h_sleep_ms(100);
	h_ok(!h_lease_alive(), "SHUTDOWN exits at once, clients connected or not");
	h_is_int(h_lease_stop(), 0, "  with exit status 0");
	PQfinish(t);
	PQfinish(a);

	/* SIGINT: SHUTDOWN WAIT_FOR_SERVERS waits for the session holding a server */
	h_lease_start();
	t = client("sessdb");
	h_exec(t, "SELECT 1");
	kill(h_lease_pid(), SIGINT);
	h_sleep_ms(300);
	h_ok(h_lease_alive(), "SIGINT: pglease waits while a session holds a server");
	a = h_connect(h_lease_conninfo("alice", "alicepw", "txdb"));
	h_ok(PQstatus(a) != CONNECTION_OK, "SIGINT: new connections are not accepted");
	PQfinish(a);
	PQfinish(t);
	for (i = 0; i < 50 && h_lease_alive(); i++)
		h_sleep_ms(100);
	h_ok(!h_lease_alive(), "SIGINT: pglease exits once the server is released");
	h_is_int(h_lease_stop(), 0, "  with exit status 0");

	/* SIGQUIT: immediate */
	h_lease_start();
	t = client("sessdb");
	h_exec(t, "SELECT 1");
	kill(h_lease_pid(), SIGQUIT);
	for (i = 0; i < 50 && h_lease_alive(); i++)
		h_sleep_ms(100);
	h_ok(!h_lease_alive(), "SIGQUIT: pglease exits at once with a session open");
	h_is_int(h_lease_stop(), 0, "  with exit status 0");
	PQfinish(t);
}

int main(void)
{
	const char *users;

	h_init(600);
	h_pg_start();
	metrics_port = h_free_port();
	users = h_fmt("%s\n%s\n%s\n", h_userlist_line("alice", "alicepw"),
	              h_userlist_line("bob", "bobpw"), h_userlist_line("pwuser", "pwpw"));
	h_lease_config("md5", db_lines("", true, false),
	               h_fmt("admin_users = alice\nstats_users = bob\nstats_period = 1\n"
	                     "server_reset_query = DISCARD ALL\n"
	                     "metrics_listen = 127.0.0.1:%d\n",
	                     metrics_port),
	               users);
	h_lease_start();

	test_access();
	test_columns();
	test_probes();
	test_pause();
	test_kill();
	test_reconnect();
	test_set();
	test_stats();
	test_metrics();
	test_reload();
	h_ok(h_lease_alive(), "pglease alive after the console tests");
	test_shutdown();
	return tap_done();
}
