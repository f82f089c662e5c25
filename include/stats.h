/*
 * stats: per-pool counters and latency histograms.  Recording is a few
 * additions (inline, always on); averages over stats_period, the log line
 * and the SHOW/metrics output are computed in stats.c from snapshots.
 */
#ifndef PGL_STATS_H
#define PGL_STATS_H

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
	uint64_t parse_count;
	uint64_t bind_count;
};

struct pool_stats {
	struct stats_counters total;
	struct stats_counters prev;  /* total at the start of the last full period */
	struct stats_counters avg;   /* per-second averages over the last period */
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

#endif
