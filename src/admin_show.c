/* admin_show: the console's SHOW commands; see include/admin_show.h. */
#include "admin_int.h"
#include "auth.h"
#include "net.h"
#include "dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "client.h"
#include "config.h"
#include "pool.h"
#include "prepared.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"

#include "pgl_build.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- result set writer ---------------------------------------------------- */

void admin_rowdesc(struct pkt_writer *w, const struct admin_col *cols, size_t n)
{
	size_t i;

	pkt_begin(w, PqMsg_RowDescription);
	pkt_put_u16(w, (uint16_t)n);
	for (i = 0; i < n; i++) {
		int16_t len = cols[i].type == ADMIN_T_INT4   ? 4
		              : cols[i].type == ADMIN_T_INT8 ? 8
		                                             : -1;

		pkt_put_str(w, cols[i].name);
		pkt_put_u32(w, 0);                    /* table */
		pkt_put_u16(w, 0);                    /* column of the table */
		pkt_put_u32(w, cols[i].type);         /* type */
		pkt_put_u16(w, (uint16_t)len);        /* type length */
		pkt_put_u32(w, UINT32_C(0xffffffff)); /* type modifier -1 */
		pkt_put_u16(w, 0);                    /* text format */
	}
	pkt_end(w);
}

void admin_row_begin(struct pkt_writer *w, size_t n)
{
	pkt_begin(w, PqMsg_DataRow);
	pkt_put_u16(w, (uint16_t)n);
}

void admin_put_text(struct pkt_writer *w, const char *s)
{
	size_t len;

	if (s == NULL) {
		pkt_put_u32(w, UINT32_C(0xffffffff));
		return;
	}
	len = strlen(s);
	pkt_put_u32(w, (uint32_t)len);
	pkt_put_bytes(w, s, len);
}

void admin_put_int(struct pkt_writer *w, long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	admin_put_text(w, buf);
}

void admin_put_u64(struct pkt_writer *w, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	admin_put_text(w, buf);
}

void admin_row_end(struct pkt_writer *w)
{
	pkt_end(w);
}

void admin_complete(struct pkt_writer *w, const char *tag)
{
	pkt_begin(w, PqMsg_CommandComplete);
	pkt_put_str(w, tag);
	pkt_end(w);
}

#define ROWDESC(w, cols) admin_rowdesc((w), (cols), N_ELEMS(cols))

/* ---- helpers -------------------------------------------------------------- */

static unsigned count_list(const struct list *head)
{
	const struct list *it;
	unsigned n = 0;

	for (it = head->next; it != head; it = it->next)
		n++;
	return n;
}

/* Monotonic microseconds (rt_now_usec) as "YYYY-MM-DD HH:MM:SS UTC". */
static void fmt_time(uint64_t mono, char *buf, size_t len)
{
	struct timespec wall;
	uint64_t now = rt_now_usec();
	int64_t usec;
	time_t t;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &wall);
	usec = (int64_t)wall.tv_sec * 1000000 + wall.tv_nsec / 1000 - (int64_t)(now - mono);
	t = (time_t)(usec / 1000000);
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "%s", "");
}

/* Address and port of a socket address; "unix" for unix sockets (port UNIX_PORT). */
static void addr_split(const struct sockaddr *ss, int unix_port, char *buf, size_t len, int *port)
{
	*port = 0;
	snprintf(buf, len, "%s", "");
	switch (ss->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
		*port = ntohs(in->sin_port);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
		break;
	}
	case AF_UNIX:
		snprintf(buf, len, "unix");
		*port = unix_port;
		break;
	default:
		break;
	}
}

/* The local end of FD. */
static void local_split(int fd, int unix_port, char *buf, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		ss.ss_family = AF_UNSPEC;
	addr_split((const struct sockaddr *)&ss, unix_port, buf, len, port);
}

/* Process id of the peer of a unix socket, 0 when unknown. */
static int peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return 0;
	return (int)cred.pid;
}

static unsigned pool_client_count(const struct pool *pool)
{
	return count_list(&pool->clients) + count_list(&pool->waiting_clients) +
	       count_list(&pool->welcome_clients);
}

/* ---- SHOW POOLS ----------------------------------------------------------- */

static const struct admin_col pools_cols[] = {
    {"database", ADMIN_T_TEXT},
    {"user", ADMIN_T_TEXT},
    {"cl_active", ADMIN_T_INT4},
    {"cl_waiting", ADMIN_T_INT4},
    {"cl_active_cancel_req", ADMIN_T_INT4},
    {"cl_waiting_cancel_req", ADMIN_T_INT4},
    {"sv_active", ADMIN_T_INT4},
    {"sv_active_cancel", ADMIN_T_INT4},
    {"sv_being_canceled", ADMIN_T_INT4},
    {"sv_idle", ADMIN_T_INT4},
    {"sv_used", ADMIN_T_INT4},
    {"sv_tested", ADMIN_T_INT4},
    {"sv_login", ADMIN_T_INT4},
    {"maxwait", ADMIN_T_INT4},
    {"maxwait_us", ADMIN_T_INT4},
    {"pool_mode", ADMIN_T_TEXT},
    {"load_balance_hosts", ADMIN_T_TEXT},
    /* pglease */
    {"pool_size", ADMIN_T_INT4},
    {"max_overflow", ADMIN_T_INT4},
    {"sv_overflow", ADMIN_T_INT4},
    {"paused", ADMIN_T_INT4},
};

static void show_pools(struct pkt_writer *w)
{
	uint64_t now = rt_now_usec();
	const struct list *it;

	ROWDESC(w, pools_cols);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);
		struct pool_gauges g;

		if (!stats_pool_listed(pool))
			continue;
		stats_pool_gauges(pool, now, &g);
		admin_row_begin(w, N_ELEMS(pools_cols));
		admin_put_text(w, pool->db_name);
		admin_put_text(w, pool->user);
		admin_put_int(w, g.cl_active);
		admin_put_int(w, g.cl_waiting);
		admin_put_int(w, g.cl_active_cancel_req);
		/* cl_waiting_cancel_req: a cancel never waits, it gets its own connection */
		admin_put_int(w, 0);
		admin_put_int(w, g.sv_active);
		admin_put_int(w, g.sv_active_cancel);
		admin_put_int(w, g.sv_being_canceled);
		admin_put_int(w, g.sv_idle);
		admin_put_int(w, g.sv_used);
		admin_put_int(w, g.sv_tested);
		admin_put_int(w, g.sv_login);
		admin_put_int(w, (long long)(g.maxwait_usec / 1000000));
		admin_put_int(w, (long long)(g.maxwait_usec % 1000000));
		admin_put_text(w, cfg_pool_mode_name(pool->mode));
		admin_put_text(w, NULL);
		admin_put_int(w, pool->pool_size);
		admin_put_int(w, pool->max_overflow);
		admin_put_int(w, g.sv_overflow);
		admin_put_int(w, admin_pool_paused(pool) ? 1 : 0);
		admin_row_end(w);
	}
}

/* ---- SHOW CLIENTS / SERVERS / SOCKETS -------------------------------------- */

static const struct admin_col socket_cols[] = {
    {"type", ADMIN_T_TEXT},
    {"user", ADMIN_T_TEXT},
    {"database", ADMIN_T_TEXT},
    {"replication", ADMIN_T_TEXT},
    {"state", ADMIN_T_TEXT},
    {"addr", ADMIN_T_TEXT},
    {"port", ADMIN_T_INT4},
    {"local_addr", ADMIN_T_TEXT},
    {"local_port", ADMIN_T_INT4},
    {"connect_time", ADMIN_T_TEXT},
    {"request_time", ADMIN_T_TEXT},
    {"wait", ADMIN_T_INT4},
    {"wait_us", ADMIN_T_INT4},
    {"close_needed", ADMIN_T_INT4},
    {"ptr", ADMIN_T_TEXT},
    {"link", ADMIN_T_TEXT},
    {"remote_pid", ADMIN_T_INT4},
    {"tls", ADMIN_T_TEXT},
    {"application_name", ADMIN_T_TEXT},
    {"prepared_statements", ADMIN_T_INT4},
    {"id", ADMIN_T_INT4},
    /* SHOW SOCKETS only */
    {"recv_pos", ADMIN_T_INT4},
    {"pkt_pos", ADMIN_T_INT4},
    {"pkt_remain", ADMIN_T_INT4},
    {"send_pos", ADMIN_T_INT4},
    {"send_remain", ADMIN_T_INT4},
    {"pkt_avail", ADMIN_T_INT4},
    {"send_avail", ADMIN_T_INT4},
};
#define SOCKET_STD_COLS 21

/* What one socket row shows, filled for a client or a server. */
struct sock_row {
	const char *type, *user, *db, *state, *app;
	const struct sockaddr *addr;
	int unix_port;
	const struct sbuf *sb;
	uint64_t connect_time, request_time, wait;
	bool close_needed;
	const void *ptr, *link;
	int remote_pid;
	size_t prepared; /* named prepared statements of the client, on the server */
	uint64_t id;
};

static void socket_row(struct pkt_writer *w, const struct sock_row *r, bool debug)
{
	char addr[INET6_ADDRSTRLEN + 8], laddr[INET6_ADDRSTRLEN + 8], ctime[40], rtime[40];
	char ptr[32], link[32];
	int port, lport;

	addr_split(r->addr, r->unix_port, addr, sizeof(addr), &port);
	local_split(r->sb->closed ? -1 : r->sb->fd, r->unix_port, laddr, sizeof(laddr), &lport);
	fmt_time(r->connect_time, ctime, sizeof(ctime));
	fmt_time(r->request_time ? r->request_time : r->connect_time, rtime, sizeof(rtime));
	snprintf(ptr, sizeof(ptr), "%p", r->ptr);
	if (r->link != NULL)
		snprintf(link, sizeof(link), "%p", r->link);
	else
		link[0] = '\0';
	admin_row_begin(w, debug ? N_ELEMS(socket_cols) : SOCKET_STD_COLS);
	admin_put_text(w, r->type);
	admin_put_text(w, r->user ? r->user : "(nouser)");
	admin_put_text(w, r->db ? r->db : "(nodb)");
	admin_put_text(w, "none");
	admin_put_text(w, r->state);
	admin_put_text(w, addr);
	admin_put_int(w, port);
	admin_put_text(w, laddr);
	admin_put_int(w, lport);
	admin_put_text(w, ctime);
	admin_put_text(w, rtime);
	admin_put_int(w, (long long)(r->wait / 1000000));
	admin_put_int(w, (long long)(r->wait % 1000000));
	admin_put_int(w, r->close_needed ? 1 : 0);
	admin_put_text(w, ptr);
	admin_put_text(w, link);
	admin_put_int(w, r->remote_pid);
	admin_put_text(w, "");
	admin_put_text(w, r->app ? r->app : "");
	admin_put_int(w, (long long)r->prepared);
	admin_put_u64(w, r->id);
	if (debug) {
		size_t in = sbuf_pending_in(r->sb), out = sbuf_pending_out(r->sb);

		admin_put_int(w, (long long)in);
		admin_put_int(w, 0);
		admin_put_int(w, r->sb->pkt_left);
		admin_put_int(w, 0);
		admin_put_int(w, (long long)out);
		admin_put_int(w, (long long)in);
		admin_put_int(w, (long long)out);
	}
	admin_row_end(w);
}

/* STATE NULL: the usual "active"/"idle"/"waiting" by list and link. */
static void client_row(struct pkt_writer *w, const struct client *c, const char *state, bool debug)
{
	struct sock_row r = {0};
	uint64_t now = rt_now_usec();

	r.type = "C";
	r.user = c->user;
	r.db = c->dbname;
	if (state != NULL)
		r.state = state;
	else if (c->state == CL_WAITING || c->state == CL_WELCOME_WAIT)
		r.state = "waiting";
	else
		r.state = c->server != NULL ? "active" : "idle";
	r.app = varcache_get(&c->vars, VAR_APPNAME);
	r.addr = &c->addr.sa;
	r.unix_port = rt.cfg->listen_port;
	r.sb = &c->sb;
	r.connect_time = c->connect_time;
	r.request_time = c->wait_start;
	if (c->state == CL_WAITING && c->wait_start != 0 && now > c->wait_start)
		r.wait = now - c->wait_start;
	r.ptr = c;
	r.link = c->server;
	r.remote_pid = c->is_unix && !c->sb.closed ? peer_pid(c->sb.fd) : 0;
	r.prepared = c->pmap != NULL ? c->pmap->count : 0;
	r.id = c->id;
	socket_row(w, &r, debug);
}

static void server_row(struct pkt_writer *w, const struct server *s, const char *state, bool debug)
{
	struct sock_row r = {0};
	const uint8_t *k = s->cancel_key;

	r.type = "S";
	r.user = s->pool->user;
	r.db = s->pool->db_name;
	r.state = state;
	r.app = s->client != NULL ? varcache_get(&s->client->vars, VAR_APPNAME) : NULL;
	r.addr = (const struct sockaddr *)&s->addr;
	r.unix_port = s->pool->port;
	r.sb = &s->sb;
	r.connect_time = s->connect_time;
	r.request_time = s->last_used;
	r.close_needed = admin_server_stale(s);
	r.ptr = s;
	r.link = s->client;
	r.remote_pid = (int)(((uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 |
	                      (uint32_t)k[3]) &
	                     0x7fffffff);
	r.prepared = s->pcache.count;
	r.id = s->id;
	socket_row(w, &r, debug);
}

static void client_list_rows(struct pkt_writer *w, const struct list *head, const char *state,
                             bool debug)
{
	const struct list *it;

	for (it = head->next; it != head; it = it->next)
		client_row(w, list_entry(it, const struct client, node), state, debug);
}

static void show_clients(struct pkt_writer *w)
{
	const struct list *it;

	admin_rowdesc(w, socket_cols, SOCKET_STD_COLS);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);

		client_list_rows(w, &pool->clients, NULL, false);
		client_list_rows(w, &pool->waiting_clients, NULL, false);
		client_list_rows(w, &pool->welcome_clients, NULL, false);
	}
	client_list_rows(w, &rt.admin_clients, NULL, false);
}

/* Server rows of POOL: SOCKETS names states "sv_*", SERVERS without prefix. */
static void pool_server_rows(struct pkt_writer *w, const struct pool *pool, bool debug)
{
	uint64_t now = rt_now_usec();
	const struct list *it;

	for (it = pool->active_servers.next; it != &pool->active_servers; it = it->next)
		server_row(w, list_entry(it, const struct server, node),
		           debug ? "sv_active" : "active", debug);
	for (it = pool->idle_servers.next; it != &pool->idle_servers; it = it->next) {
		const struct server *s = list_entry(it, const struct server, node);

		if (pool_server_needs_check(s, now))
			server_row(w, s, debug ? "sv_used" : "used", debug);
		else
			server_row(w, s, debug ? "sv_idle" : "idle", debug);
	}
	for (it = pool->other_servers.next; it != &pool->other_servers; it = it->next) {
		const struct server *s = list_entry(it, const struct server, node);
		bool login = s->state == SV_CONNECTING || s->state == SV_LOGIN;

		if (debug)
			server_row(w, s, login ? "sv_login" : "sv_tested", debug);
		else
			server_row(w, s, login ? "new" : "tested", debug);
	}
}

static void show_servers(struct pkt_writer *w)
{
	const struct list *it;

	admin_rowdesc(w, socket_cols, SOCKET_STD_COLS);
	for (it = rt.pools.next; it != &rt.pools; it = it->next)
		pool_server_rows(w, list_entry(it, const struct pool, node), false);
}

static void show_sockets(struct pkt_writer *w)
{
	const struct list *it;

	ROWDESC(w, socket_cols);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);

		client_list_rows(w, &pool->clients, "cl_active", true);
		client_list_rows(w, &pool->waiting_clients, "cl_waiting", true);
		client_list_rows(w, &pool->welcome_clients, "cl_waiting", true);
		pool_server_rows(w, pool, true);
	}
	client_list_rows(w, &rt.login_clients, "cl_login", true);
	client_list_rows(w, &rt.admin_clients, "cl_active", true);
}

/* ---- SHOW DATABASES / USERS / PEERS ---------------------------------------- */

static const struct admin_col databases_cols[] = {
    {"name", ADMIN_T_TEXT},
    {"host", ADMIN_T_TEXT},
    {"port", ADMIN_T_INT4},
    {"database", ADMIN_T_TEXT},
    {"force_user", ADMIN_T_TEXT},
    {"pool_size", ADMIN_T_INT4},
    {"min_pool_size", ADMIN_T_INT4},
    {"reserve_pool_size", ADMIN_T_INT4},
    {"server_lifetime", ADMIN_T_INT4},
    {"pool_mode", ADMIN_T_TEXT},
    {"load_balance_hosts", ADMIN_T_TEXT},
    {"max_connections", ADMIN_T_INT4},
    {"current_connections", ADMIN_T_INT4},
    {"max_client_connections", ADMIN_T_INT4},
    {"current_client_connections", ADMIN_T_INT4},
    {"paused", ADMIN_T_INT4},
    {"disabled", ADMIN_T_INT4},
    /* pglease */
    {"max_overflow", ADMIN_T_INT4},
    {"overflow_connections", ADMIN_T_INT4},
};

/* One [databases] row for NAME (an entry, or a name served by the "*" entry). */
static void database_row(struct pkt_writer *w, const char *name, const struct cfg_db *db)
{
	const struct config *cfg = rt.cfg;
	const struct list *it;
	unsigned servers = 0, clients = 0, over = 0;
	int size = db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);

		if (strcmp(pool->db_name, name) != 0)
			continue;
		servers += pool->n_servers;
		clients += pool_client_count(pool);
		if ((int)pool->n_servers > pool->pool_size)
			over += pool->n_servers - (unsigned)pool->pool_size;
	}
	admin_row_begin(w, N_ELEMS(databases_cols));
	admin_put_text(w, name);
	admin_put_text(w, db->host);
	admin_put_int(w, db->port > 0 ? db->port : 5432);
	admin_put_text(w, db->dbname != NULL ? db->dbname : name);
	admin_put_text(w, db->user);
	admin_put_int(w, size);
	admin_put_int(w, db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size);
	admin_put_int(w,
	              db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size);
	admin_put_int(w, (long long)cfg->server_lifetime);
	admin_put_text(w, db->pool_mode >= 0 ? cfg_pool_mode_name((enum pool_mode)db->pool_mode)
	                                     : NULL);
	admin_put_text(w, NULL);
	admin_put_int(w, db->max_db_connections >= 0 ? db->max_db_connections
	                                             : cfg->max_db_connections);
	admin_put_int(w, servers);
	admin_put_int(w, db->max_db_client_connections >= 0 ? db->max_db_client_connections
	                                                    : cfg->max_db_client_connections);
	admin_put_int(w, clients);
	admin_put_int(w, admin_db_paused(name) ? 1 : 0);
	admin_put_int(w, admin_db_disabled(name) ? 1 : 0);
	admin_put_int(w, db->max_overflow >= 0 ? db->max_overflow : cfg->max_overflow);
	admin_put_int(w, over);
	admin_row_end(w);
}

static void show_databases(struct pkt_writer *w)
{
	const struct config *cfg = rt.cfg;
	const struct list *it, *jt;
	size_t i;

	ROWDESC(w, databases_cols);
	for (i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, "*") != 0)
			database_row(w, cfg->dbs[i].name, &cfg->dbs[i]);
	/* names served by the "*" entry, once each */
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);
		const struct cfg_db *db = cfg_find_db(cfg, pool->db_name);
		bool seen = false;

		if (db == NULL || strcmp(db->name, "*") != 0)
			continue;
		for (jt = rt.pools.next; jt != it && !seen; jt = jt->next)
			seen = strcmp(list_entry(jt, const struct pool, node)->db_name,
			              pool->db_name) == 0;
		if (!seen)
			database_row(w, pool->db_name, db);
	}
}

static const struct admin_col users_cols[] = {
    {"name", ADMIN_T_TEXT},
    {"pool_size", ADMIN_T_TEXT},
    {"reserve_pool_size", ADMIN_T_TEXT},
    {"pool_mode", ADMIN_T_TEXT},
    {"max_user_connections", ADMIN_T_INT4},
    {"current_connections", ADMIN_T_INT4},
    {"max_user_client_connections", ADMIN_T_INT4},
    {"current_client_connections", ADMIN_T_INT4},
};

static void user_row(struct pkt_writer *w, const char *name, const struct cfg_user *u)
{
	const struct config *cfg = rt.cfg;
	const struct list *it;
	unsigned servers = 0, clients = 0;
	char size[16] = "";

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);
		const struct list *c;

		if (strcmp(pool->user, name) == 0)
			servers += pool->n_servers;
		for (c = pool->clients.next; c != &pool->clients; c = c->next)
			clients +=
			    strcmp(list_entry(c, const struct client, node)->user, name) == 0;
		for (c = pool->waiting_clients.next; c != &pool->waiting_clients; c = c->next)
			clients +=
			    strcmp(list_entry(c, const struct client, node)->user, name) == 0;
	}
	if (u != NULL && u->pool_size >= 0)
		snprintf(size, sizeof(size), "%d", u->pool_size);
	admin_row_begin(w, N_ELEMS(users_cols));
	admin_put_text(w, name);
	admin_put_text(w, size);
	admin_put_text(w, "");
	admin_put_text(w, u != NULL && u->pool_mode >= 0
	                      ? cfg_pool_mode_name((enum pool_mode)u->pool_mode)
	                      : NULL);
	admin_put_int(w, u != NULL && u->max_user_connections >= 0 ? u->max_user_connections
	                                                           : cfg->max_user_connections);
	admin_put_int(w, servers);
	admin_put_int(w, u != NULL && u->max_user_client_connections >= 0
	                     ? u->max_user_client_connections
	                     : cfg->max_user_client_connections);
	admin_put_int(w, clients);
	admin_row_end(w);
}

static void show_users(struct pkt_writer *w)
{
	const struct config *cfg = rt.cfg;
	const struct list *it, *jt;
	size_t i;

	ROWDESC(w, users_cols);
	for (i = 0; i < cfg->n_users; i++)
		user_row(w, cfg->users[i].name, &cfg->users[i]);
	/* users of the auth_file not in [users] */
	for (i = 0; i < auth_file_count(rt.auth); i++) {
		const char *name = auth_file_entry(rt.auth, i)->name;

		if (cfg_find_user(cfg, name) == NULL)
			user_row(w, name, NULL);
	}
	/* users known only from their pools, once each */
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const char *name = list_entry(it, const struct pool, node)->user;
		bool seen =
		    cfg_find_user(cfg, name) != NULL || auth_file_find(rt.auth, name) != NULL;

		for (jt = rt.pools.next; jt != it && !seen; jt = jt->next)
			seen = strcmp(list_entry(jt, const struct pool, node)->user, name) == 0;
		if (!seen)
			user_row(w, name, NULL);
	}
}

static const struct admin_col peers_cols[] = {
    {"peer_id", ADMIN_T_INT4},
    {"host", ADMIN_T_TEXT},
    {"port", ADMIN_T_INT4},
    {"pool_size", ADMIN_T_INT4},
};

static void show_peers(struct pkt_writer *w)
{
	/* [peers] is accepted and ignored by the config loader: none to show. */
	ROWDESC(w, peers_cols);
}

/* ---- SHOW STATS family ----------------------------------------------------- */

static const struct admin_col stats_cols[] = {
    {"database", ADMIN_T_TEXT},
    {"total_server_assignment_count", ADMIN_T_NUMERIC},
    {"total_xact_count", ADMIN_T_NUMERIC},
    {"total_query_count", ADMIN_T_NUMERIC},
    {"total_received", ADMIN_T_NUMERIC},
    {"total_sent", ADMIN_T_NUMERIC},
    {"total_xact_time", ADMIN_T_NUMERIC},
    {"total_query_time", ADMIN_T_NUMERIC},
    {"total_wait_time", ADMIN_T_NUMERIC},
    {"total_client_parse_count", ADMIN_T_NUMERIC},
    {"total_server_parse_count", ADMIN_T_NUMERIC},
    {"total_bind_count", ADMIN_T_NUMERIC},
    {"avg_server_assignment_count", ADMIN_T_NUMERIC},
    {"avg_xact_count", ADMIN_T_NUMERIC},
    {"avg_query_count", ADMIN_T_NUMERIC},
    {"avg_recv", ADMIN_T_NUMERIC},
    {"avg_sent", ADMIN_T_NUMERIC},
    {"avg_xact_time", ADMIN_T_NUMERIC},
    {"avg_query_time", ADMIN_T_NUMERIC},
    {"avg_wait_time", ADMIN_T_NUMERIC},
    {"avg_client_parse_count", ADMIN_T_NUMERIC},
    {"avg_server_parse_count", ADMIN_T_NUMERIC},
    {"avg_bind_count", ADMIN_T_NUMERIC},
    /* pglease */
    {"total_client_connect_count", ADMIN_T_NUMERIC},
    {"avg_client_connect_count", ADMIN_T_NUMERIC},
};

/* SHOW STATS_TOTALS and SHOW STATS_AVERAGES share one layout. */
static const struct admin_col stats_part_cols[] = {
    {"database", ADMIN_T_TEXT},
    {"server_assignment_count", ADMIN_T_NUMERIC},
    {"xact_count", ADMIN_T_NUMERIC},
    {"query_count", ADMIN_T_NUMERIC},
    {"bytes_received", ADMIN_T_NUMERIC},
    {"bytes_sent", ADMIN_T_NUMERIC},
    {"xact_time", ADMIN_T_NUMERIC},
    {"query_time", ADMIN_T_NUMERIC},
    {"wait_time", ADMIN_T_NUMERIC},
    {"client_parse_count", ADMIN_T_NUMERIC},
    {"server_parse_count", ADMIN_T_NUMERIC},
    {"bind_count", ADMIN_T_NUMERIC},
    /* pglease */
    {"client_connect_count", ADMIN_T_NUMERIC},
};

/* The 12 values of one stats_part row, in column order after "database". */
static void put_counters(struct pkt_writer *w, const struct stats_counters *c, bool logins)
{
	admin_put_u64(w, c->server_assignment_count);
	admin_put_u64(w, c->xact_count);
	admin_put_u64(w, c->query_count);
	admin_put_u64(w, c->bytes_recv);
	admin_put_u64(w, c->bytes_sent);
	admin_put_u64(w, c->xact_time);
	admin_put_u64(w, c->query_time);
	admin_put_u64(w, c->wait_time);
	admin_put_u64(w, c->parse_count);
	admin_put_u64(w, c->server_parse_count);
	admin_put_u64(w, c->bind_count);
	if (logins)
		admin_put_u64(w, c->client_logins);
}

enum stats_kind { STATS_ALL, STATS_TOTALS, STATS_AVERAGES };

/* Sum the totals and last-period deltas of every pool of database NAME. */
static void db_counters(const char *name, struct stats_counters *total, struct stats_counters *last)
{
	const struct list *it;

	memset(total, 0, sizeof(*total));
	memset(last, 0, sizeof(*last));
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);

		if (strcmp(pool->db_name, name) != 0)
			continue;
		stats_add(total, &pool->stats.total);
		stats_add(last, &pool->stats.last);
	}
}

static void show_stats(struct pkt_writer *w, enum stats_kind kind)
{
	const struct list *it, *jt;

	if (kind == STATS_ALL)
		ROWDESC(w, stats_cols);
	else
		ROWDESC(w, stats_part_cols);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const char *name = list_entry(it, const struct pool, node)->db_name;
		struct stats_counters total, last, avg;
		bool seen = false;

		for (jt = rt.pools.next; jt != it && !seen; jt = jt->next)
			seen = strcmp(list_entry(jt, const struct pool, node)->db_name, name) == 0;
		if (seen)
			continue;
		db_counters(name, &total, &last);
		stats_averages(&last, &avg);
		if (kind == STATS_ALL) {
			admin_row_begin(w, N_ELEMS(stats_cols));
			admin_put_text(w, name);
			put_counters(w, &total, false);
			put_counters(w, &avg, false);
			admin_put_u64(w, total.client_logins);
			admin_put_u64(w, avg.client_logins);
		} else {
			admin_row_begin(w, N_ELEMS(stats_part_cols));
			admin_put_text(w, name);
			put_counters(w, kind == STATS_TOTALS ? &total : &avg, true);
		}
		admin_row_end(w);
	}
}

static const struct admin_col name_value_cols[] = {
    {"name", ADMIN_T_TEXT},
    {"value", ADMIN_T_NUMERIC},
};

static void name_value(struct pkt_writer *w, const char *prefix, const char *name, uint64_t v)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s%s", prefix, name);
	admin_row_begin(w, 2);
	admin_put_text(w, buf);
	admin_put_u64(w, v);
	admin_row_end(w);
}

static void totals_rows(struct pkt_writer *w, const char *prefix, const struct stats_counters *c)
{
	name_value(w, prefix, "server_assignment_count", c->server_assignment_count);
	name_value(w, prefix, "xact_count", c->xact_count);
	name_value(w, prefix, "query_count", c->query_count);
	name_value(w, prefix, "client_bytes", c->bytes_recv);
	name_value(w, prefix, "server_bytes", c->bytes_sent);
	name_value(w, prefix, "xact_time", c->xact_time);
	name_value(w, prefix, "query_time", c->query_time);
	name_value(w, prefix, "wait_time", c->wait_time);
	name_value(w, prefix, "ps_client_parse_count", c->parse_count);
	name_value(w, prefix, "ps_server_parse_count", c->server_parse_count);
	name_value(w, prefix, "ps_bind_count", c->bind_count);
}

static void show_totals(struct pkt_writer *w)
{
	struct stats_counters total = {0}, last = {0}, avg;
	const struct list *it;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		const struct pool *pool = list_entry(it, const struct pool, node);

		stats_add(&total, &pool->stats.total);
		stats_add(&last, &pool->stats.last);
	}
	stats_averages(&last, &avg);
	ROWDESC(w, name_value_cols);
	totals_rows(w, "total_", &total);
	totals_rows(w, "avg_", &avg);
	name_value(w, "total_", "client_connect_count", total.client_logins);
	name_value(w, "avg_", "client_connect_count", avg.client_logins);
}

/* ---- SHOW CONFIG / LISTS / MEM / STATE / VERSION / DNS -------------------- */

static const struct admin_col config_cols[] = {
    {"key", ADMIN_T_TEXT},
    {"value", ADMIN_T_TEXT},
    {"default", ADMIN_T_TEXT},
    {"changeable", ADMIN_T_TEXT},
};

static void show_config(struct pkt_writer *w)
{
	size_t i, n = cfg_key_count();
	char value[1024];

	ROWDESC(w, config_cols);
	for (i = 0; i < n; i++) {
		const char *name = NULL, *def = NULL;
		bool reload = false;

		if (!cfg_key_info(i, &name, &def, &reload))
			continue;
		cfg_value_text(rt.cfg, i, value, sizeof(value));
		admin_row_begin(w, N_ELEMS(config_cols));
		admin_put_text(w, name);
		admin_put_text(w, value);
		admin_put_text(w, def);
		admin_put_text(w, reload ? "yes" : "no");
		admin_row_end(w);
	}
}

static const struct admin_col lists_cols[] = {
    {"list", ADMIN_T_TEXT},
    {"items", ADMIN_T_INT4},
};

static void list_row(struct pkt_writer *w, const char *name, long long n)
{
	admin_row_begin(w, 2);
	admin_put_text(w, name);
	admin_put_int(w, n);
	admin_row_end(w);
}

static void show_lists(struct pkt_writer *w)
{
	const struct list *it;
	unsigned pools = 0, servers = 0;
	size_t dns_names, dns_querying;

	dns_cache_counts(&dns_names, &dns_querying);
	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		pools++;
		servers += list_entry(it, const struct pool, node)->n_servers;
	}
	ROWDESC(w, lists_cols);
	list_row(w, "databases", (long long)rt.cfg->n_dbs);
	list_row(w, "users", (long long)rt.cfg->n_users);
	list_row(w, "peers", 0);
	list_row(w, "pools", pools);
	list_row(w, "peer_pools", 0);
	list_row(w, "free_clients", count_list(&rt.free_clients));
	list_row(w, "used_clients", rt.n_clients);
	list_row(w, "login_clients", count_list(&rt.login_clients));
	list_row(w, "free_servers", count_list(&rt.free_servers));
	list_row(w, "used_servers", servers);
	list_row(w, "dns_names", (long long)dns_names);
	list_row(w, "dns_zones", 0); /* no zone checks (dns_zone_check_period) */
	list_row(w, "dns_queries", (long long)dns_querying);
	list_row(w, "dns_pending", 0);
}

static const struct admin_col mem_cols[] = {
    {"name", ADMIN_T_TEXT}, {"size", ADMIN_T_INT4},     {"used", ADMIN_T_INT4},
    {"free", ADMIN_T_INT4}, {"memtotal", ADMIN_T_INT4},
};

static void mem_row(struct pkt_writer *w, const char *name, size_t size, unsigned used,
                    unsigned free_n)
{
	admin_row_begin(w, N_ELEMS(mem_cols));
	admin_put_text(w, name);
	admin_put_int(w, (long long)size);
	admin_put_int(w, used);
	admin_put_int(w, free_n);
	admin_put_int(w, (long long)(size * (used + free_n)));
	admin_row_end(w);
}

static void show_mem(struct pkt_writer *w)
{
	const struct list *it;
	unsigned pools = 0, servers = 0;

	for (it = rt.pools.next; it != &rt.pools; it = it->next) {
		pools++;
		servers += list_entry(it, const struct pool, node)->n_servers;
	}
	ROWDESC(w, mem_cols);
	mem_row(w, "pool_cache", sizeof(struct pool), pools, 0);
	mem_row(w, "server_cache", sizeof(struct server), servers, count_list(&rt.free_servers));
	mem_row(w, "client_cache", sizeof(struct client), rt.n_clients,
	        count_list(&rt.free_clients));
}

static const struct admin_col kv_cols[] = {
    {"key", ADMIN_T_TEXT},
    {"value", ADMIN_T_TEXT},
};

static void show_state(struct pkt_writer *w)
{
	bool paused, suspended;
	const char *rows[3][2];
	size_t i;

	admin_state(&paused, &suspended);
	rows[0][0] = "active";
	rows[0][1] = !paused && !suspended ? "yes" : "no";
	rows[1][0] = "paused";
	rows[1][1] = paused ? "yes" : "no";
	rows[2][0] = "suspended";
	rows[2][1] = suspended ? "yes" : "no";
	ROWDESC(w, kv_cols);
	for (i = 0; i < 3; i++) {
		admin_row_begin(w, 2);
		admin_put_text(w, rows[i][0]);
		admin_put_text(w, rows[i][1]);
		admin_row_end(w);
	}
}

static const struct admin_col version_cols[] = {{"version", ADMIN_T_TEXT}};

static void show_version(struct pkt_writer *w)
{
	ROWDESC(w, version_cols);
	admin_row_begin(w, 1);
	admin_put_text(w, "pglease " PACKAGE_VERSION " (PgBouncer 1.25.0 compatible)");
	admin_row_end(w);
}

static const struct admin_col dns_hosts_cols[] = {
    {"hostname", ADMIN_T_TEXT},
    {"ttl", ADMIN_T_INT8},
    {"addrs", ADMIN_T_TEXT},
};
static const struct admin_col dns_zones_cols[] = {
    {"zonename", ADMIN_T_TEXT},
    {"serial", ADMIN_T_INT8},
    {"count", ADMIN_T_INT4},
};

static void dns_host_row(void *arg, const char *host, double ttl,
                         const struct sockaddr_storage *addrs, size_t n)
{
	struct pkt_writer *w = arg;
	char list[512] = "", one[80];
	size_t i, used = 0;

	for (i = 0; i < n; i++) {
		char *colon;

		net_addr_text(&addrs[i], one, sizeof(one));
		/* addresses only: drop ":port" (and the brackets of IPv6) */
		colon = strrchr(one, ':');
		if (colon != NULL)
			*colon = '\0';
		if (one[0] == '[') {
			memmove(one, one + 1, strlen(one));
			one[strlen(one) - 1] = '\0';
		}
		used +=
		    (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "", one);
		if (used >= sizeof(list))
			break;
	}
	admin_row_begin(w, 3);
	admin_put_text(w, host);
	admin_put_int(w, (long long)ttl);
	admin_put_text(w, list);
	admin_row_end(w);
}

static void show_dns_hosts(struct pkt_writer *w)
{
	ROWDESC(w, dns_hosts_cols);
	dns_cache_walk(dns_host_row, w);
}

static void show_dns_zones(struct pkt_writer *w)
{
	/* pglease does not track DNS zones (no dns_zone_check_period). */
	ROWDESC(w, dns_zones_cols);
}

static void show_help(struct pkt_writer *w)
{
	pkt_begin(w, PqMsg_NoticeResponse);
	pkt_put_u8(w, 'S');
	pkt_put_str(w, "NOTICE");
	pkt_put_u8(w, 'C');
	pkt_put_str(w, "00000");
	pkt_put_u8(w, 'M');
	pkt_put_str(w, "Console usage");
	pkt_put_u8(w, 'D');
	pkt_put_str(w, "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
	               "\tSHOW PEERS|SOCKETS|LISTS|MEM|STATE\n"
	               "\tSHOW DNS_HOSTS|DNS_ZONES\n"
	               "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
	               "\tSET key = arg\n"
	               "\tRELOAD\n"
	               "\tPAUSE [<db>]\n"
	               "\tRESUME [<db>]\n"
	               "\tDISABLE <db>\n"
	               "\tENABLE <db>\n"
	               "\tRECONNECT [<db>]\n"
	               "\tKILL [<db>]\n"
	               "\tKILL_CLIENT <client_id>\n"
	               "\tSUSPEND\n"
	               "\tSHUTDOWN\n"
	               "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
	               "\tWAIT_CLOSE [<db>]");
	pkt_put_u8(w, 0);
	pkt_end(w);
}

/* ---- dispatch -------------------------------------------------------------- */

static void stats_all(struct pkt_writer *w)
{
	show_stats(w, STATS_ALL);
}

static void stats_totals(struct pkt_writer *w)
{
	show_stats(w, STATS_TOTALS);
}

static void stats_averages_cmd(struct pkt_writer *w)
{
	show_stats(w, STATS_AVERAGES);
}

static const struct {
	const char *name;
	void (*fn)(struct pkt_writer *w);
} show_cmds[] = {
    {"clients", show_clients},
    {"config", show_config},
    {"databases", show_databases},
    {"dns_hosts", show_dns_hosts},
    {"dns_zones", show_dns_zones},
    {"help", show_help},
    {"lists", show_lists},
    {"mem", show_mem},
    {"peers", show_peers},
    {"pools", show_pools},
    {"servers", show_servers},
    {"sockets", show_sockets},
    {"state", show_state},
    {"stats", stats_all},
    {"stats_averages", stats_averages_cmd},
    {"stats_totals", stats_totals},
    {"totals", show_totals},
    {"users", show_users},
    {"version", show_version},
};

bool admin_show(struct pkt_writer *w, const char *what)
{
	size_t i;

	for (i = 0; i < N_ELEMS(show_cmds); i++) {
		if (strcasecmp(what, show_cmds[i].name) == 0) {
			show_cmds[i].fn(w);
			admin_complete(w, "SHOW");
			return true;
		}
	}
	return false;
}
