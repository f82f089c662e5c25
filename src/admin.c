/*
 * admin: the console and the process controls; see include/admin.h.
 *
 * A console query is one command (an optional trailing ';').  Most commands
 * answer at once; PAUSE, SUSPEND and WAIT_CLOSE answer when their condition
 * holds: the console client stops being read, the wait is remembered by the
 * client's id (never by pointer: the client may go away meanwhile), and a
 * short timer re-checks the condition.  The same timer drives the graceful
 * shutdown modes.
 */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin_int.h"
#include "auth.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"

#define N_ELEMS(a)          (sizeof(a) / sizeof((a)[0]))
#define CHECK_INTERVAL_USEC 50000 /* re-check waiting commands this often */

/* Flags of one database touched by a console command. */
struct db_state {
	struct list node;
	char *name;
	bool paused;             /* PAUSE db, KILL db */
	bool disabled;           /* DISABLE db */
	uint64_t reconnect_time; /* servers connected at or before this are stale */
};

enum wait_kind { WAIT_PAUSE, WAIT_SUSPEND, WAIT_CLOSE };

/* A console command that answers once its condition holds. */
struct admin_wait {
	struct list node;
	uint64_t client_id;
	enum wait_kind kind;
	char *db; /* NULL: every database */
};

static struct {
	struct list dbs;   /* struct db_state */
	struct list waits; /* struct admin_wait */
	bool ready;
	bool paused;             /* PAUSE, KILL, SIGUSR1, SHUTDOWN WAIT_FOR_SERVERS */
	bool suspended;          /* SUSPEND */
	uint64_t reconnect_time; /* RECONNECT of every database */
	bool shutdown_pending;
	enum admin_shutdown_mode shutdown_mode;
	uint64_t *suspended_ids; /* connections SUSPEND stopped reading, sorted */
	size_t n_suspended;
	struct event *ev_check;
	/* SET overrides, applied over the config file until the next RELOAD */
	char **set_keys, **set_values;
	size_t n_set;
} A;

static void lists_init(void)
{
	if (A.ready)
		return;
	list_init(&A.dbs);
	list_init(&A.waits);
	A.ready = true;
}

/* ---- per-database state -------------------------------------------------- */

static struct db_state *db_find(const char *name)
{
	struct list *it;

	if (!A.ready)
		return NULL;
	for (it = A.dbs.next; it != &A.dbs; it = it->next) {
		struct db_state *d = list_entry(it, struct db_state, node);

		if (strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

static struct db_state *db_get(const char *name)
{
	struct db_state *d = db_find(name);

	if (d != NULL)
		return d;
	d = calloc(1, sizeof(*d));
	if (d == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	list_append(&A.dbs, &d->node);
	return d;
}

bool admin_pool_paused(const struct pool *pool)
{
	const struct db_state *d;

	if (A.paused || A.suspended)
		return true;
	if (!A.ready || list_empty(&A.dbs))
		return false;
	d = db_find(pool->db_name);
	return d != NULL && d->paused;
}

bool admin_server_stale(const struct server *server)
{
	uint64_t t = A.reconnect_time;
	const struct db_state *d;

	if (A.ready && !list_empty(&A.dbs) && (d = db_find(server->pool->db_name)) != NULL &&
	    d->reconnect_time > t)
		t = d->reconnect_time;
	return t != 0 && server->connect_time <= t;
}

const char *admin_server_discard(const struct server *server)
{
	const struct db_state *d;

	if (admin_server_stale(server))
		return "server connection is stale (RECONNECT or changed by RELOAD)";
	if (A.paused)
		return "pglease is paused";
	if (A.ready && !list_empty(&A.dbs) && (d = db_find(server->pool->db_name)) != NULL &&
	    d->paused)
		return "database is paused";
	return NULL;
}

bool admin_db_disabled(const char *dbname)
{
	const struct db_state *d = db_find(dbname);

	return d != NULL && d->disabled;
}

bool admin_db_paused(const char *dbname)
{
	const struct db_state *d = db_find(dbname);

	return A.paused || A.suspended || (d != NULL && d->paused);
}

void admin_state(bool *paused, bool *suspended)
{
	struct list *it;

	*suspended = A.suspended;
	*paused = A.paused;
	if (A.ready)
		for (it = A.dbs.next; it != &A.dbs; it = it->next)
			*paused = *paused || list_entry(it, struct db_state, node)->paused;
}

/* A database name a command may name: configured (or served by "*") or pooled. */
bool admin_db_known(const char *name)
{
	struct list *it;

	if (cfg_find_db(rt.cfg, name) != NULL)
		return true;
	for (it = rt.pools.next; it != &rt.pools; it = it->next)
		if (strcmp(list_entry(it, struct pool, node)->db_name, name) == 0)
			return true;
	return false;
}

/* Does POOL belong to DB (NULL: every database)? */
static bool pool_in(const struct pool *pool, const char *db)
{
	return db == NULL || strcmp(pool->db_name, db) == 0;
}

/* ---- acting on pools ------------------------------------------------------ */

/* Close every idle server of POOL (STALE_ONLY: only those a RECONNECT marked). */
static void close_idle(struct pool *pool, bool stale_only, const char *why)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &pool->idle_servers)
	{
		struct server *s = list_entry(it, struct server, node);

		if (!stale_only || admin_server_stale(s))
			server_close(s, why);
	}
}

static void close_servers(struct pool *pool, const char *why)
{
	struct list *lists[] = {&pool->active_servers, &pool->idle_servers, &pool->other_servers};
	struct list *it, *tmp;
	size_t i;

	for (i = 0; i < N_ELEMS(lists); i++)
		list_for_each_safe(it, tmp, lists[i])
		{
			server_close(list_entry(it, struct server, node), why);
		}
}

/* Close every client of POOL with an error (sqlstate 57P01). */
static void fail_clients(struct pool *pool, bool waiting_only, const char *msg)
{
	struct list *lists[] = {&pool->waiting_clients, &pool->welcome_clients, &pool->clients};
	struct list *it, *tmp;
	size_t i;

	for (i = 0; i < (waiting_only ? 2 : N_ELEMS(lists)); i++)
		list_for_each_safe(it, tmp, lists[i])
		{
			client_fail(list_entry(it, struct client, node), "57P01", "%s", msg);
		}
}

/* After a pause ends: hand idle servers to waiting clients, launch for the rest. */
static void kick_pool(struct pool *pool)
{
	while (!list_empty(&pool->waiting_clients) && !list_empty(&pool->idle_servers) &&
	       !admin_pool_paused(pool)) {
		struct list *n = pool->idle_servers.next;
		struct server *s = list_entry(n, struct server, node);

		pool_server_ready(s);
		if (s->state == SV_IDLE && pool->idle_servers.next == n)
			break; /* not taken: stop rather than spin */
	}
	pool_want_welcome(pool);
}

static void kick_pools(const char *db)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &rt.pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			kick_pool(pool);
	}
}

static unsigned servers_of(const char *db)
{
	struct list *it;
	unsigned n = 0;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			n += pool->n_servers;
	}
	return n;
}

static bool any_stale(const char *db)
{
	struct list *it, *s;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->active_servers, &pool->idle_servers,
		                        &pool->other_servers};
		size_t i;

		if (!pool_in(pool, db))
			continue;
		for (i = 0; i < N_ELEMS(lists); i++)
			for (s = lists[i]->next; s != lists[i]; s = s->next)
				if (admin_server_stale(list_entry(s, struct server, node)))
					return true;
	}
	return false;
}

static unsigned clients_left(void)
{
	struct list *it, *c;
	unsigned n = 0;

	for (c = rt.login_clients.next; c != &rt.login_clients; c = c->next)
		n++;
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->clients, &pool->waiting_clients,
		                        &pool->welcome_clients};
		size_t i;

		for (i = 0; i < N_ELEMS(lists); i++)
			for (c = lists[i]->next; c != lists[i]; c = c->next)
				n++;
	}
	return n;
}

/* ---- SUSPEND: stop reading every connection -------------------------------- */

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool suspend_sbuf(struct sbuf *sb, uint64_t id, size_t *cap)
{
	if (sb->closed || sb->stopped)
		return true;
	if (A.n_suspended == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		uint64_t *n = realloc(A.suspended_ids, ncap * sizeof(*n));

		if (n == NULL)
			return false;
		A.suspended_ids = n;
		*cap = ncap;
	}
	sbuf_pause(sb);
	A.suspended_ids[A.n_suspended++] = id;
	return true;
}

static void suspend_client_list(struct list *head, size_t *cap)
{
	struct list *it;

	for (it = head->next; it != head; it = it->next) {
		struct client *c = list_entry(it, struct client, node);

		if (!suspend_sbuf(&c->sb, c->id, cap))
			log_error("SUSPEND: out of memory, C-%llu keeps running",
			          (unsigned long long)c->id);
	}
}

static void suspend_all(void)
{
	struct list *it, *s;
	size_t cap = 0;

	net_pause_listeners(true);
	suspend_client_list(&rt.login_clients, &cap);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->active_servers, &pool->idle_servers,
		                        &pool->other_servers};
		size_t i;

		suspend_client_list(&pool->clients, &cap);
		suspend_client_list(&pool->waiting_clients, &cap);
		suspend_client_list(&pool->welcome_clients, &cap);
		for (i = 0; i < N_ELEMS(lists); i++)
			for (s = lists[i]->next; s != lists[i]; s = s->next) {
				struct server *sv = list_entry(s, struct server, node);

				if (!suspend_sbuf(&sv->sb, sv->id, &cap))
					log_error("SUSPEND: out of memory");
			}
	}
	if (A.n_suspended > 1)
		qsort(A.suspended_ids, A.n_suspended, sizeof(uint64_t), cmp_id);
}

static bool was_suspended(uint64_t id)
{
	return A.n_suspended > 0 &&
	       bsearch(&id, A.suspended_ids, A.n_suspended, sizeof(uint64_t), cmp_id) != NULL;
}

static void resume_client_list(struct list *head)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, head)
	{
		struct client *c = list_entry(it, struct client, node);

		if (was_suspended(c->id))
			sbuf_resume(&c->sb);
	}
}

static void resume_suspended(void)
{
	struct list *it, *s, *tmp;

	resume_client_list(&rt.login_clients);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->active_servers, &pool->idle_servers,
		                        &pool->other_servers};
		size_t i;

		resume_client_list(&pool->clients);
		resume_client_list(&pool->waiting_clients);
		resume_client_list(&pool->welcome_clients);
		for (i = 0; i < N_ELEMS(lists); i++)
			list_for_each_safe(s, tmp, lists[i])
			{
				struct server *sv = list_entry(s, struct server, node);

				if (was_suspended(sv->id))
					sbuf_resume(&sv->sb);
			}
	}
	free(A.suspended_ids);
	A.suspended_ids = NULL;
	A.n_suspended = 0;
	net_pause_listeners(false);
}

/* Output still queued anywhere (SUSPEND answers when everything is sent). */
static bool output_pending(void)
{
	struct list *it, *s;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *cl[] = {&pool->clients, &pool->waiting_clients,
		                     &pool->welcome_clients};
		struct list *sl[] = {&pool->active_servers, &pool->idle_servers,
		                     &pool->other_servers};
		size_t i;

		for (i = 0; i < N_ELEMS(cl); i++)
			for (s = cl[i]->next; s != cl[i]; s = s->next)
				if (sbuf_pending_out(&list_entry(s, struct client, node)->sb) > 0)
					return true;
		for (i = 0; i < N_ELEMS(sl); i++)
			for (s = sl[i]->next; s != sl[i]; s = s->next)
				if (sbuf_pending_out(&list_entry(s, struct server, node)->sb) > 0)
					return true;
	}
	return false;
}

/* ---- replies -------------------------------------------------------------- */

static struct client *console_client(uint64_t id)
{
	struct list *it;

	for (it = rt.admin_clients.next; it != &rt.admin_clients; it = it->next) {
		struct client *c = list_entry(it, struct client, node);

		if (c->id == id)
			return c;
	}
	return NULL;
}

/* ---- waiting commands and the check timer ----------------------------------- */

static const char *wait_tag(enum wait_kind kind)
{
	return kind == WAIT_PAUSE ? "PAUSE" : kind == WAIT_SUSPEND ? "SUSPEND" : "WAIT_CLOSE";
}

static void arm_check(void)
{
	struct timeval tv = {0, CHECK_INTERVAL_USEC};

	if (A.ev_check != NULL && !event_pending(A.ev_check, EV_TIMEOUT, NULL))
		event_add(A.ev_check, &tv);
}

/* Remember that console client C waits for KIND on DB; stops reading C. */
static bool wait_begin(struct client *c, enum wait_kind kind, const char *db)
{
	struct admin_wait *wt = calloc(1, sizeof(*wt));

	if (wt == NULL || (db != NULL && (wt->db = strdup(db)) == NULL)) {
		free(wt);
		return false;
	}
	wt->client_id = c->id;
	wt->kind = kind;
	list_append(&A.waits, &wt->node);
	sbuf_pause(&c->sb);
	arm_check();
	return true;
}

/* Answer a wait (ERRMSG NULL: success) and forget it. */
static void wait_finish(struct admin_wait *wt, const char *errmsg)
{
	struct client *c = console_client(wt->client_id);

	list_del(&wt->node);
	if (c != NULL && c->state != CL_CLOSED) {
		if (errmsg != NULL)
			admin_reply_error(c, "55000", "%s", errmsg);
		else
			admin_reply_done(c, wait_tag(wt->kind), NULL);
		if (c->state != CL_CLOSED)
			sbuf_resume(&c->sb);
	}
	free(wt->db);
	free(wt);
}

static bool wait_satisfied(const struct admin_wait *wt)
{
	switch (wt->kind) {
	case WAIT_PAUSE:
		return servers_of(wt->db) == 0;
	case WAIT_SUSPEND:
		return !output_pending();
	case WAIT_CLOSE:
		return !any_stale(wt->db);
	}
	return true;
}

static void shutdown_now(void);

static void check_waits(void)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &A.waits)
	{
		struct admin_wait *wt = list_entry(it, struct admin_wait, node);

		if (console_client(wt->client_id) == NULL) {
			wait_finish(wt, NULL); /* the client left: just forget */
			continue;
		}
		if (wait_satisfied(wt))
			wait_finish(wt, NULL);
	}
	if (A.shutdown_pending && !rt.shutting_down) {
		if ((A.shutdown_mode == ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS && clients_left() == 0) ||
		    (A.shutdown_mode == ADMIN_SHUTDOWN_WAIT_FOR_SERVERS && servers_of(NULL) == 0)) {
			log_info("shutdown: nothing left to wait for");
			shutdown_now();
		}
	}
	if (!list_empty(&A.waits) || (A.shutdown_pending && !rt.shutting_down))
		arm_check();
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	check_waits();
}

/* Cancel the PAUSE waits a RESUME overtakes. */
static void cancel_pause_waits(const char *db)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &A.waits)
	{
		struct admin_wait *wt = list_entry(it, struct admin_wait, node);

		if (wt->kind != WAIT_SUSPEND && wt->kind != WAIT_PAUSE)
			continue;
		if (db == NULL || wt->db == NULL || strcmp(wt->db, db) == 0)
			wait_finish(wt, "canceled by RESUME");
	}
}

/* ---- shutdown ------------------------------------------------------------- */

static void do_shutdown(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (rt.shutting_down)
		return;
	log_info("shutting down");
	rt.shutting_down = true;
	metrics_stop();
	net_close_listeners();
	client_close_all();
	pool_free_all();
	event_base_loopexit(rt.base, NULL);
}

/* Run the shutdown from the event loop, never from inside a client's callback. */
static void shutdown_now(void)
{
	struct timeval tv = {0, 0};

	A.shutdown_pending = true;
	A.shutdown_mode = ADMIN_SHUTDOWN_NOW;
	if (event_base_once(rt.base, -1, EV_TIMEOUT, do_shutdown, NULL, &tv) == -1)
		do_shutdown(-1, 0, NULL);
}

void admin_shutdown(enum admin_shutdown_mode mode)
{
	struct list *it;

	lists_init();
	if (mode == ADMIN_SHUTDOWN_NOW || A.shutdown_pending) {
		log_info("immediate shutdown requested");
		shutdown_now();
		return;
	}
	A.shutdown_pending = true;
	A.shutdown_mode = mode;
	net_close_listeners();
	if (mode == ADMIN_SHUTDOWN_WAIT_FOR_SERVERS) {
		log_info("shutdown: waiting for servers to be released");
		A.paused = true;
		for (it = rt.pools.next; it != &rt.pools; it = it->next) {
			struct pool *pool = list_entry(it, struct pool, node);

			fail_clients(pool, true, "pglease is shutting down");
			close_idle(pool, false, "shutdown");
		}
	} else {
		log_info("shutdown: waiting for clients to disconnect");
	}
	arm_check();
}

/* ---- control commands (shared by the console and the signals) ------------- */

static void pause_db(const char *db)
{
	struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			close_idle(pool, false, "PAUSE");
	}
}

void admin_pause_all(void)
{
	lists_init();
	log_info("PAUSE of every database");
	A.paused = true;
	pause_db(NULL);
}

/* Clear every pause (and a suspend); false when nothing was paused. */
static bool resume_all(void)
{
	struct list *it;
	bool any = A.paused || A.suspended;

	for (it = A.dbs.next; it != &A.dbs; it = it->next) {
		struct db_state *d = list_entry(it, struct db_state, node);

		any = any || d->paused;
		d->paused = false;
	}
	A.paused = false;
	if (A.suspended) {
		A.suspended = false;
		resume_suspended();
	}
	cancel_pause_waits(NULL);
	kick_pools(NULL);
	return any;
}

void admin_resume_all(void)
{
	lists_init();
	if (A.shutdown_pending) {
		log_warn("RESUME ignored: shutting down");
		return;
	}
	log_info("RESUME of every database");
	resume_all();
}

static void kill_db(const char *db)
{
	struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (!pool_in(pool, db))
			continue;
		fail_clients(pool, false, "terminating connection due to administrator command");
		close_servers(pool, "KILL");
	}
}

static void reconnect_db(const char *db)
{
	struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			close_idle(pool, true, "RECONNECT");
	}
}

static struct client *find_client(uint64_t id)
{
	struct list *it, *c;

	for (c = rt.login_clients.next; c != &rt.login_clients; c = c->next)
		if (list_entry(c, struct client, node)->id == id)
			return list_entry(c, struct client, node);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->clients, &pool->waiting_clients,
		                        &pool->welcome_clients};
		size_t i;

		for (i = 0; i < N_ELEMS(lists); i++)
			for (c = lists[i]->next; c != lists[i]; c = c->next)
				if (list_entry(c, struct client, node)->id == id)
					return list_entry(c, struct client, node);
	}
	return console_client(id);
}

/* ---- RELOAD and SET -------------------------------------------------------- */

static bool load_auth(const struct config *cfg, struct auth_file **out, char *err, size_t len)
{
	if (cfg->auth_file == NULL || cfg->auth_file[0] == '\0') {
		*out = auth_file_empty();
		if (*out == NULL)
			snprintf(err, len, "out of memory");
		return *out != NULL;
	}
	*out = auth_file_load(cfg->auth_file, err, len);
	return *out != NULL;
}

/* Keys whose change needs a restart: say so once per key. */
static void warn_restart_keys(const struct config *old, const struct config *cfg)
{
	size_t i, n = cfg_key_count();
	char a[512], b[512];

	for (i = 0; i < n; i++) {
		const char *name;
		bool reloadable;

		if (!cfg_key_info(i, &name, NULL, &reloadable) || reloadable)
			continue;
		cfg_value_text(old, i, a, sizeof(a));
		cfg_value_text(cfg, i, b, sizeof(b));
		if (strcmp(a, b) != 0)
			log_warn("%s changed from \"%s\" to \"%s\": takes effect after a restart",
			         name, a, b);
	}
}

/* Pools of databases that are gone, or whose target changed. */
static void reconfigure_pools(void)
{
	uint64_t now = rt_now_usec();
	struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *pool = list_entry(it, struct pool, node);
		const struct cfg_db *db = cfg_find_db(rt.cfg, pool->db_name);

		if (db == NULL) {
			char msg[256];

			snprintf(msg, sizeof(msg),
			         "database \"%s\" was removed from the configuration",
			         pool->db_name);
			log_info("pool %s/%s: %s", pool->db_name, pool->user, msg);
			fail_clients(pool, false, msg);
			close_servers(pool, "database removed");
			continue;
		}
		if (pool_reconfigure(pool, db)) {
			struct db_state *d = db_get(pool->db_name);

			log_info(
			    "pool %s/%s: target changed, servers are replaced as they come back",
			    pool->db_name, pool->user);
			if (d != NULL)
				d->reconnect_time = now;
			close_idle(pool, true, "database changed");
		}
		kick_pool(pool);
	}
}

/* Install CFG (and AUTH, when not NULL) as the running configuration. */
static void apply_config(struct config *cfg, struct auth_file *auth)
{
	struct config *old = rt.cfg;

	warn_restart_keys(old, cfg);
	rt.cfg = cfg;
	if (auth != NULL) {
		auth_file_free(rt.auth);
		rt.auth = auth;
	}
	if (cfg->verbose > 0)
		log_threshold = cfg->verbose >= 2 ? LOG_LVL_NOISE : LOG_LVL_DEBUG;
	/* Reopened every time, so RELOAD also serves log rotation. */
	if (!log_open(cfg->logfile))
		log_error("could not open logfile \"%s\": %s", cfg->logfile, strerror(errno));
	reconfigure_pools();
	if (old->stats_period != cfg->stats_period)
		stats_reschedule();
	cfg_free(old);
}

static void clear_set_overrides(void)
{
	size_t i;

	for (i = 0; i < A.n_set; i++) {
		free(A.set_keys[i]);
		free(A.set_values[i]);
	}
	free(A.set_keys);
	free(A.set_values);
	A.set_keys = A.set_values = NULL;
	A.n_set = 0;
}

bool admin_reload(char *err, size_t errlen)
{
	struct config *cfg;
	struct auth_file *auth;

	lists_init();
	cfg = cfg_load(rt.config_path, err, errlen);
	if (cfg == NULL)
		return false;
	if (!load_auth(cfg, &auth, err, errlen)) {
		cfg_free(cfg);
		return false;
	}
	clear_set_overrides();
	apply_config(cfg, auth);
	log_info("configuration reloaded from %s", rt.config_path);
	return true;
}

/* A config equal to the file plus the SET overrides and KEY = VALUE, checked
 * by the one loader (later keys win). */
static struct config *config_with(const char *key, const char *value, char *err, size_t len)
{
	const char **keys = calloc(A.n_set + 1, sizeof(*keys));
	const char **values = calloc(A.n_set + 1, sizeof(*values));
	struct config *cfg = NULL;

	if (keys == NULL || values == NULL) {
		snprintf(err, len, "out of memory");
	} else {
		for (size_t i = 0; i < A.n_set; i++) {
			keys[i] = A.set_keys[i];
			values[i] = A.set_values[i];
		}
		keys[A.n_set] = key;
		values[A.n_set] = value;
		cfg = cfg_load_with(rt.config_path, keys, values, A.n_set + 1, err, len);
	}
	free(keys);
	free(values);
	return cfg;
}

static bool remember_set(const char *key, const char *value)
{
	char **k = realloc(A.set_keys, (A.n_set + 1) * sizeof(*k));
	char **v;

	if (k == NULL)
		return false;
	A.set_keys = k;
	v = realloc(A.set_values, (A.n_set + 1) * sizeof(*v));
	if (v == NULL)
		return false;
	A.set_values = v;
	k[A.n_set] = strdup(key);
	v[A.n_set] = strdup(value);
	if (k[A.n_set] == NULL || v[A.n_set] == NULL) {
		free(k[A.n_set]);
		free(v[A.n_set]);
		return false;
	}
	A.n_set++;
	return true;
}

/* ---- console commands that change the process --------------------------- */

void admin_cmd_set(struct client *c, const char *key, const char *value)
{
	char err[1024];
	struct config *cfg;
	struct auth_file *auth = NULL;
	size_t idx;
	bool reloadable;

	if (admin_fake_param(key) != NULL) {
		admin_reply_done(c, "SET", "SET ignored");
		return;
	}
	if (c->admin_readonly) {
		admin_reply_error(c, "42501", "admin access needed to change settings");
		return;
	}
	if (!cfg_key_find(key, &idx)) {
		admin_reply_error(c, "42704", "unknown setting \"%s\"", key);
		return;
	}
	cfg_key_info(idx, NULL, NULL, &reloadable);
	if (!reloadable) {
		admin_reply_error(c, "55P02",
		                  "setting \"%s\" cannot be changed at runtime (restart)", key);
		return;
	}
	if (strpbrk(value, "\r\n") != NULL) {
		admin_reply_error(c, "22023", "invalid value for \"%s\"", key);
		return;
	}
	cfg = config_with(key, value, err, sizeof(err));
	if (cfg != NULL && strcasecmp(key, "auth_file") == 0 &&
	    !load_auth(cfg, &auth, err, sizeof(err))) {
		cfg_free(cfg);
		cfg = NULL;
	}
	if (cfg == NULL) {
		/* Messages about the SET itself need no "SET: " prefix here. */
		const char *why = strncmp(err, "SET: ", 5) == 0 ? err + 5 : err;
		admin_reply_error(c, "22023", "SET %s failed: %s", key, why);
		return;
	}
	if (!remember_set(key, value)) {
		cfg_free(cfg);
		auth_file_free(auth);
		admin_reply_error(c, "53200", "out of memory");
		return;
	}
	apply_config(cfg, auth);
	log_info("SET %s = %s", key, value);
	admin_reply_done(c, "SET", NULL);
}

void admin_cmd_pause(struct client *c, const char *db)
{
	struct db_state *d;

	if (A.paused || A.suspended) {
		admin_reply_error(c, "55000", "already suspended/paused");
		return;
	}
	if (db == NULL) {
		log_info("PAUSE command issued");
		A.paused = true;
	} else {
		log_info("PAUSE '%s' command issued", db);
		d = db_get(db);
		if (d == NULL) {
			admin_reply_error(c, "53200", "out of memory");
			return;
		}
		if (d->paused) {
			admin_reply_error(c, "55000", "database %s is already paused", db);
			return;
		}
		d->paused = true;
	}
	pause_db(db);
	if (servers_of(db) == 0) {
		admin_reply_done(c, "PAUSE", NULL);
		return;
	}
	if (!wait_begin(c, WAIT_PAUSE, db))
		admin_reply_error(c, "53200", "out of memory");
}

void admin_cmd_resume(struct client *c, const char *db)
{
	struct db_state *d;

	if (A.shutdown_pending) {
		admin_reply_error(c, "55000", "pglease is shutting down");
		return;
	}
	if (db == NULL) {
		log_info("RESUME command issued");
		if (!resume_all()) {
			admin_reply_error(c, "55000", "pglease is not paused or suspended");
			return;
		}
	} else {
		log_info("RESUME '%s' command issued", db);
		d = db_find(db);
		if (d == NULL || !d->paused) {
			admin_reply_error(c, "55000", "database %s is not paused", db);
			return;
		}
		d->paused = false;
		cancel_pause_waits(db);
		kick_pools(db);
	}
	admin_reply_done(c, "RESUME", NULL);
}

void admin_cmd_suspend(struct client *c)
{
	if (A.paused || A.suspended) {
		admin_reply_error(c, "55000", "already suspended/paused");
		return;
	}
	log_info("SUSPEND command issued");
	A.suspended = true;
	suspend_all();
	if (!output_pending()) {
		admin_reply_done(c, "SUSPEND", NULL);
		return;
	}
	if (!wait_begin(c, WAIT_SUSPEND, NULL))
		admin_reply_error(c, "53200", "out of memory");
}

void admin_cmd_kill(struct client *c, const char *db)
{
	struct db_state *d;

	if (db == NULL) {
		log_info("KILL command issued");
		A.paused = true;
	} else {
		log_info("KILL '%s' command issued", db);
		d = db_get(db);
		if (d == NULL) {
			admin_reply_error(c, "53200", "out of memory");
			return;
		}
		d->paused = true;
	}
	kill_db(db);
	admin_reply_done(c, "KILL", NULL);
}

void admin_cmd_kill_client(struct client *c, const char *arg)
{
	char *end;
	unsigned long long id;
	struct client *victim;

	errno = 0;
	id = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0' || end == arg) {
		admin_reply_error(c, "22023", "invalid client id \"%s\"", arg);
		return;
	}
	victim = find_client(id);
	if (victim == NULL) {
		admin_reply_error(c, "42704", "client %llu not found", id);
		return;
	}
	log_info("KILL_CLIENT %llu command issued", id);
	if (victim == c) {
		client_fail(c, "57P01", "terminating connection due to administrator command");
		return;
	}
	client_fail(victim, "57P01", "terminating connection due to administrator command");
	admin_reply_done(c, "KILL_CLIENT", NULL);
}

void admin_cmd_reconnect(struct client *c, const char *db)
{
	uint64_t now = rt_now_usec();
	struct db_state *d;

	if (db == NULL) {
		log_info("RECONNECT command issued");
		A.reconnect_time = now;
	} else {
		log_info("RECONNECT '%s' command issued", db);
		d = db_get(db);
		if (d == NULL) {
			admin_reply_error(c, "53200", "out of memory");
			return;
		}
		d->reconnect_time = now;
	}
	reconnect_db(db);
	admin_reply_done(c, "RECONNECT", NULL);
}

void admin_cmd_wait_close(struct client *c, const char *db)
{
	log_info("WAIT_CLOSE%s%s command issued", db ? " " : "", db ? db : "");
	if (!any_stale(db)) {
		admin_reply_done(c, "WAIT_CLOSE", NULL);
		return;
	}
	if (!wait_begin(c, WAIT_CLOSE, db))
		admin_reply_error(c, "53200", "out of memory");
}

void admin_cmd_able(struct client *c, const char *db, bool disable)
{
	struct db_state *d = db_get(db);

	if (d == NULL) {
		admin_reply_error(c, "53200", "out of memory");
		return;
	}
	log_info("%s '%s' command issued", disable ? "DISABLE" : "ENABLE", db);
	d->disabled = disable;
	admin_reply_done(c, disable ? "DISABLE" : "ENABLE", NULL);
}

void admin_cmd_reload(struct client *c)
{
	char err[1024];

	log_info("RELOAD command issued");
	if (!admin_reload(err, sizeof(err))) {
		log_error("RELOAD failed, keeping the old configuration: %s", err);
		admin_reply_error(c, "F0000", "RELOAD failed, keeping the old configuration: %s",
		                  err);
		return;
	}
	admin_reply_done(c, "RELOAD", NULL);
}

void admin_cmd_shutdown(struct client *c, const char *arg)
{
	enum admin_shutdown_mode mode = ADMIN_SHUTDOWN_NOW;

	if (arg != NULL) {
		if (strcasecmp(arg, "WAIT_FOR_SERVERS") == 0)
			mode = ADMIN_SHUTDOWN_WAIT_FOR_SERVERS;
		else if (strcasecmp(arg, "WAIT_FOR_CLIENTS") == 0)
			mode = ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS;
		else {
			admin_reply_error(c, "42601",
			                  "SHUTDOWN takes WAIT_FOR_SERVERS or WAIT_FOR_CLIENTS");
			return;
		}
	}
	log_info("SHUTDOWN%s%s command issued", arg ? " " : "", arg ? arg : "");
	if (mode == ADMIN_SHUTDOWN_NOW) {
		/* No answer: the connection ends with the process. */
		sbuf_pause(&c->sb);
		admin_shutdown(mode);
		return;
	}
	admin_shutdown(mode);
	admin_reply_done(c, "SHUTDOWN", NULL);
}

/* ---- life cycle ------------------------------------------------------------ */

bool admin_start(void)
{
	lists_init();
	A.ev_check = event_new(rt.base, -1, 0, on_check, NULL);
	return A.ev_check != NULL;
}

void admin_stop(void)
{
	struct list *it, *tmp;

	if (A.ev_check != NULL)
		event_free(A.ev_check);
	A.ev_check = NULL;
	if (!A.ready)
		return;
	list_for_each_safe(it, tmp, &A.waits)
	{
		struct admin_wait *wt = list_entry(it, struct admin_wait, node);

		list_del(&wt->node);
		free(wt->db);
		free(wt);
	}
	list_for_each_safe(it, tmp, &A.dbs)
	{
		struct db_state *d = list_entry(it, struct db_state, node);

		list_del(&d->node);
		free(d->name);
		free(d);
	}
	free(A.suspended_ids);
	A.suspended_ids = NULL;
	A.n_suspended = 0;
	clear_set_overrides();
}
