/*
 * metrics: the built-in Prometheus endpoint.  With metrics_listen =
 * host:port set, libevent's HTTP server answers GET /metrics on the main
 * loop with the Prometheus text format (version 0.0.4): pool gauges as SHOW
 * POOLS counts them, the SHOW STATS counters per pool, the wait / query /
 * transaction latency histograms, and process gauges.  doc/metrics.md lists
 * every series.
 */
#ifndef PGL_METRICS_H
#define PGL_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* Listen on rt.cfg->metrics_listen (nothing when empty).  False with a
 * reason in ERR when the address is invalid or cannot be bound. */
bool metrics_start(char *err, size_t errlen) __attribute__((warn_unused_result));
/* Stop listening and drop open HTTP connections.  Safe to call twice. */
void metrics_stop(void);
/* Append the whole /metrics page to OUT.  False on out-of-memory. */
bool metrics_render(struct evbuffer *out) __attribute__((warn_unused_result));

#endif
