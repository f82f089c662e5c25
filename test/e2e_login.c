/*
 * e2e_login: client- and server-side authentication through pglease.
 *
 * One pglease per client-side auth_type (restarted between phases), real
 * libpq clients, a real PostgreSQL whose pg_hba makes each role use a
 * different server-side method (see harness.h).
 *
 * Plan:
 *   trust   server-side trust / cleartext / md5 / SCRAM logins with the
 *           password from the auth_file's plain secret; user= and password=
 *           forced by the [databases] entry; user missing from auth_file;
 *           unknown database (3D000); a good login after each failure.
 *   any     any user name accepted, server login as the entry's user=, with
 *           and without password= in the entry.
 *   plain   plain and md5 secrets; wrong password (28P01 + message); user
 *           missing from auth_file.
 *   md5     plain and md5 secrets; a SCRAM secret falls back to SCRAM and the
 *           server login uses the recovered key; wrong passwords (28P01);
 *           user missing from auth_file.
 *   scram   plain secret; SCRAM passthrough with alice's secret copied from
 *           pg_authid (also for a second, concurrent server connection);
 *           wrong passwords, missing user; server cleartext with a plain
 *           secret; raw SCRAM exchanges that are broken (unknown mechanism,
 *           bad length, wrong nonce, no proof: 08P01 as PostgreSQL says; a
 *           well-formed wrong proof: 28P01) or abandoned.
 *   limits  max_client_conn = 3: the 4th client gets 53300.
 * After every phase pglease must still be alive and exit 0 on SIGTERM.
 */
#include "harness.h"
#include "tap.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Connect through pglease; one test point: login works and current_user is WANT_USER. */
static void login_ok(const char *what, const char *user, const char *password, const char *db,
                     const char *want_user)
{
	PGconn *c = h_connect(h_lease_conninfo(user, password, db));
	const char *who = NULL;

	if (PQstatus(c) == CONNECTION_OK)
		who = h_value(c, "SELECT current_user");
	else
		tap_diag("login failed: %s", PQerrorMessage(c));
	h_ok(who != NULL && strcmp(who, want_user) == 0, "%s: logs in, current_user is %s", what,
	     want_user);
	if (who != NULL && strcmp(who, want_user) != 0)
		tap_diag("current_user is %s", who);
	PQfinish(c);
}

/*
 * One test point: the login fails with SQLSTATE CODE (or ALT_CODE when not
 * NULL); a second one when MSG is given: the error message contains MSG.
 */
static void login_fails(const char *what, const char *user, const char *password, const char *db,
                        const char *code, const char *alt_code, const char *msg)
{
	PGconn *c = h_connect(h_lease_conninfo(user, password, db));
	const char *got = h_conn_sqlstate(c);
	bool bad = PQstatus(c) != CONNECTION_OK;

	if (!h_ok(bad && (strcmp(got, code) == 0 || (alt_code && strcmp(got, alt_code) == 0)),
	          "%s: login refused with SQLSTATE %s%s%s", what, code, alt_code ? " or " : "",
	          alt_code ? alt_code : ""))
		tap_diag("status %s, SQLSTATE '%s', message: %s", bad ? "failed" : "OK", got,
		         PQerrorMessage(c));
	if (msg)
		h_ok(strstr(PQerrorMessage(c), msg) != NULL, "%s: error message says \"%s\"", what,
		     msg);
	PQfinish(c);
}

/* One test point: pglease is alive and a good login runs SELECT 1. */
static void still_serves(const char *what, const char *user, const char *password)
{
	bool ok = h_lease_alive() && h_can_query(h_lease_conninfo(user, password, "testdb"));

	h_ok(ok, "after %s: pglease is alive and serves %s", what, user);
}

/* One test point: pglease exits 0 on SIGTERM; then start it with a new config. */
static void restart(const char *phase, const char *auth_type, const char *dbs, const char *extra,
                    const char *users)
{
	static bool started;

	/* A pglease that died earlier fails this point too (its saved exit status). */
	if (started)
		h_lease_stop_ok(phase);
	started = true;
	h_lease_config(auth_type, dbs, extra, users);
	h_lease_start();
}

static void phase_trust(void)
{
	const char *users =
	    h_fmt("%s%s%s%s", h_userlist_line("alice", "alicepw"),
	          h_userlist_line("trustuser", "trustpw"), h_userlist_line("pwuser", "pwpw"),
	          h_userlist_line("md5user", "md5pw"));
	const char *dbs =
	    h_fmt("%s%s", h_db_testdb(), h_db_line("forced", "testdb", "user=bob password=bobpw"));

	restart("start", "trust", dbs, NULL, users);
	login_ok("trust, server trust", "trustuser", NULL, "testdb", "trustuser");
	login_ok("trust, server cleartext with auth_file password", "pwuser", NULL, "testdb",
	         "pwuser");
	login_ok("trust, server md5 with auth_file password", "md5user", NULL, "testdb", "md5user");
	login_ok("trust, server SCRAM with auth_file password", "alice", NULL, "testdb", "alice");
	login_ok("trust, [databases] user=bob password=bobpw", "alice", NULL, "forced", "bob");
	login_fails("trust, user not in auth_file", "mallory", NULL, "testdb", "28P01", "28000",
	            NULL);
	still_serves("unknown user", "alice", NULL);
	login_fails("trust, unknown database", "alice", NULL, "nosuchdb", "3D000", NULL,
	            "nosuchdb");
	still_serves("unknown database", "alice", NULL);
}

static void phase_any(void)
{
	const char *dbs = h_fmt("%s%s", h_db_line("testdb", "testdb", "user=trustuser"),
	                        h_db_line("anyalice", "testdb", "user=alice password=alicepw"));

	restart("trust", "any", dbs, NULL, NULL);
	login_ok("any, user name not in auth_file, server user=trustuser", "nobody", NULL, "testdb",
	         "trustuser");
	login_ok("any, server SCRAM with password= from [databases]", "whoever", "ignored",
	         "anyalice", "alice");
}

static void phase_plain(const char *md5_secret)
{
	const char *users = h_fmt("%s%s", h_userlist_line("alice", "alicepw"),
	                          h_userlist_line("md5user", md5_secret));

	restart("any", "plain", NULL, NULL, users);
	login_ok("plain, plain secret", "alice", "alicepw", "testdb", "alice");
	login_ok("plain, md5 secret", "md5user", "md5pw", "testdb", "md5user");
	login_fails("plain, user not in auth_file", "mallory", "x", "testdb", "28P01", "28000",
	            NULL);
	login_fails("plain, wrong password", "alice", "nope", "testdb", "28P01", NULL,
	            "password authentication failed");
	still_serves("wrong password", "alice", "alicepw");
}

static void phase_md5(const char *md5_secret, const char *bob_scram)
{
	const char *users =
	    h_fmt("%s%s%s", h_userlist_line("alice", "alicepw"),
	          h_userlist_line("md5user", md5_secret), h_userlist_line("bob", bob_scram));

	restart("plain", "md5", NULL, NULL, users);
	login_ok("md5, plain secret, server SCRAM", "alice", "alicepw", "testdb", "alice");
	login_ok("md5, md5 secret, server md5", "md5user", "md5pw", "testdb", "md5user");
	login_ok("md5, SCRAM secret falls back to SCRAM, server login with the recovered key",
	         "bob", "bobpw", "testdb", "bob");
	login_fails("md5, wrong password (plain secret)", "alice", "nope", "testdb", "28P01", NULL,
	            "password authentication failed");
	login_fails("md5, wrong password (md5 secret)", "md5user", "nope", "testdb", "28P01", NULL,
	            NULL);
	login_fails("md5, wrong password (SCRAM secret)", "bob", "nope", "testdb", "28P01", NULL,
	            NULL);
	login_fails("md5, user not in auth_file", "mallory", "x", "testdb", "28P01", "28000", NULL);
	still_serves("wrong md5 passwords", "alice", "alicepw");
}

/* SCRAM passthrough: two concurrent sessions, so two server logins with the recovered key. */
static void scram_passthrough_twice(void)
{
	PGconn *a = h_connect(h_lease_conninfo("alice", "alicepw", "testdb"));
	PGconn *b = h_connect(h_lease_conninfo("alice", "alicepw", "testdb"));
	const char *pa = NULL, *pb = NULL;

	if (PQstatus(a) == CONNECTION_OK && PQstatus(b) == CONNECTION_OK) {
		pa = h_value(a, "SELECT pg_backend_pid()");
		pb = h_value(b, "SELECT pg_backend_pid()");
	} else {
		tap_diag("a: %s b: %s", PQerrorMessage(a), PQerrorMessage(b));
	}
	h_ok(pa && pb && strcmp(pa, pb) != 0,
	     "scram passthrough: two concurrent sessions get two server connections");
	PQfinish(a);
	PQfinish(b);
}

/* Raw login up to pglease's AuthenticationSASL; the socket, or -1. */
static int sasl_start(const char *user)
{
	int fd = h_raw_connect(h_lease_port());
	struct h_msg m;

	if (fd == -1)
		return -1;
	if (!h_raw_send_startup(fd, H_PROTO_V3, user, "testdb") ||
	    h_raw_read_msg(fd, &m, 5000) != 1 || m.type != 'R' || m.n < 4 || m.data[3] != 10) {
		tap_diag("no AuthenticationSASL for %s (got '%c')", user, m.type);
		close(fd);
		return -1;
	}
	return fd;
}

/* Send a password message ('p') whose body is BODY of LEN bytes. */
static bool send_p(int fd, const char *body, size_t len)
{
	char b[512];
	uint32_t n = htonl((uint32_t)len + 4);

	if (len + 5 > sizeof(b))
		return false;
	b[0] = 'p';
	memcpy(b + 1, &n, 4);
	memcpy(b + 5, body, len);
	return h_raw_send(fd, b, len + 5);
}

/* SASLInitialResponse: MECH, a length word DECLARED, then DATA. */
static bool sasl_initial(int fd, const char *mech, const char *data, uint32_t declared)
{
	char b[400];
	size_t ml = strlen(mech) + 1, dl = strlen(data);
	uint32_t n = htonl(declared);

	if (ml + 4 + dl > sizeof(b))
		return false;
	memcpy(b, mech, ml);
	memcpy(b + ml, &n, 4);
	memcpy(b + ml + 4, data, dl);
	return send_p(fd, b, ml + 4 + dl);
}

/* One test point: after SENT, pglease answers with an error whose SQLSTATE is
 * WANT (NULL: any, or a close). */
static void refused(const char *what, int fd, bool sent, const char *want)
{
	char st[6] = "";
	int r = sent ? h_raw_expect_error(fd, st, 5000) : -2;

	h_ok(want ? r == 1 && strcmp(st, want) == 0 : r == 1 || r == 0,
	     "%s: pglease refuses it%s%s (got %s)", what, want ? " with " : "", want ? want : "",
	     r == 1    ? st
	     : r == 0  ? "close"
	     : r == -2 ? "could not send"
	               : "no answer");
	if (fd != -1)
		close(fd);
}

/* Broken or abandoned SCRAM exchanges on raw sockets. */
static void scram_bad_exchanges(void)
{
	static const char first[] = "n,,n=,r=rOprNGfwEbeRWgbNEkqO";
	int fd = sasl_start("bob");
	struct h_msg m;

	refused("SASLInitialResponse with mechanism SCRAM-SHA-1", fd,
	        fd != -1 && sasl_initial(fd, "SCRAM-SHA-1", first, (uint32_t)strlen(first)),
	        "08P01");
	fd = sasl_start("bob");
	refused("SASLInitialResponse whose data length says 1000", fd,
	        fd != -1 && sasl_initial(fd, "SCRAM-SHA-256", first, 1000), "08P01");
	for (int k = 0; k < 3; k++) {
		static const char *const what[] = {
		    "SCRAM client-final with a wrong nonce", "SCRAM client-final without a proof",
		    "SCRAM client-final with a well-formed wrong proof"};
		static const char *const want[] = {"08P01", "08P01", "28P01"};
		const char *final = "c=biws,r=not-the-servers-nonce,p=AAAAAAAAAAAAAAAAAAAA";
		bool sent = false;

		fd = sasl_start("alice");
		if (fd != -1 && sasl_initial(fd, "SCRAM-SHA-256", first, (uint32_t)strlen(first)) &&
		    h_raw_read_msg(fd, &m, 5000) == 1 && m.type == 'R' && m.n > 4) {
			/* server-first-message: r=<nonce>,s=<salt>,i=<iterations> */
			const char *r = m.data + 4, *comma = strchr(r, ',');
			int rl = comma ? (int)(comma - r) : (int)strlen(r);

			if (k == 1)
				final = h_fmt("c=biws,%.*s", rl, r);
			else if (k == 2)
				final = h_fmt("c=biws,%.*s,p=%s", rl, r,
				              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
			sent = send_p(fd, final, strlen(final));
		}
		refused(what[k], fd, sent, want[k]);
	}
	fd = sasl_start("alice");
	if (fd != -1) {
		sasl_initial(fd, "SCRAM-SHA-256", first, (uint32_t)strlen(first));
		h_raw_read_msg(fd, &m, 5000);
		close(fd);
	}
	still_serves("broken and abandoned SCRAM exchanges", "alice", "alicepw");
}

static void phase_scram(const char *alice_scram)
{
	const char *users =
	    h_fmt("%s%s%s", h_userlist_line("alice", alice_scram), h_userlist_line("bob", "bobpw"),
	          h_userlist_line("pwuser", "pwpw"));

	restart("md5", "scram-sha-256", NULL, NULL, users);
	login_ok("scram, plain secret, server SCRAM", "bob", "bobpw", "testdb", "bob");
	login_ok("scram, plain secret, server cleartext", "pwuser", "pwpw", "testdb", "pwuser");
	login_ok("scram passthrough: SCRAM secret from pg_authid, server SCRAM with the "
	         "recovered key",
	         "alice", "alicepw", "testdb", "alice");
	scram_passthrough_twice();
	login_fails("scram, wrong password (SCRAM secret)", "alice", "nope", "testdb", "28P01",
	            NULL, "password authentication failed");
	still_serves("wrong SCRAM password", "alice", "alicepw");
	login_fails("scram, wrong password (plain secret)", "bob", "nope", "testdb", "28P01", NULL,
	            NULL);
	login_fails("scram, user not in auth_file", "mallory", "x", "testdb", "28P01", "28000",
	            NULL);
	still_serves("unknown user", "bob", "bobpw");
	scram_bad_exchanges();
}

static void phase_max_client_conn(void)
{
	PGconn *c[4];
	int ok = 0;

	restart("scram", "trust", NULL, "max_client_conn = 3", h_userlist_line("alice", "alicepw"));
	for (int i = 0; i < 3; i++) {
		c[i] = h_connect(h_lease_conninfo("alice", NULL, "testdb"));
		if (PQstatus(c[i]) == CONNECTION_OK && h_value(c[i], "SELECT 1"))
			ok++;
		else
			tap_diag("client %d: %s", i + 1, PQerrorMessage(c[i]));
	}
	h_is_int(ok, 3, "max_client_conn=3: three clients log in");
	c[3] = h_connect(h_lease_conninfo("alice", NULL, "testdb"));
	h_is_str(h_conn_sqlstate(c[3]), "53300", "max_client_conn=3: the 4th client gets 53300");
	h_ok(strstr(PQerrorMessage(c[3]), "no more connections allowed (max_client_conn)") != NULL,
	     "max_client_conn=3: message says \"no more connections allowed (max_client_conn)\"");
	PQfinish(c[3]);
	PQfinish(c[0]);
	/* pglease notices the close asynchronously: allow it a bounded moment. */
	{
		bool served = false;

		for (int i = 0; i < 50 && !served; i++) {
			PGconn *n = h_connect(h_lease_conninfo("alice", NULL, "testdb"));

			served = PQstatus(n) == CONNECTION_OK && h_value(n, "SELECT 1") != NULL;
			PQfinish(n);
			if (!served)
				h_sleep_ms(100);
		}
		h_ok(served, "max_client_conn=3: after one client leaves, a new one logs in");
	}
	PQfinish(c[1]);
	PQfinish(c[2]);
}

int main(void)
{
	const char *alice_scram, *bob_scram, *md5_secret;

	h_init(300);
	h_pg_start();
	alice_scram = h_pg_secret("alice");
	bob_scram = h_pg_secret("bob");
	md5_secret = h_md5_secret("md5user", "md5pw");
	h_ok(strncmp(alice_scram, "SCRAM-SHA-256$", 14) == 0 &&
	         strcmp(h_pg_secret("md5user"), md5_secret) == 0,
	     "setup: alice's secret is SCRAM, md5user's is md5(password+user)");

	phase_trust();
	phase_any();
	phase_plain(md5_secret);
	phase_md5(md5_secret, bob_scram);
	phase_scram(alice_scram);
	phase_max_client_conn();

	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("limits");
	return tap_done();
}
