/* metrics: Prometheus text exposition over evhttp; see include/metrics.h. */
#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"

#include "pgl_build.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct evhttp *http;
static uint64_t start_mono; /* rt_now_usec() at metrics_start */
static double start_wall;   /* epoch seconds at metrics_start */
static bool started_clock;

/* ---- text format helpers -------------------------------------------------- */

/* Label values escape backslash, double quote and newline. */
static void put_label_value(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

/* A sample value: integers without a fraction, others with microsecond precision. */
static void put_value(struct evbuffer *b, double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		evbuffer_add_printf(b, "%.0f\n", v);
	else
		evbuffer_add_printf(b, "%.6f\n", v);
}

static void family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{database="…",user="…"[,EXTRA]} (no value). */
static void pool_series(struct evbuffer *b, const char *name, const struct pool *pool,
                        const char *extra)
{
	evbuffer_add_printf(b, "%s{database=\"", name);
	put_label_value(b, pool->db_name);
	evbuffer_add(b, "\",user=\"", 8);
	put_label_value(b, pool->user);
	evbuffer_add(b, "\"", 1);
	if (extra != NULL)
		evbuffer_add_printf(b, ",%s", extra);
	evbuffer_add(b, "} ", 2);
}

/* ---- pool families -------------------------------------------------------- */

enum pool_value {
	PV_CL_ACTIVE,
	PV_CL_WAITING,
	PV_SV_ACTIVE,
	PV_SV_IDLE,
	PV_SV_USED,
	PV_SV_TESTED,
	PV_SV_LOGIN,
	PV_MAXWAIT,
	PV_POOL_SIZE,
	PV_MAX_OVERFLOW,
	PV_SV_OVERFLOW,
	PV_PAUSED,
};

static const struct {
	const char *name, *help;
	enum pool_value v;
} gauges[] = {
    {"pglease_pools_client_active_connections",
     "Client connections logged in, with or without a server (SHOW POOLS cl_active).",
     PV_CL_ACTIVE},
    {"pglease_pools_client_waiting_connections",
     "Client connections waiting for a server (SHOW POOLS cl_waiting).", PV_CL_WAITING},
    {"pglease_pools_server_active_connections",
     "Server connections leased to a client (SHOW POOLS sv_active).", PV_SV_ACTIVE},
    {"pglease_pools_server_idle_connections",
     "Server connections idle and ready (SHOW POOLS sv_idle).", PV_SV_IDLE},
    {"pglease_pools_server_used_connections",
     "Server connections that need a check before use (SHOW POOLS sv_used).", PV_SV_USED},
    {"pglease_pools_server_testing_connections",
     "Server connections running a reset or check query (SHOW POOLS sv_tested).", PV_SV_TESTED},
    {"pglease_pools_server_login_connections",
     "Server connections connecting or logging in (SHOW POOLS sv_login).", PV_SV_LOGIN},
    {"pglease_pools_client_maxwait_seconds",
     "How long the oldest waiting client has waited (SHOW POOLS maxwait + maxwait_us).",
     PV_MAXWAIT},
    {"pglease_pools_pool_size", "Configured pool_size of the pool.", PV_POOL_SIZE},
    {"pglease_pools_max_overflow", "Configured max_overflow of the pool.", PV_MAX_OVERFLOW},
    {"pglease_pools_server_overflow_connections", "Server connections open beyond pool_size.",
     PV_SV_OVERFLOW},
    {"pglease_pools_paused", "1 while the pool is paused (PAUSE, KILL, SUSPEND).", PV_PAUSED},
};

static double gauge_value(const struct pool *pool, const struct pool_gauges *g, enum pool_value v)
{
	switch (v) {
	case PV_CL_ACTIVE:
		return g->cl_active;
	case PV_CL_WAITING:
		return g->cl_waiting;
	case PV_SV_ACTIVE:
		return g->sv_active;
	case PV_SV_IDLE:
		return g->sv_idle;
	case PV_SV_USED:
		return g->sv_used;
	case PV_SV_TESTED:
		return g->sv_tested;
	case PV_SV_LOGIN:
		return g->sv_login;
	case PV_MAXWAIT:
		return (double)g->maxwait_usec / 1e6;
	case PV_POOL_SIZE:
		return pool->pool_size;
	case PV_MAX_OVERFLOW:
		return pool->max_overflow;
	case PV_SV_OVERFLOW:
		return g->sv_overflow;
	case PV_PAUSED:
		return admin_pool_paused(pool) ? 1 : 0;
	}
	return 0;
}

/* Counters from SHOW STATS; SECONDS: the value is in microseconds. */
static const struct {
	const char *name, *help;
	size_t offset;
	bool seconds;
} counters[] = {
#define CTR(n, f, s, h)                                                                            \
	{                                                                                          \
		n, h, offsetof(struct stats_counters, f), s                                        \
	}
    CTR("pglease_stats_server_assignments_total", server_assignment_count, false,
        "Times a server was leased to a client (total_server_assignment_count)."),
    CTR("pglease_stats_transactions_total", xact_count, false,
        "Transactions pooled (total_xact_count)."),
    CTR("pglease_stats_queries_total", query_count, false, "Queries pooled (total_query_count)."),
    CTR("pglease_stats_received_bytes_total", bytes_recv, false,
        "Bytes received from clients (total_received)."),
    CTR("pglease_stats_sent_bytes_total", bytes_sent, false, "Bytes sent to clients (total_sent)."),
    CTR("pglease_stats_transaction_time_seconds_total", xact_time, true,
        "Time spent in transactions (total_xact_time)."),
    CTR("pglease_stats_query_time_seconds_total", query_time, true,
        "Time spent running queries (total_query_time)."),
    CTR("pglease_stats_wait_time_seconds_total", wait_time, true,
        "Time clients waited for a server (total_wait_time)."),
    CTR("pglease_stats_client_parses_total", parse_count, false,
        "Parse messages from clients (total_client_parse_count)."),
    CTR("pglease_stats_server_parses_total", server_parse_count, false,
        "Parse messages pglease sent to servers itself (total_server_parse_count)."),
    CTR("pglease_stats_binds_total", bind_count, false, "Bind messages (total_bind_count)."),
    CTR("pglease_stats_client_logins_total", client_logins, false,
        "Client logins (total_client_connect_count)."),
#undef CTR
};

static const struct {
	const char *name, *help;
	size_t offset;
} hists[] = {
    {"pglease_pool_wait_duration_seconds",
     "Time a client waited for a server lease, per lease that had to wait.",
     offsetof(struct pool_stats, wait_hist)},
    {"pglease_query_duration_seconds", "Query duration (request to ReadyForQuery).",
     offsetof(struct pool_stats, query_hist)},
    {"pglease_transaction_duration_seconds", "Transaction duration.",
     offsetof(struct pool_stats, xact_hist)},
};

static void render_pool_gauges(struct evbuffer *b)
{
	uint64_t now = rt_now_usec();
	const struct list *it;
	size_t i;

	for (i = 0; i < N_ELEMS(gauges); i++) {
		family(b, gauges[i].name, "gauge", gauges[i].help);
		for (it = rt.pools.next; it != &rt.pools; it = it->next) {
			const struct pool *pool = list_entry(it, const struct pool, node);
			struct pool_gauges g;

			if (!stats_pool_listed(pool))
				continue;
			stats_pool_gauges(pool, now, &g);
			pool_series(b, gauges[i].name, pool, NULL);
			put_value(b, gauge_value(pool, &g, gauges[i].v));
		}
	}
}

static void render_counters(struct evbuffer *b)
{
	const struct list *it;
	size_t i;

	for (i = 0; i < N_ELEMS(counters); i++) {
		family(b, counters[i].name, "counter", counters[i].help);
		for (it = rt.pools.next; it != &rt.pools; it = it->next) {
			const struct pool *pool = list_entry(it, const struct pool, node);
			const uint64_t *v = (const uint64_t *)((const char *)&pool->stats.total +
			                                       counters[i].offset);

			if (!stats_pool_listed(pool))
				continue;
			pool_series(b, counters[i].name, pool, NULL);
			if (counters[i].seconds)
				evbuffer_add_printf(b, "%.6f\n", (double)*v / 1e6);
			else
				evbuffer_add_printf(b, "%llu\n", (unsigned long long)*v);
		}
	}
}

static void render_hist(struct evbuffer *b, const char *name, const struct pool *pool,
                        const struct stats_hist *h)
{
	char bucket[128], le[64];
	uint64_t cum = 0;
	size_t i;

	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (i = 0; i + 1 < STATS_HIST_BUCKETS; i++) {
		/* bucket i counts durations below 2^i microseconds */
		cum += h->bucket[i];
		snprintf(le, sizeof(le), "le=\"%.6f\"", (double)((uint64_t)1 << i) / 1e6);
		pool_series(b, bucket, pool, le);
		evbuffer_add_printf(b, "%llu\n", (unsigned long long)cum);
	}
	cum += h->bucket[STATS_HIST_BUCKETS - 1];
	pool_series(b, bucket, pool, "le=\"+Inf\"");
	evbuffer_add_printf(b, "%llu\n", (unsigned long long)cum);
	snprintf(bucket, sizeof(bucket), "%s_sum", name);
	pool_series(b, bucket, pool, NULL);
	evbuffer_add_printf(b, "%.6f\n", (double)h->sum_usec / 1e6);
	snprintf(bucket, sizeof(bucket), "%s_count", name);
	pool_series(b, bucket, pool, NULL);
	evbuffer_add_printf(b, "%llu\n", (unsigned long long)cum);
}

static void render_histograms(struct evbuffer *b)
{
	const struct list *it;
	size_t i;

	for (i = 0; i < N_ELEMS(hists); i++) {
		family(b, hists[i].name, "histogram", hists[i].help);
		for (it = rt.pools.next; it != &rt.pools; it = it->next) {
			const struct pool *pool = list_entry(it, const struct pool, node);
			const struct stats_hist *h =
			    (const struct stats_hist *)((const char *)&pool->stats +
			                                hists[i].offset);

			if (stats_pool_listed(pool))
				render_hist(b, hists[i].name, pool, h);
		}
	}
}

/* ---- process families ------------------------------------------------------- */

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own descriptor */
}

/* Resident and virtual size from /proc/self/statm, in bytes. */
static bool memory(double *rss, double *vsz)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	bool ok;

	if (f == NULL)
		return false;
	ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
	fclose(f);
	if (!ok || page <= 0)
		return false;
	*rss = (double)resident * (double)page;
	*vsz = (double)size * (double)page;
	return true;
}

static void render_process(struct evbuffer *b)
{
	struct rlimit rl;
	double rss, vsz;
	long fds = open_fds();
	bool paused, suspended;

	family(b, "pglease_info", "gauge", "Version of pglease; always 1.");
	evbuffer_add_printf(b, "pglease_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	family(b, "pglease_uptime_seconds", "gauge", "Seconds since pglease started.");
	evbuffer_add_printf(b, "pglease_uptime_seconds %.3f\n",
	                    (double)(rt_now_usec() - start_mono) / 1e6);
	family(b, "pglease_client_connections", "gauge",
	       "Client connections open, logged in or not (SHOW LISTS used_clients).");
	evbuffer_add_printf(b, "pglease_client_connections %u\n", rt.n_clients);
	admin_state(&paused, &suspended);
	family(b, "pglease_paused", "gauge", "1 while PAUSE (of any database) is in effect.");
	evbuffer_add_printf(b, "pglease_paused %d\n", paused ? 1 : 0);
	family(b, "pglease_suspended", "gauge", "1 while SUSPEND is in effect.");
	evbuffer_add_printf(b, "pglease_suspended %d\n", suspended ? 1 : 0);
	if (fds >= 0) {
		family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
		evbuffer_add_printf(b, "process_open_fds %ld\n", fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		evbuffer_add_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	if (memory(&rss, &vsz)) {
		family(b, "process_resident_memory_bytes", "gauge",
		       "Resident memory size in bytes.");
		evbuffer_add_printf(b, "process_resident_memory_bytes %.0f\n", rss);
		family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
		evbuffer_add_printf(b, "process_virtual_memory_bytes %.0f\n", vsz);
	}
	family(b, "process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch in seconds.");
	evbuffer_add_printf(b, "process_start_time_seconds %.3f\n", start_wall);
}

bool metrics_render(struct evbuffer *out)
{
	struct evbuffer *b = evbuffer_new();
	bool ok;

	if (b == NULL)
		return false;
	if (!started_clock) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		start_mono = rt_now_usec();
		start_wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		started_clock = true;
	}
	render_process(b);
	render_pool_gauges(b);
	render_counters(b);
	render_histograms(b);
	ok = evbuffer_add_buffer(out, b) == 0;
	evbuffer_free(b);
	return ok;
}

/* ---- HTTP ------------------------------------------------------------------ */

static void on_request(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *body;

	(void)arg;
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, HTTP_BADMETHOD, NULL);
		return;
	}
	body = evbuffer_new();
	if (body == NULL || !metrics_render(body)) {
		if (body != NULL)
			evbuffer_free(body);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* "host:port", "[v6]:port", "*:port" or ":port" into HOST (bare) and *PORT. */
static bool parse_listen(const char *spec, char *host, size_t len, int *port)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hl;
	char *end;
	long p;

	if (colon == NULL)
		return false;
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h = spec + 1;
		hl -= 2;
	}
	if (hl == 0 || (hl == 1 && h[0] == '*')) {
		h = "0.0.0.0";
		hl = strlen(h);
	}
	if (hl >= len)
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || p < 1 || p > 65535)
		return false;
	*port = (int)p;
	return true;
}

bool metrics_start(char *err, size_t errlen)
{
	const char *spec = rt.cfg->metrics_listen;
	char host[256];
	int port;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	start_mono = rt_now_usec();
	start_wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	started_clock = true;
	if (spec == NULL || spec[0] == '\0')
		return true;
	if (!parse_listen(spec, host, sizeof(host), &port)) {
		snprintf(err, errlen, "invalid metrics_listen \"%s\": expected host:port", spec);
		return false;
	}
	http = evhttp_new(rt.base);
	if (http == NULL) {
		snprintf(err, errlen, "could not create the metrics HTTP server");
		return false;
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_max_body_size(http, 4096);
	evhttp_set_timeout(http, 30);
	evhttp_set_gencb(http, on_request, NULL);
	if (evhttp_bind_socket_with_handle(http, host, (uint16_t)port) == NULL) {
		snprintf(err, errlen, "could not bind metrics_listen %s", spec);
		evhttp_free(http);
		http = NULL;
		return false;
	}
	log_info("metrics on http://%s/metrics", spec);
	return true;
}

void metrics_stop(void)
{
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
}
