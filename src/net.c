/* net: listeners, connects, socket options. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdint.h>
#include <unistd.h>

#include "config.h"

#define MAX_LISTENERS 16

struct listener {
	int fd;
	bool is_unix;
	struct event *ev;
	char path[108];
};

static struct listener listeners[MAX_LISTENERS];
static int n_listeners;
static net_accept_fn accept_cb;
/* A descriptor held back for the moment the limit is reached: freeing it lets
 * us accept one client just to tell it why, instead of leaving it hanging. */
static int reserve_fd = -1;

/* Out of descriptors: accept one pending client, send it a FATAL 53300, close. */
static void refuse_one(int lfd)
{
	static const char msg[] = "SFATAL\0C53300\0Mno more connections allowed: pglease is "
	                          "out of file descriptors (raise ulimit -n)\0";
	uint8_t pkt[1 + 4 + sizeof(msg) + 1];
	uint32_t len = (uint32_t)(4 + sizeof(msg) + 1);
	int cfd;

	if (reserve_fd == -1)
		return;
	close(reserve_fd);
	reserve_fd = -1;
	cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd != -1) {
		pkt[0] = 'E';
		pkt[1] = (uint8_t)(len >> 24);
		pkt[2] = (uint8_t)(len >> 16);
		pkt[3] = (uint8_t)(len >> 8);
		pkt[4] = (uint8_t)len;
		memcpy(pkt + 5, msg, sizeof(msg));
		pkt[5 + sizeof(msg)] = '\0';
		(void)!send(cfd, pkt, sizeof(pkt), MSG_NOSIGNAL);
		close(cfd);
	}
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	int i;

	(void)what;
	/* A bounded batch per wakeup keeps one busy listener from starving the loop. */
	for (i = 0; i < 64; i++) {
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				refuse_one(fd);
			return;
		}
		if (!l->is_unix)
			net_tune(cfd);
		accept_cb(cfd, &addr, len, l->is_unix);
	}
}

static bool add_listener(struct event_base *base, int fd, bool is_unix, const char *path, char *err,
                         size_t errlen)
{
	struct listener *l;

	if (n_listeners == MAX_LISTENERS) {
		snprintf(err, errlen, "too many listen addresses (at most %d)", MAX_LISTENERS);
		close(fd);
		return false;
	}
	l = &listeners[n_listeners];
	l->fd = fd;
	l->is_unix = is_unix;
	snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
	l->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, l);
	if (l->ev == NULL || event_add(l->ev, NULL) == -1) {
		snprintf(err, errlen, "could not watch listening socket");
		if (l->ev)
			event_free(l->ev);
		close(fd);
		return false;
	}
	n_listeners++;
	return true;
}

static bool listen_tcp(struct event_base *base, const char *host, int port, int backlog, char *err,
                       size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;
	char shown[80];

	memset(&ss, 0, sizeof(ss));
	if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else if (strchr(host, ':') != NULL || strcmp(host, "::") == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "invalid listen_addr \"%s\"", host);
			return false;
		}
		len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (strcmp(host, "localhost") == 0)
			host = "127.0.0.1";
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen,
			         "invalid listen_addr \"%s\": expected *, an IPv4 or IPv6 address",
			         host);
			return false;
		}
		len = sizeof(*sin);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "could not create socket for %s: %s", host, strerror(errno));
		return false;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	net_addr_text(&ss, shown, sizeof(shown));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 || listen(fd, backlog) == -1) {
		snprintf(err, errlen, "could not listen on %s: %s", shown, strerror(errno));
		close(fd);
		return false;
	}
	return add_listener(base, fd, false, NULL, err, errlen);
}

static bool listen_unix(struct event_base *base, const char *dir, int port, int mode, int backlog,
                        char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir \"%s\" is too long", dir);
		return false;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "could not create unix socket: %s", strerror(errno));
		return false;
	}
	/* A stale socket from a crashed run is replaced only when nobody answers on it. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN) {
		snprintf(err, errlen, "could not listen on %s: another process is listening there",
		         sun.sun_path);
		close(fd);
		return false;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "could not create unix socket: %s", strerror(errno));
		return false;
	}
	unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 || listen(fd, backlog) == -1) {
		snprintf(err, errlen, "could not listen on %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(sun.sun_path, (mode_t)mode);
	return add_listener(base, fd, true, sun.sun_path, err, errlen);
}

bool net_listen_all(struct event_base *base, const struct config *cfg, net_accept_fn cb, char *err,
                    size_t errlen)
{
	char *addrs, *tok, *save = NULL;

	accept_cb = cb;
	if (reserve_fd == -1)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	addrs = strdup(cfg->listen_addr ? cfg->listen_addr : "");
	if (addrs == NULL) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (tok = strtok_r(addrs, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (!listen_tcp(base, tok, cfg->listen_port, cfg->listen_backlog, err, errlen)) {
			free(addrs);
			net_close_listeners();
			return false;
		}
		/* "*" means every address family. */
		if (strcmp(tok, "*") == 0 &&
		    !listen_tcp(base, "::", cfg->listen_port, cfg->listen_backlog, err, errlen)) {
			/* No IPv6 on this host is not an error. */
			err[0] = '\0';
		}
	}
	free(addrs);
	if (cfg->unix_socket_dir != NULL && cfg->unix_socket_dir[0] != '\0' &&
	    !listen_unix(base, cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode,
	                 cfg->listen_backlog, err, errlen)) {
		net_close_listeners();
		return false;
	}
	if (n_listeners == 0) {
		snprintf(err, errlen, "nothing to listen on: set listen_addr or unix_socket_dir");
		return false;
	}
	return true;
}

void net_close_listeners(void)
{
	int i;

	for (i = 0; i < n_listeners; i++) {
		event_free(listeners[i].ev);
		close(listeners[i].fd);
		if (listeners[i].is_unix)
			unlink(listeners[i].path);
	}
	n_listeners = 0;
	if (reserve_fd != -1)
		close(reserve_fd);
	reserve_fd = -1;
}

void net_pause_listeners(bool pause)
{
	int i;

	for (i = 0; i < n_listeners; i++) {
		if (pause)
			event_del(listeners[i].ev);
		else
			event_add(listeners[i].ev, NULL);
	}
}

int net_connect(const struct sockaddr *sa, socklen_t len, bool *done)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	*done = false;
	if (fd == -1)
		return -1;
	if (sa->sa_family != AF_UNIX)
		net_tune(fd);
	if (connect(fd, sa, len) == 0) {
		*done = true;
		return fd;
	}
	if (errno == EINPROGRESS || errno == EAGAIN)
		return fd;
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

int net_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		return errno;
	return err;
}

void net_tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

void net_addr_text(const struct sockaddr_storage *addr, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%d", host, ntohs(sin->sin_port));
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%d", host, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "unix");
	}
}

unsigned long net_raise_nofile(unsigned long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	if (rl.rlim_cur >= want)
		return rl.rlim_cur;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}
