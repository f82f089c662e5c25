/*
 * e2e_pool: how many server connections a pool opens, keeps and closes.
 *
 * Every scenario logs in as its own role so that PostgreSQL's pg_stat_activity
 * (read directly, as the superuser) counts exactly the server connections of
 * one pool or one group of pools.  Transaction mode throughout; waits are
 * bounded polls, never timing assertions beyond "not within N s" / "within N s".
 *
 * Plan (points are numbered as they run; the groups are):
 *   overflow   pool_size=2 max_overflow=2: four open transactions get four
 *              distinct backends, a fifth client's query waits (never more than
 *              four backends) and is served when one ends; with no client
 *              waiting the overflow servers are closed at release, so the count
 *              returns to 2; a second burst does it again (slots given back).
 *   reserve    pool_size=2 reserve_pool_size=1 reserve_pool_timeout=1: a third
 *              concurrent transaction is not served at once, then gets a third
 *              backend while both others still hold theirs; without a reserve
 *              it keeps waiting until a release.
 *   min_pool   min_pool_size=3: after one client came and left three backends
 *              stay open; pg_terminate_backend() of all three: replaced.
 *   db cap     max_db_connections=2 shared by two users' pools of one database
 *              entry: never more than two backends; a waiting client of one
 *              user is served when the other user's transaction ends (an idle
 *              server of the other pool is closed to make room), and back.
 *   user cap   max_user_connections=2 for one user across two database entries:
 *              the same.
 *   overflow_idle_timeout=2: released overflow servers stay (and are reused)
 *              for a while, then the count returns to pool_size.
 *   end        each configuration (phase) ends with pglease exiting 0 on
 *              SIGTERM without sanitizer reports; the last is checked alive.
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const roles[] = {"p_ovf", "p_ovf2",  "p_rsv",   "p_norsv",
                                    "p_min", "p_cap_a", "p_cap_b", "p_capu"};
#define N_ROLES (sizeof(roles) / sizeof(roles[0]))

static bool str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const char *userlist(void)
{
	const char *s = "";

	for (size_t i = 0; i < N_ROLES; i++)
		s = h_fmt("%s%s", s, h_userlist_line(roles[i], "pw"));
	return s;
}

static PGconn *client(const char *db, const char *user)
{
	PGconn *c = h_connect(h_lease_conninfo(user, NULL, db));

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("login %s@%s failed: %s", user, db, PQerrorMessage(c));
	return c;
}

/* BEGIN and return the backend pid the open transaction holds (NULL on error). */
static const char *begin_pid(PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK || !h_exec(c, "BEGIN"))
		return NULL;
	return h_value(c, "SELECT pg_backend_pid()");
}

static bool send_query(PGconn *c, const char *sql)
{
	if (PQstatus(c) == CONNECTION_OK && PQsendQuery(c, sql) == 1)
		return true;
	tap_diag("cannot send \"%s\": %s", sql, PQerrorMessage(c));
	return false;
}

/* Backends of the roles in USERS (NULL terminated) in testdb, -1 on error. */
static int count_users(const char *const *users)
{
	int sum = 0;

	for (size_t i = 0; users[i]; i++) {
		int n = h_pg_backends("testdb", users[i]);

		if (n < 0)
			return -1;
		sum += n;
	}
	return sum;
}

/*
 * Wait up to MS for the query sent on C, sampling the backends of USERS every
 * ~200 ms into *MAX_SEEN (may be NULL).  1: done, *VAL its first value; 0:
 * failed (diag); -1: still running.
 */
static int finish(PGconn *c, int ms, const char *const *users, int *max_seen, const char **val)
{
	int64_t deadline = h_now_ms() + ms;

	*val = NULL;
	for (;;) {
		int64_t left = deadline - h_now_ms();
		PGresult *r = h_wait_result(c, left < 200 ? (left > 0 ? (int)left : 0) : 200);

		if (users && max_seen) {
			int n = count_users(users);

			if (n > *max_seen)
				*max_seen = n;
		}
		if (r != NULL) {
			ExecStatusType st = PQresultStatus(r);
			int ret = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;

			if (ret && PQntuples(r) > 0)
				*val = h_fmt("%s", PQgetvalue(r, 0, 0));
			if (!ret)
				tap_diag("query failed: %s", PQresultErrorMessage(r));
			PQclear(r);
			return ret;
		}
		if (PQstatus(c) == CONNECTION_BAD) {
			tap_diag("connection lost: %s", PQerrorMessage(c));
			return 0;
		}
		if (h_now_ms() >= deadline)
			return -1;
	}
}

static bool distinct(const char *const *v, int n)
{
	for (int i = 0; i < n; i++) {
		if (v[i] == NULL)
			return false;
		for (int j = 0; j < i; j++)
			if (strcmp(v[i], v[j]) == 0)
				return false;
	}
	return true;
}

static bool among(const char *v, const char *const *set, int n)
{
	for (int i = 0; i < n; i++)
		if (str_eq(v, set[i]))
			return true;
	return false;
}

static void finish_all(PGconn **c, int n)
{
	for (int i = 0; i < n; i++)
		PQfinish(c[i]);
}

/*
 * One burst on DB as USER (pool_size=2, max_overflow=2): four open
 * transactions on four backends, a fifth query waits and is served when the
 * first commits.  PIDS gets the four backend pids.  Leaves every client
 * connected and idle in *C (5 of them).
 */
static void burst(const char *db, const char *user, const char *what, PGconn **c, const char **pids)
{
	const char *users[] = {user, NULL};
	const char *val;
	int max_seen = 0, r, n;

	for (int i = 0; i < 5; i++)
		c[i] = client(db, user);
	for (int i = 0; i < 4; i++)
		pids[i] = begin_pid(c[i]);
	if (!h_ok(distinct(pids, 4), "%s: four open transactions get four distinct backends", what))
		tap_diag("pids %s %s %s %s", pids[0] ? pids[0] : "-", pids[1] ? pids[1] : "-",
		         pids[2] ? pids[2] : "-", pids[3] ? pids[3] : "-");
	n = h_pg_wait_backends("testdb", user, 4, 5000);
	if (!h_ok(n == 4, "%s: PostgreSQL has 4 backends of %s while 4 transactions are open", what,
	          user))
		tap_diag("backends: %d", n);

	r = send_query(c[4], "SELECT pg_backend_pid()") ? finish(c[4], 1500, users, &max_seen, &val)
	                                                : 0;
	if (!h_ok(r == -1 && max_seen <= 4,
	          "%s: a fifth client's query waits (pool_size + max_overflow = 4 reached, "
	          "never more than 4 backends)",
	          what))
		tap_diag("finish %d (value %s), most backends seen %d", r, val ? val : "-",
		         max_seen);
	h_exec(c[0], "COMMIT");
	if (r == -1)
		r = finish(c[4], 10000, users, &max_seen, &val);
	if (!h_ok(r == 1 && among(val, pids, 4) && max_seen <= 4,
	          "%s: when one transaction commits the fifth query runs on one of the four "
	          "backends",
	          what))
		tap_diag("finish %d, value %s, most backends seen %d", r, val ? val : "-",
		         max_seen);
	for (int i = 1; i < 4; i++)
		h_exec(c[i], "COMMIT");
}

static void overflow(void)
{
	PGconn *c[5];
	const char *pids[4];
	int n;

	for (int round = 1; round <= 2; round++) {
		const char *what = h_fmt("overflow round %d", round);

		burst("ovf", "p_ovf", what, c, pids);
		n = h_pg_wait_backends("testdb", "p_ovf", 2, 10000);
		if (!h_ok(n == 2,
		          "%s: with no client waiting the overflow servers are closed at release: "
		          "back to pool_size=2 backends",
		          what))
			tap_diag("backends of p_ovf: %d (pids %s)", n,
			         h_pg_backend_pids("testdb", "p_ovf"));
		finish_all(c, 5);
	}
}

static void overflow_idle_timeout(void)
{
	PGconn *c[5];
	const char *pids[4], *again[4];
	int n;

	burst("ovf", "p_ovf2", "overflow_idle_timeout=2", c, pids);
	h_sleep_ms(700);
	n = h_pg_backends("testdb", "p_ovf2");
	if (!h_ok(n == 4, "overflow_idle_timeout=2: released overflow servers are not closed at "
	                  "once (4 backends 0.7 s after the burst)"))
		tap_diag("backends of p_ovf2: %d", n);
	for (int i = 0; i < 4; i++)
		again[i] = begin_pid(c[i]);
	if (!h_ok(distinct(again, 4) && among(again[0], pids, 4) && among(again[1], pids, 4) &&
	              among(again[2], pids, 4) && among(again[3], pids, 4),
	          "overflow_idle_timeout=2: a new burst meanwhile reuses the same 4 backends"))
		tap_diag("first %s %s %s %s, again %s %s %s %s", pids[0] ? pids[0] : "-",
		         pids[1] ? pids[1] : "-", pids[2] ? pids[2] : "-", pids[3] ? pids[3] : "-",
		         again[0] ? again[0] : "-", again[1] ? again[1] : "-",
		         again[2] ? again[2] : "-", again[3] ? again[3] : "-");
	for (int i = 0; i < 4; i++)
		h_exec(c[i], "COMMIT");
	n = h_pg_wait_backends("testdb", "p_ovf2", 2, 10000);
	if (!h_ok(n == 2, "overflow_idle_timeout=2: then the idle overflow servers are closed: "
	                  "back to pool_size=2 backends"))
		tap_diag("backends of p_ovf2: %d", n);
	finish_all(c, 5);
}

static void reserve(void)
{
	const char *users[] = {"p_rsv", NULL};
	PGconn *c[3];
	const char *p0, *p1, *val;
	int r, n, max_seen = 0;

	for (int i = 0; i < 3; i++)
		c[i] = client("rsv", "p_rsv");
	p0 = begin_pid(c[0]);
	p1 = begin_pid(c[1]);
	/* The third holds its transaction open too (a reserve server may be closed at release). */
	r = send_query(c[2], "BEGIN; SELECT pg_backend_pid()") ? finish(c[2], 300, NULL, NULL, &val)
	                                                       : 0;
	if (!h_ok(r == -1, "reserve: a third concurrent transaction is not given a reserve "
	                   "server at once (reserve_pool_timeout=1)"))
		tap_diag("finish %d, value %s", r, val ? val : "-");
	if (r == -1)
		r = finish(c[2], 10000, users, &max_seen, &val);
	if (!h_ok(r == 1 && p0 && p1 && !str_eq(val, p0) && !str_eq(val, p1),
	          "reserve: after reserve_pool_timeout it runs on a third backend while both "
	          "others still hold theirs"))
		tap_diag("finish %d, value %s, held %s and %s", r, val ? val : "-", p0 ? p0 : "-",
		         p1 ? p1 : "-");
	n = h_pg_backends("testdb", "p_rsv");
	if (!h_ok(n == 3 && max_seen <= 3,
	          "reserve: 3 backends (pool_size 2 + reserve_pool_size 1), never more"))
		tap_diag("backends %d, most seen %d", n, max_seen);
	for (int i = 0; i < 3; i++)
		h_exec(c[i], "COMMIT");
	finish_all(c, 3);

	/* Control: the same without a reserve pool waits for a release. */
	for (int i = 0; i < 3; i++)
		c[i] = client("norsv", "p_norsv");
	p0 = begin_pid(c[0]);
	p1 = begin_pid(c[1]);
	r = send_query(c[2], "SELECT pg_backend_pid()") ? finish(c[2], 2500, NULL, NULL, &val) : 0;
	if (!h_ok(r == -1, "no reserve: the third transaction keeps waiting (2.5 s)"))
		tap_diag("finish %d, value %s", r, val ? val : "-");
	h_exec(c[0], "COMMIT");
	if (r == -1)
		r = finish(c[2], 10000, NULL, NULL, &val);
	if (!h_ok(r == 1 && (str_eq(val, p0) || str_eq(val, p1)),
	          "no reserve: served on a released backend when one commits"))
		tap_diag("finish %d, value %s, held %s and %s", r, val ? val : "-", p0 ? p0 : "-",
		         p1 ? p1 : "-");
	h_exec(c[1], "COMMIT");
	finish_all(c, 3);
}

/* True when none of the comma separated pids in NEW_ appears in OLD. */
static bool none_of(const char *new_, const char *old)
{
	char buf[1024];

	if (new_ == NULL || old == NULL)
		return false;
	snprintf(buf, sizeof(buf), "%s", new_);
	for (char *save, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		const char *q = old;
		size_t len = strlen(p);

		while ((q = strstr(q, p)) != NULL) {
			if ((q == old || q[-1] == ',') && (q[len] == ',' || q[len] == '\0'))
				return false;
			q += len;
		}
	}
	return true;
}

static void min_pool(void)
{
	PGconn *c = client("minp", "p_min");
	const char *old, *now = NULL;
	int n, killed;
	int64_t deadline;
	bool replaced = false;

	h_is_str(h_value(c, "SELECT 1"), "1", "min_pool_size=3: a client logs in and queries");
	PQfinish(c);
	n = h_pg_wait_backends("testdb", "p_min", 3, 10000);
	if (!h_ok(n == 3, "min_pool_size=3: after the client left the pool keeps 3 backends"))
		tap_diag("backends of p_min: %d", n);
	old = h_pg_backend_pids("testdb", "p_min");
	killed = h_pg_terminate("testdb", "p_min");
	deadline = h_now_ms() + 10000;
	while (!replaced && h_now_ms() < deadline) {
		h_sleep_ms(200);
		now = h_pg_backend_pids("testdb", "p_min");
		n = h_pg_backends("testdb", "p_min");
		replaced = n == 3 && none_of(now, old) && now && now[0];
	}
	if (!h_ok(killed == 3 && replaced,
	          "min_pool_size=3: pg_terminate_backend() of all three: replaced by three new "
	          "backends"))
		tap_diag("terminated %d (pids %s), now %s", killed, old ? old : "?",
		         now ? now : "?");
}

/*
 * A hard cap of 2 servers shared by pools A and B (two users of one
 * database entry, or one user on two entries): A1 and B1 hold transactions,
 * A2 waits and is served when B1 commits; then B1 is served while A holds
 * both idle servers.  USERS are the roles to count.
 */
static void hard_cap(const char *what, const char *db_a, const char *user_a, const char *db_b,
                     const char *user_b, const char *const *users)
{
	PGconn *a1 = client(db_a, user_a), *b1 = client(db_b, user_b), *a2 = client(db_a, user_a);
	const char *pa = begin_pid(a1), *pb = begin_pid(b1), *val;
	int max_seen = 0, r;

	h_ok(pa && pb, "%s: %s and %s each hold a transaction", what, user_a, user_b);
	r = send_query(a2, "SELECT pg_backend_pid()") ? finish(a2, 2000, users, &max_seen, &val)
	                                              : 0;
	if (!h_ok(r == -1 && max_seen <= 2, "%s: a third client waits, never more than 2 backends",
	          what))
		tap_diag("finish %d (value %s), most backends seen %d", r, val ? val : "-",
		         max_seen);
	h_exec(b1, "COMMIT");
	if (r == -1)
		r = finish(a2, 10000, users, &max_seen, &val);
	if (!h_ok(r == 1 && max_seen <= 2,
	          "%s: it is served when the other pool's transaction ends, still at most 2 "
	          "backends",
	          what))
		tap_diag("finish %d (value %s), most backends seen %d", r, val ? val : "-",
		         max_seen);
	h_exec(a1, "COMMIT");
	/* Both servers may now be idle in A's pool: B must still get one. */
	r = send_query(b1, "SELECT pg_backend_pid()") ? finish(b1, 10000, users, &max_seen, &val)
	                                              : 0;
	if (!h_ok(r == 1 && max_seen <= 2,
	          "%s: the other pool is served again afterwards, still at most 2 backends", what))
		tap_diag("finish %d (value %s), most backends seen %d", r, val ? val : "-",
		         max_seen);
	PQfinish(a1);
	PQfinish(a2);
	PQfinish(b1);
}

static const char *databases(void)
{
	return h_fmt("%s%s%s%s%s%s%s", h_db_line("ovf", "testdb", "pool_size=2 max_overflow=2"),
	             h_db_line("rsv", "testdb", "pool_size=2 reserve_pool_size=1"),
	             h_db_line("norsv", "testdb", "pool_size=2"),
	             h_db_line("minp", "testdb", "pool_size=5 min_pool_size=3"),
	             h_db_line("capdb", "testdb", "pool_size=5 max_db_connections=2"),
	             h_db_line("u1", "testdb", "pool_size=5"),
	             h_db_line("u2", "testdb", "pool_size=5"));
}

#define COMMON "pool_mode = transaction\nmax_client_conn = 200\nquery_wait_timeout = 60\n"

int main(void)
{
	static const char *const cap_db[] = {"p_cap_a", "p_cap_b", NULL};
	static const char *const cap_user[] = {"p_capu", NULL};

	h_init(400);
	h_pg_start();
	for (size_t i = 0; i < N_ROLES; i++)
		if (!h_pg_exec(h_fmt("CREATE ROLE %s LOGIN PASSWORD 'pw'", roles[i])))
			h_bail("cannot create role %s", roles[i]);

	if (h_lease_phase("pool_size/max_overflow/reserve/min_pool_size/caps", "trust", databases(),
	                  COMMON "reserve_pool_timeout = 1\n"
	                         "[users]\np_capu = max_user_connections=2\n",
	                  userlist())) {
		overflow();
		reserve();
		min_pool();
		hard_cap("max_db_connections=2", "capdb", "p_cap_a", "capdb", "p_cap_b", cap_db);
		hard_cap("max_user_connections=2", "u1", "p_capu", "u2", "p_capu", cap_user);
		h_ok(h_lease_alive(), "pglease is alive after the pool sizing scenarios");
	}
	if (h_lease_phase("overflow_idle_timeout = 2", "trust", databases(),
	                  COMMON "overflow_idle_timeout = 2\n", userlist()))
		overflow_idle_timeout();
	h_lease_phase_end();
	return tap_done();
}
