/*
 * janitor: once a second, every timeout and the pool upkeep.  Per tick the
 * work is proportional to what expires, not to all clients: login clients
 * and waiting clients are in arrival order, logged-in clients are kept in
 * order of last activity, and servers (few) are scanned per pool.
 */
#include "janitor.h"

#include <event2/event.h>

#include "cancel.h"
#include "client.h"
#include "config.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"

static struct event *ev_tick;

static uint64_t usec(double seconds)
{
	return seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
}

static void login_timeouts(uint64_t now)
{
	uint64_t limit = usec(rt.cfg->client_login_timeout);
	struct list *it, *tmp;

	if (limit == 0)
		return;
	/* login_clients is in accept order: stop at the first young one. */
	list_for_each_safe(it, tmp, &rt.login_clients)
	{
		struct client *c = list_entry(it, struct client, node);

		if (now - c->connect_time < limit)
			break;
		client_fail(c, "08P01", "client_login_timeout (login took too long)");
	}
}

static void notify_waiting(struct client *c, struct pool *pool)
{
	struct pkt_writer w;
	char msg[256];

	snprintf(msg, sizeof(msg), "no server connection available in pool %s/%s, waiting",
	         pool->db_name, pool->user);
	pkt_writer_init(&w);
	proto_notice(&w, "00000", msg);
	if (pkt_ok(&w))
		sbuf_write(&c->sb, w.buf, w.len);
	pkt_writer_free(&w);
	c->wait_notified = true;
}

static void waiting_clients(struct pool *pool, uint64_t now)
{
	uint64_t limit = usec(rt.cfg->query_wait_timeout), notify = usec(rt.cfg->query_wait_notify);
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &pool->waiting_clients)
	{
		struct client *c = list_entry(it, struct client, node);
		uint64_t waited = now - c->wait_start;

		if (limit > 0 && waited >= limit) {
			client_fail(c, "08P01",
			            "query_wait_timeout: no server connection within %g s",
			            rt.cfg->query_wait_timeout);
		} else if (notify > 0 && waited >= notify) {
			if (!c->wait_notified)
				notify_waiting(c, pool);
		} else {
			break; /* FIFO: everyone behind waited less */
		}
	}
}

/* Servers on their way to being usable: logging in, or running the reset or
 * check query.  server_connect_timeout bounds both, so a wedged reset costs
 * one connection, never a pool slot for good. */
static void unready_servers(struct pool *pool, uint64_t now)
{
	uint64_t limit = usec(rt.cfg->server_connect_timeout);
	struct list *it, *tmp;

	if (limit == 0)
		return;
	list_for_each_safe(it, tmp, &pool->other_servers)
	{
		struct server *s = list_entry(it, struct server, node);

		if (s->state == SV_LOGIN && now - s->connect_time >= limit)
			server_fail_login(s, "08006",
			                  "server login timed out (server_connect_timeout)");
		else if ((s->state == SV_RESET || s->state == SV_CHECK) &&
		         now - s->reset_start >= limit)
			server_close(s, s->state == SV_RESET
			                    ? "server_reset_query did not finish within "
			                      "server_connect_timeout"
			                    : "server_check_query did not finish within "
			                      "server_connect_timeout");
	}
}

static void idle_servers(struct pool *pool, uint64_t now)
{
	const struct config *cfg = rt.cfg;
	uint64_t idle = usec(cfg->server_idle_timeout), life = usec(cfg->server_lifetime);
	uint64_t overflow = usec(cfg->overflow_idle_timeout);
	struct list *it, *tmp;

	/* From the least recently used end. */
	for (it = pool->idle_servers.prev, tmp = it->prev; it != &pool->idle_servers;
	     it = tmp, tmp = it->prev) {
		struct server *s = list_entry(it, struct server, node);
		bool above_min = pool->n_servers > (unsigned)pool->min_pool_size;
		const char *why = NULL;

		if (life > 0 && now - s->connect_time >= life)
			why = "server_lifetime";
		else if (above_min && idle > 0 && now - s->last_used >= idle)
			why = "server_idle_timeout";
		else if (above_min && pool->max_overflow > 0 &&
		         pool->n_servers > (unsigned)pool->pool_size && overflow > 0 &&
		         now - s->last_used >= overflow)
			why = "overflow_idle_timeout";
		if (why != NULL)
			server_close(s, why);
	}
}

/* Cancel what S runs; once a cancel had its second, end the client. */
static void escalate(struct server *s, uint64_t now, const char *sqlstate, const char *what)
{
	if (s->req_count > 0 && s->cancel_time == 0) {
		cancel_send(s, NULL);
		s->cancel_time = now;
		return;
	}
	if (s->cancel_time != 0 && now - s->cancel_time < 1000000)
		return;
	client_fail(s->client, sqlstate, "%s", what);
}

static void active_servers(struct pool *pool, uint64_t now)
{
	const struct config *cfg = rt.cfg;
	uint64_t idle_xact = usec(cfg->idle_transaction_timeout), query = usec(cfg->query_timeout);
	uint64_t xact = usec(cfg->transaction_timeout);
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &pool->active_servers)
	{
		struct server *s = list_entry(it, struct server, node);

		if (s->client == NULL)
			continue;
		if (idle_xact > 0 && s->req_count == 0 && s->last_status != 'I' &&
		    now - s->ready_time >= idle_xact) {
			client_fail(s->client, "25P03",
			            "idle_transaction_timeout: idle in transaction for too long");
		} else if (xact > 0 && s->xact_start != 0 && now - s->xact_start >= xact) {
			escalate(s, now, "25P04", "transaction_timeout: transaction open too long");
		} else if (query > 0 && s->req_count > 0 && s->query_start != 0 &&
		           now - s->query_start >= query) {
			if (s->cancel_time == 0)
				escalate(s, now, "57014", "query_timeout");
			else if (now - s->cancel_time >= query + 1000000)
				escalate(s, now, "57014", "query_timeout: query did not stop");
		}
	}
}

static void idle_clients(struct pool *pool, uint64_t now)
{
	uint64_t limit = usec(rt.cfg->client_idle_timeout);
	struct list *it, *tmp;

	if (limit == 0)
		return;
	/* pool->clients is in order of last activity. */
	list_for_each_safe(it, tmp, &pool->clients)
	{
		struct client *c = list_entry(it, struct client, node);

		if (now - c->last_active < limit)
			break;
		if (c->server == NULL || c->server->req_count == 0)
			client_fail(c, "08P01", "client_idle_timeout: idle for too long");
	}
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	janitor_tick(rt_now_usec());
}

void janitor_tick(uint64_t now)
{
	uint64_t autodb = usec(rt.cfg->autodb_idle_timeout);
	struct list *it, *tmp;

	login_timeouts(now);
	list_for_each_safe(it, tmp, &rt.pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);

		waiting_clients(pool, now);
		unready_servers(pool, now);
		idle_servers(pool, now);
		active_servers(pool, now);
		idle_clients(pool, now);
		if (pool->autodb && autodb > 0 && list_empty(&pool->clients) &&
		    list_empty(&pool->waiting_clients) && now - pool->idle_since >= autodb &&
		    pool_try_free(pool))
			continue;
		pool_launch(pool);
	}
}

bool janitor_start(void)
{
	struct timeval tv = {1, 0};

	ev_tick = event_new(rt.base, -1, EV_PERSIST, tick, NULL);
	return ev_tick != NULL && event_add(ev_tick, &tv) == 0;
}

void janitor_stop(void)
{
	if (ev_tick != NULL)
		event_free(ev_tick);
	ev_tick = NULL;
}
