/* pool: leases of server connections to clients; see include/pool.h. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "client.h"
#include "log.h"
#include "runtime.h"
#include "server.h"

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void pool_free(struct pool *pool)
{
	size_t i;

	list_del(&pool->node);
	for (i = 0; i < pool->n_params; i++) {
		free(pool->params[i].name);
		free(pool->params[i].value);
	}
	free(pool->params);
	varcache_clear(&pool->defaults);
	free(pool->db_name);
	free(pool->user);
	free(pool->host);
	free(pool->target_db);
	free(pool->password);
	free(pool->replication);
	free(pool);
}

/* The counters for NAME in HEAD, created on first use (kept until exit). */
static struct pool_limit *limit_get(struct list *head, const char *name)
{
	struct list *it;
	struct pool_limit *l;
	size_t len = strlen(name);

	for (it = head->next; it != head; it = it->next) {
		l = list_entry(it, struct pool_limit, node);
		if (strcmp(l->name, name) == 0)
			return l;
	}
	l = calloc(1, sizeof(*l) + len + 1);
	if (l == NULL)
		return NULL;
	memcpy(l->name, name, len + 1);
	list_append(head, &l->node);
	return l;
}

static int pick(int specific, int global)
{
	return specific >= 0 ? specific : global;
}

/* Size, overflow and mode from the database entry, the [users] entry and the globals. */
static void pool_settings(struct pool *pool, const struct cfg_db *db, const struct cfg_user *uc,
                          const struct config *cfg)
{
	const struct cfg_user *login_uc = cfg_find_user(cfg, pool->user);

	pool->reserve_pool_size = pick(db->reserve_pool_size, cfg->reserve_pool_size);
	pool->min_pool_size = pick(db->min_pool_size, cfg->min_pool_size);
	pool->max_db_connections = pick(db->max_db_connections, cfg->max_db_connections);
	pool->max_user_connections =
	    pick(login_uc != NULL ? login_uc->max_user_connections : -1, cfg->max_user_connections);
	pool->autodb = strcmp(db->name, "*") == 0;
	if (db->pool_size >= 0)
		pool->pool_size = db->pool_size;
	else if (uc != NULL && uc->pool_size >= 0)
		pool->pool_size = uc->pool_size;
	else
		pool->pool_size = cfg->default_pool_size;
	pool->max_overflow = db->max_overflow >= 0 ? db->max_overflow : cfg->max_overflow;
	if (uc != NULL && uc->pool_mode >= 0)
		pool->mode = (enum pool_mode)uc->pool_mode;
	else if (db->pool_mode >= 0)
		pool->mode = (enum pool_mode)db->pool_mode;
	else
		pool->mode = cfg->pool_mode;
	if (pool->replication != NULL)
		pool->mode = POOL_SESSION;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

struct pool *pool_get(const char *db_name, const struct cfg_db *db, const char *client_user,
                      const char *replication)
{
	const struct config *cfg = rt.cfg;
	const char *user = db->user != NULL ? db->user : client_user;
	const struct cfg_user *uc = cfg_find_user(cfg, client_user);
	struct list *it, *tmp;
	struct pool *pool;

	list_for_each_safe(it, tmp, &rt.pools)
	{
		pool = list_entry(it, struct pool, node);
		if (strcmp(pool->db_name, db_name) == 0 && strcmp(pool->user, user) == 0 &&
		    same_str(pool->replication, replication))
			return pool;
	}
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	list_init(&pool->node);
	list_init(&pool->idle_servers);
	list_init(&pool->active_servers);
	list_init(&pool->other_servers);
	list_init(&pool->waiting_clients);
	list_init(&pool->welcome_clients);
	list_init(&pool->clients);
	pool->db_name = strdup(db_name);
	pool->user = strdup(user);
	pool->forced_user = db->user != NULL;
	pool->host = dup_or_null(db->host);
	pool->port = db->port > 0 ? db->port : 5432;
	pool->target_db = strdup(db->dbname != NULL ? db->dbname : db_name);
	pool->password = dup_or_null(db->password);
	pool->replication = dup_or_null(replication);
	pool->db_limit = limit_get(&rt.db_limits, db_name);
	pool->user_limit = limit_get(&rt.user_limits, user);
	pool->idle_since = rt_now_usec();
	if (pool->user != NULL)
		pool_settings(pool, db, uc, cfg);
	if (pool->db_name == NULL || pool->user == NULL || pool->target_db == NULL ||
	    pool->db_limit == NULL || pool->user_limit == NULL ||
	    (db->host != NULL && pool->host == NULL) ||
	    (db->password != NULL && pool->password == NULL) ||
	    (replication != NULL && pool->replication == NULL)) {
		pool_free(pool);
		return NULL;
	}
	list_append(&rt.pools, &pool->node);
	log_debug("pool %s/%s created: size %d, overflow %d, mode %s", pool->db_name, pool->user,
	          pool->pool_size, pool->max_overflow, cfg_pool_mode_name(pool->mode));
	return pool;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool pool_reconfigure(struct pool *pool, const struct cfg_db *db)
{
	const char *target = db->dbname != NULL ? db->dbname : pool->db_name;
	int port = db->port > 0 ? db->port : 5432;
	char *host, *target_db, *password;

	pool_settings(pool, db, cfg_find_user(rt.cfg, pool->user), rt.cfg);
	if (str_eq(pool->host, db->host) && pool->port == port &&
	    strcmp(pool->target_db, target) == 0 && str_eq(pool->password, db->password))
		return false;
	host = dup_or_null(db->host);
	target_db = strdup(target);
	password = dup_or_null(db->password);
	if (target_db == NULL || (db->host != NULL && host == NULL) ||
	    (db->password != NULL && password == NULL)) {
		log_error("pool %s/%s: out of memory, keeping the old target", pool->db_name,
		          pool->user);
		free(host);
		free(target_db);
		free(password);
		return false;
	}
	free(pool->host);
	free(pool->target_db);
	free(pool->password);
	pool->host = host;
	pool->port = port;
	pool->target_db = target_db;
	pool->password = password;
	return true;
}

static unsigned count_list(const struct list *head)
{
	const struct list *it;
	unsigned n = 0;

	for (it = head->next; it != head; it = it->next)
		n++;
	return n;
}

/* Servers on their way up (connecting or logging in). */
static unsigned launching(const struct pool *pool)
{
	const struct list *it;
	unsigned n = 0;

	for (it = pool->other_servers.next; it != &pool->other_servers; it = it->next) {
		const struct server *s = list_entry(it, const struct server, node);

		if (s->state == SV_CONNECTING || s->state == SV_LOGIN)
			n++;
	}
	return n;
}

void pool_slot_take(struct pool *pool)
{
	pool->n_servers++;
	pool->db_limit->servers++;
	pool->user_limit->servers++;
}

/* The one place a server's slots come back. */
static void slot_give(struct pool *pool)
{
	pool->n_servers--;
	pool->db_limit->servers--;
	pool->user_limit->servers--;
}

static bool caps_allow(const struct pool *pool)
{
	return (pool->max_db_connections <= 0 ||
	        pool->db_limit->servers < (unsigned)pool->max_db_connections) &&
	       (pool->max_user_connections <= 0 ||
	        pool->user_limit->servers < (unsigned)pool->max_user_connections);
}

/* Over a database or user cap: close the least recently used idle server of
 * another pool under the same cap, so a waiting client can be served. */
static bool evict_for(const struct pool *pool)
{
	struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *other = list_entry(it, struct pool, node);

		if (other == pool || list_empty(&other->idle_servers))
			continue;
		if (other->db_limit != pool->db_limit && other->user_limit != pool->user_limit)
			continue;
		server_close(list_entry(other->idle_servers.prev, struct server, node),
		             "making room for another pool under max_db/user_connections");
		return true;
	}
	return false;
}

/* May POOL open one more server now?  Normal slots first, overflow at once,
 * reserve only once the oldest waiting client has waited reserve_pool_timeout. */
static bool may_open(struct pool *pool, uint64_t now)
{
	unsigned normal = (unsigned)pool->pool_size + (unsigned)pool->max_overflow;

	if (pool->n_servers >= normal) {
		struct list *first = pool->waiting_clients.next;
		uint64_t waited;

		if (pool->reserve_pool_size <= 0 || first == &pool->waiting_clients ||
		    pool->n_servers >= normal + (unsigned)pool->reserve_pool_size)
			return false;
		waited = now - list_entry(first, struct client, node)->wait_start;
		if (waited < (uint64_t)(rt.cfg->reserve_pool_timeout * 1e6))
			return false;
	}
	return caps_allow(pool) || (evict_for(pool) && caps_allow(pool));
}

static bool in_login_retry(const struct pool *pool, uint64_t now)
{
	return pool->login_fail_time != 0 &&
	       now - pool->login_fail_time < (uint64_t)(rt.cfg->server_login_retry * 1e6);
}

void pool_launch(struct pool *pool)
{
	unsigned want = pool->n_waiting;
	unsigned coming = launching(pool);
	uint64_t now = rt_now_usec();

	if (pool->dying || admin_pool_paused(pool) || rt.shutting_down || in_login_retry(pool, now))
		return; /* PAUSE, KILL, SUSPEND, shutdown, or the server just refused us */
	if (want == 0 && !list_empty(&pool->welcome_clients) && !pool->have_welcome)
		want = 1;
	/* Servers being reset or checked come back soon; count them as coming too. */
	coming += count_list(&pool->other_servers) - launching(pool);
	while ((coming < want || pool->n_servers < (unsigned)pool->min_pool_size) &&
	       may_open(pool, now)) {
		if (server_launch(pool) == NULL)
			break;
		coming++;
	}
}

bool pool_server_needs_check(const struct server *server, uint64_t now)
{
	const struct config *cfg = rt.cfg;

	if (cfg->server_check_query == NULL || cfg->server_check_query[0] == '\0' ||
	    cfg->server_check_delay < 0)
		return false;
	return now - server->last_used >= (uint64_t)(cfg->server_check_delay * 1e6);
}

/* While the server refuses logins and nothing of the pool is up, a client
 * gets the last login error at once instead of waiting for the retry. */
static bool fail_fast(struct pool *pool, struct client *client, uint64_t now)
{
	if (!in_login_retry(pool, now) || pool->n_servers > 0)
		return false;
	client_fail(client, pool->login_sqlstate[0] ? pool->login_sqlstate : "08006",
	            "%s (retrying in at most %g s)", pool->login_error, rt.cfg->server_login_retry);
	return true;
}

bool pool_lease(struct pool *pool, struct client *client)
{
	uint64_t now = rt_now_usec();
	struct list *n;

	while (!admin_pool_paused(pool) && (n = list_pop(&pool->idle_servers)) != NULL) {
		struct server *server = list_entry(n, struct server, node);

		list_init(&server->node);
		if (pool_server_needs_check(server, now)) {
			/* Checked servers come back through pool_server_ready(). */
			server_check(server);
			continue;
		}
		server_link(server, client);
		return true;
	}
	if (fail_fast(pool, client, now))
		return false;
	client->wait_start = now;
	client->wait_notified = false;
	client_set_state(client, CL_WAITING);
	pool_launch(pool);
	return false;
}

void pool_want_welcome(struct pool *pool)
{
	pool_launch(pool);
}

void pool_release(struct server *server, bool client_gone)
{
	struct pool *pool = server->pool;
	const struct config *cfg = rt.cfg;
	struct client *client = server->client;
	/* The client left in the middle of a message: the server holds its first
	 * part and would read the next bytes sent to it as the rest. */
	bool partial = client_gone && client != NULL && sbuf_mid_forward(&client->sb);

	server_unlink(server);
	if (!client_gone && client != NULL && client->state == CL_ACTIVE)
		client_set_state(client, CL_IDLE);
	if (pool->replication != NULL) {
		server_close(server, "replication connection ends with its client");
		return;
	}
	bool reset = cfg->server_reset_query != NULL && cfg->server_reset_query[0] != '\0' &&
	             (pool->mode == POOL_SESSION || cfg->server_reset_query_always);

	if (partial) {
		server_close(server, "client disconnected in the middle of a message");
		return;
	}
	if (!server_is_clean(server)) {
		/* Left inside a transaction with nothing in flight: roll it back and
		 * keep the connection (psycopg2 and friends close like this). */
		if (client_gone && server->req_count == 0 && !server->unsynced &&
		    !server->sb.failed) {
			server_rollback(server, reset);
			return;
		}
		server_close(server, client_gone ? "client disconnected with a query in progress"
		                                 : "released while not idle");
		return;
	}
	if (reset) {
		server_reset(server);
		return;
	}
	pool_server_ready(server);
}

/* Should SERVER, released with nobody waiting, be closed instead of idled? */
static const char *retire_reason(const struct server *server)
{
	const struct pool *pool = server->pool;
	const struct config *cfg = rt.cfg;

	if (cfg->server_lifetime > 0 &&
	    rt_now_usec() - server->connect_time >= (uint64_t)(cfg->server_lifetime * 1e6))
		return "server_lifetime";
	/* SQLAlchemy's semantics where max_overflow is used; a PgBouncer-style
	 * pool (reserve only) keeps its extra servers until server_idle_timeout. */
	if (pool->max_overflow > 0 && pool->n_servers > (unsigned)pool->pool_size &&
	    pool->n_servers > (unsigned)pool->min_pool_size && cfg->overflow_idle_timeout <= 0)
		return "overflow connection released with no client waiting";
	return NULL;
}

void pool_server_ready(struct server *server)
{
	struct pool *pool = server->pool;
	struct list *n, *tmp;
	const char *why;

	list_for_each_safe(n, tmp, &pool->welcome_clients)
	{
		client_welcome(list_entry(n, struct client, node));
	}
	why = admin_server_discard(server);
	if (why != NULL) {
		server_close(server, why);
		return;
	}
	n = pool->waiting_clients.next;
	if (n != &pool->waiting_clients && !rt.shutting_down && !admin_pool_paused(pool)) {
		struct client *client = list_entry(n, struct client, node);

		server_link(server, client);
		client_leased(client, server);
		return;
	}
	why = retire_reason(server);
	if (why != NULL) {
		server_close(server, why);
		return;
	}
	server->last_used = rt_now_usec();
	server_set_state(server, SV_IDLE);
}

void pool_server_gone(struct server *server)
{
	struct pool *pool = server->pool;

	slot_give(pool);
	pool_launch(pool);
}

void pool_login_failed(struct pool *pool, const char *sqlstate, const char *msg)
{
	struct list *n, *tmp;

	snprintf(pool->login_error, sizeof(pool->login_error), "%s", msg);
	snprintf(pool->login_sqlstate, sizeof(pool->login_sqlstate), "%s", sqlstate);
	list_for_each_safe(n, tmp, &pool->welcome_clients)
	{
		client_fail(list_entry(n, struct client, node), sqlstate, "%s", msg);
	}
	/* Waiting clients fail only when no other server of the pool can serve them. */
	if (!list_empty(&pool->active_servers) || !list_empty(&pool->idle_servers))
		return;
	list_for_each_safe(n, tmp, &pool->waiting_clients)
	{
		client_fail(list_entry(n, struct client, node), sqlstate, "%s", msg);
	}
}

bool pool_set_welcome(struct pool *pool, const struct pool_param *params, size_t n)
{
	size_t i;

	if (pool->have_welcome)
		return true;
	pool->params = calloc(n ? n : 1, sizeof(*pool->params));
	if (pool->params == NULL)
		return false;
	for (i = 0; i < n; i++) {
		int id = varcache_lookup(params[i].name);

		pool->params[i].name = strdup(params[i].name);
		pool->params[i].value = strdup(params[i].value);
		pool->n_params = i + 1;
		if (pool->params[i].name == NULL || pool->params[i].value == NULL)
			return false;
		if (id >= 0 && !varcache_set(&pool->defaults, id, params[i].value))
			return false;
	}
	pool->have_welcome = true;
	return true;
}

bool pool_client_admit(struct pool *pool, struct client *client)
{
	const struct config *cfg = rt.cfg;
	const struct cfg_db *db = cfg_find_db(cfg, pool->db_name);
	const struct cfg_user *uc = cfg_find_user(cfg, client->user);
	struct pool_limit *ul = limit_get(&rt.user_limits, client->user);
	int max_db =
	    pick(db != NULL ? db->max_db_client_connections : -1, cfg->max_db_client_connections);
	int max_user = pick(uc != NULL ? uc->max_user_client_connections : -1,
	                    cfg->max_user_client_connections);

	if (ul == NULL) {
		client_fail(client, "53200", "out of memory");
		return false;
	}
	if (max_db > 0 && pool->db_limit->clients >= (unsigned)max_db) {
		client_fail(client, "53300",
		            "no more connections allowed (max_db_client_connections)");
		return false;
	}
	if (max_user > 0 && ul->clients >= (unsigned)max_user) {
		client_fail(client, "53300",
		            "no more connections allowed (max_user_client_connections)");
		return false;
	}
	pool->db_limit->clients++;
	ul->clients++;
	client->admitted = true;
	return true;
}

void pool_client_gone(struct client *client)
{
	struct pool_limit *ul;

	if (!client->admitted)
		return;
	client->admitted = false;
	client->pool->db_limit->clients--;
	ul = limit_get(&rt.user_limits, client->user);
	if (ul != NULL)
		ul->clients--;
	if (list_empty(&client->pool->clients) && list_empty(&client->pool->waiting_clients))
		client->pool->idle_since = rt_now_usec();
}

bool pool_try_free(struct pool *pool)
{
	struct list *s, *stmp;

	if (!list_empty(&pool->clients) || !list_empty(&pool->waiting_clients) ||
	    !list_empty(&pool->welcome_clients) || !list_empty(&pool->active_servers) ||
	    !list_empty(&pool->other_servers))
		return false;
	pool->dying = true;
	list_for_each_safe(s, stmp, &pool->idle_servers)
	{
		server_close(list_entry(s, struct server, node), "autodb_idle_timeout");
	}
	log_info("pool %s/%s freed after autodb_idle_timeout", pool->db_name, pool->user);
	pool_free(pool);
	return true;
}

void pool_free_all(void)
{
	struct list *it, *tmp, *s, *stmp;

	list_for_each_safe(it, tmp, &rt.pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->idle_servers, &pool->active_servers,
		                        &pool->other_servers};
		size_t i;

		pool->dying = true; /* closing must not launch replacements */
		for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			list_for_each_safe(s, stmp, lists[i])
			{
				server_close(list_entry(s, struct server, node), "shutdown");
			}
	}
	server_reap();
	list_for_each_safe(it, tmp, &rt.pools)
	{
		pool_free(list_entry(it, struct pool, node));
	}
	list_for_each_safe(it, tmp, &rt.db_limits)
	{
		list_del(it);
		free(list_entry(it, struct pool_limit, node));
	}
	list_for_each_safe(it, tmp, &rt.user_limits)
	{
		list_del(it);
		free(list_entry(it, struct pool_limit, node));
	}
}
