/*
 * e2e_pool_clients: limits on client connections.
 *
 * Plan (each group runs pglease with its own configuration):
 *   max_client_conn=3       three clients get in, the fourth gets SQLSTATE 53300
 *                           "no more connections allowed (max_client_conn)";
 *                           after one leaves a new one gets in.
 *   max_db_client_connections=2 on a database entry: the third client of that
 *                           database gets 53300 naming max_db_client_connections,
 *                           another database still admits clients; after one
 *                           leaves a new one gets in.
 *   max_db_client_connections=2 in [pgbouncer]: the same for every database.
 *   max_user_client_connections=2 in [users]: the third client of that user
 *                           (on any database) gets 53300 naming
 *                           max_user_client_connections, another user gets in;
 *                           after one leaves a new one gets in.
 *   max_user_client_connections=2 in [pgbouncer]: the same for every user.
 *   end                     each configuration (phase) ends with pglease exiting 0 on
 *                           SIGTERM without sanitizer reports; the last is checked alive.
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *userlist(void)
{
	return h_fmt("%s%s", h_userlist_line("alice", "alicepw"), h_userlist_line("bob", "bobpw"));
}

static const char *databases(void)
{
	return h_fmt("%s%s%s", h_db_testdb(),
	             h_db_line("lim", "testdb", "max_db_client_connections=2"),
	             h_db_line("other", "testdb", NULL));
}

static PGconn *client(const char *db, const char *user)
{
	return h_connect(h_lease_conninfo(user, NULL, db));
}

/* A client that logged in and can run a query. */
static bool works(PGconn *c)
{
	const char *v;

	if (PQstatus(c) != CONNECTION_OK) {
		tap_diag("login failed: %s", PQerrorMessage(c));
		return false;
	}
	v = h_value(c, "SELECT 1");
	return v != NULL && strcmp(v, "1") == 0;
}

/* The login of C was refused with 53300 and a message containing WORD. */
static bool refused(PGconn *c, const char *word)
{
	const char *msg = PQerrorMessage(c);
	bool ok = PQstatus(c) == CONNECTION_BAD && strcmp(h_conn_sqlstate(c), "53300") == 0 &&
	          strstr(msg, word) != NULL;

	if (!ok)
		tap_diag("status %s, error: %s",
		         PQstatus(c) == CONNECTION_OK ? "CONNECTION_OK" : "CONNECTION_BAD",
		         msg[0] ? msg : "(none)");
	return ok;
}

/* Try a new client every 200 ms for up to 10 s until one gets in and queries. */
static bool gets_in_again(const char *db, const char *user)
{
	int64_t deadline = h_now_ms() + 10000;

	do {
		PGconn *c = client(db, user);
		bool ok = PQstatus(c) == CONNECTION_OK && works(c);

		PQfinish(c);
		if (ok)
			return true;
		h_sleep_ms(200);
	} while (h_now_ms() < deadline);
	return false;
}

static bool restart(const char *extra, const char *what)
{
	return h_lease_phase(what, "trust", databases(),
	                     h_fmt("pool_mode = transaction\n%s\n", extra), userlist());
}

static void max_client_conn(void)
{
	PGconn *c[4];
	bool all = true;

	if (!restart("max_client_conn = 3", "max_client_conn = 3"))
		return;
	for (int i = 0; i < 3; i++) {
		c[i] = client("testdb", i == 2 ? "bob" : "alice");
		all = works(c[i]) && all;
	}
	h_ok(all, "max_client_conn=3: three clients log in and query");
	c[3] = client("other", "bob");
	h_ok(refused(c[3], "no more connections allowed (max_client_conn)"),
	     "max_client_conn=3: the fourth gets 53300 \"no more connections allowed "
	     "(max_client_conn)\"");
	PQfinish(c[3]);
	PQfinish(c[0]);
	h_ok(gets_in_again("testdb", "alice"),
	     "max_client_conn=3: after one client left a new one gets in");
	PQfinish(c[1]);
	PQfinish(c[2]);
}

/* Two clients of DB get in, a third is refused, another db is not limited, leaving frees. */
static void db_limit(const char *what, const char *db, const char *other_db)
{
	PGconn *a = client(db, "alice"), *b = client(db, "bob"), *c, *o;

	h_ok(works(a) && works(b), "%s: two clients of %s (two users) get in", what, db);
	c = client(db, "alice");
	h_ok(refused(c, "max_db_client_connections"),
	     "%s: the third client of %s gets 53300 naming max_db_client_connections", what, db);
	PQfinish(c);
	o = client(other_db, "alice");
	h_ok(works(o), "%s: a client of database %s still gets in", what, other_db);
	PQfinish(a);
	h_ok(gets_in_again(db, "bob"), "%s: after one client of %s left a new one gets in", what,
	     db);
	PQfinish(b);
	PQfinish(o);
}

/* Two clients of USER (on two databases) get in, a third is refused, OTHER is not. */
static void user_limit(const char *what, const char *user, const char *other)
{
	PGconn *a = client("testdb", user), *b = client("other", user), *c, *o;

	h_ok(works(a) && works(b), "%s: two clients of %s (two databases) get in", what, user);
	c = client("testdb", user);
	h_ok(refused(c, "max_user_client_connections"),
	     "%s: the third client of %s gets 53300 naming max_user_client_connections", what,
	     user);
	PQfinish(c);
	o = client("testdb", other);
	h_ok(works(o), "%s: a client of user %s still gets in", what, other);
	PQfinish(b);
	h_ok(gets_in_again("other", user), "%s: after one client of %s left a new one gets in",
	     what, user);
	PQfinish(a);
	PQfinish(o);
}

int main(void)
{
	h_init(300);
	h_pg_start();

	max_client_conn();
	if (restart("", "max_db_client_connections=2 on database entry lim"))
		db_limit("db entry max_db_client_connections=2", "lim", "other");
	if (restart("max_db_client_connections = 2", "max_db_client_connections = 2 (global)"))
		db_limit("global max_db_client_connections=2", "testdb", "other");
	if (restart("[users]\nbob = max_user_client_connections=2\n",
	            "[users] bob max_user_client_connections=2"))
		user_limit("[users] max_user_client_connections=2", "bob", "alice");
	if (restart("max_user_client_connections = 2", "max_user_client_connections = 2 (global)"))
		user_limit("global max_user_client_connections=2", "alice", "bob");

	h_lease_phase_end();
	return tap_done();
}
