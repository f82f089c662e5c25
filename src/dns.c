/*
 * dns: host name resolution for server connections, without ever blocking the
 * event loop.
 *
 * Data flow:
 *   dns_resolve() -> IP literal: an answer built on the spot goes to the
 *                    ready queue;
 *                 -> cached name: the cached answer goes to the ready queue;
 *                 -> otherwise: the request waits on the name's cache entry,
 *                    whose one c-ares query serves every request for it.
 *   c-ares callback -> stores the answer in the entry and moves its waiters
 *                      to the ready queue.
 *   flush event -> calls the user callbacks of the ready queue.
 *
 * User callbacks run only from the flush event.  That keeps them out of
 * dns_resolve() (c-ares answers /etc/hosts names synchronously inside
 * ares_getaddrinfo()) and out of ares_process_fd(), so a callback may resolve,
 * cancel or even call dns_shutdown() without pulling the channel out from
 * under c-ares.
 *
 * c-ares tells us which sockets to watch through its socket-state callback;
 * each watched socket gets one libevent event, and one timer follows
 * ares_timeout() after every step that may have changed it.
 *
 * Ownership: a request lives on exactly one list (its entry's waiters, the
 * ready queue, or the batch being delivered) until it is delivered or
 * cancelled, and is freed by whoever takes it off.  Answers are reference
 * counted: the cache entry holds one reference and each ready request one.
 */
#include "dns.h"

#include "log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Soft cap on cache entries; names with a query in flight are never evicted,
 * so the cache may exceed it while that many distinct names are pending. */
#define DNS_CACHE_MAX 128

/* Intrusive circular list; a head is a link whose neighbours are itself. */
struct dns_link {
	struct dns_link *prev;
	struct dns_link *next;
};

#define DNS_ITEM(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* One lookup result, shared by the cache and every request it answers. */
struct dns_answer {
	unsigned refs;
	const char *errmsg; /* static string; NULL on success */
	size_t n;
	struct sockaddr_storage addrs[];
};

enum dns_req_state {
	DNS_REQ_WAITING, /* on an entry's waiters, query in flight */
	DNS_REQ_READY,   /* on the ready queue (or the batch being delivered), answer set */
	DNS_REQ_RUNNING, /* its callback is running; freed when it returns */
};

struct dns_req {
	struct dns_link link;
	enum dns_req_state state;
	struct dns_answer *answer; /* one reference once READY */
	dns_cb cb;
	void *arg;
};

/* A cache slot for one host name.  It may have waiters only while querying;
 * it may outlive its waiters (cancelled) and keep its answer until expiry. */
struct dns_entry {
	struct dns_link link;      /* in dns_state.cache */
	struct dns_link waiters;   /* requests waiting for the query */
	bool querying;             /* a c-ares query is in flight; never evicted */
	struct dns_answer *answer; /* NULL until the first answer */
	double expires;            /* monotonic seconds; meaningful once answered */
	char host[];
};

/* One socket c-ares asked us to watch. */
struct dns_watch {
	struct dns_link link; /* in dns_state.watches */
	ares_socket_t fd;
	struct event *ev;
};

static struct {
	bool running;
	struct event_base *base;
	ares_channel channel;
	double max_ttl;
	double nxdomain_ttl;
	struct event *timer;    /* follows ares_timeout() */
	struct event *flush_ev; /* delivers the ready queue */
	struct dns_link watches;
	struct dns_link cache;
	size_t cache_len;
	struct dns_link ready;      /* requests to deliver at the next flush */
	struct dns_link delivering; /* the batch the flush is working through */
	unsigned long queries;
} dns_state;

/* Handed out when an answer cannot be allocated; never freed, never cached. */
static struct dns_answer dns_oom_answer = {.refs = 1, .errmsg = "out of memory"};

static void list_init(struct dns_link *head)
{
	head->prev = head;
	head->next = head;
}

static bool list_empty(const struct dns_link *head)
{
	return head->next == head;
}

static void list_append(struct dns_link *head, struct dns_link *item)
{
	item->prev = head->prev;
	item->next = head;
	head->prev->next = item;
	head->prev = item;
}

static void list_remove(struct dns_link *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	item->prev = item;
	item->next = item;
}

/* Move every item of FROM to the end of TO, leaving FROM empty. */
static void list_splice(struct dns_link *from, struct dns_link *to)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

static double dns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An answer with room for N addresses, one reference held; NULL on OOM. */
static struct dns_answer *answer_new(size_t n, const char *errmsg)
{
	struct dns_answer *answer = calloc(1, sizeof(*answer) + n * sizeof(answer->addrs[0]));

	if (answer == NULL)
		return NULL;
	answer->refs = 1;
	answer->errmsg = errmsg;
	return answer;
}

static struct dns_answer *answer_ref(struct dns_answer *answer)
{
	if (answer != &dns_oom_answer)
		answer->refs++;
	return answer;
}

static void answer_unref(struct dns_answer *answer)
{
	if (answer == NULL || answer == &dns_oom_answer)
		return;
	if (--answer->refs == 0)
		free(answer);
}

/* Copy one c-ares address into SS with port 0; false for families we do not use. */
static bool copy_addr(struct sockaddr_storage *ss, const struct ares_addrinfo_node *node)
{
	memset(ss, 0, sizeof(*ss));
	if (node->ai_family == AF_INET && node->ai_addrlen >= sizeof(struct sockaddr_in)) {
		memcpy(ss, node->ai_addr, sizeof(struct sockaddr_in));
		((struct sockaddr_in *)ss)->sin_port = 0;
		return true;
	}
	if (node->ai_family == AF_INET6 && node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
		memcpy(ss, node->ai_addr, sizeof(struct sockaddr_in6));
		((struct sockaddr_in6 *)ss)->sin6_port = 0;
		return true;
	}
	return false;
}

/*
 * Turn a c-ares result into an answer and say how long to cache it in *TTL.
 * Successful answers live min(max_ttl, shortest record TTL).  c-ares reports
 * TTL 0 both for /etc/hosts entries (which have no TTL) and for records that
 * ask not to be cached, and the two cannot be told apart; 0 is taken as "no
 * TTL given", so max_ttl applies, as in PgBouncer, which always caches for
 * dns_max_ttl.
 */
static struct dns_answer *answer_from_ares(int status, const struct ares_addrinfo *res, double *ttl)
{
	const struct ares_addrinfo_node *node;
	struct dns_answer *answer;
	struct sockaddr_storage ss;
	size_t n = 0;
	int min_ttl = 0;

	*ttl = dns_state.nxdomain_ttl;
	if (status == ARES_SUCCESS && res != NULL) {
		for (node = res->nodes; node != NULL; node = node->ai_next) {
			if (!copy_addr(&ss, node))
				continue;
			n++;
			if (node->ai_ttl > 0 && (min_ttl == 0 || node->ai_ttl < min_ttl))
				min_ttl = node->ai_ttl;
		}
	}
	if (n == 0) {
		answer = answer_new(0, status == ARES_SUCCESS ? "no IPv4 or IPv6 address"
		                                              : ares_strerror(status));
	} else {
		answer = answer_new(n, NULL);
		if (answer != NULL) {
			for (node = res->nodes; node != NULL; node = node->ai_next) {
				if (copy_addr(&answer->addrs[answer->n], node))
					answer->n++;
			}
			*ttl = dns_state.max_ttl;
			if (min_ttl > 0 && min_ttl < *ttl)
				*ttl = min_ttl;
		}
	}
	if (answer == NULL) {
		*ttl = 0;
		return &dns_oom_answer;
	}
	return answer;
}

/* An answer for HOST if it is an IPv4 or IPv6 literal, else NULL (also on OOM, with *OOM set). */
static struct dns_answer *answer_from_literal(const char *host, bool *oom)
{
	struct in_addr in4;
	struct in6_addr in6;
	struct dns_answer *answer;

	*oom = false;
	if (inet_pton(AF_INET, host, &in4) == 1) {
		answer = answer_new(1, NULL);
		if (answer != NULL) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&answer->addrs[0];

			sin->sin_family = AF_INET;
			sin->sin_addr = in4;
			answer->n = 1;
		}
	} else if (inet_pton(AF_INET6, host, &in6) == 1) {
		answer = answer_new(1, NULL);
		if (answer != NULL) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&answer->addrs[0];

			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = in6;
			answer->n = 1;
		}
	} else {
		return NULL;
	}
	*oom = answer == NULL;
	return answer;
}

/* Ask libevent to deliver the ready queue on its next round. */
static void schedule_flush(void)
{
	static const struct timeval zero = {0, 0};

	if (!evtimer_pending(dns_state.flush_ev, NULL))
		evtimer_add(dns_state.flush_ev, &zero);
}

/* Queue REQ for delivery with ANSWER (the request takes over the reference). */
static void req_ready(struct dns_req *req, struct dns_answer *answer)
{
	req->state = DNS_REQ_READY;
	req->answer = answer;
	list_append(&dns_state.ready, &req->link);
	schedule_flush();
}

static void req_free(struct dns_req *req)
{
	answer_unref(req->answer);
	free(req);
}

/* Re-arm the timeout timer after anything that may have changed c-ares' deadlines. */
static void arm_timer(void)
{
	struct timeval tv;

	if (ares_timeout(dns_state.channel, NULL, &tv) != NULL)
		evtimer_add(dns_state.timer, &tv);
	else
		evtimer_del(dns_state.timer);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(dns_state.channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer();
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	ares_process_fd(dns_state.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer();
}

static void watch_free(struct dns_watch *w)
{
	list_remove(&w->link);
	event_free(w->ev);
	free(w);
}

/*
 * c-ares socket-state callback: watch FD for what c-ares wants, or stop
 * watching it when it wants nothing (it is about to close it).  An event that
 * cannot be created leaves the socket to c-ares' own timeouts, which still
 * end the query.
 */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_watch *w = NULL;
	struct dns_link *l;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	for (l = dns_state.watches.next; l != &dns_state.watches; l = l->next) {
		if (DNS_ITEM(l, struct dns_watch, link)->fd == fd) {
			w = DNS_ITEM(l, struct dns_watch, link);
			break;
		}
	}
	if (w != NULL)
		watch_free(w);
	if (what == 0)
		return;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return;
	w->fd = fd;
	w->ev = event_new(dns_state.base, fd, what | EV_PERSIST, sock_cb, NULL);
	if (w->ev == NULL || event_add(w->ev, NULL) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return;
	}
	list_append(&dns_state.watches, &w->link);
}

static void entry_free(struct dns_entry *entry)
{
	while (!list_empty(&entry->waiters)) {
		struct dns_req *req = DNS_ITEM(entry->waiters.next, struct dns_req, link);

		list_remove(&req->link);
		req_free(req);
	}
	list_remove(&entry->link);
	answer_unref(entry->answer);
	dns_state.cache_len--;
	free(entry);
}

/* c-ares is done with the query for ENTRY: cache the answer, queue its waiters. */
static void query_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_entry *entry = arg;
	double ttl;

	/* ares_destroy() in dns_shutdown(); the entry is freed there. */
	if (status == ARES_EDESTRUCTION) {
		ares_freeaddrinfo(res);
		return;
	}
	entry->querying = false;
	answer_unref(entry->answer);
	entry->answer = answer_from_ares(status, res, &ttl);
	ares_freeaddrinfo(res);
	entry->expires = dns_now() + ttl;
	log_debug("dns: %s: %zu address(es)%s%s, cached %.1fs", entry->host, entry->answer->n,
	          entry->answer->errmsg ? ", " : "",
	          entry->answer->errmsg ? entry->answer->errmsg : "", ttl);
	while (!list_empty(&entry->waiters)) {
		struct dns_req *req = DNS_ITEM(entry->waiters.next, struct dns_req, link);

		list_remove(&req->link);
		req_ready(req, answer_ref(entry->answer));
	}
}

/* Make room for one more entry: drop expired answers, then the one expiring first. */
static void cache_trim(double now)
{
	struct dns_link *l, *next;
	struct dns_entry *oldest = NULL;

	for (l = dns_state.cache.next; l != &dns_state.cache; l = next) {
		struct dns_entry *entry = DNS_ITEM(l, struct dns_entry, link);

		next = l->next;
		if (!entry->querying && entry->expires <= now)
			entry_free(entry);
	}
	if (dns_state.cache_len < DNS_CACHE_MAX)
		return;
	for (l = dns_state.cache.next; l != &dns_state.cache; l = l->next) {
		struct dns_entry *entry = DNS_ITEM(l, struct dns_entry, link);

		if (!entry->querying && (oldest == NULL || entry->expires < oldest->expires))
			oldest = entry;
	}
	if (oldest != NULL)
		entry_free(oldest);
}

static struct dns_entry *cache_find(const char *host)
{
	struct dns_link *l;

	for (l = dns_state.cache.next; l != &dns_state.cache; l = l->next) {
		struct dns_entry *entry = DNS_ITEM(l, struct dns_entry, link);

		/* DNS names are case-insensitive. */
		if (strcasecmp(entry->host, host) == 0)
			return entry;
	}
	return NULL;
}

static struct dns_entry *cache_add(const char *host, double now)
{
	size_t len = strlen(host);
	struct dns_entry *entry;

	if (dns_state.cache_len >= DNS_CACHE_MAX)
		cache_trim(now);
	entry = calloc(1, sizeof(*entry) + len + 1);
	if (entry == NULL)
		return NULL;
	memcpy(entry->host, host, len + 1);
	list_init(&entry->waiters);
	list_append(&dns_state.cache, &entry->link);
	dns_state.cache_len++;
	return entry;
}

/* Send the query for ENTRY, whose waiters already include the new request. */
static void query_start(struct dns_entry *entry)
{
	struct ares_addrinfo_hints hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	dns_state.queries++;
	entry->querying = true;
	log_debug("dns: querying %s", entry->host);
	/* May call query_cb() before returning (/etc/hosts, bad names). */
	ares_getaddrinfo(dns_state.channel, entry->host, NULL, &hints, query_cb, entry);
	arm_timer();
}

/*
 * Deliver the requests that were ready when this round began.  Requests that
 * callbacks queue wait for the next round, so a callback that keeps resolving
 * cannot starve the loop.  The batch lives in dns_state so that dns_cancel()
 * and dns_shutdown() called from a callback still find its requests.
 */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	list_splice(&dns_state.ready, &dns_state.delivering);
	while (!list_empty(&dns_state.delivering)) {
		struct dns_req *req = DNS_ITEM(dns_state.delivering.next, struct dns_req, link);
		const struct dns_answer *answer = req->answer;

		list_remove(&req->link);
		req->state = DNS_REQ_RUNNING;
		req->cb(req->arg, answer->n > 0 ? answer->addrs : NULL, answer->n, answer->errmsg);
		req_free(req);
		if (!dns_state.running)
			return;
	}
}

bool dns_init(struct event_base *base, double max_ttl, double nxdomain_ttl, char *err,
              size_t errlen)
{
	struct ares_options opts;
	int rc;

	if (dns_state.running) {
		snprintf(err, errlen, "resolver already started");
		return false;
	}
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares initialization failed: %s", ares_strerror(rc));
		return false;
	}
	memset(&dns_state, 0, sizeof(dns_state));
	dns_state.base = base;
	dns_state.max_ttl = max_ttl;
	dns_state.nxdomain_ttl = nxdomain_ttl;
	list_init(&dns_state.watches);
	list_init(&dns_state.cache);
	list_init(&dns_state.ready);
	list_init(&dns_state.delivering);
	dns_state.timer = evtimer_new(base, timer_cb, NULL);
	dns_state.flush_ev = evtimer_new(base, flush_cb, NULL);
	if (dns_state.timer == NULL || dns_state.flush_ev == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state_cb;
	rc = ares_init_options(&dns_state.channel, &opts, ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares channel setup failed: %s", ares_strerror(rc));
		goto fail;
	}
	dns_state.running = true;
	return true;
fail:
	if (dns_state.timer != NULL)
		event_free(dns_state.timer);
	if (dns_state.flush_ev != NULL)
		event_free(dns_state.flush_ev);
	memset(&dns_state, 0, sizeof(dns_state));
	ares_library_cleanup();
	return false;
}

static void free_reqs(struct dns_link *head)
{
	while (!list_empty(head)) {
		struct dns_req *req = DNS_ITEM(head->next, struct dns_req, link);

		list_remove(&req->link);
		req_free(req);
	}
}

void dns_shutdown(void)
{
	if (!dns_state.running)
		return;
	/* First, while entries and watches still exist: c-ares calls query_cb()
	 * with ARES_EDESTRUCTION and sock_state_cb() for each socket it closes. */
	ares_destroy(dns_state.channel);
	dns_state.channel = NULL;
	while (!list_empty(&dns_state.watches))
		watch_free(DNS_ITEM(dns_state.watches.next, struct dns_watch, link));
	event_free(dns_state.timer);
	event_free(dns_state.flush_ev);
	while (!list_empty(&dns_state.cache))
		entry_free(DNS_ITEM(dns_state.cache.next, struct dns_entry, link));
	free_reqs(&dns_state.ready);
	free_reqs(&dns_state.delivering);
	memset(&dns_state, 0, sizeof(dns_state));
	ares_library_cleanup();
}

struct dns_req *dns_resolve(const char *host, dns_cb cb, void *arg)
{
	struct dns_req *req;
	struct dns_entry *entry;
	struct dns_answer *answer;
	double now = dns_now();
	bool oom;

	if (!dns_state.running)
		return NULL;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->cb = cb;
	req->arg = arg;
	if (host == NULL || host[0] == '\0') {
		answer = answer_new(0, "empty host name");
		if (answer == NULL)
			goto oom;
		req_ready(req, answer);
		return req;
	}
	answer = answer_from_literal(host, &oom);
	if (oom)
		goto oom;
	if (answer != NULL) {
		req_ready(req, answer);
		return req;
	}
	entry = cache_find(host);
	if (entry != NULL && !entry->querying && entry->answer != NULL && entry->expires > now) {
		req_ready(req, answer_ref(entry->answer));
		return req;
	}
	if (entry == NULL) {
		entry = cache_add(host, now);
		if (entry == NULL)
			goto oom;
	}
	req->state = DNS_REQ_WAITING;
	list_append(&entry->waiters, &req->link);
	/* New or expired; otherwise the query in flight answers this request too. */
	if (!entry->querying)
		query_start(entry);
	return req;
oom:
	free(req);
	return NULL;
}

void dns_cancel(struct dns_req *req)
{
	/* A request whose callback is running is freed when the callback returns. */
	if (req == NULL || req->state == DNS_REQ_RUNNING)
		return;
	/* Waiting or ready, it is on a list; the query it waited for, if any, stays
	 * in flight and its answer still goes to the cache. */
	list_remove(&req->link);
	req_free(req);
}

unsigned long dns_query_count(void)
{
	return dns_state.queries;
}

void dns_cache_counts(size_t *names, size_t *querying)
{
	struct dns_link *it;

	*names = *querying = 0;
	if (!dns_state.running)
		return;
	for (it = dns_state.cache.next; it != &dns_state.cache; it = it->next) {
		(*names)++;
		if (DNS_ITEM(it, struct dns_entry, link)->querying)
			(*querying)++;
	}
}

void dns_cache_walk(dns_walk_cb cb, void *arg)
{
	struct dns_link *it;
	double now = dns_now();

	if (!dns_state.running)
		return;
	for (it = dns_state.cache.next; it != &dns_state.cache; it = it->next) {
		struct dns_entry *e = DNS_ITEM(it, struct dns_entry, link);

		if (e->answer == NULL)
			continue;
		cb(arg, e->host, e->expires > now ? e->expires - now : 0, e->answer->addrs,
		   e->answer->errmsg != NULL ? 0 : e->answer->n);
	}
}
