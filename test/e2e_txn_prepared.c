/*
 * e2e_txn_prepared: protocol-level named prepared statements across leases in
 * transaction mode (issue 3: max_prepared_statements, default 200, 0 = off).
 *
 * Groups (points are numbered as they run):
 *   libpq     PQprepare on one server, PQexecPrepared / PQdescribePrepared on
 *             another (the first is held by a second client's open
 *             transaction), and inside later transactions.
 *   pipeline  libpq pipeline mode: PQsendPrepare and PQsendQueryPrepared in one
 *             pipeline, then the statement used on the other server.
 *   raw       Parse / Describe / Bind / Execute / Close on raw sockets, forced
 *             onto another server: Describe of the statement; a duplicate Parse
 *             gets 42P05 as from PostgreSQL; Close, DEALLOCATE ALL and DISCARD
 *             ALL make the name unknown (26000) everywhere and free to reuse;
 *             names are private to each client.
 *   others    one client's DEALLOCATE ALL / DISCARD ALL (as psycopg 3 sends after
 *             a DROP or ROLLBACK) does not remove another client's statements
 *             from the server they share.
 *   many      10 forked clients with statements of the same name but different
 *             text, interleaving on pool_size=3: every result right, never more
 *             than 3 backends, statements used on more than one backend.
 *   lru       max_prepared_statements = 3 with a client using 8 statements in
 *             rotation across servers: all keep working; SHOW CLIENTS and
 *             SHOW SERVERS count them in prepared_statements (8 for the
 *             client, 3 on each server).
 *   pgbench   pgbench -M prepared and -M extended, 10 clients on pool_size=3.
 *   off       max_prepared_statements = 0: the statement stays on the server it
 *             was prepared on (26000 elsewhere), works on that server.
 *   end       pglease alive, exits 0 on SIGTERM without sanitizer reports.
 * PGL_ONLY=group,group runs only those groups.
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

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool want(const char *group)
{
	const char *only = getenv("PGL_ONLY");

	return only == NULL || *only == '\0' || strstr(only, group) != NULL;
}

static const char *databases(void)
{
	return h_fmt("%s%s%s", h_db_line("one", "testdb", "pool_size=1"),
	             h_db_line("two", "testdb", "pool_size=2"),
	             h_db_line("three", "testdb", "pool_size=3"));
}

static void start_lease(const char *extra)
{
	const char *verbose = getenv("PGL_LEASE_VERBOSE"); /* for debugging a failure */

	h_lease_restart("trust", databases(),
	                h_fmt("pool_mode = transaction\nmax_client_conn = 100\n%s\n%s%s\n",
	                      extra ? extra : "", verbose ? "verbose = " : "",
	                      verbose ? verbose : ""),
	                h_userlist_line("alice", "alicepw"));
}

static PGconn *conn(const char *db)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", NULL, db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login alice@%s failed: %s", db, PQerrorMessage(c));
	return c;
}

/* "v1|v2|..." of the first row, "ERR:<state>" on error. */
static const char *row_of(PGresult *r)
{
	const char *out = "";

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		out = h_fmt("ERR:%s", st ? st : "?");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			tap_diag("%s", PQresultErrorMessage(r));
		PQclear(r);
		return out;
	}
	for (int i = 0; PQntuples(r) > 0 && i < PQnfields(r); i++)
		out = h_fmt("%s%s%s", out, i ? "|" : "", PQgetvalue(r, 0, i));
	PQclear(r);
	return out;
}

static const char *exec_prepared(PGconn *c, const char *name, const char *arg)
{
	const char *vals[] = {arg};

	return row_of(PQexecPrepared(c, name, arg ? 1 : 0, vals, NULL, NULL, 0));
}

/* A second client holding the server it gets in an open transaction; its pid. */
static const char *hold(PGconn *holder)
{
	h_exec(holder, "BEGIN");
	return h_value(holder, "SELECT pg_backend_pid()");
}

/* ---- libpq ------------------------------------------------------------- */

static void libpq_prepared(void)
{
	PGconn *a = conn("two"), *c = conn("two");
	const char *p_prep, *p_held, *res;
	PGresult *r;

	r = PQprepare(a, "s1", "SELECT $1::int * 2, pg_backend_pid()", 0, NULL);
	h_ok(PQresultStatus(r) == PGRES_COMMAND_OK, "libpq: PQprepare s1 through pglease");
	PQclear(r);
	p_prep = h_value(a, "SELECT pg_backend_pid()");
	p_held = hold(c);
	if (!str_eq(p_prep, p_held))
		tap_diag("the holder got %s, the statement was prepared on %s", p_held, p_prep);
	res = exec_prepared(a, "s1", "21");
	h_ok(strncmp(res, "42|", 3) == 0 && p_prep != NULL && str_eq(p_prep, p_held) &&
	         !str_eq(res + 3, p_prep),
	     "libpq: PQexecPrepared s1 works on another server than it was prepared on (%s, "
	     "prepared on %s)",
	     res, p_prep ? p_prep : "?");
	r = PQdescribePrepared(a, "s1");
	h_ok(PQresultStatus(r) == PGRES_COMMAND_OK && PQnparams(r) == 1 && PQnfields(r) == 2 &&
	         PQparamtype(r, 0) == 23,
	     "libpq: PQdescribePrepared s1 on another server: 1 int4 parameter, 2 columns");
	PQclear(r);
	h_exec(c, "COMMIT");

	h_exec(a, "BEGIN");
	res = exec_prepared(a, "s1", "5");
	h_ok(strncmp(res, "10|", 3) == 0 &&
	         str_eq(exec_prepared(a, "s1", "6"), h_fmt("12|%s", res + 3)),
	     "libpq: s1 twice inside one transaction, on one backend (%s)", res);
	h_exec(a, "COMMIT");
	{
		bool ok = true;

		for (int i = 0; i < 20 && ok; i++) {
			hold(c);
			res = exec_prepared(a, "s1", h_fmt("%d", i));
			ok = strncmp(res, h_fmt("%d|", 2 * i), strlen(h_fmt("%d|", 2 * i))) == 0;
			h_exec(c, "COMMIT");
			if (i % 2 == 0)
				ok = ok && str_eq(row_of(PQexec(a, "SELECT 1")), "1");
		}
		h_ok(ok, "libpq: s1 in 20 transactions alternating between the two servers");
	}
	PQfinish(a);
	PQfinish(c);
}

/* Results of a pipeline on C until NSYNC syncs, as "v,SYNC,..." (15 s at most). */
static const char *pipe_collect(PGconn *c, int nsync)
{
	int64_t deadline = h_now_ms() + 15000;
	const char *out = "";
	int syncs = 0;

	while (syncs < nsync) {
		PGresult *r;

		while (PQisBusy(c)) {
			struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
			int64_t left = deadline - h_now_ms();

			if (left <= 0)
				return h_fmt("%s,timeout", out);
			poll(&p, 1, (int)left);
			if (!PQconsumeInput(c))
				return h_fmt("%s,broken", out);
		}
		r = PQgetResult(c);
		if (r == NULL)
			continue;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			syncs++;
			out = h_fmt("%s%sSYNC", out, *out ? "," : "");
		} else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			out = h_fmt("%s%s%s", out, *out ? "," : "", PQgetvalue(r, 0, 0));
		} else if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			out = h_fmt("%s%sOK", out, *out ? "," : "");
		} else {
			const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			out = h_fmt("%s%sE%s", out, *out ? "," : "", st ? st : "?");
			tap_diag("%s", PQresultErrorMessage(r));
			if (PQstatus(c) == CONNECTION_BAD) {
				PQclear(r);
				return h_fmt("%s,broken", out);
			}
		}
		PQclear(r);
	}
	return out;
}

/* libpq pipeline mode: prepare and use a named statement, then use it elsewhere. */
static void pipeline_prepared(void)
{
	PGconn *a = conn("two"), *c = conn("two");
	const char *v1[] = {"1"}, *v2[] = {"2"}, *v3[] = {"3"};
	bool sent;

	sent = PQenterPipelineMode(a) == 1 &&
	       PQsendPrepare(a, "pp", "SELECT $1::int * 7", 0, NULL) == 1 && PQpipelineSync(a) &&
	       PQsendQueryPrepared(a, "pp", 1, v1, NULL, NULL, 0) == 1 && PQpipelineSync(a) &&
	       PQsendQueryPrepared(a, "pp", 1, v2, NULL, NULL, 0) == 1 && PQpipelineSync(a);
	h_is_str(sent ? pipe_collect(a, 3) : "not sent", "OK,SYNC,7,SYNC,14,SYNC",
	         "pipeline: PQsendPrepare then PQsendQueryPrepared twice in one pipeline");
	hold(c);
	sent = PQsendQueryPrepared(a, "pp", 1, v3, NULL, NULL, 0) == 1 && PQpipelineSync(a);
	h_is_str(sent ? pipe_collect(a, 1) : "not sent", "21,SYNC",
	         "pipeline: ... and later on the other server");
	h_exec(c, "COMMIT");
	PQexitPipelineMode(a);
	PQfinish(a);
	PQfinish(c);
}

/* ---- raw protocol ------------------------------------------------------ */

struct rec {
	const char *seq;
};

static void rec_msg(const struct h_bmsg *m, void *arg)
{
	struct rec *r = arg;
	const char *item;

	switch (m->type) {
	case 'D': {
		uint32_t len = m->n >= 6 ? h_be32(m->body + 2) : 0;

		item = h_fmt("D:%.*s", len == 0xffffffffu ? 0 : (int)len, m->body + 6);
		break;
	}
	case 'C':
		item = h_fmt("C:%s", m->body);
		break;
	case 'E':
		item = h_fmt("E:%s", h_bmsg_field(m, 'C'));
		if (!str_eq(h_bmsg_field(m, 'C'), "26000") &&
		    !str_eq(h_bmsg_field(m, 'C'), "42P05"))
			tap_diag("error: %s %s", h_bmsg_field(m, 'C'), h_bmsg_field(m, 'M'));
		break;
	case 't':
		item = h_fmt("t:%u", m->n >= 2 ? h_be16(m->body) : 0);
		break;
	case 'T':
		item = h_fmt("T:%u", m->n >= 2 ? h_be16(m->body) : 0);
		break;
	case 'Z':
		item = h_fmt("Z%c", m->n ? m->body[0] : '?');
		break;
	default:
		item = h_fmt("%c", m->type);
		break;
	}
	r->seq = h_fmt("%s%s%s", r->seq, *r->seq ? " " : "", item);
}

static bool raw_login(struct h_conn *c, const char *db)
{
	const char *kv[] = {"user", "alice", "database", db, NULL};

	return h_conn_login(c, h_lease_port(), kv, NULL, NULL, NULL, NULL);
}

/* Send W on C, read NZ ReadyForQuery; the recorded sequence. */
static const char *roundtrip(struct h_conn *c, struct h_wbuf *w, int nz)
{
	struct rec r = {""};

	h_wb_send(c->fd, w);
	if (h_conn_until_ready(c, nz, 10000, rec_msg, &r) <= 0)
		r.seq = h_fmt("%s (no ReadyForQuery)", r.seq);
	return r.seq;
}

/* Bind+Execute of NAME with one parameter, then Sync. */
static void bind_exec(struct h_wbuf *w, const char *name, const char *arg)
{
	h_wb_bind(w, "", name, arg ? 1 : 0, &arg);
	h_wb_execute(w, "", 0);
	h_wb_sync(w);
}

static void raw_prepared(void)
{
	struct h_conn a, b;
	struct h_wbuf w = {0};
	PGconn *c = conn("two");
	const char *res;

	if (!h_ok(raw_login(&a, "two") && raw_login(&b, "two"), "raw: logins"))
		return;
	h_wb_parse(&w, "r1", "SELECT $1::int + 100");
	h_wb_sync(&w);
	h_is_str(roundtrip(&a, &w, 1), "1 ZI", "raw: Parse r1 + Sync");
	hold(c);
	h_wb_describe(&w, 'S', "r1");
	h_wb_sync(&w);
	h_is_str(roundtrip(&a, &w, 1), "t:1 T:1 ZI",
	         "raw: Describe r1 on another server: ParameterDescription, RowDescription");
	bind_exec(&w, "r1", "1");
	h_is_str(roundtrip(&a, &w, 1), "2 D:101 C:SELECT 1 ZI",
	         "raw: Bind/Execute r1 on another server");
	h_exec(c, "COMMIT");

	h_wb_parse(&w, "r1", "SELECT 'duplicate'");
	h_wb_sync(&w);
	h_is_str(roundtrip(&a, &w, 1), "E:42P05 ZI",
	         "raw: a second Parse of r1 gets 42P05 (duplicate prepared statement)");
	bind_exec(&w, "r1", "2");
	h_is_str(roundtrip(&a, &w, 1), "2 D:102 C:SELECT 1 ZI",
	         "raw: ... and r1 is still the first statement");

	bind_exec(&w, "r1", "3");
	h_is_str(roundtrip(&b, &w, 1), "E:26000 ZI",
	         "raw: another client does not see r1 (names are per client)");
	h_wb_parse(&w, "r1", "SELECT $1::text || '-b'");
	bind_exec(&w, "r1", "x");
	h_is_str(roundtrip(&b, &w, 1), "1 2 D:x-b C:SELECT 1 ZI",
	         "raw: ... and can prepare its own r1 with another text");
	bind_exec(&w, "r1", "4");
	h_is_str(roundtrip(&a, &w, 1), "2 D:104 C:SELECT 1 ZI",
	         "raw: ... while the first client's r1 is unchanged");

	/* Close. */
	h_wb_close(&w, 'S', "r1");
	h_wb_sync(&w);
	h_is_str(roundtrip(&a, &w, 1), "3 ZI", "raw: Close r1: CloseComplete");
	hold(c);
	bind_exec(&w, "r1", "5");
	h_is_str(roundtrip(&a, &w, 1), "E:26000 ZI",
	         "raw: after Close, r1 does not exist (26000), on another server too");
	h_exec(c, "COMMIT");
	bind_exec(&w, "r1", "5");
	h_is_str(roundtrip(&a, &w, 1), "E:26000 ZI", "raw: ... nor on the first server");
	h_wb_parse(&w, "r1", "SELECT $1::int + 200");
	bind_exec(&w, "r1", "5");
	h_is_str(roundtrip(&a, &w, 1), "1 2 D:205 C:SELECT 1 ZI",
	         "raw: after Close the name r1 can be prepared again with another text");
	h_wb_close(&w, 'S', "never_prepared");
	h_wb_sync(&w);
	h_is_str(roundtrip(&a, &w, 1), "3 ZI",
	         "raw: Close of an unknown statement answers CloseComplete, as PostgreSQL does");

	/* DEALLOCATE ALL. */
	h_wb_parse(&w, "r2", "SELECT 'r2'");
	h_wb_sync(&w);
	roundtrip(&a, &w, 1);
	h_wb_query(&w, "DEALLOCATE ALL");
	h_is_str(roundtrip(&a, &w, 1), "C:DEALLOCATE ALL ZI", "raw: DEALLOCATE ALL");
	hold(c);
	bind_exec(&w, "r1", "6");
	bind_exec(&w, "r2", NULL);
	h_is_str(roundtrip(&a, &w, 2), "E:26000 ZI E:26000 ZI",
	         "raw: after DEALLOCATE ALL neither statement exists on another server");
	h_exec(c, "COMMIT");
	bind_exec(&w, "r1", "6");
	h_is_str(roundtrip(&a, &w, 1), "E:26000 ZI", "raw: ... nor on the first server");
	h_wb_parse(&w, "r1", "SELECT $1::int + 300");
	bind_exec(&w, "r1", "6");
	h_is_str(roundtrip(&a, &w, 1), "1 2 D:306 C:SELECT 1 ZI",
	         "raw: after DEALLOCATE ALL r1 can be prepared again");

	/* DISCARD ALL. */
	h_wb_query(&w, "DISCARD ALL");
	h_is_str(roundtrip(&a, &w, 1), "C:DISCARD ALL ZI", "raw: DISCARD ALL");
	hold(c);
	bind_exec(&w, "r1", "7");
	h_is_str(roundtrip(&a, &w, 1), "E:26000 ZI",
	         "raw: after DISCARD ALL r1 does not exist on another server");
	h_exec(c, "COMMIT");
	h_wb_parse(&w, "r1", "SELECT $1::int + 400");
	bind_exec(&w, "r1", "7");
	h_is_str(roundtrip(&a, &w, 1), "1 2 D:407 C:SELECT 1 ZI",
	         "raw: after DISCARD ALL r1 can be prepared again");

	/* Prepare and use in one write, then use it in one write with Parse of another. */
	h_wb_parse(&w, "r3", "SELECT $1::int * 3");
	h_wb_sync(&w);
	bind_exec(&w, "r3", "3");
	res = roundtrip(&a, &w, 2);
	h_is_str(res, "1 ZI 2 D:9 C:SELECT 1 ZI",
	         "raw: Parse+Sync and Bind/Execute+Sync in one write");
	hold(c);
	h_wb_parse(&w, "r4", "SELECT $1::int * 4");
	bind_exec(&w, "r3", "4");
	bind_exec(&w, "r4", "4");
	res = roundtrip(&a, &w, 2);
	h_is_str(res, "1 2 D:12 C:SELECT 1 ZI 2 D:16 C:SELECT 1 ZI",
	         "raw: on the other server, Parse r4 + Bind r3 in one batch, then Bind r4");
	h_exec(c, "COMMIT");

	h_wb_free(&w);
	h_conn_close(&a);
	h_conn_close(&b);
	PQfinish(c);
}

/* DEALLOCATE ALL / DISCARD ALL of one client leave the other clients' statements alone. */
static void others_untouched(void)
{
	struct h_conn a, b;
	struct h_wbuf w = {0};

	if (!h_ok(raw_login(&a, "one") && raw_login(&b, "one"), "others: logins (pool_size=1)"))
		return;
	h_wb_parse(&w, "mine", "SELECT $1::int + 1");
	bind_exec(&w, "mine", "1");
	h_is_str(roundtrip(&a, &w, 1), "1 2 D:2 C:SELECT 1 ZI", "others: A prepares and runs mine");
	h_wb_parse(&w, "theirs", "SELECT 'theirs'");
	h_wb_sync(&w);
	roundtrip(&b, &w, 1);
	h_wb_query(&w, "DEALLOCATE ALL");
	h_is_str(roundtrip(&b, &w, 1), "C:DEALLOCATE ALL ZI",
	         "others: B runs DEALLOCATE ALL on the same server");
	bind_exec(&w, "mine", "2");
	h_is_str(roundtrip(&a, &w, 1), "2 D:3 C:SELECT 1 ZI",
	         "others: A's statement still works after B's DEALLOCATE ALL");
	h_wb_query(&w, "DISCARD ALL");
	h_is_str(roundtrip(&b, &w, 1), "C:DISCARD ALL ZI",
	         "others: B runs DISCARD ALL on the same server");
	bind_exec(&w, "mine", "3");
	h_is_str(roundtrip(&a, &w, 1), "2 D:4 C:SELECT 1 ZI",
	         "others: A's statement still works after B's DISCARD ALL");
	/* The same over the extended protocol (psycopg 3 sends DEALLOCATE ALL so). */
	h_wb_parse(&w, "", "DEALLOCATE ALL");
	bind_exec(&w, "", NULL);
	h_is_str(roundtrip(&b, &w, 1), "1 2 C:DEALLOCATE ALL ZI",
	         "others: B runs DEALLOCATE ALL as Parse/Bind/Execute");
	bind_exec(&w, "mine", "4");
	h_is_str(roundtrip(&a, &w, 1), "2 D:5 C:SELECT 1 ZI",
	         "others: A's statement still works after B's extended-protocol DEALLOCATE ALL");
	h_wb_parse(&w, "", "DISCARD ALL");
	bind_exec(&w, "", NULL);
	h_is_str(roundtrip(&b, &w, 1), "1 2 C:DISCARD ALL ZI",
	         "others: B runs DISCARD ALL as Parse/Bind/Execute");
	bind_exec(&w, "mine", "5");
	h_is_str(roundtrip(&a, &w, 1), "2 D:6 C:SELECT 1 ZI",
	         "others: A's statement still works after B's extended-protocol DISCARD ALL");
	h_wb_free(&w);
	h_conn_close(&a);
	h_conn_close(&b);
}

/* ---- 10 clients on 3 servers ------------------------------------------ */

#define MANY_CLIENTS 10
#define MANY_ITERS   40

static void many_child(int id, const char *logpath)
{
	PGconn *c;
	FILE *log;
	int bad = 0;
	int k = id + 1;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	log = fopen(logpath, "w");
	c = PQconnectdb(h_lease_conninfo("alice", NULL, "three"));
	if (log == NULL || PQstatus(c) != CONNECTION_OK)
		_exit(2);
	{
		char sql[128];
		PGresult *r;

		snprintf(sql, sizeof(sql), "SELECT $1::int * %d, pg_backend_pid()", k);
		r = PQprepare(c, "common", sql, 0, NULL);
		bad |= PQresultStatus(r) != PGRES_COMMAND_OK;
		PQclear(r);
		snprintf(sql, sizeof(sql), "SELECT $1::text || '-own%d', pg_backend_pid()", id);
		r = PQprepare(c, h_fmt("own%d", id), sql, 0, NULL);
		bad |= PQresultStatus(r) != PGRES_COMMAND_OK;
		PQclear(r);
	}
	for (int i = 0; i < MANY_ITERS && !bad; i++) {
		char arg[16], want[64];
		const char *vals[] = {arg};
		bool txn = i % 3 == 0;
		PGresult *r;

		snprintf(arg, sizeof(arg), "%d", i);
		if (txn)
			PQclear(PQexec(c, "BEGIN"));
		r = PQexecPrepared(c, "common", 1, vals, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) != i * k) {
			fprintf(stderr, "client %d iter %d common: %s %s\n", id, i,
			        PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
			bad = 1;
		} else {
			fprintf(log, "%s\n", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		r = PQexecPrepared(c, h_fmt("own%d", id), 1, vals, NULL, NULL, 0);
		snprintf(want, sizeof(want), "%d-own%d", i, id);
		if (PQresultStatus(r) != PGRES_TUPLES_OK ||
		    strcmp(PQgetvalue(r, 0, 0), want) != 0) {
			fprintf(stderr, "client %d iter %d own: %s %s\n", id, i,
			        PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
			bad = 1;
		} else {
			fprintf(log, "%s\n", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
		if (txn)
			PQclear(PQexec(c, "COMMIT"));
		if (i % 7 == 3)
			usleep(2000);
	}
	fclose(log);
	PQfinish(c);
	_exit(bad ? 1 : 0);
}

static void many_clients(void)
{
	pid_t kids[MANY_CLIENTS];
	int ok = 0, moved = 0;
	char all[MANY_CLIENTS * 4][32];
	int nall = 0;

	fflush(stdout);
	for (int i = 0; i < MANY_CLIENTS; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			many_child(i, h_fmt("%s/many-%d.log", h_tmpdir(), i));
	}
	for (int i = 0; i < MANY_CLIENTS; i++) {
		int st = -1;
		int64_t deadline = h_now_ms() + 120000;

		for (;;) {
			pid_t r = waitpid(kids[i], &st, WNOHANG);

			if (r == kids[i])
				break;
			if (h_now_ms() > deadline) {
				kill(kids[i], SIGKILL);
				waitpid(kids[i], &st, 0);
				break;
			}
			h_sleep_ms(20);
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		else
			tap_diag("client %d ended with status 0x%x", i, st);
	}
	for (int i = 0; i < MANY_CLIENTS; i++) {
		FILE *f = fopen(h_fmt("%s/many-%d.log", h_tmpdir(), i), "r");
		char line[32], first[32] = "";
		bool more = false;

		while (f && fgets(line, sizeof(line), f)) {
			bool seen = false;

			line[strcspn(line, "\n")] = '\0';
			if (!first[0])
				snprintf(first, sizeof(first), "%s", line);
			else if (strcmp(first, line) != 0)
				more = true;
			for (int j = 0; j < nall; j++)
				seen = seen || strcmp(all[j], line) == 0;
			if (!seen && nall < (int)(sizeof(all) / sizeof(all[0])))
				snprintf(all[nall++], sizeof(all[0]), "%s", line);
		}
		if (f)
			fclose(f);
		moved += more;
	}
	h_is_int(ok, MANY_CLIENTS,
	         "many: 10 clients with statements named alike but different, interleaving on "
	         "pool_size=3, all results right");
	h_ok(nall >= 1 && nall <= 3, "many: at most 3 backends served them (%d)", nall);
	h_ok(moved >= 1, "many: statements were used on more than one backend (%d clients moved)",
	     moved);
}

/* ---- more statements than max_prepared_statements --------------------- */

/* "max/sum" of SHOW WHAT's prepared_statements over the rows of database "two". */
static const char *prepared_column(PGconn *adm, const char *what)
{
	PGresult *r = PQexec(adm, h_fmt("SHOW %s", what));
	int db = PQfnumber(r, "database"), col = PQfnumber(r, "prepared_statements");
	int max = -1, sum = 0;

	for (int i = 0; db >= 0 && col >= 0 && i < PQntuples(r); i++) {
		int n = atoi(PQgetvalue(r, i, col));

		if (strcmp(PQgetvalue(r, i, db), "two") != 0)
			continue;
		sum += n;
		max = n > max ? n : max;
	}
	PQclear(r);
	return h_fmt("%d/%d", max, sum);
}

/* After lru(): client a named 8 statements, each server keeps at most 3. */
static void show_prepared_counts(void)
{
	PGconn *adm = h_connect(h_lease_conninfo("alice", NULL, "pgbouncer"));

	h_is_str(prepared_column(adm, "CLIENTS"), "8/8",
	         "SHOW CLIENTS: prepared_statements is 8 for the client that prepared 8, 0 for "
	         "the other");
	h_is_str(prepared_column(adm, "SERVERS"), "3/6",
	         "SHOW SERVERS: prepared_statements is 3 on each server "
	         "(max_prepared_statements = 3)");
	PQfinish(adm);
}

static void lru(void)
{
	PGconn *a, *c;
	bool ok = true;

	start_lease("max_prepared_statements = 3\nadmin_users = alice");
	a = conn("two");
	c = conn("two");
	for (int s = 0; s < 8; s++) {
		PGresult *r =
		    PQprepare(a, h_fmt("l%d", s), h_fmt("SELECT $1::int + %d", s * 1000), 0, NULL);

		ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	h_ok(ok, "lru: 8 statements prepared with max_prepared_statements = 3");
	for (int round = 0; round < 3; round++) {
		for (int s = 0; s < 8; s++) {
			if ((s + round) % 3 == 0)
				hold(c);
			ok = ok && str_eq(exec_prepared(a, h_fmt("l%d", s), "7"),
			                  h_fmt("%d", s * 1000 + 7));
			if ((s + round) % 3 == 0)
				h_exec(c, "COMMIT");
		}
	}
	h_ok(ok, "lru: all 8 keep working in rotation across both servers");
	show_prepared_counts();
	PQfinish(a);
	PQfinish(c);
}

/* ---- pgbench ----------------------------------------------------------- */

static void pgbench_modes(void)
{
	const char *pgbench = h_fmt("%s/pgbench", h_pg_bindir());
	const char *env[] = {"PGPASSWORD=alicepw", "PGCONNECT_TIMEOUT=10", NULL};
	const char *out = h_fmt("%s/pgbench-init.out", h_tmpdir());
	const char *pgport = h_fmt("%d", h_pg_port());
	const char *port = h_fmt("%d", h_lease_port());
	const char *const modes[] = {"prepared", "extended"};
	int rc;

	{
		const char *argv[] = {pgbench, "-i",   "-s", "1",     "-q",     "-h", "127.0.0.1",
		                      "-p",    pgport, "-U", "alice", "testdb", NULL};

		rc = h_run(argv, env, out, 120000);
		if (rc != 0)
			h_diag_file("pgbench -i", out, 30);
	}
	for (size_t m = 0; m < 2; m++) {
		/* One thread per client: pgbench prepares with a blocking PQprepare, and
		 * a thread blocked waiting for a server while its other clients hold the
		 * pool's servers mid-transaction would wait for ever under any pooler. */
		const char *argv[] = {pgbench, "-M", modes[m], "-c",    "10",        "-j",
		                      "10",    "-t", "100",    "-h",    "127.0.0.1", "-p",
		                      port,    "-U", "alice",  "three", NULL};
		long long done, failed;

		out = h_fmt("%s/pgbench-%s.out", h_tmpdir(), modes[m]);
		rc = h_run(argv, env, out, 120000);
		done = h_number_after(out, "number of transactions actually processed: ");
		failed = h_number_after(out, "number of failed transactions: ");
		if (!h_ok(rc == 0 && done == 1000 && failed <= 0,
		          "pgbench: -M %s -c 10 -j 10 -t 100 (tpcb-like) in transaction mode on "
		          "pool_size=3: exit %d, %lld transactions, %lld failed",
		          modes[m], rc, done, failed))
			h_diag_file("pgbench output", out, 40);
	}
}

/* ---- max_prepared_statements = 0 -------------------------------------- */

static void off(void)
{
	PGconn *a, *c;
	PGresult *r;
	const char *res;

	start_lease("max_prepared_statements = 0");
	a = conn("two");
	c = conn("two");
	r = PQprepare(a, "o1", "SELECT $1::int - 1", 0, NULL);
	h_ok(PQresultStatus(r) == PGRES_COMMAND_OK, "off: PQprepare o1");
	PQclear(r);
	hold(c);
	res = exec_prepared(a, "o1", "10");
	h_is_str(res, "ERR:26000",
	         "off: with max_prepared_statements = 0 the statement is not known on another "
	         "server");
	h_exec(c, "COMMIT");
	PQfinish(a);
	PQfinish(c);
	a = conn("one");
	r = PQprepare(a, "o2", "SELECT $1::int - 2", 0, NULL);
	PQclear(r);
	h_is_str(exec_prepared(a, "o2", "10"), "8",
	         "off: ... and works on the server it was prepared on (pool_size=1)");
	h_is_str(h_value(a, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'o2'"), "1",
	         "off: ... under the client's own name");
	PQfinish(a);
}

/* The premise of every group: pool "two" leases per transaction. */
static void premise(void)
{
	PGconn *a = conn("two"), *b = conn("two");
	const char *pa = h_value(a, "SELECT pg_backend_pid()");
	const char *pb = hold(b);

	h_ok(pa != NULL && str_eq(pa, pb),
	     "setup: transaction pooling is in effect (a second client gets the server the "
	     "first one released)");
	h_exec(b, "COMMIT");
	PQfinish(a);
	PQfinish(b);
}

int main(void)
{
	h_init(900);
	h_pg_start();
	start_lease(NULL);
	premise();

	if (want("libpq"))
		libpq_prepared();
	if (want("pipeline"))
		pipeline_prepared();
	if (want("raw"))
		raw_prepared();
	if (want("others"))
		others_untouched();
	if (want("many"))
		many_clients();
	if (want("pgbench"))
		pgbench_modes();
	if (want("lru"))
		lru();
	if (want("off"))
		off();

	h_ok(h_lease_alive(), "end: pglease is alive");
	h_lease_stop_ok("end");
	return tap_done();
}
