/*
 * dns: asynchronous host name resolution with c-ares, driven by the libevent
 * loop (c-ares sockets watched by events, its timeouts by a timer), with a
 * small cache keyed by host name that keeps answers for dns_max_ttl seconds
 * (less if the records' TTL is shorter) and failures for dns_nxdomain_ttl
 * seconds; concurrent requests for one name share one query.  Never blocks.
 */
#ifndef PGL_DNS_H
#define PGL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns_req;

/* Result callback: on success ERRMSG is NULL and ADDRS holds N >= 1
 * addresses (IPv4 and/or IPv6, port 0), valid only during the call.  On
 * failure N is 0 and ERRMSG says why.  Always called from the event loop,
 * never from inside dns_resolve(). */
typedef void (*dns_cb)(void *arg, const struct sockaddr_storage *addrs, size_t n,
                       const char *errmsg);

/* Start the resolver on BASE.  False with a reason in ERR. */
bool dns_init(struct event_base *base, double max_ttl, double nxdomain_ttl, char *err,
              size_t errlen) __attribute__((warn_unused_result));
/* Stop the resolver; pending callbacks are not called. */
void dns_shutdown(void);
/* Resolve HOST (a name or an IP literal).  Returns a handle valid until the
 * callback runs or dns_cancel() is called; NULL on out-of-memory or when the
 * resolver is not running. */
struct dns_req *dns_resolve(const char *host, dns_cb cb, void *arg);
/* Call CB for every cached answer (SHOW DNS_HOSTS): host name, seconds until
 * it expires, and its addresses (none for a cached failure). */
typedef void (*dns_walk_cb)(void *arg, const char *host, double ttl,
                            const struct sockaddr_storage *addrs, size_t n);
void dns_cache_walk(dns_walk_cb cb, void *arg);
/* Names in the cache, and how many of them have a query in flight (SHOW LISTS). */
void dns_cache_counts(size_t *names, size_t *querying);
/* Cancel a pending request; its callback will not run. */
void dns_cancel(struct dns_req *req);
/* Number of queries sent to c-ares since dns_init() (not counting literals
 * and cache hits); for tests and statistics. */
unsigned long dns_query_count(void);

#endif
