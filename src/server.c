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
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "net.h"
#include "pool.h"
#include "runtime.h"
#include "scram.h"

static const char *const state_names[] = {"connecting", "login", "idle",  "active",
                                          "reset",      "check", "closed"};

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
		/* LIFO keeps the warmest leased and lets the coldest age out;
		 * server_round_robin spreads the load instead. */
		if (rt.cfg->server_round_robin)
			list_append(&pool->idle_servers, &server->node);
		else
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

void server_fail_login(struct server *server, const char *sqlstate, const char *msg)
{
	login_failed(server, sqlstate, "%s", msg);
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
	if (pool->replication != NULL) {
		pkt_put_str(&w, "replication");
		pkt_put_str(&w, pool->replication);
	}
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
static const struct sbuf_ops server_ops = {server_on_pkt, server_on_event};

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
	if (!sbuf_init(&server->sb, rt.base, fd, &server_ops, server)) {
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
		((struct sockaddr_in *)&server->addr)->sin_port =
		    htons((uint16_t)server->pool->port);
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
	pool_slot_take(pool);
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
	if (server->scram == NULL ||
	    !scram_client_first(server->scram, out, sizeof(out), &outlen)) {
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
		log_debug("S-%llu %s/%s: logged in", (unsigned long long)server->id, pool->db_name,
		          pool->user);
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

/* ---- requests in flight ---- */

bool server_push_req(struct server *s, uint8_t type, uint8_t flags, struct pstmt *ps)
{
	struct req *r;

	if (s->req_count == s->req_cap) {
		uint32_t cap = s->req_cap ? s->req_cap * 2 : 16, i;
		struct req *nr = malloc(cap * sizeof(*nr));

		if (nr == NULL)
			return false;
		for (i = 0; i < s->req_count; i++)
			nr[i] = s->reqs[(s->req_head + i) % s->req_cap];
		free(s->reqs);
		s->reqs = nr;
		s->req_cap = cap;
		s->req_head = 0;
	}
	r = &s->reqs[(s->req_head + s->req_count) % s->req_cap];
	r->type = type;
	r->flags = flags;
	r->ps = ps;
	r->name = NULL;
	if (ps != NULL)
		ps->refs++;
	s->req_count++;
	return true;
}

bool server_note_request(struct server *s, uint8_t type, uint32_t len, uint8_t flags,
                         struct pstmt *ps)
{
	struct pool_stats *st = &s->pool->stats;

	st->total.bytes_recv += len;
	switch (type) {
	case PqMsg_Parse:
		st->total.parse_count++;
		s->unsynced = true;
		break;
	case PqMsg_Bind:
		st->total.bind_count++;
		s->unsynced = true;
		break;
	case PqMsg_Describe:
	case PqMsg_Execute:
	case PqMsg_Close:
	case PqMsg_Flush:
		s->unsynced = true;
		break;
	case PqMsg_Sync:
		s->unsynced = false;
		break;
	case PqMsg_Query:
	case PqMsg_FunctionCall:
		break;
	default:
		return true; /* COPY data, Terminate: no reply of their own */
	}
	if (type == PqMsg_Flush || (flags & REQ_SYNTH))
		return true;
	if (s->query_start == 0) {
		s->query_start = rt_now_usec();
		if (s->xact_start == 0 && s->last_status == 'I')
			s->xact_start = s->query_start;
	}
	return server_push_req(s, type, flags, ps);
}

static struct req *req_head(struct server *s)
{
	return s->req_count > 0 ? &s->reqs[s->req_head] : NULL;
}

static void req_pop(struct server *s)
{
	struct req *r = &s->reqs[s->req_head];

	pstmt_put(r->ps);
	r->ps = NULL;
	free(r->name);
	r->name = NULL;
	s->req_head = (s->req_head + 1) % s->req_cap;
	s->req_count--;
}

static void req_clear(struct server *s)
{
	while (s->req_count > 0)
		req_pop(s);
	free(s->reqs);
	s->reqs = NULL;
	s->req_cap = s->req_head = 0;
}

/* Send the reply pglease answers itself for TYPE (Parse or Close). */
static void write_synth(struct server *s, uint8_t type, const char *name)
{
	static const uint8_t parse_complete[5] = {PqMsg_ParseComplete, 0, 0, 0, 4};
	static const uint8_t close_complete[5] = {PqMsg_CloseComplete, 0, 0, 0, 4};
	struct pkt_writer w;
	char msg[256];

	if (s->client == NULL)
		return;
	if (type != PqMsg_ErrorResponse) {
		sbuf_write(&s->client->sb, type == PqMsg_Parse ? parse_complete : close_complete,
		           5);
		return;
	}
	snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", name);
	pkt_writer_init(&w);
	proto_error(&w, "ERROR", "42P05", msg);
	if (pkt_ok(&w))
		sbuf_write(&s->client->sb, w.buf, w.len);
	pkt_writer_free(&w);
}

bool server_synth_duplicate(struct server *s, const char *name)
{
	if (s->req_count == 0) {
		write_synth(s, PqMsg_ErrorResponse, name);
		return true;
	}
	return server_push_req(s, PqMsg_ErrorResponse, REQ_SYNTH, NULL) &&
	       server_name_last_req(s, name);
}

bool server_name_last_req(struct server *s, const char *name)
{
	struct req *r = &s->reqs[(s->req_head + s->req_count - 1) % s->req_cap];

	free(r->name);
	r->name = strdup(name);
	return r->name != NULL;
}

bool server_synth_reply(struct server *s, uint8_t type)
{
	if (s->req_count == 0) {
		write_synth(s, type, NULL);
		return true;
	}
	return server_push_req(s, type, REQ_SYNTH, NULL);
}

/* Answer the synthetic requests that reached the head of the queue. */
static void drain_synth(struct server *s)
{
	struct req *r;

	while ((r = req_head(s)) != NULL && (r->flags & REQ_SYNTH)) {
		write_synth(s, r->type, r->name);
		req_pop(s);
	}
}

/* Does reply TYPE finish request REQ (ErrorResponse aside)? */
static bool completes(uint8_t req, uint8_t type)
{
	switch (req) {
	case PqMsg_Parse:
		return type == PqMsg_ParseComplete;
	case PqMsg_Bind:
		return type == PqMsg_BindComplete;
	case PqMsg_Close:
		return type == PqMsg_CloseComplete;
	case PqMsg_Describe:
		return type == PqMsg_RowDescription || type == PqMsg_NoData;
	case PqMsg_Execute:
		return type == PqMsg_CommandComplete || type == PqMsg_PortalSuspended ||
		       type == PqMsg_EmptyQueryResponse;
	default: /* Query, Sync, FunctionCall */
		return type == PqMsg_ReadyForQuery;
	}
}

/* An error inside an extended-protocol batch: the server skips everything
 * up to the next Sync, so those requests will get no reply. */
static void error_skips_batch(struct server *s)
{
	struct req *r;

	while ((r = req_head(s)) != NULL && r->type != PqMsg_Sync) {
		if (r->type == PqMsg_Parse && r->ps != NULL && !(r->flags & REQ_SYNTH))
			pcache_remove(&s->pcache, r->ps);
		req_pop(s);
	}
}

static void log_hidden_error(struct server *s, const uint8_t *data, uint32_t len)
{
	char sqlstate[6], msg[256];

	proto_parse_error(data + 5, len - 5, sqlstate, sizeof(sqlstate), msg, sizeof(msg));
	log_warn("S-%llu %s/%s: pglease's own query failed: %s %s", (unsigned long long)s->id,
	         s->pool->db_name, s->pool->user, sqlstate, msg);
}

/* Statistics at each ReadyForQuery answering a client's request. */
static void note_ready(struct server *s)
{
	struct pool_stats *st = &s->pool->stats;
	uint64_t now = rt_now_usec();

	if (s->query_start != 0) {
		stats_query_done(st, now - s->query_start);
		s->query_start = s->req_count > 1 ? now : 0;
	}
	if (s->last_status == 'I' && s->xact_start != 0) {
		stats_xact_done(st, now - s->xact_start);
		s->xact_start = 0;
	}
}

/* Statement pooling: a statement left a transaction open.  Tell the client,
 * roll the server back (hidden), and let the release happen after that. */
static void refuse_transaction(struct server *s)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	proto_error(&w, "ERROR", "25001",
	            "transaction blocks not allowed in statement pooling mode");
	proto_ready(&w, 'I');
	if (pkt_ok(&w))
		sbuf_write(&s->client->sb, w.buf, w.len);
	pkt_writer_free(&w);
	pkt_writer_init(&w);
	proto_query(&w, "ROLLBACK");
	if (!send_msg(s, &w) || !server_push_req(s, PqMsg_Query, REQ_HIDE, NULL))
		server_close(s, "could not roll back a statement-mode transaction");
}

/* After a request finished: hand the server back when the lease is over.
 * Not while a cancel for it is in flight: it could hit the next client. */
static void after_ready(struct server *s)
{
	if (s->req_count > 0 || s->state == SV_CLOSED || s->cancels > 0)
		return;
	if (s->state == SV_RESET || s->state == SV_CHECK) {
		if (s->hidden_failed || s->last_status != 'I') {
			server_close(s, s->state == SV_CHECK ? "server_check_query failed"
			                                     : "server_reset_query failed");
			return;
		}
		pool_server_ready(s);
		return;
	}
	if (s->state == SV_ACTIVE && s->client != NULL && s->pool->mode != POOL_SESSION &&
	    server_is_clean(s))
		pool_release(s, false);
}

static enum sbuf_action ready_pkt(struct server *s, const struct pkt_hdr *hdr, const uint8_t *data,
                                  bool hide)
{
	s->last_status = hdr->len >= 6 ? data[5] : 'I';
	s->ready_time = rt_now_usec();
	s->cancel_time = 0;
	if (!hide) {
		note_ready(s);
		if (s->pool->mode == POOL_STATEMENT && s->last_status != 'I' && s->client != NULL) {
			req_pop(s);
			refuse_transaction(s);
			return SBUF_CONSUMED;
		}
		if (s->client != NULL)
			sbuf_forward_current(&s->sb, hdr->len);
	}
	req_pop(s);
	drain_synth(s);
	after_ready(s);
	return SBUF_CONSUMED;
}

/* Forward an ErrorResponse with the server-side statement name FROM replaced
 * by the client's name TO in every text field. */
static void forward_renamed_error(struct server *s, const uint8_t *data, uint32_t len,
                                  const char *from, const char *to)
{
	struct pkt_reader r;
	struct pkt_writer w;
	size_t flen = strlen(from);

	pkt_reader_init(&r, data + 5, len - 5);
	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_ErrorResponse);
	for (;;) {
		uint8_t field = pkt_get_u8(&r);
		const char *v, *hit;

		if (r.bad || field == 0)
			break;
		v = pkt_get_str(&r);
		pkt_put_u8(&w, field);
		while ((hit = strstr(v, from)) != NULL) {
			pkt_put_bytes(&w, v, (size_t)(hit - v));
			pkt_put_bytes(&w, to, strlen(to));
			v = hit + flen;
		}
		pkt_put_str(&w, v);
	}
	pkt_put_u8(&w, 0);
	pkt_end(&w);
	if (pkt_ok(&w) && !r.bad)
		sbuf_write(&s->client->sb, w.buf, w.len);
	else
		sbuf_forward_current(&s->sb, len);
	pkt_writer_free(&w);
}

static enum sbuf_action reply_pkt(struct server *s, const struct pkt_hdr *hdr, const uint8_t *data,
                                  size_t avail)
{
	struct req *h = req_head(s);
	bool hide = h != NULL && (h->flags & REQ_HIDE);
	bool to_client = s->client != NULL && !hide;
	uint8_t type = hdr->type;

	if (type == PqMsg_ParameterStatus) {
		struct pkt_reader r;
		const char *name, *value;
		int id;

		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		note_param(s, data + 5, hdr->len - 5, false);
		if (!to_client)
			return SBUF_CONSUMED;
		pkt_reader_init(&r, data + 5, hdr->len - 5);
		name = pkt_get_str(&r);
		value = pkt_get_str(&r);
		id = varcache_lookup(name);
		if (!r.bad && id >= 0 && !varcache_set(&s->client->vars, id, value))
			log_error("out of memory tracking %s", name);
		s->pool->stats.total.bytes_sent += hdr->len;
		return SBUF_FORWARD;
	}
	if (type == PqMsg_NoticeResponse || type == PqMsg_NotificationResponse) {
		if (!to_client && !(h == NULL && s->client != NULL))
			return SBUF_SKIP;
		s->pool->stats.total.bytes_sent += hdr->len;
		return SBUF_FORWARD;
	}
	if (h == NULL) {
		/* Nothing was asked.  A linked client still gets it (a FATAL before
		 * the server goes away); an idle server is out of step: drop it. */
		if (s->client == NULL) {
			server_close(s, type == PqMsg_ErrorResponse
			                    ? "server sent an error while idle"
			                    : "unexpected data from idle server");
			return SBUF_STOP;
		}
		return SBUF_FORWARD;
	}
	if (type == PqMsg_ErrorResponse) {
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		if (hide) {
			log_hidden_error(s, data, hdr->len);
			if (s->state == SV_CHECK || s->state == SV_RESET)
				s->hidden_failed = true;
		} else if (s->client != NULL && h->name != NULL && h->ps != NULL) {
			forward_renamed_error(s, data, hdr->len, h->ps->sname, h->name);
		} else if (s->client != NULL) {
			sbuf_forward_current(&s->sb, hdr->len);
		}
		if (h->type != PqMsg_Query && h->type != PqMsg_FunctionCall) {
			error_skips_batch(s);
			drain_synth(s);
		}
		return SBUF_CONSUMED;
	}
	if (!completes(h->type, type)) {
		if (!to_client)
			return SBUF_SKIP;
		s->pool->stats.total.bytes_sent += hdr->len;
		return SBUF_FORWARD;
	}
	if (avail < hdr->len)
		return SBUF_NEED_FULL;
	s->pool->stats.total.bytes_sent += hdr->len;
	if (type == PqMsg_ReadyForQuery)
		return ready_pkt(s, hdr, data, hide);
	if (to_client)
		sbuf_forward_current(&s->sb, hdr->len);
	req_pop(s);
	drain_synth(s);
	return SBUF_CONSUMED;
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
	return reply_pkt(server, hdr, data, avail);
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

/* Send pglease's own query; its replies are swallowed. */
static bool hidden_query(struct server *s, const char *sql)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	proto_query(&w, sql);
	return send_msg(s, &w) && server_push_req(s, PqMsg_Query, REQ_HIDE, NULL);
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
	/* A walsender takes no SET; its startup parameters are the session's. */
	if (server->pool->replication == NULL &&
	    varcache_apply_query(&client->vars, &server->vars, &w)) {
		if (!send_msg(server, &w) || !server_push_req(server, PqMsg_Query, REQ_HIDE, NULL))
			server_close(server, "could not send SET");
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
	server_set_state(server, SV_RESET);
	server->reset_start = rt_now_usec();
	/* DISCARD ALL (or whatever resets) may drop prepared statements. */
	pcache_clear(&server->pcache);
	if (!hidden_query(server, rt.cfg->server_reset_query))
		server_close(server, "could not send reset query");
}

void server_rollback(struct server *server, bool then_reset)
{
	server_set_state(server, SV_RESET);
	server->reset_start = rt_now_usec();
	if (!hidden_query(server, "ROLLBACK")) {
		server_close(server, "could not send ROLLBACK");
		return;
	}
	if (then_reset) {
		pcache_clear(&server->pcache);
		if (!hidden_query(server, rt.cfg->server_reset_query))
			server_close(server, "could not send reset query");
	}
}

void server_cancel_done(struct server *server)
{
	after_ready(server);
}

void server_check(struct server *server)
{
	server_set_state(server, SV_CHECK);
	server->reset_start = rt_now_usec();
	if (!hidden_query(server, rt.cfg->server_check_query))
		server_close(server, "could not send check query");
}

bool server_is_clean(const struct server *server)
{
	return server->req_count == 0 && !server->unsynced && server->last_status == 'I' &&
	       server->cancels == 0 && !server->sb.failed &&
	       (server->client == NULL || !sbuf_mid_forward(&server->client->sb));
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
		bool partial = sbuf_mid_forward(&server->sb);

		server_unlink(server);
		/* After half a message an ErrorResponse would read as its rest. */
		if (partial)
			client_close(client, "server connection lost in the middle of a message");
		else
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
	if (server->cancels > 0)
		cancel_forget_server(server);
	if (server->scram != NULL) {
		scram_client_free(server->scram);
		server->scram = NULL;
	}
	free_login_params(server);
	varcache_clear(&server->vars);
	req_clear(server);
	pcache_clear(&server->pcache);
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
