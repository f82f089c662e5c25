/* stats: per-period snapshots of the per-pool counters; see include/stats.h. */
#include "stats.h"

#include <event2/event.h>
#include <inttypes.h>

#include "cancel.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "server.h"
#include "client.h"

static struct event *ev_period;
static uint64_t last_tick;  /* rt_now_usec() of the last tick (or start) */
static uint64_t period_len; /* length of the last full period, usec */

void stats_add(struct stats_counters *a, const struct stats_counters *b)
{
	a->xact_count += b->xact_count;
	a->query_count += b->query_count;
	a->bytes_recv += b->bytes_recv;
	a->bytes_sent += b->bytes_sent;
	a->xact_time += b->xact_time;
	a->query_time += b->query_time;
	a->wait_time += b->wait_time;
	a->client_logins += b->client_logins;
	a->server_assignment_count += b->server_assignment_count;
	a->parse_count += b->parse_count;
	a->server_parse_count += b->server_parse_count;
	a->bind_count += b->bind_count;
}

/* B - A, counter by counter (totals only grow, so never negative). */
static void stats_diff(const struct stats_counters *a, const struct stats_counters *b,
                       struct stats_counters *out)
{
	out->xact_count = b->xact_count - a->xact_count;
	out->query_count = b->query_count - a->query_count;
	out->bytes_recv = b->bytes_recv - a->bytes_recv;
	out->bytes_sent = b->bytes_sent - a->bytes_sent;
	out->xact_time = b->xact_time - a->xact_time;
	out->query_time = b->query_time - a->query_time;
	out->wait_time = b->wait_time - a->wait_time;
	out->client_logins = b->client_logins - a->client_logins;
	out->server_assignment_count = b->server_assignment_count - a->server_assignment_count;
	out->parse_count = b->parse_count - a->parse_count;
	out->server_parse_count = b->server_parse_count - a->server_parse_count;
	out->bind_count = b->bind_count - a->bind_count;
}

static unsigned count_list(const struct list *head)
{
	const struct list *it;
	unsigned n = 0;

	for (it = head->next; it != head; it = it->next)
		n++;
	return n;
}

void stats_pool_gauges(const struct pool *pool, uint64_t now, struct pool_gauges *g)
{
	const struct list *it, *first = pool->waiting_clients.next;
	struct cancel_counts cc;

	g->cl_active = count_list(&pool->clients);
	g->cl_waiting = count_list(&pool->waiting_clients) + count_list(&pool->welcome_clients);
	g->sv_active = count_list(&pool->active_servers);
	g->sv_idle = 0;
	g->sv_used = 0;
	g->sv_tested = 0;
	g->sv_login = 0;
	/* Idle servers past server_check_delay get server_check_query before
	 * their next lease: PgBouncer calls them "used". */
	for (it = pool->idle_servers.next; it != &pool->idle_servers; it = it->next) {
		if (pool_server_needs_check(list_entry(it, const struct server, node), now))
			g->sv_used++;
		else
			g->sv_idle++;
	}
	for (it = pool->other_servers.next; it != &pool->other_servers; it = it->next) {
		const struct server *s = list_entry(it, const struct server, node);

		if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
			g->sv_login++;
		else
			g->sv_tested++;
	}
	g->sv_overflow = pool->n_servers > (unsigned)pool->pool_size
	                     ? pool->n_servers - (unsigned)pool->pool_size
	                     : 0;
	cancel_pool_counts(pool, &cc);
	g->cl_active_cancel_req = cc.requesters;
	g->sv_active_cancel = cc.conns;
	g->sv_being_canceled = cc.servers;
	g->maxwait_usec = 0;
	if (first != &pool->waiting_clients) {
		const struct client *c = list_entry(first, const struct client, node);

		if (c->wait_start != 0 && now > c->wait_start)
			g->maxwait_usec = now - c->wait_start;
	}
}

bool stats_pool_listed(const struct pool *pool)
{
	return cfg_find_db(rt.cfg, pool->db_name) != NULL || pool->n_servers > 0 ||
	       !list_empty(&pool->clients) || !list_empty(&pool->waiting_clients) ||
	       !list_empty(&pool->welcome_clients);
}

uint64_t stats_period_usec(void)
{
	if (period_len > 0)
		return period_len;
	return (uint64_t)(rt.cfg != NULL ? rt.cfg->stats_period : 60) * 1000000u;
}

static uint64_t per_sec(uint64_t n, uint64_t usec)
{
	return usec > 0 ? (uint64_t)((double)n * 1e6 / (double)usec) : 0;
}

void stats_averages(const struct stats_counters *d, struct stats_counters *avg)
{
	uint64_t len = stats_period_usec();

	avg->xact_count = per_sec(d->xact_count, len);
	avg->query_count = per_sec(d->query_count, len);
	avg->bytes_recv = per_sec(d->bytes_recv, len);
	avg->bytes_sent = per_sec(d->bytes_sent, len);
	avg->client_logins = per_sec(d->client_logins, len);
	avg->server_assignment_count = per_sec(d->server_assignment_count, len);
	avg->parse_count = per_sec(d->parse_count, len);
	avg->server_parse_count = per_sec(d->server_parse_count, len);
	avg->bind_count = per_sec(d->bind_count, len);
	avg->xact_time = d->xact_count > 0 ? d->xact_time / d->xact_count : 0;
	avg->query_time = d->query_count > 0 ? d->query_time / d->query_count : 0;
	avg->wait_time =
	    d->server_assignment_count > 0 ? d->wait_time / d->server_assignment_count : 0;
}

void stats_tick(void)
{
	struct stats_counters sum = {0}, avg;
	uint64_t now = rt_now_usec();
	struct list *it;

	if (now > last_tick)
		period_len = now - last_tick;
	last_tick = now;
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool_stats *s = &list_entry(it, struct pool, node)->stats;

		stats_diff(&s->prev, &s->total, &s->last);
		s->prev = s->total;
		stats_add(&sum, &s->last);
	}
	if (!rt.cfg->log_stats)
		return;
	stats_averages(&sum, &avg);
	log_info("stats: %" PRIu64 " xacts/s, %" PRIu64 " queries/s, %" PRIu64
	         " client parses/s, %" PRIu64 " server parses/s, %" PRIu64 " binds/s, in %" PRIu64
	         " B/s, out %" PRIu64 " B/s, xact %" PRIu64 " us, query %" PRIu64
	         " us, wait %" PRIu64 " us",
	         avg.xact_count, avg.query_count, avg.parse_count, avg.server_parse_count,
	         avg.bind_count, avg.bytes_recv, avg.bytes_sent, avg.xact_time, avg.query_time,
	         avg.wait_time);
}

static void on_period(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	stats_tick();
}

static bool arm(void)
{
	struct timeval tv = {rt.cfg->stats_period > 0 ? rt.cfg->stats_period : 60, 0};

	return event_add(ev_period, &tv) == 0;
}

bool stats_start(void)
{
	last_tick = rt_now_usec();
	ev_period = event_new(rt.base, -1, EV_PERSIST, on_period, NULL);
	return ev_period != NULL && arm();
}

void stats_reschedule(void)
{
	if (ev_period == NULL)
		return;
	event_del(ev_period);
	if (!arm())
		log_error("could not re-arm the stats timer");
}

void stats_stop(void)
{
	if (ev_period != NULL)
		event_free(ev_period);
	ev_period = NULL;
}
