/* stats: per-period averages of the per-pool counters. */
#include "stats.h"

#include "list.h"
#include "pool.h"
#include "runtime.h"

/* Called once per stats_period: per-second averages of the last period. */
void stats_period(unsigned period_sec);

void stats_period(unsigned period_sec)
{
	struct list *it, *tmp;

	if (period_sec == 0)
		return;
	list_for_each_safe(it, tmp, &rt.pools)
	{
		struct pool_stats *s = &list_entry(it, struct pool, node)->stats;
		const struct stats_counters *t = &s->total, *p = &s->prev;

		s->avg.xact_count = (t->xact_count - p->xact_count) / period_sec;
		s->avg.query_count = (t->query_count - p->query_count) / period_sec;
		s->avg.bytes_recv = (t->bytes_recv - p->bytes_recv) / period_sec;
		s->avg.bytes_sent = (t->bytes_sent - p->bytes_sent) / period_sec;
		s->avg.xact_time = t->xact_count > p->xact_count
					   ? (t->xact_time - p->xact_time) /
						     (t->xact_count - p->xact_count)
					   : 0;
		s->avg.query_time = t->query_count > p->query_count
					    ? (t->query_time - p->query_time) /
						      (t->query_count - p->query_count)
					    : 0;
		s->prev = *t;
	}
}
