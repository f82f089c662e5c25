/*
 * e2e_fuzz_auth: damaged SCRAM and password exchanges.  The login path parses
 * what unauthenticated clients send (SASLInitialResponse, client-first and
 * client-final messages, password messages); whatever they send, pglease
 * answers with an error or a close, stays up, leaks nothing, and still logs
 * in proper clients.
 *
 * Each round logs in as alice (SCRAM secret on file), as an unknown user, or
 * with an overlong name, then sends a SASLInitialResponse whose mechanism,
 * length word or client-first-message is damaged now and then, and, when the
 * server answers with its server-first-message, a client-final-message with
 * the server's nonce, damaged now and then, and a wrong proof.
 *
 * PGL_FUZZ_SEED and PGL_FUZZ_ROUNDS override the defaults.
 *
 * Plan:
 *   1  no round logs in (every proof is wrong)
 *   2  libpq logs in with the right password afterwards; 3 a wrong one gets 28P01
 *   4  open fds back to the start; 5 clean exit on SIGTERM, no sanitizer report
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define R_SASL          10
#define R_SASL_CONTINUE 11

/* Damage B (LEN bytes, room for CAP) in place a few times; its new length. */
static size_t mutate(char *b, size_t len, size_t cap)
{
	static const char *const tokens[] = {",",       "=",    "r=",  "p=",  "c=", "n,,", "y,,",
	                                     "p=tls,,", "a=x,", "=2C", "=3D", "==", "\x01"};

	for (int k = 1 + (int)h_rand(4); k > 0; k--) {
		uint32_t op = h_rand(4);

		if (op == 0 && len > 0) {
			b[h_rand((uint32_t)len)] = (char)h_rand(256);
		} else if (op == 1 && len > 0) {
			len = h_rand((uint32_t)len);
		} else if (op == 2) {
			const char *t = tokens[h_rand(sizeof(tokens) / sizeof(tokens[0]))];
			size_t n = strlen(t), at = h_rand((uint32_t)len + 1);

			if (len + n < cap) {
				memmove(b + at + n, b + at, len - at);
				memcpy(b + at, t, n);
				len += n;
			}
		} else {
			size_t n = h_rand(3) == 0 ? 200 + h_rand(3000) : h_rand(20);

			for (; n > 0 && len < cap; n--)
				b[len++] = (char)(h_rand(3) ? 'a' + h_rand(26) : h_rand(256));
		}
	}
	return len;
}

/* The next 'R' message's code, its body in M; -1 on anything else. */
static int auth_code(int fd, struct h_msg *m)
{
	if (h_raw_read_msg(fd, m, 3000) != 1 || m->type != 'R' || m->n < 4)
		return -1;
	return (int)h_get32(m->data);
}

/* Send 'p' with BODY; false on a send error. */
static bool send_p(int fd, const char *body, size_t len)
{
	struct h_wbuf w = {0};
	bool ok;

	h_wb_msg(&w, 'p', body, len);
	ok = h_wb_send(fd, &w);
	h_wb_free(&w);
	return ok;
}

/* One round; true when it ended logged in (it never should). */
static bool auth_round(void)
{
	static char long_user[200];
	const char *users[] = {"alice", "alice", "alice", "nosuchuser", long_user};
	int fd = h_raw_connect(h_lease_port());
	char buf[8192], first[256];
	size_t n, flen;
	struct h_msg m;
	bool in = false;

	memset(long_user, 'u', sizeof(long_user) - 1);
	if (fd == -1)
		return false;
	if (!h_raw_send_startup(fd, H_PROTO_V3, users[h_rand(5)], "testdb") ||
	    auth_code(fd, &m) != R_SASL)
		goto out;
	/* SASLInitialResponse: mechanism, int32 length, client-first-message */
	flen = (size_t)snprintf(first, sizeof(first), "n,,n=,r=fuzz%08x%08x", h_rand(1u << 31),
	                        h_rand(1u << 31));
	if (h_rand(3) == 0)
		flen = mutate(first, flen, sizeof(first));
	{
		/* mostly right, so that most rounds reach the client-final-message */
		static const char *const odd_mechs[] = {"SCRAM-SHA-256-PLUS", "", "X"};
		const char *mech = h_rand(5) ? "SCRAM-SHA-256" : odd_mechs[h_rand(3)];
		uint32_t odd_lens[] = {0xffffffffu, (uint32_t)flen + 9, 0x7fffffffu};

		n = strlen(mech) + 1;
		memcpy(buf, mech, n);
		h_put32(buf + n, h_rand(5) ? (uint32_t)flen : odd_lens[h_rand(3)]);
		memcpy(buf + n + 4, first, flen);
		n += 4 + flen;
		if (h_rand(10) == 0)
			n = mutate(buf, n, sizeof(buf));
	}
	if (!send_p(fd, buf, n) || auth_code(fd, &m) != R_SASL_CONTINUE)
		goto out;
	/* client-final-message with the server's nonce and a wrong proof */
	{
		const char *r = strstr(m.data + 4, "r="), *end;

		if (r == NULL)
			goto out;
		end = strchr(r, ',');
		n = (size_t)snprintf(buf, sizeof(buf), "c=biws,%.*s,p=%s",
		                     (int)(end ? end - r : (ptrdiff_t)strlen(r)), r,
		                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
		if (h_rand(2))
			n = mutate(buf, n, sizeof(buf));
	}
	if (send_p(fd, buf, n))
		in = auth_code(fd, &m) == 0; /* AuthenticationOk */
out:
	close(fd);
	return in;
}

int main(void)
{
	const char *env_seed = getenv("PGL_FUZZ_SEED"), *env_rounds = getenv("PGL_FUZZ_ROUNDS");
	uint64_t seed = env_seed ? strtoull(env_seed, NULL, 10) : 20261205;
	int rounds = env_rounds ? atoi(env_rounds) : 1000, logged_in = 0, base, fds;
	PGconn *c;

	h_init(300);
	h_pg_start();
	h_lease_config("scram-sha-256", NULL, "log_connections = 0\nlog_disconnections = 0\n",
	               h_userlist_line("alice", h_pg_secret("alice")));
	h_lease_start();
	h_sleep_ms(300); /* the harness's probe of the port is closed by then */
	base = h_lease_fd_count();

	h_rand_seed(seed);
	for (int i = 0; i < rounds; i++)
		logged_in += auth_round();
	h_is_int(logged_in, 0,
	         h_fmt("%d damaged SCRAM exchanges (seed %llu): none logs in", rounds,
	               (unsigned long long)seed));
	h_ok(h_can_query(h_lease_conninfo("alice", "alicepw", "testdb")),
	     "afterwards libpq logs in with the right password (SCRAM)");
	c = h_connect(h_lease_conninfo("alice", "wrong", "testdb"));
	h_is_str(h_conn_sqlstate(c), "28P01", "and a wrong password gets 28P01");
	PQfinish(c);
	fds = h_lease_wait_fds(base + 1, 5000); /* + the pool's one server */
	h_ok(fds <= base + 1, "open fds back to the start (%d, +1 server) : %d", base, fds);
	h_lease_stop_ok("end");
	return tap_done();
}
