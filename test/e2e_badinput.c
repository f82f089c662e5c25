/*
 * e2e_badinput: malformed and unusual input on raw sockets must cost pglease
 * nothing: a clear error (or a close), no crash, no leaked descriptor, and
 * the next normal client is served.
 *
 * Plan (after each bad client: pglease alive and a libpq client runs SELECT 1):
 *   garbage bytes as a startup packet -> error or close, never a hang
 *   startup packet claiming 100000 bytes -> 08P01 error or close
 *   truncated startup packet, then close
 *   50 clients that connect and leave (half after 2 bytes)
 *   startup packet whose parameters lack their terminators -> error or close
 *   CancelRequest 12 bytes long -> error or close
 *   SSLRequest -> 'N', then a normal startup and a query on the same socket
 *   GSSENCRequest -> 'N', then a normal startup on the same socket
 *   protocol 2.0 startup -> error
 *   after login: 'Q' with length 0x7fffffff -> 08P01 and disconnect
 *   after login: 'Q' with length 2 (< 4) -> 08P01 and disconnect
 *   after login: a message cut short (CopyDone claiming 95 bytes, 3 sent),
 *     then close, in session and in transaction mode on pool_size=1: the
 *     server holding the half message is not given to the next client,
 *     whose query is answered
 *   pglease's fd count back to the baseline; clean exit on SIGTERM
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One test point: pglease alive and serving a normal client after CASE_NAME. */
static void still_serves(const char *case_name)
{
	bool alive = h_lease_alive();

	h_ok(alive && h_can_query(h_lease_conninfo("alice", NULL, "testdb")),
	     "after %s: pglease is alive and serves SELECT 1", case_name);
}

/* pglease's fd count once it stops changing (bounded wait). */
static int settled_fds(void)
{
	int prev = -2, n = h_lease_fd_count();

	for (int i = 0; i < 30 && n != prev; i++) {
		h_sleep_ms(100);
		prev = n;
		n = h_lease_fd_count();
	}
	return n;
}

static int connect_or_bail(void)
{
	int fd = h_raw_connect(h_lease_port());

	if (fd == -1)
		h_bail("cannot connect to pglease on port %d", h_lease_port());
	return fd;
}

static void garbage_startup(void)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	int fd = connect_or_bail();
	char st[6];
	int r;

	h_raw_send(fd, junk, sizeof(junk) - 1);
	r = h_raw_expect_error(fd, st, 5000);
	h_ok(r == 1 || r == 0,
	     "garbage startup packet: pglease answers with an error or closes "
	     "(got %s)",
	     r == 1   ? st
	     : r == 0 ? "close"
	              : "timeout");
	close(fd);
	still_serves("garbage startup packet");
}

static void oversized_startup(void)
{
	/* Length 100000, protocol 3.0, and nothing more: pglease must not wait for it. */
	static const char hdr[] = {0, 1, (char)0x86, (char)0xa0, 0, 3, 0, 0};
	int fd = connect_or_bail();
	char st[6];
	int r;

	h_raw_send(fd, hdr, sizeof(hdr));
	r = h_raw_expect_error(fd, st, 5000);
	h_ok((r == 1 && strcmp(st, "08P01") == 0) || r == 0,
	     "startup packet of 100000 bytes: 08P01 or close (got %s)",
	     r == 1   ? st
	     : r == 0 ? "close"
	              : "timeout");
	close(fd);
	still_serves("oversized startup packet");
}

static void truncated_startup(void)
{
	/* Claims 50 bytes, sends 17, closes. */
	static const char part[] = {0,   0,   0,   50, 0,   3,   0,   0,  'u',
	                            's', 'e', 'r', 0,  'a', 'l', 'i', 'c'};
	int fd = connect_or_bail();

	h_raw_send(fd, part, sizeof(part));
	close(fd);
	still_serves("truncated startup packet");
}

/* After a login on FD: run SELECT 1; true when a DataRow with "1" and ReadyForQuery arrive. */
static bool raw_select1(int fd)
{
	struct h_msg m;
	bool row = false;

	if (!h_raw_send_query(fd, "SELECT 1"))
		return false;
	while (h_raw_read_msg(fd, &m, 5000) == 1) {
		/* DataRow: int16 count, int32 len, value. */
		if (m.type == 'D' && m.n >= 7 && m.data[6] == '1')
			row = true;
		if (m.type == 'Z')
			return row;
		if (m.type == 'E')
			tap_diag("SELECT 1 failed: %s", h_msg_field(&m, 'M'));
	}
	return false;
}

/* Many clients that connect and leave without a byte, or with half a header. */
static void connect_and_leave(void)
{
	for (int i = 0; i < 50; i++) {
		int fd = h_raw_connect(h_lease_port());

		if (fd == -1)
			continue;
		if (i % 2)
			h_raw_send(fd, "\0\0", 2);
		close(fd);
	}
	still_serves("50 clients that connect and leave");
}

/*
 * A complete startup packet whose parameter list lacks its terminators
 * ("user\0alice" and nothing after): error or close, never a hang.
 */
static void unterminated_startup(void)
{
	static const char pkt[] = {0,   0,   0,   18, 0,   3,   0,   0,   'u',
	                           's', 'e', 'r', 0,  'a', 'l', 'i', 'c', 'e'};
	int fd = connect_or_bail();
	char st[6];
	int r;

	h_raw_send(fd, pkt, sizeof(pkt));
	r = h_raw_expect_error(fd, st, 5000);
	h_ok(r == 1 || r == 0,
	     "startup packet with unterminated parameters: error or close (got %s)",
	     r == 1   ? st
	     : r == 0 ? "close"
	              : "timeout");
	close(fd);
	still_serves("unterminated startup parameters");
}

/* A CancelRequest with a length of 12 instead of 16: error or close. */
static void short_cancel_request(void)
{
	static const char pkt[] = {0, 0, 0, 12, 0x04, (char)0xd2, 0x16, 0x2e, 0, 0, 0, 1};
	int fd = connect_or_bail();
	char st[6];
	int r;

	h_raw_send(fd, pkt, sizeof(pkt));
	r = h_raw_expect_error(fd, st, 5000);
	h_ok(r == 1 || r == 0, "CancelRequest of 12 bytes: error or close (got %s)",
	     r == 1   ? st
	     : r == 0 ? "close"
	              : "timeout");
	close(fd);
	still_serves("short CancelRequest");
}

static void ssl_request(void)
{
	int fd = connect_or_bail();
	char st[6];
	int b;

	h_raw_send_code(fd, H_SSLREQUEST_CODE);
	b = h_raw_read_byte(fd, 5000);
	h_ok(b == 'N', "SSLRequest is answered 'N' (got %d)", b);
	h_ok(b == 'N' && h_raw_login(fd, "alice", NULL, "testdb", st),
	     "SSLRequest: a normal startup on the same socket logs in");
	h_ok(b == 'N' && raw_select1(fd), "SSLRequest: SELECT 1 on that socket");
	close(fd);
}

static void gssenc_request(void)
{
	int fd = connect_or_bail();
	char st[6];
	int b;

	h_raw_send_code(fd, H_GSSENC_CODE);
	b = h_raw_read_byte(fd, 5000);
	h_ok(b == 'N', "GSSENCRequest is answered 'N' (got %d)", b);
	h_ok(b == 'N' && h_raw_login(fd, "alice", NULL, "testdb", st),
	     "GSSENCRequest: a normal startup on the same socket logs in");
	close(fd);
}

static void protocol_v2(void)
{
	int fd = connect_or_bail();
	int b;

	h_raw_send_startup(fd, H_PROTO_V2, "alice", "testdb");
	b = h_raw_read_byte(fd, 5000);
	h_ok(b == 'E', "protocol 2.0 startup is refused with an error (got %d)", b);
	close(fd);
	still_serves("protocol 2.0 startup");
}

/* Log in, then send HDR (a message header with a bad length); expect 08P01 and a close. */
static void bad_length_after_login(const char *name, const char *hdr, size_t len)
{
	int fd = connect_or_bail();
	char st[6];
	int r = -1;
	bool closed = false;

	if (h_raw_login(fd, "alice", NULL, "testdb", st)) {
		h_raw_send(fd, hdr, len);
		r = h_raw_expect_error(fd, st, 5000);
		closed = r != -1 && h_raw_wait_close(fd, 5000);
	}
	h_ok(r == 1 && strcmp(st, "08P01") == 0, "%s after login: ErrorResponse 08P01 (got %s)",
	     name,
	     r == 1   ? st
	     : r == 0 ? "close without error"
	              : "no answer");
	h_ok(closed, "%s after login: pglease closes the connection", name);
	close(fd);
	still_serves(name);
}

/* Log in to DB, send the start of a message whose body never comes, leave;
 * the next client of DB (pool_size=1) must get an answer. */
static void half_message_then_leave(const char *db)
{
	static const char half[] = {'c', 0, 0, 0, 95, 'a', 'b', 'c'};
	int fd = connect_or_bail();
	char st[6];
	bool sent = h_raw_login(fd, "alice", NULL, db, st) && h_raw_send(fd, half, sizeof(half));
	PGconn *c;
	PGresult *r = NULL;

	h_sleep_ms(100); /* let pglease forward the half message before the close */
	close(fd);
	c = h_connect(h_lease_conninfo("alice", NULL, db));
	if (PQstatus(c) == CONNECTION_OK && PQsendQuery(c, "SELECT 'whole'") == 1)
		r = h_wait_result(c, 5000);
	h_ok(sent && r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
	         strcmp(PQgetvalue(r, 0, 0), "whole") == 0,
	     "%s: after a client left in the middle of a message, the next client's query is "
	     "answered",
	     db);
	PQclear(r);
	PQfinish(c);
}

int main(void)
{
	static const char huge_q[] = {'Q', 0x7f, (char)0xff, (char)0xff, (char)0xff};
	static const char short_q[] = {'Q', 0, 0, 0, 2};
	int baseline, n;

	h_init(300);
	h_pg_start();
	h_lease_config("trust",
	               h_fmt("%s%s%s", h_db_testdb(),
	                     h_db_line("one_s", "testdb", "pool_size=1 pool_mode=session"),
	                     h_db_line("one_t", "testdb", "pool_size=1 pool_mode=transaction")),
	               NULL, h_userlist_line("alice", "alicepw"));
	h_lease_start();

	/* Warm the pools so the baseline includes their server connections. */
	h_ok(h_can_query(h_lease_conninfo("alice", NULL, "testdb")) &&
	         h_can_query(h_lease_conninfo("alice", NULL, "one_s")) &&
	         h_can_query(h_lease_conninfo("alice", NULL, "one_t")),
	     "a normal client is served");
	baseline = settled_fds();
	tap_diag("baseline: %d open fds in pglease", baseline);

	garbage_startup();
	oversized_startup();
	truncated_startup();
	connect_and_leave();
	unterminated_startup();
	short_cancel_request();
	ssl_request();
	gssenc_request();
	protocol_v2();
	bad_length_after_login("'Q' with length 0x7fffffff", huge_q, sizeof(huge_q));
	bad_length_after_login("'Q' with length 2", short_q, sizeof(short_q));
	half_message_then_leave("one_s");
	half_message_then_leave("one_t");

	n = h_lease_wait_fds(baseline, 5000);
	if (!h_ok(n >= 0 && n <= baseline, "pglease's open fds return to the baseline (%d, now %d)",
	          baseline, n)) {
		const char *out = h_fmt("%s/fds.txt", h_tmpdir());
		const char *argv[] = {"ls", "-l", h_fmt("/proc/%d/fd", (int)h_lease_pid()), NULL};

		h_run(argv, NULL, out, 5000);
		h_diag_file("pglease's open fds", out, 60);
	}
	h_ok(h_lease_alive(), "pglease is alive at the end");
	h_lease_stop_ok("end");
	return tap_done();
}
