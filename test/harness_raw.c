/*
 * harness_raw: the raw-protocol half of the test harness (see harness.h):
 * sockets that speak the PostgreSQL wire protocol byte by byte, for tests of
 * what libpq would never send.
 */
#include "harness.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int h_raw_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd == -1)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

bool h_raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

void h_put32(char *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

uint32_t h_get32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

bool h_raw_send_code(int fd, uint32_t code)
{
	char b[8];

	h_put32(b, 8);
	h_put32(b + 4, code);
	return h_raw_send(fd, b, sizeof(b));
}

bool h_raw_send_startup(int fd, uint32_t version, const char *user, const char *db)
{
	char b[1024];
	size_t n = 8;

	h_put32(b + 4, version);
	if (user)
		n += (size_t)snprintf(b + n, sizeof(b) - n - 2, "user%c%s%c", 0, user, 0);
	if (db)
		n += (size_t)snprintf(b + n, sizeof(b) - n - 2, "database%c%s%c", 0, db, 0);
	b[n++] = '\0';
	h_put32(b, (uint32_t)n);
	return h_raw_send(fd, b, n);
}

bool h_raw_send_query(int fd, const char *sql)
{
	size_t len = strlen(sql) + 1;
	char *b = malloc(len + 5);
	bool ok;

	if (b == NULL)
		return false;
	b[0] = 'Q';
	h_put32(b + 1, (uint32_t)(len + 4));
	memcpy(b + 5, sql, len);
	ok = h_raw_send(fd, b, len + 5);
	free(b);
	return ok;
}

/* Read exactly N bytes before DEADLINE: 1 done, 0 EOF/reset, -1 timeout. */
static int h_raw_read_full(int fd, char *buf, size_t n, int64_t deadline)
{
	while (n > 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - h_now_ms();
		ssize_t r;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, buf, n, 0);
		if (r == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return 0;
		buf += r;
		n -= (size_t)r;
	}
	return 1;
}

int h_raw_read_byte(int fd, int timeout_ms)
{
	char c;
	int r = h_raw_read_full(fd, &c, 1, h_now_ms() + timeout_ms);

	if (r == 1)
		return (unsigned char)c;
	return r == 0 ? -1 : -2;
}

int h_raw_read_msg(int fd, struct h_msg *m, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char hdr[5];
	uint32_t body;
	int r;

	m->n = 0;
	m->data[0] = '\0';
	r = h_raw_read_full(fd, hdr, 5, deadline);
	if (r != 1)
		return r;
	m->type = hdr[0];
	m->len = h_get32(hdr + 1);
	if (m->len < 4)
		return -1;
	body = m->len - 4;
	m->n = body < sizeof(m->data) - 1 ? body : sizeof(m->data) - 1;
	r = h_raw_read_full(fd, m->data, m->n, deadline);
	if (r != 1)
		return r;
	m->data[m->n] = '\0';
	if (body > 1024 * 1024)
		return -1;
	for (uint32_t rest = body - (uint32_t)m->n; rest > 0;) {
		char junk[4096];
		size_t k = rest < sizeof(junk) ? rest : sizeof(junk);

		r = h_raw_read_full(fd, junk, k, deadline);
		if (r != 1)
			return r;
		rest -= (uint32_t)k;
	}
	return 1;
}

const char *h_msg_field(const struct h_msg *m, char code)
{
	size_t i = 0;

	if (m->type != 'E' && m->type != 'N')
		return NULL;
	while (i < m->n && m->data[i] != '\0') {
		char c = m->data[i++];
		const char *val = m->data + i;

		if (c == code)
			return val;
		i += strnlen(val, m->n - i) + 1;
	}
	return NULL;
}

int h_raw_expect_error(int fd, char sqlstate[6], int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	struct h_msg *m = malloc(sizeof(*m));
	int ret = -1;

	sqlstate[0] = '\0';
	if (m == NULL)
		return -1;
	for (;;) {
		int64_t left = deadline - h_now_ms();
		int r = left > 0 ? h_raw_read_msg(fd, m, (int)left) : -1;

		if (r != 1) {
			ret = r == 0 ? 0 : -1;
			break;
		}
		if (m->type == 'E') {
			const char *c = h_msg_field(m, 'C');
			const char *msg = h_msg_field(m, 'M');

			snprintf(sqlstate, 6, "%s", c ? c : "");
			tap_diag("server said: %s %s", c ? c : "(no code)", msg ? msg : "");
			ret = 1;
			break;
		}
	}
	free(m);
	return ret;
}

bool h_raw_wait_close(int fd, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char junk[4096];

	for (;;) {
		int r = h_raw_read_full(fd, junk, 1, deadline);

		if (r == 0)
			return true;
		if (r == -1)
			return false;
	}
}

bool h_raw_login(int fd, const char *user, const char *password, const char *db, char sqlstate[6])
{
	struct h_msg *m = malloc(sizeof(*m));
	int64_t deadline = h_now_ms() + 10000;
	bool ok = false;

	if (sqlstate)
		sqlstate[0] = '\0';
	if (m == NULL || !h_raw_send_startup(fd, H_PROTO_V3, user, db)) {
		free(m);
		return false;
	}
	for (;;) {
		int64_t left = deadline - h_now_ms();

		if (left <= 0 || h_raw_read_msg(fd, m, (int)left) != 1) {
			tap_diag("raw login: no answer or connection closed");
			break;
		}
		if (m->type == 'E') {
			const char *c = h_msg_field(m, 'C');

			if (sqlstate)
				snprintf(sqlstate, 6, "%s", c ? c : "");
			tap_diag("raw login failed: %s",
			         h_msg_field(m, 'M') ? h_msg_field(m, 'M') : "?");
			break;
		}
		if (m->type == 'Z') {
			ok = true;
			break;
		}
		if (m->type == 'R' && m->n >= 4) {
			uint32_t code = h_get32(m->data);

			if (code == 3 && password) {
				size_t len = strlen(password) + 1;
				char b[512];

				if (len + 5 > sizeof(b))
					break;
				b[0] = 'p';
				h_put32(b + 1, (uint32_t)(len + 4));
				memcpy(b + 5, password, len);
				if (!h_raw_send(fd, b, len + 5))
					break;
			} else if (code != 0) {
				tap_diag("raw login: unsupported authentication request %u", code);
				break;
			}
		}
	}
	free(m);
	return ok;
}

bool h_raw_cancel(int port, uint32_t pid, uint32_t key)
{
	char b[16];
	int fd = h_raw_connect(port);
	bool ok;

	if (fd == -1)
		return false;
	h_put32(b, 16);
	h_put32(b + 4, H_CANCEL_CODE);
	h_put32(b + 8, pid);
	h_put32(b + 12, key);
	ok = h_raw_send(fd, b, sizeof(b));
	/* Like libpq: wait for the pooler to close, which says it took the request. */
	if (ok)
		h_raw_wait_close(fd, 5000);
	close(fd);
	return ok;
}
