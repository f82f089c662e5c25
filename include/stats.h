/*
 * stats: per-pool counters and latency histograms.  Recording is a few
 * additions (inline, always on); averages over stats_period, the log line
 * and the SHOW/metrics output are computed in stats.c from snapshots.
 *
 * Every stats_period seconds a timer takes the difference between each
 * pool's totals and the totals at the previous tick ("last period") and
 * writes one log line (log_stats).  SHOW STATS averages are computed from
 * the sums of those differences, so averages over several pools (one
 * database) are weighted correctly.
 */
#ifndef PGL_STATS_H
#define PGL_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* Histogram buckets: bucket i counts durations below 2^i microseconds
 * (i = 0..STATS_HIST_BUCKETS-2); the last bucket counts everything longer. */
#define STATS_HIST_BUCKETS 28

struct stats_hist {
	uint64_t bucket[STATS_HIST_BUCKETS];
	uint64_t count;
	uint64_t sum_usec;
};

/* Totals since start, in PgBouncer's SHOW STATS vocabulary. */
struct stats_counters {
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t bytes_recv; /* from clients */
	uint64_t bytes_sent; /* to clients */
	uint64_t xact_time;  /* usec */
	uint64_t query_time; /* usec */
	uint64_t wait_time;  /* usec */
	uint64_t client_logins;
	uint64_t server_assignment_count;
	uint64_t parse_count;        /* Parse messages from clients */
	uint64_t server_parse_count; /* Parse messages pglease sent to servers itself */
	uint64_t bind_count;
};

struct pool_stats {
	struct stats_counters total;
	struct stats_counters prev;  /* total at the last stats_period tick */
	struct stats_counters last;  /* total - prev of the last full period */
	struct stats_hist wait_hist; /* waiting for a lease */
	struct stats_hist query_hist;
	struct stats_hist xact_hist;
};

static inline void stats_hist_add(struct stats_hist *h, uint64_t usec)
{
	unsigned i = 0;
	uint64_t v = usec;

	while (v > 0 && i < STATS_HIST_BUCKETS - 1) {
		v >>= 1;
		i++;
	}
	h->bucket[i]++;
	h->count++;
	h->sum_usec += usec;
}

static inline void stats_query_done(struct pool_stats *s, uint64_t usec)
{
	s->total.query_count++;
	s->total.query_time += usec;
	stats_hist_add(&s->query_hist, usec);
}

static inline void stats_xact_done(struct pool_stats *s, uint64_t usec)
{
	s->total.xact_count++;
	s->total.xact_time += usec;
	stats_hist_add(&s->xact_hist, usec);
}

static inline void stats_wait_done(struct pool_stats *s, uint64_t usec)
{
	s->total.wait_time += usec;
	stats_hist_add(&s->wait_hist, usec);
}

struct pool;

/* What SHOW POOLS and /metrics show of one pool at one moment. */
struct pool_gauges {
	unsigned cl_active;  /* logged in, idle or with a server */
	unsigned cl_waiting; /* waiting for a server or for the pool's first login */
	unsigned sv_active, sv_idle, sv_used, sv_tested, sv_login;
	/* cancels in flight: clients that asked, connections carrying them, servers hit */
	unsigned cl_active_cancel_req, sv_active_cancel, sv_being_canceled;
	unsigned sv_overflow;  /* servers beyond pool_size */
	uint64_t maxwait_usec; /* how long the oldest waiting client has waited */
};

/* Count POOL's connections by state at NOW (rt_now_usec()). */
void stats_pool_gauges(const struct pool *pool, uint64_t now, struct pool_gauges *g);
/* False for a pool of a database removed from the config, once it is empty:
 * SHOW POOLS and /metrics leave it out. */
bool stats_pool_listed(const struct pool *pool);

/* Add every counter of B to A. */
void stats_add(struct stats_counters *a, const struct stats_counters *b);

/*
 * Averages of DELTA (summed "last period" counters) in PgBouncer's sense:
 * counts and bytes per second over the last period; xact_time and
 * query_time per transaction / query; wait_time per server assignment.
 */
void stats_averages(const struct stats_counters *delta, struct stats_counters *avg);

/* Length of the last full period in microseconds (stats_period until the first tick). */
uint64_t stats_period_usec(void);

/* Start the stats_period timer on rt.base.  False on failure. */
bool stats_start(void) __attribute__((warn_unused_result));
/* Re-arm the timer after stats_period changed (reload). */
void stats_reschedule(void);
/* Stop the timer. */
void stats_stop(void);
/* One period: snapshot every pool and write the log line (the timer calls it). */
void stats_tick(void);

#endif
