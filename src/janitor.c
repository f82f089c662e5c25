/* janitor: once a second, cheap per tick (lists are ordered by age). */
#include "janitor.h"

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "pool.h"
#include "runtime.h"

static struct event *ev_tick;

static void login_timeouts(uint64_t now)
{
	uint64_t limit = (uint64_t)(rt.cfg->client_login_timeout * 1e6);
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

static void tick(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = rt_now_usec();

	(void)fd;
	(void)what;
	(void)arg;
	login_timeouts(now);
	pool_maintain(now);
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
