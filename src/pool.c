/* pool: leases of server connections to clients; see include/pool.h. */
#include "pool.h"

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
	free(pool);
}

/* Size, overflow and mode from the database entry, the [users] entry and the globals. */
static void pool_settings(struct pool *pool, const struct cfg_db *db, const struct cfg_user *uc,
			  const struct config *cfg)
{
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
}

struct pool *pool_get(const char *db_name, const struct cfg_db *db, const char *client_user)
{
	const struct config *cfg = rt.cfg;
	const char *user = db->user != NULL ? db->user : client_user;
	const struct cfg_user *uc = cfg_find_user(cfg, client_user);
	struct list *it, *tmp;
	struct pool *pool;

	list_for_each_safe(it, tmp, &rt.pools)
	{
		pool = list_entry(it, struct pool, node);
		if (strcmp(pool->db_name, db_name) == 0 && strcmp(pool->user, user) == 0)
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
	pool_settings(pool, db, uc, cfg);
	if (pool->db_name == NULL || pool->user == NULL || pool->target_db == NULL ||
	    (db->host != NULL && pool->host == NULL) ||
	    (db->password != NULL && pool->password == NULL)) {
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

/* Launch servers while clients wait for more than are coming, within the limits. */
static void launch_if_needed(struct pool *pool)
{
	unsigned want = count_list(&pool->waiting_clients);
	unsigned coming = launching(pool);
	unsigned limit = (unsigned)pool->pool_size + (unsigned)pool->max_overflow;

	if (admin_pool_paused(pool))
		return; /* PAUSE, KILL, SUSPEND: no new servers */
	if (want == 0 && !list_empty(&pool->welcome_clients) && !pool->have_welcome)
		want = 1;
	if (pool->login_fail_time != 0 &&
	    rt_now_usec() - pool->login_fail_time < (uint64_t)(rt.cfg->server_login_retry * 1e6))
		return;
	/* Servers being reset come back soon; count them as coming too. */
	coming += count_list(&pool->other_servers) - launching(pool);
	while (coming < want && pool->n_servers < limit && !rt.shutting_down) {
		if (server_launch(pool) == NULL)
			break;
		coming++;
	}
}

/* Has SERVER sat idle long enough to need server_check_query first? */
static bool needs_check(const struct server *server, uint64_t now)
{
	const struct config *cfg = rt.cfg;

	if (cfg->server_check_query == NULL || cfg->server_check_query[0] == '\0' ||
	    cfg->server_check_delay < 0)
		return false;
	return now - server->last_used >= (uint64_t)(cfg->server_check_delay * 1e6);
}

bool pool_lease(struct pool *pool, struct client *client)
{
	uint64_t now = rt_now_usec();
	struct list *n;

	while (!admin_pool_paused(pool) && (n = list_pop(&pool->idle_servers)) != NULL) {
		struct server *server = list_entry(n, struct server, node);

		list_init(&server->node);
		if (needs_check(server, now)) {
			/* Checked servers come back through pool_server_ready(). */
			server_check(server);
			continue;
		}
		server_link(server, client);
		return true;
	}
	client->wait_start = rt_now_usec();
	client_set_state(client, CL_WAITING);
	launch_if_needed(pool);
	return false;
}

void pool_want_welcome(struct pool *pool)
{
	launch_if_needed(pool);
}

void pool_release(struct server *server, bool client_gone)
{
	struct pool *pool = server->pool;
	const struct config *cfg = rt.cfg;

	server_unlink(server);
	if (!server_is_clean(server)) {
		server_close(server, client_gone ? "client disconnected with a query in progress"
						 : "released while not idle");
		return;
	}
	if (cfg->server_reset_query != NULL && cfg->server_reset_query[0] != '\0' &&
	    (pool->mode == POOL_SESSION || cfg->server_reset_query_always)) {
		server_reset(server);
		return;
	}
	pool_server_ready(server);
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
	server->last_used = rt_now_usec();
	server_set_state(server, SV_IDLE);
}

void pool_server_gone(struct server *server)
{
	struct pool *pool = server->pool;

	if (pool->n_servers > 0)
		pool->n_servers--;
	launch_if_needed(pool);
}

void pool_login_failed(struct pool *pool, const char *sqlstate, const char *msg)
{
	struct list *n, *tmp;

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

void pool_maintain(uint64_t now)
{
	struct list *it, *tmp, *c, *ctmp;
	uint64_t wait_limit = (uint64_t)(rt.cfg->query_wait_timeout * 1e6);

	list_for_each_safe(it, tmp, &rt.pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);

		if (wait_limit > 0)
			list_for_each_safe(c, ctmp, &pool->waiting_clients)
			{
				struct client *client = list_entry(c, struct client, node);

				/* FIFO: the first one still inside the limit ends the scan. */
				if (now - client->wait_start < wait_limit)
					break;
				client_fail(client, "08P01", "query_wait_timeout");
			}
		launch_if_needed(pool);
	}
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
}
