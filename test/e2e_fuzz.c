/*
 * e2e_fuzz: random, mostly well-formed frontend traffic that breaks off at
 * random points, in every pool mode.  Whatever a client sends, other clients
 * must not pay: pglease stays up, the next normal client is answered, the
 * pools' counters and descriptors return to rest, no sanitizer report.
 *
 * Each round logs in over a raw socket (or sends garbage instead of a
 * startup packet), sends 1-20 messages drawn from: simple queries (COPY,
 * transactions, errors, large results, PREPARE/DEALLOCATE/DISCARD), Parse/
 * Bind/Execute/Describe/Close/Sync/Flush with named and unnamed statements,
 * FunctionCall, CopyData/CopyDone/CopyFail, and damaged messages (cut-short
 * bodies, lengths from 0 to 2 GB, random bytes); reads a little now and then;
 * and closes, often in the middle of a reply.  A round that sends a message
 * cut short (its length word promising more) leaves right after it: the
 * server must not be pooled holding half a message (this is how the bug
 * fixed in 9ced606 was found; with pool_size=1 it stalls the pool).
 *
 * PGL_FUZZ_SEED and PGL_FUZZ_ROUNDS (per mode) override the fixed defaults;
 * a failure prints the seed and the round to replay.
 *
 * Plan, per pool mode (session, transaction, statement; pool_size=1):
 *   1  after every 10 rounds and at the end a libpq client's query is answered
 *   then: pglease alive; SHOW POOLS back to rest (no client, no active,
 *   tested or logging-in server); open fds = baseline + open servers; clean
 *   exit on SIGTERM without sanitizer reports.
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

#define rnd h_rand

static const char *pick(const char *const *v, size_t n)
{
	return v[rnd((uint32_t)n)];
}
#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

static const char *const queries[] = {
    "SELECT 1",
    "SELECT $1::int",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELECT pg_sleep(0.01)",
    "bogus",
    "",
    "SET DateStyle = German",
    "COPY (SELECT generate_series(1, 50)) TO STDOUT",
    "COPY fz FROM STDIN",
    "DEALLOCATE ALL",
    "DISCARD ALL",
    "SELECT repeat('x', 200000)",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "LISTEN fz; NOTIFY fz",
    "SELECT 1; SELECT 1/0; SELECT 2",
    "BEGIN; SELECT 1/0",
};
static const char *const names[] = {"",
                                    "",
                                    "s1",
                                    "s2",
                                    "PGL_1",
                                    "a_statement_name_that_is_much_longer_than_63_bytes_"
                                    "of_postgresql_identifiers"};

/* Some random bytes of length up to MAX. */
static size_t random_bytes(char *b, size_t max)
{
	size_t n = rnd((uint32_t)max + 1);

	for (size_t i = 0; i < n; i++)
		b[i] = (char)rnd(256);
	return n;
}

static size_t put_str(char *b, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(b, s, n);
	return n;
}

static size_t put16(char *b, uint16_t v)
{
	b[0] = (char)(v >> 8);
	b[1] = (char)v;
	return 2;
}

/* One message (or damage) into W; true when it is cut short (the round then
 * sends it and leaves: a client gone in the middle of a message). */
static bool random_msg(struct h_wbuf *w)
{
	static const char types[] = "PBEDSHCQFdcfQQPBES";
	char body[512];
	size_t n = 0;
	uint32_t k = rnd(100);
	char t;

	if (k < 6) { /* bytes that are no message at all */
		h_wb_raw(w, body, random_bytes(body, 40));
		return false;
	}
	if (k < 10) { /* a header with a strange length, a few body bytes */
		static const uint32_t lens[] = {0, 3, 4, 5, 1u << 20, 0x7fffffffu, 64};
		char hdr[5];

		hdr[0] = "PBEDSHCQFdcfXp"[rnd(14)];
		h_put32(hdr + 1, lens[rnd(7)]);
		h_wb_raw(w, hdr, sizeof(hdr));
		h_wb_raw(w, body, random_bytes(body, 20));
		return false;
	}
	t = types[rnd(sizeof(types) - 1)];
	switch (t) {
	case 'Q':
		h_wb_query(w, PICK(queries));
		return false;
	case 'P': {
		uint16_t np = (uint16_t)(rnd(4) == 3 ? 0xffff : rnd(3));

		n += put_str(body + n, PICK(names));
		n += put_str(body + n, PICK(queries));
		n += put16(body + n, np);
		for (uint16_t i = 0; i < np && i < 3; i++) {
			h_put32(body + n, rnd(2) ? 23 : 0);
			n += 4;
		}
		break;
	}
	case 'B':
		n += put_str(body + n, PICK(names));
		n += put_str(body + n, PICK(names));
		n += put16(body + n, 0);
		if (rnd(2)) {
			n += put16(body + n, 1);
			h_put32(body + n, rnd(3) == 0 ? 0xffffffffu : 1);
			n += 4;
			body[n++] = '7';
		} else {
			n += put16(body + n, 0);
		}
		n += put16(body + n, 0);
		break;
	case 'E':
		n += put_str(body + n, PICK(names));
		h_put32(body + n, rnd(2));
		n += 4;
		break;
	case 'D':
	case 'C':
		body[n++] = "SPZ"[rnd(3)];
		n += put_str(body + n, PICK(names));
		break;
	case 'F':
		h_put32(body, rnd(2) ? 1598 : 99999); /* 1598: md5(text) */
		n = 4;
		n += put16(body + n, 0);
		n += put16(body + n, rnd(2));
		if (body[n - 1]) {
			h_put32(body + n, 3);
			n += 4;
			memcpy(body + n, "abc", 3);
			n += 3;
		}
		n += put16(body + n, 0);
		break;
	case 'd':
		n = random_bytes(body, 50);
		break;
	case 'f':
		n = put_str(body, "fuzz says stop");
		break;
	default: /* S, H, c: empty bodies */
		break;
	}
	if (rnd(5) == 0 && n > 0) { /* cut short: the length word says more */
		char hdr[5] = {t};

		h_put32(hdr + 1, (uint32_t)n + 4);
		h_wb_raw(w, hdr, sizeof(hdr));
		h_wb_raw(w, body, rnd((uint32_t)n));
		return true;
	}
	h_wb_msg(w, t, body, n);
	return false;
}

/* Read and drop what arrives until nothing comes for QUIET_MS; false on EOF. */
static bool drain(int fd, int quiet_ms)
{
	char buf[65536];
	struct pollfd p = {fd, POLLIN, 0};

	for (;;) {
		int r = poll(&p, 1, quiet_ms);
		ssize_t n;

		if (r <= 0)
			return true;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return n < 0 && errno == EAGAIN;
	}
}

static void fuzz_round(const char *db)
{
	int fd = h_raw_connect(h_lease_port());
	struct h_wbuf w = {0};
	char st[6];
	uint32_t nmsg;

	if (fd == -1)
		return;
	if (rnd(20) == 0) {
		char junk[64];
		size_t n = random_bytes(junk, sizeof(junk));

		h_raw_send(fd, junk, n);
		drain(fd, 20);
		close(fd);
		return;
	}
	if (!h_raw_login(fd, "alice", NULL, db, st)) {
		close(fd);
		return;
	}
	nmsg = 1 + rnd(20);
	for (uint32_t i = 0; i < nmsg; i++) {
		bool cut = random_msg(&w);

		if (cut) {
			h_wb_send(fd, &w);
			break;
		}
		if (rnd(3) == 0 || i + 1 == nmsg) {
			if (!h_wb_send(fd, &w) || (rnd(2) && !drain(fd, 5)))
				break;
		}
	}
	if (rnd(2))
		drain(fd, 20);
	h_wb_free(&w);
	close(fd);
}

/* A normal client's query on DB is answered within 10 s. */
static bool answered(const char *db)
{
	PGconn *c = h_connect(h_lease_conninfo("alice", NULL, db));
	PGresult *r = NULL;
	bool ok;

	if (PQstatus(c) == CONNECTION_OK && PQsendQuery(c, "SELECT 'answered'") == 1)
		r = h_wait_result(c, 10000);
	ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
	     strcmp(PQgetvalue(r, 0, 0), "answered") == 0;
	if (!ok)
		tap_diag("%s: a normal client was not answered: %s", db,
		         r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok;
}

static void fuzz_mode(const char *db, uint64_t seed, int rounds)
{
	int bad = 0;

	h_rand_seed(seed);
	for (int i = 1; i <= rounds; i++) {
		fuzz_round(db);
		if ((i % 10 == 0 || i == rounds) && !answered(db)) {
			tap_diag("%s: replay with PGL_FUZZ_SEED=%llu PGL_FUZZ_ROUNDS=%d", db,
			         (unsigned long long)seed, i);
			bad++;
		}
	}
	h_is_int(bad, 0,
	         h_fmt("%s: %d fuzz rounds (seed %llu); a normal client answered after every 10",
	               db, rounds, (unsigned long long)seed));
}

/* "cl_active/cl_waiting/sv_active/sv_tested/sv_login" of pool DB. */
static const char *pool_state(PGconn *adm, const char *db)
{
	static const char *const cols[] = {"cl_active", "cl_waiting", "sv_active", "sv_tested",
	                                   "sv_login"};
	const char *out = "";

	for (int i = 0; i < 5; i++) {
		const char *v = h_cell(adm, "SHOW POOLS", "database", db, cols[i]);

		out = h_fmt("%s%s%s", out, i ? "/" : "", v ? v : "?");
	}
	return out;
}

static int count_of(PGconn *adm, const char *db, const char *col)
{
	const char *v = h_cell(adm, "SHOW POOLS", "database", db, col);

	return v ? atoi(v) : 0;
}

int main(void)
{
	static const char *const dbs[] = {"fz_session", "fz_transaction", "fz_statement"};
	const char *env_seed = getenv("PGL_FUZZ_SEED"), *env_rounds = getenv("PGL_FUZZ_ROUNDS");
	uint64_t seed = env_seed ? strtoull(env_seed, NULL, 10) : 20261204;
	int rounds = env_rounds ? atoi(env_rounds) : 300;
	int base, fds, servers = 0;
	PGconn *adm, *d;

	h_init(600);
	h_pg_start();
	d = h_connect(h_pg_conninfo("alice", "alicepw", "testdb"));
	h_exec(d, "CREATE TABLE fz (a int)");
	PQfinish(d);
	h_lease_config(
	    "trust",
	    h_fmt("%s%s%s", h_db_line("fz_session", "testdb", "pool_size=1 pool_mode=session"),
	          h_db_line("fz_transaction", "testdb", "pool_size=1 pool_mode=transaction"),
	          h_db_line("fz_statement", "testdb", "pool_size=1 pool_mode=statement")),
	    "admin_users = alice\nquery_wait_timeout = 20\nlog_connections = 0\n"
	    "log_disconnections = 0\n",
	    h_userlist_line("alice", "alicepw"));
	h_lease_start();
	h_sleep_ms(300); /* the harness's probe of the port is closed by then */
	base = h_lease_fd_count();

	for (size_t i = 0; i < 3; i++)
		fuzz_mode(dbs[i], seed + i, rounds);

	h_ok(h_lease_alive(), "pglease is alive after the fuzzing");
	adm = h_connect(h_lease_conninfo("alice", NULL, "pgbouncer"));
	for (size_t i = 0; i < 3; i++) {
		const char *st = "";

		for (int t = 0; t < 50; t++) {
			st = pool_state(adm, dbs[i]);
			if (strcmp(st, "0/0/0/0/0") == 0)
				break;
			h_sleep_ms(100);
		}
		h_is_str(st, "0/0/0/0/0",
		         h_fmt("%s: SHOW POOLS at rest "
		               "(cl_active/cl_waiting/sv_active/sv_tested/sv_login)",
		               dbs[i]));
		servers += count_of(adm, dbs[i], "sv_idle") + count_of(adm, dbs[i], "sv_used");
	}
	PQfinish(adm);
	fds = h_lease_wait_fds(base + servers, 5000);
	h_ok(fds == base + servers, "open fds: %d at start + %d servers now open = %d", base,
	     servers, fds);
	h_lease_stop_ok("end");
	return tap_done();
}
