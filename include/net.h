/*
 * net: sockets.  Listeners (TCP v4/v6, unix socket) that hand accepted
 * sockets to a callback, non-blocking connects, socket options, and the
 * descriptor limit.  Functions report errors into the caller's buffer and
 * never log.
 */
#ifndef PGL_NET_H
#define PGL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <netinet/in.h>

struct event_base;
struct config;

/* A peer address in 28 bytes instead of sockaddr_storage's 128. */
union net_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Accepted socket (already non-blocking): ownership passes to the callback. */
typedef void (*net_accept_fn)(int fd, const struct sockaddr_storage *addr, socklen_t len,
                              bool is_unix);

/* Open every listener the config asks for.  False with a reason ("could not
 * bind 127.0.0.1:6432: Address already in use") when any fails. */
bool net_listen_all(struct event_base *base, const struct config *cfg, net_accept_fn cb, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* Close every listener (and unlink the unix socket). */
void net_close_listeners(void);
/* Stop / resume accepting (descriptor exhaustion, shutdown). */
void net_pause_listeners(bool pause);

/* Start a non-blocking connect; returns the socket or -1 with errno set.
 * *DONE is true when the connect already completed. */
int net_connect(const struct sockaddr *sa, socklen_t len, bool *done);
/* Pending error of a socket after its connect finished (0 = connected). */
int net_connect_result(int fd);
/* TCP_NODELAY and keepalive on TCP sockets; no-op on unix sockets. */
void net_tune(int fd);
/* "1.2.3.4:5678", "[::1]:5678" or "unix" into BUF. */
void net_addr_text(const struct sockaddr_storage *addr, char *buf, size_t len);
/* Raise RLIMIT_NOFILE toward WANT; returns the limit in force. */
unsigned long net_raise_nofile(unsigned long want);

#endif
