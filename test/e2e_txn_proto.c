/*
 * e2e_txn_proto: the protocol through transaction and statement pooling
 * (issue 3): statement mode, pipelines, COPY, large data, asynchronous and
 * unusual messages.
 *
 * Groups (points are numbered as they run):
 *   stmt      statement mode (pool_size=1): BEGIN and START TRANSACTION (simple
 *             and extended protocol) get an error, the server is not left in a
 *             transaction, clients share the server statement by statement,
 *             multi-statement autocommit queries and extended queries work.
 *   pipeline  libpq pipeline mode with an error in the middle (results exactly
 *             as PostgreSQL gives them: a1, SYNC, 22012, ABORTED, SYNC, a4,
 *             SYNC) while a second client waits for the only server; Flush
 *             without Sync keeps the server; 50 raw batches in flight at once;
 *             an error inside an explicit transaction in a pipeline.
 *   copy      COPY FROM STDIN of 100k rows, COPY TO STDOUT of 100k rows, a bad
 *             COPY row and a client CopyFail leave a usable server.
 *   large     a 50 MB result, a 20 MB value sent as a parameter and read back.
 *   async     NoticeResponse (RAISE NOTICE in DO), NotificationResponse (session
 *             mode between two clients; transaction mode to oneself),
 *             ParameterStatus mid-session, FunctionCall (PQfn and the large
 *             object API inside a transaction), EmptyQueryResponse (simple and
 *             extended).
 *   copyboth  COPY BOTH: a physical replication connection (replication=true)
 *             through pglease: IDENTIFY_SYSTEM, START_REPLICATION answers
 *             CopyBothResponse, a status update asking for a reply gets a
 *             keepalive, CopyDone ends the stream and ReadyForQuery follows.
 *   end       pglease alive, exits 0 on SIGTERM without sanitizer reports.
 * PGL_ONLY=group,group runs only those groups.
 */
#include "harness.h"
#include "tap.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq/libpq-fs.h>

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool want(const char *group)
{
	const char *only = getenv("PGL_ONLY");

	return only == NULL || *only == '\0' || strstr(only, group) != NULL;
}

static PGconn *conn(const char *db)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", NULL, db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login alice@%s failed: %s", db, PQerrorMessage(c));
	return c;
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *direct(void)
{
	PGconn *c = h_connect(h_pg_conninfo("alice", "alicepw", "testdb"));

	if (PQstatus(c) != CONNECTION_OK)
		h_bail("direct login failed: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* ---- statement mode ---------------------------------------------------- */

static void statement_mode(void)
{
	PGconn *a = conn("stmt1"), *b = conn("stmt1");
	const char *st, *pa, *pb, *n = NULL;
	PGresult *r;

	r = PQexec(a, "BEGIN");
	st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (!h_ok(PQresultStatus(r) == PGRES_FATAL_ERROR,
	          "stmt: BEGIN in statement mode gets an error"))
		tap_diag("status %s", PQresStatus(PQresultStatus(r)));
	else
		tap_diag("BEGIN: %s %s", st ? st : "(no sqlstate)", PQresultErrorMessage(r));
	PQclear(r);
	for (int i = 0; i < 50; i++) {
		n = h_pg_value("SELECT count(*) FROM pg_stat_activity WHERE datname = 'testdb' "
		               "AND usename = 'alice' AND state LIKE 'idle in transaction%'");
		if (str_eq(n, "0"))
			break;
		h_sleep_ms(100);
	}
	h_is_str(n, "0", "stmt: ... and no server is left idle in a transaction");
	PQfinish(a);

	a = conn("stmt1");
	h_ok(str_eq(h_value(a, "SELECT now() = statement_timestamp()"), "t") &&
	         PQtransactionStatus(a) == PQTRANS_IDLE,
	     "stmt: the next statement on that pool runs outside any transaction");
	r = PQexecParams(a, "START TRANSACTION", 0, NULL, NULL, NULL, NULL, 0);
	h_ok(PQresultStatus(r) == PGRES_FATAL_ERROR,
	     "stmt: START TRANSACTION over the extended protocol gets an error too");
	PQclear(r);
	h_ok(str_eq(h_value(a, "SELECT now() = statement_timestamp()"), "t"),
	     "stmt: ... and the next statement again runs outside a transaction");

	pa = h_value(a, "SELECT pg_backend_pid()");
	pb = h_value(b, "SELECT pg_backend_pid()");
	h_ok(pa && str_eq(pa, pb),
	     "stmt: two connected clients share the one server statement by statement");
	r = PQexec(a, "SELECT 1; SELECT 2");
	h_ok(PQresultStatus(r) == PGRES_TUPLES_OK && str_eq(PQgetvalue(r, 0, 0), "2"),
	     "stmt: a multi-statement autocommit query works");
	PQclear(r);
	{
		const char *vals[] = {"41"};

		r = PQexecParams(b, "SELECT $1::int + 1", 1, NULL, vals, NULL, NULL, 0);
		h_ok(PQresultStatus(r) == PGRES_TUPLES_OK && str_eq(PQgetvalue(r, 0, 0), "42"),
		     "stmt: an extended-protocol query with a parameter works");
		PQclear(r);
	}
	PQfinish(a);
	PQfinish(b);
}

/* ---- pipelines --------------------------------------------------------- */

/* Results of a pipeline until NSYNC syncs: "v1,SYNC,E22012,ABORTED,...". */
static const char *pipeline_results(PGconn *c, int nsync, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
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
		switch (PQresultStatus(r)) {
		case PGRES_PIPELINE_SYNC:
			out = h_fmt("%s%sSYNC", out, *out ? "," : "");
			syncs++;
			break;
		case PGRES_TUPLES_OK:
			out = h_fmt("%s%s%s", out, *out ? "," : "",
			            PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "(none)");
			break;
		case PGRES_COMMAND_OK:
			out = h_fmt("%s%s%s", out, *out ? "," : "", PQcmdStatus(r));
			break;
		case PGRES_PIPELINE_ABORTED:
			out = h_fmt("%s%sABORTED", out, *out ? "," : "");
			break;
		case PGRES_FATAL_ERROR: {
			const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			out = h_fmt("%s%sE%s", out, *out ? "," : "", st ? st : "?");
			if (PQstatus(c) == CONNECTION_BAD) {
				PQclear(r);
				return h_fmt("%s,broken", out);
			}
			break;
		}
		default:
			out = h_fmt("%s%s%s", out, *out ? "," : "", PQresStatus(PQresultStatus(r)));
			break;
		}
		PQclear(r);
	}
	return out;
}

static bool send_q(PGconn *c, const char *sql)
{
	return PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
}

static void libpq_pipeline(void)
{
	PGconn *a = conn("one"), *b = conn("one");
	const char *res;
	bool sent;

	h_value(a, "SELECT 1");
	sent = PQenterPipelineMode(a) == 1 && send_q(a, "SELECT 'a1' FROM pg_sleep(0.3)") &&
	       PQpipelineSync(a) == 1 && send_q(a, "SELECT 1/0") && send_q(a, "SELECT 'a3'") &&
	       PQpipelineSync(a) == 1 && send_q(a, "SELECT 'a4'") && PQpipelineSync(a) == 1;
	h_ok(sent, "pipeline: three batches with an error in the middle are sent");
	PQsendQuery(b, "SELECT 'b1'");
	res = pipeline_results(a, 3, 15000);
	h_is_str(res, "a1,SYNC,E22012,ABORTED,SYNC,a4,SYNC",
	         "pipeline: results are PostgreSQL's, with another client queued for the server");
	h_is_str(h_async_value(b, 10000), "b1", "pipeline: the queued client gets its own result");
	PQexitPipelineMode(a);
	h_is_str(h_value(a, "SELECT 'after'"), "after",
	         "pipeline: the client works normally after leaving pipeline mode");

	/* An error inside an explicit transaction: the server stays until ROLLBACK. */
	h_exec(a, "CREATE TABLE IF NOT EXISTS pipe_t (x int)");
	sent = PQenterPipelineMode(a) == 1 && send_q(a, "BEGIN") &&
	       send_q(a, "INSERT INTO pipe_t VALUES (1)") && send_q(a, "SELECT 1/0") &&
	       send_q(a, "INSERT INTO pipe_t VALUES (2)") && PQpipelineSync(a) == 1;
	res = pipeline_results(a, 1, 15000);
	h_is_str(res, "BEGIN,INSERT 0 1,E22012,ABORTED,SYNC",
	         "pipeline: an error inside BEGIN aborts the rest of the batch");
	h_ok(PQtransactionStatus(a) == PQTRANS_INERROR, "pipeline: ... the transaction is failed");
	PQsendQuery(b, "SELECT 'b2'");
	h_ok(h_still_busy_after(b, 700),
	     "pipeline: ... and the failed transaction keeps its server");
	send_q(a, "ROLLBACK");
	PQpipelineSync(a);
	res = pipeline_results(a, 1, 15000);
	h_is_str(res, "ROLLBACK,SYNC", "pipeline: ROLLBACK in the pipeline");
	h_is_str(h_async_value(b, 10000), "b2", "pipeline: ... then the other client runs");
	PQexitPipelineMode(a);
	PQfinish(a);
	PQfinish(b);
}

/* Values of DataRows (first column) and types, read up to NZ ReadyForQuery. */
struct rec {
	const char *seq;
};

static void rec_msg(const struct h_bmsg *m, void *arg)
{
	struct rec *r = arg;
	const char *item;

	if (m->type == 'D' && m->n >= 6) {
		uint32_t len = h_be32(m->body + 2);

		item = h_fmt("D:%.*s", len == 0xffffffffu ? 0 : (int)len, m->body + 6);
	} else if (m->type == 'C') {
		item = h_fmt("C:%s", m->body);
	} else if (m->type == 'E') {
		item = h_fmt("E:%s", h_bmsg_field(m, 'C'));
	} else if (m->type == 'Z') {
		item = h_fmt("Z%c", m->n ? m->body[0] : '?');
	} else {
		item = h_fmt("%c", m->type);
	}
	r->seq = h_fmt("%s%s%s", r->seq, *r->seq ? " " : "", item);
}

static bool raw_login(struct h_conn *c, const char *db)
{
	const char *kv[] = {"user", "alice", "database", db, NULL};

	return h_conn_login(c, h_lease_port(), kv, NULL, NULL, NULL, NULL);
}

/* 50 batches sent at once on A (and a query on B, if any, right after); A's replies. */
static const char *run50(struct h_conn *a, struct h_conn *b)
{
	struct h_wbuf w = {0};
	struct rec ra = {""};
	int nz = 0;

	for (int i = 0; i < 50; i++) {
		const char *v = h_fmt("%d", i);

		h_wb_parse(&w, "", i == 20 ? "SELECT 1/($1::int - 20)" : "SELECT $1::int");
		h_wb_bind(&w, "", "", 1, &v);
		h_wb_execute(&w, "", 0);
		h_wb_sync(&w);
	}
	h_wb_send(a->fd, &w);
	if (b != NULL) {
		h_wb_query(&w, "SELECT 'b50'");
		h_wb_send(b->fd, &w);
	}
	h_wb_free(&w);
	nz = h_conn_until_ready(a, 50, 20000, rec_msg, &ra);
	if (nz <= 0)
		tap_diag("run50: not all ReadyForQuery arrived");
	return ra.seq;
}

static void raw_pipelines(void)
{
	struct h_conn a, b;
	struct h_wbuf w = {0};
	struct h_bmsg m;
	struct rec ra = {""}, rb = {""};
	const char *want;
	int r;

	if (!h_ok(raw_login(&a, "one") && raw_login(&b, "one"), "pipeline: raw logins"))
		return;
	/* Flush without Sync: replies come, the server stays with A. */
	h_wb_parse(&w, "", "SELECT 'f1'");
	h_wb_bind(&w, "", "", 0, NULL);
	h_wb_execute(&w, "", 0);
	h_wb_flush(&w);
	h_wb_send(a.fd, &w);
	do {
		r = h_conn_read(&a, &m, 10000);
		if (r == 1)
			rec_msg(&m, &ra);
	} while (r == 1 && m.type != 'C');
	h_is_str(ra.seq, "1 2 D:f1 C:SELECT 1", "pipeline: Flush without Sync returns the replies");
	h_wb_query(&w, "SELECT 'b'");
	h_wb_send(b.fd, &w);
	h_ok(h_conn_read(&b, &m, 700) == -1,
	     "pipeline: ... and keeps the server: another client's query waits");
	h_wb_sync(&w);
	h_wb_send(a.fd, &w);
	ra.seq = "";
	h_conn_until_ready(&a, 1, 10000, rec_msg, &ra);
	h_is_str(ra.seq, "ZI", "pipeline: Sync then ends A's request");
	h_conn_until_ready(&b, 1, 10000, rec_msg, &rb);
	h_is_str(rb.seq, "T D:b C:SELECT 1 ZI", "pipeline: ... and the waiting client runs");

	/* 50 batches at once, the second client queued in the middle. */
	rb.seq = "";
	want = run50(&a, &b);
	{
		struct h_conn d;
		const char *kv[] = {"user", "trustuser", "database", "testdb", NULL};

		if (h_conn_login(&d, h_pg_port(), kv, NULL, NULL, NULL, NULL)) {
			const char *direct = run50(&d, NULL);

			h_is_str(want, direct,
			         "pipeline: 50 Parse/Bind/Execute/Sync batches in flight, one "
			         "failing, all answered in order as PostgreSQL answers them");
			h_conn_close(&d);
		}
	}
	h_conn_until_ready(&b, 1, 10000, rec_msg, &rb);
	h_is_str(rb.seq, "T D:b50 C:SELECT 1 ZI",
	         "pipeline: ... and the other client's query is answered on its own");
	h_wb_free(&w);
	h_conn_close(&a);
	h_conn_close(&b);
}

/* ---- COPY -------------------------------------------------------------- */

#define COPY_ROWS 100000

static void copy_tests(void)
{
	PGconn *c = conn("one"), *b = conn("one"), *d = direct();
	PGresult *r;
	char line[128];
	bool ok = true;
	long long sum = 0, rows = 0, bytes = 0, want_bytes = 0;
	char *buf;
	int n;

	h_exec(d, "DROP TABLE IF EXISTS copy_t; CREATE TABLE copy_t (id int, payload text)");
	r = PQexec(c, "COPY copy_t FROM STDIN");
	ok = PQresultStatus(r) == PGRES_COPY_IN;
	PQclear(r);
	for (int i = 1; ok && i <= COPY_ROWS; i++) {
		int len = snprintf(line, sizeof(line),
		                   "%d\tpayload-%d-abcdefghijklmnopqrstuvwxyz\n", i, i);

		want_bytes += len;
		ok = PQputCopyData(c, line, len) == 1;
	}
	ok = ok && PQputCopyEnd(c, NULL) == 1;
	r = PQgetResult(c);
	ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK && str_eq(PQcmdTuples(r), "100000");
	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	h_ok(ok, "copy: COPY FROM STDIN of 100000 rows through pglease");
	h_is_str(h_value(d, "SELECT count(*) || ' ' || sum(id) FROM copy_t"), "100000 5000050000",
	         "copy: ... all rows arrived (count, sum)");

	r = PQexec(c, "COPY copy_t TO STDOUT");
	ok = PQresultStatus(r) == PGRES_COPY_OUT;
	PQclear(r);
	while (ok && (n = PQgetCopyData(c, &buf, 0)) > 0) {
		rows++;
		bytes += n;
		sum += atoll(buf);
		PQfreemem(buf);
	}
	r = PQgetResult(c);
	ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	h_ok(ok && rows == COPY_ROWS && sum == 5000050000LL && bytes == want_bytes,
	     "copy: COPY TO STDOUT of 100000 rows (%lld rows, %lld bytes, sum %lld)", rows, bytes,
	     sum);

	r = PQexec(c, "COPY copy_t FROM STDIN");
	PQclear(r);
	PQputCopyData(c, "1\tok\n", 5);
	PQputCopyData(c, "not-a-number\tbad\n", 17);
	PQputCopyEnd(c, NULL);
	r = PQgetResult(c);
	h_is_str(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02",
	         "copy: a bad row in COPY FROM STDIN gets PostgreSQL's error");
	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	h_ok(str_eq(h_value(b, "SELECT 'other'"), "other") &&
	         str_eq(h_value(c, "SELECT count(*) FROM copy_t"), "100000"),
	     "copy: ... the server is released and usable, nothing of the failed COPY committed");

	r = PQexec(c, "COPY copy_t FROM STDIN");
	PQclear(r);
	PQputCopyData(c, "7\tseven\n", 8);
	PQputCopyEnd(c, "client says stop");
	r = PQgetResult(c);
	h_is_str(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014",
	         "copy: CopyFail from the client ends the COPY with 57014");
	PQclear(r);
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	h_is_str(h_value(b, "SELECT count(*) FROM copy_t"), "100000",
	         "copy: ... and the server works for the next client");
	PQfinish(c);
	PQfinish(b);
	PQfinish(d);
}

/* ---- large data -------------------------------------------------------- */

static void large_tests(void)
{
	PGconn *c = conn("one"), *b = conn("one");
	PGresult *r;
	long long total = 0;
	bool ok;
	size_t big = 20u * 1024 * 1024;
	char *val;

	/* 52429 rows of 1000+ bytes: a little over 50 MB. */
	r = PQexec(c, "SELECT g, repeat('x', 1000) FROM generate_series(1, 52429) g");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 52429;
	for (int i = 0; ok && i < PQntuples(r); i++) {
		total += PQgetlength(r, i, 1);
		ok = atoi(PQgetvalue(r, i, 0)) == i + 1;
	}
	PQclear(r);
	h_ok(ok && total == 52429000LL, "large: a 50 MB result arrives whole and in order (%lld)",
	     total);
	h_is_str(h_value(b, "SELECT 'next'"), "next", "large: ... and the server is released");

	val = malloc(big + 1);
	if (val == NULL)
		h_bail("out of memory");
	for (size_t i = 0; i < big; i++)
		val[i] = (char)('a' + i % 26);
	val[big] = '\0';
	{
		const char *params[] = {val};

		r = PQexecParams(c, "SELECT length($1::text), md5($1::text), $1::text", 1, NULL,
		                 params, NULL, NULL, 0);
	}
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	     atoll(PQgetvalue(r, 0, 0)) == (long long)big && (size_t)PQgetlength(r, 0, 2) == big &&
	     memcmp(PQgetvalue(r, 0, 2), val, big) == 0;
	if (!h_ok(ok, "large: a 20 MB parameter goes in and the same 20 MB value comes back"))
		tap_diag("status %s %s", PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
	PQclear(r);
	free(val);
	PQfinish(c);
	PQfinish(b);
}

/* ---- asynchronous and unusual messages --------------------------------- */

static void on_notice(void *arg, const PGresult *r)
{
	const char **out = arg;
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *s = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);

	*out = h_fmt("%s%s%s:%s", *out, **out ? "|" : "", s ? s : "?", m ? m : "?");
}

static const char *wait_notify(PGconn *c, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;

	for (;;) {
		PGnotify *n;

		PQconsumeInput(c);
		n = PQnotifies(c);
		if (n != NULL) {
			const char *s = h_fmt("%s:%s", n->relname, n->extra);

			PQfreemem(n);
			return s;
		}
		if (h_now_ms() > deadline)
			return "none";
		{
			struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

			poll(&p, 1, 100);
		}
	}
}

static void async_tests(void)
{
	PGconn *c = conn("one"), *b;
	const char *notices = "";
	PGresult *r;

	PQsetNoticeReceiver(c, on_notice, &notices);
	h_exec(c, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$");
	h_is_str(notices, "NOTICE:hello 42|WARNING:careful",
	         "async: NoticeResponse (RAISE NOTICE / WARNING in DO) reaches the client");
	notices = "";
	h_exec(c, "DROP TABLE IF EXISTS no_such_table_here");
	h_is_str(notices, "NOTICE:table \"no_such_table_here\" does not exist, skipping",
	         "async: a notice from a utility statement reaches the client");

	h_exec(c, "SET application_name = 'mid_session'");
	h_is_str(PQparameterStatus(c, "application_name"), "mid_session",
	         "async: ParameterStatus after SET reaches the client");
	h_exec(c, "SELECT set_config('application_name', 'via_function', false)");
	h_is_str(PQparameterStatus(c, "application_name"), "via_function",
	         "async: ParameterStatus after set_config() reaches the client");

	r = PQexec(c, "BEGIN; LISTEN self_ch; NOTIFY self_ch, 'to me'; COMMIT");
	PQclear(r);
	h_is_str(wait_notify(c, 3000), "self_ch:to me",
	         "async: NotificationResponse to oneself in transaction mode");
	h_exec(c, "UNLISTEN *");

	{
		const char *oid = h_value(c, "SELECT 'int4pl'::regproc::oid");
		PQArgBlock args[2];
		int result = 0, rlen = 0;

		args[0].len = 4;
		args[0].isint = 1;
		args[0].u.integer = 2;
		args[1].len = 4;
		args[1].isint = 1;
		args[1].u.integer = 40;
		r = PQfn(c, oid ? atoi(oid) : 0, &result, &rlen, 1, args, 2);
		h_ok(PQresultStatus(r) == PGRES_COMMAND_OK && result == 42,
		     "async: FunctionCall (PQfn int4pl(2, 40)) outside a transaction = %d", result);
		PQclear(r);
	}
	{
		char data[65536], back[65536];
		Oid lo;
		int fd, wrote = 0, got = 0;

		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (char)(i * 7);
		h_exec(c, "BEGIN");
		lo = lo_creat(c, INV_READ | INV_WRITE);
		fd = lo_open(c, lo, INV_READ | INV_WRITE);
		for (int i = 0; i < 16; i++)
			wrote += lo_write(c, fd, data, sizeof(data));
		lo_lseek(c, fd, 65536, SEEK_SET);
		got = lo_read(c, fd, back, sizeof(back));
		lo_close(c, fd);
		h_exec(c, "COMMIT");
		h_ok(lo != 0 && wrote == 16 * 65536 && got == 65536 &&
		         memcmp(data, back, sizeof(data)) == 0,
		     "async: large objects (FunctionCall lo_*) inside a transaction");
		h_is_str(h_value(c, h_fmt("SELECT length(lo_get(%u))", lo)), "1048576",
		         "async: ... the large object was committed");
		h_exec(c, h_fmt("SELECT lo_unlink(%u)", lo));
	}

	r = PQexec(c, "");
	h_is_str(PQresStatus(PQresultStatus(r)), "PGRES_EMPTY_QUERY",
	         "async: EmptyQueryResponse for an empty simple query");
	PQclear(r);
	r = PQexec(c, ";");
	h_is_str(PQresStatus(PQresultStatus(r)), "PGRES_EMPTY_QUERY",
	         "async: EmptyQueryResponse for \";\"");
	PQclear(r);
	r = PQexecParams(c, "", 0, NULL, NULL, NULL, NULL, 0);
	h_is_str(PQresStatus(PQresultStatus(r)), "PGRES_EMPTY_QUERY",
	         "async: EmptyQueryResponse over the extended protocol");
	PQclear(r);
	h_is_str(h_value(c, "SELECT 'fine'"), "fine", "async: the client still works");
	PQfinish(c);

	/* Session mode: a notification from another client. */
	c = conn("sess2");
	b = conn("sess2");
	h_exec(c, "LISTEN news");
	h_exec(b, "NOTIFY news, 'extra extra'");
	h_is_str(wait_notify(c, 5000), "news:extra extra",
	         "async: NotificationResponse from another client in session mode");
	h_exec(b, "SELECT pg_notify('news', 'second')");
	h_is_str(wait_notify(c, 5000), "news:second",
	         "async: ... a second one while the listener is idle");
	PQfinish(c);
	PQfinish(b);
}

/* ---- COPY BOTH (physical replication) ---------------------------------- */

static int64_t now_pg_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec - 946684800LL) * 1000000 + ts.tv_nsec / 1000;
}

static void put64(char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (char)(v & 0xff);
		v >>= 8;
	}
}

/* One replication session on PORT; the steps it got through, for comparison. */
static const char *copy_both_run(int port)
{
	const char *kv[] = {"user", "trustuser", "database", "testdb", "replication", "true", NULL};
	struct h_conn c;
	struct h_wbuf w = {0};
	struct h_bmsg m;
	char sqlstate[6];
	const char *xlogpos = NULL, *tli = NULL, *steps = "login";
	int r;

	if (!h_conn_login(&c, port, kv, NULL, sqlstate, NULL, NULL))
		return h_fmt("login failed %s", sqlstate);
	h_wb_query(&w, "IDENTIFY_SYSTEM");
	h_wb_send(c.fd, &w);
	while ((r = h_conn_read(&c, &m, 10000)) == 1 && m.type != 'Z') {
		if (m.type == 'D') {
			/* systemid, timeline, xlogpos, dbname */
			const char *p = m.body + 2;
			const char *vals[4] = {NULL};

			for (int i = 0; i < 4 && p < m.body + m.n; i++) {
				uint32_t len = h_be32(p);

				p += 4;
				if (len == 0xffffffffu)
					continue;
				vals[i] = h_fmt("%.*s", (int)len, p);
				p += len;
			}
			tli = vals[1];
			xlogpos = vals[2];
		}
	}
	if (r != 1 || xlogpos == NULL || tli == NULL) {
		h_conn_close(&c);
		return h_fmt("%s, no IDENTIFY_SYSTEM answer", steps);
	}
	steps = h_fmt("%s, identify", steps);
	h_wb_query(&w, h_fmt("START_REPLICATION %s TIMELINE %s", xlogpos, tli));
	h_wb_send(c.fd, &w);
	r = h_conn_read(&c, &m, 10000);
	if (r != 1 || m.type != 'W') {
		h_conn_close(&c);
		h_wb_free(&w);
		return h_fmt("%s, no CopyBothResponse (%c)", steps, r == 1 ? m.type : '-');
	}
	steps = h_fmt("%s, copyboth", steps);
	{
		char su[34];

		su[0] = 'r';
		put64(su + 1, 0);
		put64(su + 9, 0);
		put64(su + 17, 0);
		put64(su + 25, (uint64_t)now_pg_usec());
		su[33] = 1; /* reply requested */
		h_wb_copy_data(&w, su, sizeof(su));
		h_wb_send(c.fd, &w);
	}
	while ((r = h_conn_read(&c, &m, 10000)) == 1) {
		if (m.type == 'd' && m.n > 0 && (m.body[0] == 'k' || m.body[0] == 'w'))
			break;
	}
	if (r != 1) {
		h_conn_close(&c);
		h_wb_free(&w);
		return h_fmt("%s, no keepalive", steps);
	}
	steps = h_fmt("%s, keepalive", steps);
	h_wb_copy_done(&w);
	h_wb_send(c.fd, &w);
	{
		bool got_done = false;

		while ((r = h_conn_read(&c, &m, 10000)) == 1 && m.type != 'Z')
			got_done = got_done || m.type == 'c';
		if (r == 1 && got_done)
			steps = h_fmt("%s, copydone, ready", steps);
	}
	h_wb_free(&w);
	h_conn_close(&c);
	return steps;
}

static void copy_both(void)
{
	const char *want = "login, identify, copyboth, keepalive, copydone, ready";

	h_pg_exec("ALTER ROLE trustuser REPLICATION");
	h_pg_hba_add("host replication trustuser 127.0.0.1/32 trust");
	if (!str_eq(copy_both_run(h_pg_port()), want))
		tap_diag("direct replication run did not complete: %s", copy_both_run(h_pg_port()));
	h_is_str(copy_both_run(h_lease_port()), want,
	         "copyboth: a replication=true connection through pglease streams "
	         "(CopyBothResponse, CopyData both ways, CopyDone)");
}

int main(void)
{
	h_init(600);
	h_pg_start();
	h_lease_config("trust",
	               h_fmt("%s%s%s%s%s", h_db_testdb(), h_db_line("one", "testdb", "pool_size=1"),
	                     h_db_line("two", "testdb", "pool_size=2"),
	                     h_db_line("stmt1", "testdb", "pool_size=1 pool_mode=statement"),
	                     h_db_line("sess2", "testdb", "pool_size=2 pool_mode=session")),
	               "pool_mode = transaction\nmax_client_conn = 100\n",
	               h_fmt("%s%s", h_userlist_line("alice", "alicepw"),
	                     h_userlist_line("trustuser", "trustpw")));
	h_lease_start();

	if (want("stmt"))
		statement_mode();
	if (want("pipeline")) {
		libpq_pipeline();
		raw_pipelines();
	}
	if (want("copy"))
		copy_tests();
	if (want("large"))
		large_tests();
	if (want("async"))
		async_tests();
	if (want("copyboth"))
		copy_both();

	h_ok(h_lease_alive(), "end: pglease is alive");
	h_lease_stop_ok("end");
	return tap_done();
}
