/* runtime: the process-wide state and deferred frees. */
#include "runtime.h"

#include <event2/event.h>
#include <time.h>

struct runtime rt;

void rt_init(void)
{
	list_init(&rt.pools);
	list_init(&rt.db_limits);
	list_init(&rt.user_limits);
	list_init(&rt.login_clients);
	list_init(&rt.admin_clients);
	list_init(&rt.free_clients);
	list_init(&rt.free_servers);
}

void rt_schedule_reap(void)
{
	if (rt.ev_reap != NULL)
		event_active(rt.ev_reap, EV_TIMEOUT, 0);
}

uint64_t rt_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
