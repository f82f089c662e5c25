/*
 * unit_dns: the resolver against /etc/hosts, IP literals and names that
 * cannot exist (the test machine has no outside network).  Every wait runs
 * the loop under a deadline, so a lost answer fails a test instead of
 * hanging.
 */
#include "dns.h"
#include "tap.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define MAX_ADDRS 8

/* What one callback saw. */
struct result {
	int calls;
	size_t n;
	int family[MAX_ADDRS];
	char addr[MAX_ADDRS][INET6_ADDRSTRLEN];
	bool port_zero;
	bool has_err;
	char errmsg[128];
	bool shutdown_in_cb; /* call dns_shutdown() from the callback */
};

static struct event_base *base;

static void on_result(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *errmsg)
{
	struct result *r = arg;
	size_t i;

	r->calls++;
	r->n = n;
	r->port_zero = true;
	for (i = 0; i < n && i < MAX_ADDRS; i++) {
		r->family[i] = addrs[i].ss_family;
		if (addrs[i].ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&addrs[i];

			inet_ntop(AF_INET, &sin->sin_addr, r->addr[i], sizeof(r->addr[i]));
			r->port_zero = r->port_zero && sin->sin_port == 0;
		} else if (addrs[i].ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addrs[i];

			inet_ntop(AF_INET6, &sin6->sin6_addr, r->addr[i], sizeof(r->addr[i]));
			r->port_zero = r->port_zero && sin6->sin6_port == 0;
		}
	}
	r->has_err = errmsg != NULL;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
	if (r->shutdown_in_cb)
		dns_shutdown();
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Run the loop until R's callback ran or SECS passed; true if it ran. */
static bool wait_for(const struct result *r, double secs)
{
	bool expired = false;
	struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
	struct event *deadline = evtimer_new(base, on_deadline, &expired);

	if (deadline == NULL)
		tap_bail("evtimer_new failed");
	evtimer_add(deadline, &tv);
	while (r->calls == 0 && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(deadline);
	return r->calls > 0;
}

/* Run the loop for SECS. */
static void run_for(double secs)
{
	struct result never = {0};

	wait_for(&never, secs);
}

static bool has_addr(const struct result *r, const char *addr)
{
	size_t i;

	for (i = 0; i < r->n && i < MAX_ADDRS; i++) {
		if (strcmp(r->addr[i], addr) == 0)
			return true;
	}
	return false;
}

static int loop_events(void)
{
	return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
}

static void start(double max_ttl, double nxdomain_ttl)
{
	char err[256];

	if (!dns_init(base, max_ttl, nxdomain_ttl, err, sizeof(err)))
		tap_bail("dns_init: %s", err);
}

static void test_localhost(void)
{
	struct result r = {0};
	unsigned long q0 = dns_query_count();

	tap_ok(dns_resolve("localhost", on_result, &r) != NULL, "localhost: request started");
	tap_is_int(r.calls, 0, "localhost: callback not called from inside dns_resolve()");
	tap_ok(wait_for(&r, 10), "localhost: answered");
	tap_ok(!r.has_err && r.n >= 1, "localhost: at least one address, no error");
	tap_ok(has_addr(&r, "127.0.0.1") || has_addr(&r, "::1"), "localhost: 127.0.0.1 or ::1");
	tap_ok(r.port_zero, "localhost: port 0");
	tap_is_int((long long)(dns_query_count() - q0), 1, "localhost: one query");
}

static void test_literal(const char *host, int family)
{
	struct result r = {0};
	unsigned long q0 = dns_query_count();

	tap_ok(dns_resolve(host, on_result, &r) != NULL, "%s: request started", host);
	tap_is_int(r.calls, 0, "literal: callback not called from inside dns_resolve()");
	tap_ok(wait_for(&r, 5), "%s: answered", host);
	tap_ok(!r.has_err && r.n == 1 && r.family[0] == family, "%s: one address of its family",
	       host);
	tap_is_str(r.addr[0], host, "literal: same address back");
	tap_ok(r.port_zero, "literal: port 0");
	tap_is_int((long long)(dns_query_count() - q0), 0, "literal: no query");
}

static void test_nxdomain(void)
{
	struct result r = {0};

	tap_ok(dns_resolve("does-not-exist.invalid", on_result, &r) != NULL,
	       "does-not-exist.invalid: request started");
	tap_ok(wait_for(&r, 60), "does-not-exist.invalid: answered");
	tap_ok(r.has_err && r.errmsg[0] != '\0' && r.n == 0,
	       "does-not-exist.invalid: error message, no address");
	tap_diag("does-not-exist.invalid: %s", r.errmsg);
}

static void test_cache(void)
{
	struct result r1 = {0}, r2 = {0}, r3 = {0};
	unsigned long q0 = dns_query_count();

	dns_resolve("localhost", on_result, &r1);
	tap_is_int(r1.calls, 0, "cache hit: callback not called from inside dns_resolve()");
	tap_ok(wait_for(&r1, 5), "cache hit: answered");
	tap_ok(has_addr(&r1, "127.0.0.1") || has_addr(&r1, "::1"), "cache hit: same address");
	dns_resolve("LocalHost", on_result, &r2);
	tap_ok(wait_for(&r2, 5) && r2.n >= 1, "cache hit: name compared without case");
	dns_resolve("does-not-exist.invalid", on_result, &r3);
	tap_ok(wait_for(&r3, 5) && r3.has_err, "cached failure: error again");
	tap_is_int((long long)(dns_query_count() - q0), 0, "cache hits: no new query");
}

static void test_shared_query(void)
{
	struct result r1 = {0}, r2 = {0};
	unsigned long q0 = dns_query_count();

	dns_resolve("shared.invalid", on_result, &r1);
	dns_resolve("shared.invalid", on_result, &r2);
	tap_is_int((long long)(dns_query_count() - q0), 1, "same name twice in flight: one query");
	wait_for(&r2, 60);
	tap_ok(r1.calls == 1 && r2.calls == 1, "shared query: both requests answered once");
	tap_ok(r1.has_err && r2.has_err, "shared query: both got the error");
}

static void test_cancel(void)
{
	struct result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0}, r5 = {0}, r6 = {0};
	unsigned long q0;

	/* In flight, sharing its query with a request that is not cancelled. */
	dns_cancel(dns_resolve("cancel-me.invalid", on_result, &r1));
	dns_resolve("cancel-me.invalid", on_result, &r2);
	tap_ok(wait_for(&r2, 60), "cancel in flight: the other request is answered");
	tap_is_int(r1.calls, 0, "cancel in flight: callback never called");

	/* Already answered (a literal), waiting for the loop. */
	dns_cancel(dns_resolve("127.0.0.1", on_result, &r3));
	dns_resolve("::1", on_result, &r4);
	wait_for(&r4, 5);
	run_for(0.05);
	tap_is_int(r3.calls, 0, "cancel a literal: callback never called");

	/* The only request for its query: the query still finishes and is cached. */
	dns_cancel(dns_resolve("lonely.invalid", on_result, &r5));
	q0 = dns_query_count();
	dns_resolve("lonely.invalid", on_result, &r6);
	tap_is_int((long long)(dns_query_count() - q0), 0,
	           "cancel the only request: its query still serves the name");
	tap_ok(wait_for(&r6, 60) && r6.has_err, "cancel the only request: later request answered");
	tap_is_int(r5.calls, 0, "cancel the only request: callback never called");
}

static void test_shutdown_pending(void)
{
	struct result r1 = {0}, r2 = {0}, r3 = {0};

	tap_ok(dns_resolve("pending.invalid", on_result, &r1) != NULL, "shutdown: query in flight");
	dns_resolve("127.0.0.1", on_result, &r2);
	dns_resolve("localhost", on_result, &r3);
	dns_shutdown();
	tap_is_int(loop_events(), 0, "shutdown: no events left in the loop");
	run_for(0.2);
	tap_ok(r1.calls == 0 && r2.calls == 0 && r3.calls == 0,
	       "shutdown: pending callbacks not called");
	tap_ok(dns_resolve("localhost", on_result, &r1) == NULL, "after shutdown: resolve refused");
	dns_shutdown();
	tap_ok(true, "shutdown twice is harmless");
}

static void test_expiry(void)
{
	struct result r1 = {0}, r2 = {0};

	start(0.2, 0.2);
	dns_resolve("localhost", on_result, &r1);
	wait_for(&r1, 10);
	tap_is_int((long long)dns_query_count(), 1, "restart: counter starts again");
	run_for(0.3);
	dns_resolve("localhost", on_result, &r2);
	tap_ok(wait_for(&r2, 10) && r2.n >= 1, "expired entry: answered again");
	tap_is_int((long long)dns_query_count(), 2, "expired entry: queried again");
	dns_shutdown();
}

static void test_shutdown_in_callback(void)
{
	struct result r1 = {.shutdown_in_cb = true}, r2 = {0}, r3 = {0};

	start(10, 10);
	dns_resolve("127.0.0.1", on_result, &r1);
	dns_resolve("::1", on_result, &r2);
	dns_resolve("in-callback.invalid", on_result, &r3);
	tap_ok(wait_for(&r1, 5), "shutdown in callback: first callback ran");
	run_for(0.2);
	tap_ok(r1.calls == 1 && r2.calls == 0 && r3.calls == 0,
	       "shutdown in callback: the rest never called");
	tap_is_int(loop_events(), 0, "shutdown in callback: no events left in the loop");
}

int main(void)
{
	char err[256];

	base = event_base_new();
	if (base == NULL)
		tap_bail("event_base_new failed");
	start(30, 30);
	tap_ok(!dns_init(base, 30, 30, err, sizeof(err)) && err[0] != '\0',
	       "second dns_init refused");

	test_localhost();
	test_literal("127.0.0.1", AF_INET);
	test_literal("::1", AF_INET6);
	test_nxdomain();
	test_cache();
	test_shared_query();
	test_cancel();
	test_shutdown_pending();
	test_expiry();
	test_shutdown_in_callback();

	event_base_free(base);
	return tap_done();
}
