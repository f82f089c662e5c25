/* server: connections from pglease to PostgreSQL; see include/server.h. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "net.h"
#include "pool.h"
#include "runtime.h"
#include "scram.h"

static const char *const state_names[] = {"connecting", "login", "idle",
					  "active",     "reset", "closed"};

const char *server_state_name(enum server_state state)
{
	return state_names[state];
}

void server_set_state(struct server *server, enum server_state state)
{
	struct pool *pool = server->pool;

	log_noise("S-%llu %s/%s: %s -> %s", (unsigned long long)server->id, pool->db_name,
		  pool->user, state_names[server->state], state_names[state]);
	list_del(&server->node);
	server->state = state;
	switch (state) {
	case SV_IDLE:
		list_prepend(&pool->idle_servers, &server->node);
		break;
	case SV_ACTIVE:
		list_append(&pool->active_servers, &server->node);
		break;
	case SV_CLOSED:
		list_append(&rt.free_servers, &server->node);
		break;
	default:
		list_append(&pool->other_servers, &server->node);
		break;
	}
}

static void login_failed(struct server *server, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void login_failed(struct server *server, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	struct pool *pool = server->pool;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("S-%llu %s/%s: server login failed: %s", (unsigned long long)server->id,
		 pool->db_name, pool->user, msg);
	pool->login_fail_time = rt_now_usec();
	pool_login_failed(pool, sqlstate, msg);
	server_close(server, NULL);
}

static bool send_msg(struct server *server, struct pkt_writer *w)
{
	bool ok = pkt_ok(w) && sbuf_write(&server->sb, w->buf, w->len);

	pkt_writer_free(w);
	return ok;
}

static void send_startup(struct server *server)
{
	struct pool *pool = server->pool;
	const struct cfg_db *db = cfg_find_db(rt.cfg, pool->db_name);
	struct pkt_writer w;

	pkt_writer_init(&w);
	pkt_begin(&w, 0);
	pkt_put_u32(&w, PG_PROTOCOL_3_0);
	pkt_put_str(&w, "user");
	pkt_put_str(&w, pool->user);
	pkt_put_str(&w, "database");
	pkt_put_str(&w, pool->target_db);
	if (db != NULL) {
		const char *names[] = {"client_encoding", "DateStyle", "TimeZone",
				       "application_name"};
		const char *values[] = {db->client_encoding, db->datestyle, db->timezone,
					db->application_name};
		size_t i;

		for (i = 0; i < 4; i++) {
			if (values[i] == NULL)
				continue;
			pkt_put_str(&w, names[i]);
			pkt_put_str(&w, values[i]);
		}
	}
	pkt_put_u8(&w, 0);
	pkt_end(&w);
	if (!send_msg(server, &w))
		login_failed(server, "08006", "could not send startup packet");
}

static enum sbuf_action server_on_pkt(struct sbuf *sb, const struct pkt_hdr *hdr,
				      const uint8_t *data, size_t avail);
static void server_on_event(struct sbuf *sb, enum sbuf_event ev, long err);

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct server *server = arg;
	int err;

	server->connect_armed = false;
	if (what & EV_TIMEOUT) {
		close(fd);
		login_failed(server, "08006", "connect to server timed out");
		return;
	}
	err = net_connect_result(fd);
	if (err != 0) {
		close(fd);
		login_failed(server, "08006", "could not connect to server: %s", strerror(err));
		return;
	}
	if (!sbuf_init(&server->sb, rt.base, fd, server_on_pkt, server_on_event, server)) {
		close(fd);
		login_failed(server, "08006", "could not watch server socket");
		return;
	}
	server->sb.max_len = PROTO_MAX_MSG_LEN;
	server_set_state(server, SV_LOGIN);
	send_startup(server);
}

static void start_connect(evutil_socket_t unused, short what, void *arg)
{
	struct server *server = arg;
	struct timeval tv;
	double t = rt.cfg->server_connect_timeout;
	bool done;
	int fd;

	(void)unused;
	(void)what;
	server->connect_armed = false;
	fd = net_connect((struct sockaddr *)&server->addr, server->addr_len, &done);
	if (fd == -1) {
		login_failed(server, "08006", "could not connect to server: %s", strerror(errno));
		return;
	}
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	event_assign(&server->ev_connect, rt.base, fd, EV_WRITE, on_connected, server);
	event_add(&server->ev_connect, t > 0 ? &tv : NULL);
	server->connect_armed = true;
}

static void schedule_connect(struct server *server)
{
	event_assign(&server->ev_connect, rt.base, -1, 0, start_connect, server);
	event_active(&server->ev_connect, EV_TIMEOUT, 0);
	server->connect_armed = true;
}

static void on_dns(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *errmsg)
{
	struct server *server = arg;

	server->dns = NULL;
	if (n == 0) {
		login_failed(server, "08006", "could not resolve host \"%s\": %s",
			     server->pool->host, errmsg ? errmsg : "no address");
		return;
	}
	memcpy(&server->addr, &addrs[0], sizeof(server->addr));
	if (addrs[0].ss_family == AF_INET) {
		((struct sockaddr_in *)&server->addr)->sin_port = htons((uint16_t)server->pool->port);
		server->addr_len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&server->addr)->sin6_port =
			htons((uint16_t)server->pool->port);
		server->addr_len = sizeof(struct sockaddr_in6);
	}
	schedule_connect(server);
}

struct server *server_launch(struct pool *pool)
{
	struct server *server = calloc(1, sizeof(*server));
	const char *host = pool->host;

	if (server == NULL)
		return NULL;
	server->sb.fd = -1;
	server->sb.closed = true; /* until connected */
	server->pool = pool;
	server->id = ++rt.next_id;
	server->connect_time = rt_now_usec();
	server->state = SV_CONNECTING;
	list_init(&server->node);
	list_append(&pool->other_servers, &server->node);
	pool->n_servers++;
	log_debug("S-%llu %s/%s: new server connection", (unsigned long long)server->id,
		  pool->db_name, pool->user);
	if (host == NULL || host[0] == '/' || host[0] == '\0') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&server->addr;

		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d",
			 host && host[0] ? host : "/var/run/postgresql", pool->port);
		server->addr_len = sizeof(*sun);
		schedule_connect(server);
		return server;
	}
	server->dns = dns_resolve(host, on_dns, server);
	if (server->dns == NULL) {
		login_failed(server, "08006", "could not start resolving \"%s\"", host);
		return NULL;
	}
	return server;
}

/* ---- login ---- */

static const char *login_password(struct server *server, enum auth_secret_kind *kind)
{
	struct pool *pool = server->pool;
	const struct auth_entry *e;

	if (pool->password != NULL) {
		*kind = auth_secret_kind(pool->password);
		return pool->password;
	}
	e = auth_file_find(rt.auth, pool->user);
	if (e == NULL)
		return NULL;
	*kind = e->kind;
	return e->secret;
}

static void send_password_msg(struct server *server, const void *data, size_t len)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_PasswordMessage);
	pkt_put_bytes(&w, data, len);
	pkt_end(&w);
	send_msg(server, &w);
}

static void auth_sasl_start(struct server *server, struct pkt_reader *r)
{
	enum auth_secret_kind kind = SECRET_PLAIN;
	const char *pw = login_password(server, &kind);
	struct pool *pool = server->pool;
	bool have_mech = false;
	char out[512];
	size_t outlen;
	struct pkt_writer w;

	for (;;) {
		const char *mech = pkt_get_str(r);

		if (r->bad || mech[0] == '\0')
			break;
		if (strcmp(mech, "SCRAM-SHA-256") == 0)
			have_mech = true;
	}
	if (!have_mech) {
		login_failed(server, "08P01", "server offers no SASL mechanism pglease supports");
		return;
	}
	if (pw != NULL && kind == SECRET_PLAIN)
		server->scram = scram_client_new_password(pw);
	else if (pool->have_scram_key)
		server->scram = scram_client_new_keys(pool->scram_client_key, &pool->scram_secret);
	else {
		login_failed(server, "28P01",
			     "no password for user \"%s\" usable for SCRAM login to the server "
			     "(a plain password, or a SCRAM secret after the client logged in "
			     "with SCRAM)",
			     pool->user);
		return;
	}
	if (server->scram == NULL || !scram_client_first(server->scram, out, sizeof(out), &outlen)) {
		login_failed(server, "08006", "could not start SCRAM exchange");
		return;
	}
	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_SASLInitialResponse);
	pkt_put_str(&w, "SCRAM-SHA-256");
	pkt_put_u32(&w, (uint32_t)outlen);
	pkt_put_bytes(&w, out, outlen);
	pkt_end(&w);
	send_msg(server, &w);
}

static void handle_auth(struct server *server, const uint8_t *body, size_t len)
{
	struct pkt_reader r;
	uint32_t code;
	enum auth_secret_kind kind = SECRET_PLAIN;
	const char *pw;
	char out[512], err[256];
	size_t outlen;

	pkt_reader_init(&r, body, len);
	code = pkt_get_u32(&r);
	switch (code) {
	case AUTH_REQ_OK:
		if (server->scram != NULL) {
			scram_client_free(server->scram);
			server->scram = NULL;
		}
		return;
	case AUTH_REQ_PASSWORD:
		pw = login_password(server, &kind);
		if (pw == NULL || kind != SECRET_PLAIN) {
			login_failed(server, "28P01",
				     "server asks for a cleartext password and pglease has none "
				     "for user \"%s\"",
				     server->pool->user);
			return;
		}
		send_password_msg(server, pw, strlen(pw) + 1);
		return;
	case AUTH_REQ_MD5: {
		const uint8_t *salt = pkt_get_bytes(&r, 4);
		char secret[36], resp[36];

		pw = login_password(server, &kind);
		if (salt == NULL || pw == NULL || kind == SECRET_SCRAM) {
			login_failed(server, "28P01",
				     "server asks for md5 and pglease has no plain or md5 password "
				     "for user \"%s\"",
				     server->pool->user);
			return;
		}
		if (kind == SECRET_PLAIN)
			auth_md5_secret(server->pool->user, pw, secret);
		else
			snprintf(secret, sizeof(secret), "%s", pw);
		auth_md5_response(secret, salt, resp);
		send_password_msg(server, resp, strlen(resp) + 1);
		return;
	}
	case AUTH_REQ_SASL:
		auth_sasl_start(server, &r);
		return;
	case AUTH_REQ_SASL_CONT:
		if (server->scram == NULL ||
		    !scram_client_final(server->scram, (const char *)body + 4, len - 4, out,
					sizeof(out), &outlen, err, sizeof(err))) {
			login_failed(server, "28P01", "SCRAM exchange with the server failed: %s",
				     server->scram ? err : "unexpected message");
			return;
		}
		send_password_msg(server, out, outlen);
		return;
	case AUTH_REQ_SASL_FIN:
		if (server->scram == NULL ||
		    !scram_client_verify(server->scram, (const char *)body + 4, len - 4, err,
					 sizeof(err))) {
			login_failed(server, "28P01", "server's SCRAM signature is wrong: %s",
				     server->scram ? err : "unexpected message");
		}
		return;
	default:
		login_failed(server, "08P01", "server asks for an unsupported authentication (%u)",
			     code);
		return;
	}
}

static void note_param(struct server *server, const uint8_t *body, size_t len, bool login)
{
	struct pkt_reader r;
	const char *name, *value;
	int id;

	pkt_reader_init(&r, body, len);
	name = pkt_get_str(&r);
	value = pkt_get_str(&r);
	if (r.bad)
		return;
	id = varcache_lookup(name);
	if (id >= 0 && !varcache_set(&server->vars, id, value))
		log_error("out of memory tracking %s", name);
	if (login) {
		struct pool_param *np;
		size_t n = server->n_login_params;

		np = realloc(server->login_params, (n + 1) * sizeof(*np));
		if (np == NULL)
			return;
		server->login_params = np;
		np[n].name = strdup(name);
		np[n].value = strdup(value);
		server->n_login_params = n + 1;
		if (np[n].name == NULL || np[n].value == NULL)
			server->login_oom = true;
	}
}

static void free_login_params(struct server *server)
{
	size_t i;

	for (i = 0; i < server->n_login_params; i++) {
		free(server->login_params[i].name);
		free(server->login_params[i].value);
	}
	free(server->login_params);
	server->login_params = NULL;
	server->n_login_params = 0;
}

static bool login_pkt(struct server *server, const struct pkt_hdr *hdr, const uint8_t *data)
{
	const uint8_t *body = data + 5;
	size_t len = hdr->len - 5;
	char sqlstate[6], msg[256];

	switch (hdr->type) {
	case PqMsg_AuthenticationRequest:
		handle_auth(server, body, len);
		break;
	case PqMsg_ParameterStatus:
		note_param(server, body, len, true);
		break;
	case PqMsg_BackendKeyData:
		if (len == 8)
			memcpy(server->cancel_key, body, 8);
		break;
	case PqMsg_ErrorResponse:
		proto_parse_error(body, len, sqlstate, sizeof(sqlstate), msg, sizeof(msg));
		login_failed(server, sqlstate[0] ? sqlstate : "08006", "%s", msg);
		break;
	case PqMsg_NoticeResponse:
	case PqMsg_NegotiateProtocolVersion:
		break;
	case PqMsg_ReadyForQuery: {
		struct pool *pool = server->pool;
		bool ok = !server->login_oom;

		server->last_status = len >= 1 ? body[0] : 'I';
		if (ok && !pool->have_welcome)
			ok = pool_set_welcome(pool, server->login_params, server->n_login_params);
		free_login_params(server);
		if (!ok) {
			login_failed(server, "53200", "out of memory");
			break;
		}
		log_debug("S-%llu %s/%s: logged in", (unsigned long long)server->id,
			  pool->db_name, pool->user);
		pool_server_ready(server);
		break;
	}
	default:
		login_failed(server, "08P01", "unexpected message '%c' from server during login",
			     hdr->type);
		break;
	}
	return server->state != SV_CLOSED;
}

/* ---- after login ---- */

/* A reply to pglease's own query (SET on lease, reset): swallowed. */
static enum sbuf_action hidden_pkt(struct server *server, const struct pkt_hdr *hdr,
				   const uint8_t *data, size_t avail)
{
	char sqlstate[6], msg[256];

	switch (hdr->type) {
	case PqMsg_ReadyForQuery:
	case PqMsg_ParameterStatus:
	case PqMsg_ErrorResponse:
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		break;
	default:
		return SBUF_SKIP;
	}
	if (hdr->type == PqMsg_ParameterStatus) {
		note_param(server, data + 5, hdr->len - 5, false);
		return SBUF_CONSUMED;
	}
	if (hdr->type == PqMsg_ErrorResponse) {
		proto_parse_error(data + 5, hdr->len - 5, sqlstate, sizeof(sqlstate), msg,
				  sizeof(msg));
		log_warn("S-%llu %s/%s: pglease's own query failed: %s %s",
			 (unsigned long long)server->id, server->pool->db_name, server->pool->user,
			 sqlstate, msg);
		return SBUF_CONSUMED;
	}
	server->last_status = hdr->len >= 6 ? data[5] : 'I';
	server->hidden--;
	if (server->hidden == 0 && server->state == SV_RESET) {
		if (server->last_status != 'I') {
			server_close(server, "reset query left a transaction open");
			return SBUF_STOP;
		}
		pool_server_ready(server);
	}
	return SBUF_CONSUMED;
}

/* Statistics and request accounting at each ReadyForQuery forwarded to a client. */
static void note_ready(struct server *server, uint32_t len)
{
	struct pool_stats *st = &server->pool->stats;
	uint64_t now = rt_now_usec();

	st->total.bytes_sent += len;
	if (server->outstanding > 0 && --server->outstanding == 0)
		stats_query_done(st, now - server->query_start);
	if (server->last_status == 'I' && server->xact_start != 0) {
		stats_xact_done(st, now - server->xact_start);
		server->xact_start = 0;
	}
}

static enum sbuf_action active_pkt(struct server *server, const struct pkt_hdr *hdr,
				   const uint8_t *data, size_t avail)
{
	struct client *client = server->client;

	switch (hdr->type) {
	case PqMsg_ReadyForQuery:
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		server->last_status = hdr->len >= 6 ? data[5] : 'I';
		note_ready(server, hdr->len);
		sbuf_forward_current(&server->sb, hdr->len);
		if (server->pool->mode != POOL_SESSION && server_is_clean(server))
			pool_release(server, false);
		return SBUF_CONSUMED;
	case PqMsg_ParameterStatus: {
		struct pkt_reader r;
		const char *name, *value;
		int id;

		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		note_param(server, data + 5, hdr->len - 5, false);
		pkt_reader_init(&r, data + 5, hdr->len - 5);
		name = pkt_get_str(&r);
		value = pkt_get_str(&r);
		id = varcache_lookup(name);
		if (!r.bad && id >= 0 && !varcache_set(&client->vars, id, value))
			log_error("out of memory tracking %s", name);
		server->pool->stats.total.bytes_sent += hdr->len;
		return SBUF_FORWARD;
	}
	default:
		server->pool->stats.total.bytes_sent += hdr->len;
		return SBUF_FORWARD;
	}
}

static enum sbuf_action server_on_pkt(struct sbuf *sb, const struct pkt_hdr *hdr,
				      const uint8_t *data, size_t avail)
{
	struct server *server = sb->owner;

	if (server->state == SV_LOGIN) {
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		return login_pkt(server, hdr, data) ? SBUF_CONSUMED : SBUF_STOP;
	}
	if (server->hidden > 0)
		return hidden_pkt(server, hdr, data, avail);
	if (server->state == SV_ACTIVE && server->client != NULL)
		return active_pkt(server, hdr, data, avail);
	/* Idle: the server speaks unasked. */
	if (hdr->type == PqMsg_ParameterStatus || hdr->type == PqMsg_NoticeResponse) {
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		if (hdr->type == PqMsg_ParameterStatus)
			note_param(server, data + 5, hdr->len - 5, false);
		return SBUF_CONSUMED;
	}
	server_close(server, hdr->type == PqMsg_ErrorResponse ? "server sent an error while idle"
							       : "unexpected data from idle server");
	return SBUF_STOP;
}

static void server_on_event(struct sbuf *sb, enum sbuf_event ev, long err)
{
	struct server *server = sb->owner;
	char why[128];

	switch (ev) {
	case SBUF_EV_EOF:
		snprintf(why, sizeof(why), "server closed the connection");
		break;
	case SBUF_EV_ERROR:
		snprintf(why, sizeof(why), "socket error: %s", strerror((int)err));
		break;
	default:
		snprintf(why, sizeof(why), "invalid message from server");
		break;
	}
	if (server->state == SV_LOGIN)
		login_failed(server, "08006", "%s", why);
	else
		server_close(server, why);
}

void server_link(struct server *server, struct client *client)
{
	struct pkt_writer w;

	server->client = client;
	client->server = server;
	server->pool->stats.total.server_assignment_count++;
	server_set_state(server, SV_ACTIVE);
	sbuf_set_dst(&client->sb, &server->sb);
	sbuf_set_dst(&server->sb, &client->sb);
	pkt_writer_init(&w);
	if (varcache_apply_query(&client->vars, &server->vars, &w)) {
		if (send_msg(server, &w))
			server->hidden++;
		return;
	}
	pkt_writer_free(&w);
}

void server_unlink(struct server *server)
{
	struct client *client = server->client;

	if (client != NULL) {
		sbuf_set_dst(&client->sb, NULL);
		client->server = NULL;
	}
	sbuf_set_dst(&server->sb, NULL);
	server->client = NULL;
}

void server_reset(struct server *server)
{
	struct pkt_writer w;

	server_set_state(server, SV_RESET);
	pkt_writer_init(&w);
	proto_query(&w, rt.cfg->server_reset_query);
	if (!send_msg(server, &w)) {
		server_close(server, "could not send reset query");
		return;
	}
	server->hidden++;
}

bool server_is_clean(const struct server *server)
{
	return server->outstanding == 0 && !server->unsynced && server->last_status == 'I' &&
	       server->hidden == 0 && sbuf_pending_in(&server->sb) == 0 && !server->sb.failed;
}

void server_close(struct server *server, const char *reason)
{
	struct client *client = server->client;
	struct pool *pool = server->pool;

	if (server->state == SV_CLOSED)
		return;
	if (reason != NULL)
		log_info("S-%llu %s/%s: closing server connection: %s",
			 (unsigned long long)server->id, pool->db_name, pool->user, reason);
	if (client != NULL) {
		server_unlink(server);
		client_fail(client, "08006", "server connection lost: %s",
			    reason ? reason : "closed");
	}
	if (server->dns != NULL) {
		dns_cancel(server->dns);
		server->dns = NULL;
	}
	if (server->connect_armed) {
		int fd = event_get_fd(&server->ev_connect);

		event_del(&server->ev_connect);
		if (fd >= 0)
			close(fd);
		server->connect_armed = false;
	}
	sbuf_close(&server->sb);
	if (server->scram != NULL) {
		scram_client_free(server->scram);
		server->scram = NULL;
	}
	free_login_params(server);
	varcache_clear(&server->vars);
	server_set_state(server, SV_CLOSED);
	pool_server_gone(server);
	rt_schedule_reap();
}

void server_reap(void)
{
	struct list *n;

	while ((n = list_pop(&rt.free_servers)) != NULL)
		free(list_entry(n, struct server, node));
}
