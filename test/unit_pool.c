/*
 * Pool accounting under long random sequences, without sockets: fake clients
 * and servers that never connect are driven through lease, release, login,
 * login failure, crash, client exit, janitor eviction and reload, and every
 * counter is checked against the lists after every step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "intern.h"
#include "janitor.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "server.h"
#include "tap.h"

#define MAX_CLIENTS 48

static struct client *clients[MAX_CLIENTS];
static uint64_t rng = 88172645463325252ull;
static unsigned failures;
static char fail_msg[512];

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static struct config *load(const char *text)
{
	char path[] = "/tmp/unit_pool_XXXXXX", err[512];
	int fd = mkstemp(path);
	struct config *cfg;

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		tap_bail("cannot write a temp config");
	close(fd);
	cfg = cfg_load(path, err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		tap_bail("config: %s", err);
	return cfg;
}

static unsigned count(const struct list *head)
{
	const struct list *it;
	unsigned n = 0;

	for (it = head->next; it != head; it = it->next)
		n++;
	return n;
}

static void bad(const char *what, unsigned long step)
{
	if (failures++ == 0)
		snprintf(fail_msg, sizeof(fail_msg), "step %lu: %s", step, what);
}

/* Every counter equals what the lists say. */
static void check(unsigned long step, unsigned max_per_pool, unsigned max_db)
{
	struct list *it, *l;
	unsigned db_servers = 0, admitted = 0;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *p = list_entry(it, struct pool, node);
		unsigned live =
		    count(&p->idle_servers) + count(&p->active_servers) + count(&p->other_servers);

		if (live != p->n_servers)
			bad("pool n_servers differs from its server lists", step);
		if (p->n_waiting != count(&p->waiting_clients))
			bad("pool n_waiting differs from its wait queue", step);
		if (p->n_servers > max_per_pool)
			bad("pool above pool_size + max_overflow + reserve", step);
		if (!list_empty(&p->waiting_clients) && !list_empty(&p->idle_servers))
			bad("a client waits while a server idles", step);
		for (l = p->active_servers.next; l != &p->active_servers; l = l->next) {
			struct server *s = list_entry(l, struct server, node);

			if (s->client == NULL || s->client->server != s)
				bad("active server and its client do not point at each other",
				    step);
		}
		db_servers += p->n_servers;
		admitted +=
		    count(&p->clients) + count(&p->waiting_clients) + count(&p->welcome_clients);
	}
	for (it = rt.db_limits.next; it != &rt.db_limits; it = it->next) {
		struct pool_limit *lim = list_entry(it, struct pool_limit, node);

		if (lim->servers != db_servers)
			bad("database server counter drifted", step);
		if (max_db > 0 && lim->servers > max_db)
			bad("max_db_connections exceeded", step);
		if (lim->clients != admitted)
			bad("database client counter drifted", step);
	}
	for (it = rt.user_limits.next; it != &rt.user_limits; it = it->next) {
		struct pool_limit *lim = list_entry(it, struct pool_limit, node);
		unsigned sv = 0;

		for (l = rt.pools.next; l != &rt.pools; l = l->next) {
			struct pool *p = list_entry(l, struct pool, node);

			if (p->user_limit == lim)
				sv += p->n_servers;
		}
		if (lim->servers != sv)
			bad("user server counter drifted", step);
	}
}

static void new_client(int slot)
{
	struct client *c = calloc(1, sizeof(*c));
	const char *user = rnd(2) ? "alice" : "bob";

	list_init(&c->node);
	c->sb.fd = -1;
	c->sb.closed = true;
	c->user = intern_dup(user);
	c->dbname = intern_dup("db");
	c->state = CL_LOGIN;
	list_append(&rt.login_clients, &c->node);
	rt.n_clients++;
	c->pool = pool_get("db", cfg_find_db(rt.cfg, "db"), user, NULL);
	if (!pool_client_admit(c->pool, c)) {
		clients[slot] = NULL; /* refused: closed by the pool */
		return;
	}
	client_set_state(c, CL_IDLE);
	clients[slot] = c;
}

/* A random live server of any pool in the list picked by WHICH, or NULL. */
static struct server *pick_server(int which)
{
	struct list *it, *l;
	struct server *found = NULL;
	unsigned seen = 0;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		struct pool *p = list_entry(it, struct pool, node);
		struct list *head = which == 0   ? &p->other_servers
		                    : which == 1 ? &p->active_servers
		                                 : &p->idle_servers;

		for (l = head->next; l != head; l = l->next) {
			struct server *s = list_entry(l, struct server, node);

			if (which == 0 && s->state != SV_CONNECTING && s->state != SV_LOGIN)
				continue;
			if (rnd(++seen) == 0)
				found = s;
		}
	}
	return found;
}

static void forget_closed_clients(void)
{
	int i;

	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] != NULL && clients[i]->state == CL_CLOSED)
			clients[i] = NULL;
	client_reap();
	server_reap();
}

static void step_once(struct config *a, struct config *b)
{
	int slot = (int)rnd(MAX_CLIENTS);
	struct client *c = clients[slot];
	struct server *s;
	struct list *it;

	switch (rnd(10)) {
	case 0: /* a client arrives */
		if (c == NULL)
			new_client(slot);
		break;
	case 1: /* a client sends a query */
		if (c != NULL && c->state == CL_IDLE && c->server == NULL &&
		    pool_lease(c->pool, c) && c->state != CL_CLOSED)
			client_set_state(c, CL_ACTIVE);
		break;
	case 2: /* a login finishes */
		s = pick_server(0);
		if (s != NULL) {
			s->last_status = 'I';
			if (!pool_set_welcome(s->pool, NULL, 0))
				tap_bail("out of memory");
			pool_server_ready(s);
		}
		break;
	case 3: /* a login fails */
		s = pick_server(0);
		if (s != NULL)
			server_fail_login(s, "28P01", "test: password authentication failed");
		break;
	case 4: /* a transaction ends */
		s = pick_server(1);
		if (s != NULL) {
			struct client *owner = s->client;

			pool_release(s, false);
			if (owner->state == CL_ACTIVE && owner->server == NULL)
				client_set_state(owner, CL_IDLE);
		}
		break;
	case 5: /* a client leaves */
		if (c != NULL)
			client_close(c, NULL);
		break;
	case 6: /* a backend crashes */
		s = pick_server(rnd(3));
		if (s != NULL)
			server_close(s, NULL);
		break;
	case 7: /* time passes: idle eviction, wait timeouts */
		if (rnd(8) == 0)
			janitor_tick(rt_now_usec() + 3600ull * 1000000);
		break;
	case 8: /* RELOAD with another pool_size */
		if (rnd(16) == 0) {
			rt.cfg = rt.cfg == a ? b : a;
			for (it = rt.pools.next; it != &rt.pools; it = it->next) {
				struct pool *p = list_entry(it, struct pool, node);

				pool_reconfigure(p, cfg_find_db(rt.cfg, "db"));
			}
		}
		break;
	default: /* an idle client asks again, or nothing */
		break;
	}
	forget_closed_clients();
}

static void run(const char *mode, unsigned long steps)
{
	char text[1024];
	struct config *a, *b;
	unsigned long i;
	const char *fmt = "[databases]\ndb = host=/nonexistent port=5432 pool_size=%d "
	                  "max_overflow=2 reserve_pool=1 min_pool_size=1 max_db_connections=6\n"
	                  "[pgbouncer]\nlisten_addr = 127.0.0.1\npool_mode = %s\n"
	                  "server_login_retry = 0\nserver_idle_timeout = 60\n"
	                  "query_wait_timeout = 60\nreserve_pool_timeout = 0\n"
	                  "max_db_client_connections = 30\nserver_reset_query = DISCARD ALL\n";

	snprintf(text, sizeof(text), fmt, 3, mode);
	a = load(text);
	snprintf(text, sizeof(text), fmt, 2, mode);
	b = load(text);
	rt.cfg = a;
	failures = 0;
	for (i = 0; i < steps && failures == 0; i++) {
		step_once(a, b);
		/* pool_size 3 + overflow 2 + reserve 1 */
		check(i, 6, 6);
	}
	tap_ok(failures == 0,
	       "%s pooling: %lu random steps keep every counter equal to the lists%s%s", mode, i,
	       failures ? ": " : "", failures ? fail_msg : "");
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] != NULL)
			client_close(clients[i], NULL);
	forget_closed_clients();
	pool_free_all();
	tap_ok(list_empty(&rt.pools) && list_empty(&rt.db_limits) && list_empty(&rt.user_limits),
	       "%s pooling: everything given back and freed at the end", mode);
	cfg_free(a);
	cfg_free(b);
}

int main(void)
{
	log_threshold = LOG_LVL_FATAL;
	rt_init();
	rt.base = event_base_new();
	rt.auth = auth_file_empty();
	run("transaction", 200000);
	run("session", 200000);
	run("statement", 50000);
	auth_file_free(rt.auth);
	event_base_free(rt.base);
	return tap_done();
}
