/* client: connections from applications to pglease; see include/client.h. */
#include "client.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "intern.h"
#include "cancel.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "pool.h"
#include "runtime.h"
#include "scram.h"
#include "server.h"

#define CANCEL_BUCKETS 4096

enum auth_step { AUTH_NONE, AUTH_WAIT_PASSWORD, AUTH_WAIT_SASL_INIT, AUTH_WAIT_SASL_RESP };

/* Authentication in progress: allocated at the start of the exchange, freed
 * when it ends, so a logged-in client carries none of it. */
struct client_auth {
	char *secret;
	struct scram_server *scram;
	uint8_t md5_salt[4];
	int step;
};

static void auth_free(struct client *c);

static const char *const state_names[] = {"login",   "welcome-wait", "idle",
                                          "waiting", "active",       "closed"};

static struct client *cancel_table[CANCEL_BUCKETS]; /* chains through hash_next */

const char *client_state_name(enum client_state state)
{
	return state_names[state];
}

static unsigned key_bucket(const uint8_t key[8])
{
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 8; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CANCEL_BUCKETS;
}

struct client *client_by_cancel_key(const uint8_t key[8])
{
	struct client *c;

	for (c = cancel_table[key_bucket(key)]; c != NULL; c = c->hash_next)
		if (memcmp(c->cancel_key, key, 8) == 0)
			return c;
	return NULL;
}

/* 8 unpredictable bytes; RAND_bytes is asked for 32 keys at a time (it takes
 * locks on every call, which showed in connection-storm profiles). */
static bool random_key(uint8_t out[8])
{
	static uint8_t pool[256];
	static size_t left;

	if (left < 8) {
		if (RAND_bytes(pool, sizeof(pool)) != 1)
			return false;
		left = sizeof(pool);
	}
	left -= 8;
	memcpy(out, pool + left, 8);
	return true;
}

static bool assign_cancel_key(struct client *c)
{
	struct client **head;

	do {
		if (!random_key(c->cancel_key))
			return false;
		c->cancel_key[0] &= 0x7f; /* a positive "pid", as clients expect */
	} while (client_by_cancel_key(c->cancel_key) != NULL);
	head = &cancel_table[key_bucket(c->cancel_key)];
	c->hash_next = *head;
	*head = c;
	c->hashed = true;
	return true;
}

static void forget_cancel_key(struct client *c)
{
	struct client **p;

	if (!c->hashed)
		return;
	for (p = &cancel_table[key_bucket(c->cancel_key)]; *p != c; p = &(*p)->hash_next)
		;
	*p = c->hash_next;
	c->hashed = false;
}

void client_set_state(struct client *c, enum client_state state)
{
	struct pool *pool = c->pool;

	log_noise("C-%llu: %s -> %s", (unsigned long long)c->id, state_names[c->state],
	          state_names[state]);
	list_del(&c->node);
	if (c->state == CL_WAITING)
		pool->n_waiting--;
	if (state == CL_WAITING)
		pool->n_waiting++;
	c->state = state;
	switch (state) {
	case CL_LOGIN:
		list_append(&rt.login_clients, &c->node);
		break;
	case CL_WELCOME_WAIT:
		list_append(&pool->welcome_clients, &c->node);
		break;
	case CL_WAITING:
		list_append(&pool->waiting_clients, &c->node);
		break;
	case CL_IDLE:
	case CL_ACTIVE:
		c->last_active = rt_now_usec();
		list_append(pool != NULL ? &pool->clients : &rt.admin_clients, &c->node);
		break;
	case CL_CLOSED:
		list_append(&rt.free_clients, &c->node);
		break;
	}
}

static void send_or_close(struct client *c, struct pkt_writer *w)
{
	bool ok = pkt_ok(w) && sbuf_write(&c->sb, w->buf, w->len);

	pkt_writer_free(w);
	if (!ok)
		client_close(c, "could not send to client");
}

void client_fail(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	struct pkt_writer w;
	va_list ap;

	if (c->state == CL_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pkt_writer_init(&w);
	proto_error(&w, "FATAL", sqlstate, msg);
	if (pkt_ok(&w))
		sbuf_write(&c->sb, w.buf, w.len);
	c->sb.linger = true;
	pkt_writer_free(&w);
	log_info("C-%llu %s/%s: closing: %s (%s)", (unsigned long long)c->id,
	         c->dbname ? c->dbname : "-", c->user ? c->user : "-", msg, sqlstate);
	client_close(c, NULL);
}

void client_close(struct client *c, const char *reason)
{
	if (c->state == CL_CLOSED)
		return;
	if (reason != NULL && rt.cfg->log_disconnections)
		log_info("C-%llu %s/%s: closing: %s", (unsigned long long)c->id,
		         c->dbname ? c->dbname : "-", c->user ? c->user : "-", reason);
	if (c->server != NULL)
		pool_release(c->server, true);
	if (c->pool != NULL)
		pool_client_gone(c);
	forget_cancel_key(c);
	if (c->cancel_pending)
		cancel_forget_client(c);
	sbuf_close(&c->sb);
	auth_free(c);
	if (rt.n_clients > 0)
		rt.n_clients--;
	client_set_state(c, CL_CLOSED);
	rt_schedule_reap();
}

void client_reap(void)
{
	struct list *n;

	while ((n = list_pop(&rt.free_clients)) != NULL) {
		struct client *c = list_entry(n, struct client, node);

		intern_free(c->user);
		intern_free(c->dbname);
		free(c->replication);
		varcache_clear(&c->vars);
		pmap_free(c->pmap);
		free(c);
	}
}

void client_close_all(void)
{
	struct list *it, *tmp, *p, *ptmp;

	list_for_each_safe(it, tmp, &rt.login_clients)
	{
		client_close(list_entry(it, struct client, node), "shutdown");
	}
	list_for_each_safe(it, tmp, &rt.admin_clients)
	{
		client_fail(list_entry(it, struct client, node), "57P01",
		            "terminating connection: pglease is shutting down");
	}
	list_for_each_safe(p, ptmp, &rt.pools)
	{
		struct pool *pool = list_entry(p, struct pool, node);
		struct list *lists[] = {&pool->welcome_clients, &pool->waiting_clients,
		                        &pool->clients};
		size_t i;

		for (i = 0; i < 3; i++)
			list_for_each_safe(it, tmp, lists[i])
			{
				client_fail(list_entry(it, struct client, node), "57P01",
				            "terminating connection: pglease is shutting down");
			}
	}
	client_reap();
}

/* ---- welcome ---- */

void client_welcome(struct client *c)
{
	struct pool *pool = c->pool;
	struct pkt_writer w;
	size_t i;

	if (!varcache_fill(&c->vars, &pool->defaults)) {
		client_fail(c, "53200", "out of memory");
		return;
	}
	pkt_writer_init(&w);
	if (c->auth_ok_pending) {
		proto_auth_req(&w, AUTH_REQ_OK, NULL, 0);
		c->auth_ok_pending = false;
	}
	for (i = 0; i < pool->n_params; i++) {
		int id = varcache_lookup(pool->params[i].name);
		const char *value = pool->params[i].value;

		if (id >= 0 && varcache_get(&c->vars, id) != NULL)
			value = varcache_get(&c->vars, id);
		proto_param_status(&w, pool->params[i].name, value);
	}
	proto_backend_key(&w, c->cancel_key);
	proto_ready(&w, 'I');
	pool->stats.total.client_logins++;
	client_set_state(c, CL_IDLE);
	send_or_close(c, &w);
	if (c->state != CL_CLOSED) {
		if (rt.cfg->log_connections)
			log_info("C-%llu %s/%s: login done", (unsigned long long)c->id, c->dbname,
			         c->user);
		/* Welcomed from inside the login message's callback, the client is
		 * still reading; only a client that waited for the pool is paused. */
		if (c->sb.stopped)
			sbuf_resume(&c->sb);
	}
}

/* A unix-socket client running as the same OS user as pglease. */
static bool peer_is_self(struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!c->is_unix || getsockopt(c->sb.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return false;
	return cred.uid == getuid();
}

/* Authentication state lives only during login. */
static void auth_free(struct client *c)
{
	if (c->auth == NULL)
		return;
	free(c->auth->secret);
	if (c->auth->scram != NULL)
		scram_server_free(c->auth->scram);
	free(c->auth);
	c->auth = NULL;
}

static void auth_done(struct client *c)
{
	const struct cfg_db *db;
	struct pkt_writer w;
	uint8_t key[SCRAM_KEY_LEN];
	bool have_key = c->auth != NULL && c->auth->scram != NULL &&
	                scram_server_client_key(c->auth->scram, key);

	auth_free(c);
	if (admin_is_console(c->dbname)) {
		pkt_writer_init(&w);
		proto_auth_req(&w, AUTH_REQ_OK, NULL, 0);
		send_or_close(c, &w);
		if (c->state != CL_CLOSED)
			admin_login(c);
		return;
	}
	db = cfg_find_db(rt.cfg, c->dbname);
	if (db == NULL) {
		client_fail(c, "3D000", "no such database: %s", c->dbname);
		return;
	}
	c->pool = pool_get(c->dbname, db, c->user, c->replication);
	if (c->pool == NULL) {
		client_fail(c, "53200", "out of memory");
		return;
	}
	if (!pool_client_admit(c->pool, c))
		return;
	if (have_key && !c->pool->forced_user) {
		const struct auth_entry *e = auth_file_find(rt.auth, c->user);

		if (e != NULL && e->kind == SECRET_SCRAM &&
		    scram_parse_secret(e->secret, &c->pool->scram_secret)) {
			memcpy(c->pool->scram_client_key, key, sizeof(key));
			c->pool->have_scram_key = true;
		}
	}
	/* AuthenticationOk goes out with the welcome, in one send. */
	c->auth_ok_pending = true;
	if (c->pool->have_welcome) {
		client_welcome(c);
		return;
	}
	client_set_state(c, CL_WELCOME_WAIT);
	pool_want_welcome(c->pool);
}

/* ---- authentication ---- */

static void auth_failed(struct client *c)
{
	client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

static void ask(struct client *c, uint32_t code, const void *data, size_t len)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	proto_auth_req(&w, code, data, len);
	send_or_close(c, &w);
}

static void start_scram(struct client *c)
{
	struct scram_secret secret;
	uint8_t salt[16];
	bool ok = false;

	if (c->auth->secret != NULL && auth_secret_kind(c->auth->secret) == SECRET_SCRAM)
		ok = scram_parse_secret(c->auth->secret, &secret);
	else if (c->auth->secret != NULL && auth_secret_kind(c->auth->secret) == SECRET_PLAIN)
		ok = RAND_bytes(salt, sizeof(salt)) == 1 &&
		     scram_build_secret(c->auth->secret, salt, sizeof(salt),
		                        SCRAM_DEFAULT_ITERATIONS, &secret);
	if (!ok) {
		/* Unknown user or unusable secret: run the exchange with a secret nobody
		 * knows, so the answer does not tell which users exist. */
		uint8_t junk[16];
		char pw[sizeof(junk) * 2 + 1];
		size_t i;

		if (RAND_bytes(junk, sizeof(junk)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1) {
			client_fail(c, "53200", "could not start authentication");
			return;
		}
		for (i = 0; i < sizeof(junk); i++)
			snprintf(pw + 2 * i, 3, "%02x", junk[i]);
		if (!scram_build_secret(pw, salt, sizeof(salt), 4096, &secret)) {
			client_fail(c, "53200", "could not start authentication");
			return;
		}
	}
	c->auth->scram = scram_server_new(&secret);
	if (c->auth->scram == NULL) {
		client_fail(c, "53200", "out of memory");
		return;
	}
	c->auth->step = AUTH_WAIT_SASL_INIT;
	ask(c, AUTH_REQ_SASL, "SCRAM-SHA-256\0", 15);
}

static void start_auth(struct client *c)
{
	const struct auth_entry *e = auth_file_find(rt.auth, c->user);

	c->auth = calloc(1, sizeof(*c->auth));
	if (c->auth == NULL) {
		client_fail(c, "53200", "out of memory");
		return;
	}
	if (e != NULL) {
		c->auth->secret = strdup(e->secret);
		if (c->auth->secret == NULL) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	switch (rt.cfg->auth_type) {
	case AUTH_ANY:
		auth_done(c);
		return;
	case AUTH_TRUST:
		if (e == NULL) {
			client_fail(c, "28000", "no such user: %s", c->user);
			return;
		}
		auth_done(c);
		return;
	case AUTH_PLAIN:
		c->auth->step = AUTH_WAIT_PASSWORD;
		ask(c, AUTH_REQ_PASSWORD, NULL, 0);
		return;
	case AUTH_MD5:
		if (e != NULL && e->kind == SECRET_SCRAM) {
			start_scram(c);
			return;
		}
		if (RAND_bytes(c->auth->md5_salt, 4) != 1) {
			client_fail(c, "53200", "could not start authentication");
			return;
		}
		c->auth->step = AUTH_WAIT_PASSWORD;
		ask(c, AUTH_REQ_MD5, c->auth->md5_salt, 4);
		return;
	case AUTH_SCRAM:
		start_scram(c);
		return;
	}
}

static void auth_password(struct client *c, const uint8_t *body, size_t len)
{
	struct pkt_reader r;
	const char *pw;
	bool ok;

	pkt_reader_init(&r, body, len);
	pw = pkt_get_str(&r);
	if (!pkt_reader_done(&r)) {
		client_fail(c, "08P01", "invalid password packet");
		return;
	}
	if (c->auth->secret == NULL)
		ok = false;
	else if (rt.cfg->auth_type == AUTH_PLAIN)
		ok = auth_plain_verify(c->user, c->auth->secret, pw);
	else
		ok = auth_md5_verify(c->user, c->auth->secret, c->auth->md5_salt, pw);
	if (!ok) {
		auth_failed(c);
		return;
	}
	auth_done(c);
}

static void auth_sasl(struct client *c, const uint8_t *body, size_t len)
{
	struct pkt_reader r;
	const uint8_t *data;
	uint32_t n;
	char out[512], err[256];
	size_t outlen;

	pkt_reader_init(&r, body, len);
	if (c->auth->step == AUTH_WAIT_SASL_INIT) {
		const char *mech = pkt_get_str(&r);

		n = pkt_get_u32(&r);
		data = pkt_get_bytes(&r, n);
		if (!pkt_reader_done(&r)) {
			client_fail(c, "08P01", "invalid SASLInitialResponse packet");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fail(c, "08P01",
			            "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (!scram_server_first(c->auth->scram, (const char *)data, n, out, sizeof(out),
		                        &outlen, err, sizeof(err))) {
			client_fail(c, "08P01", "malformed SCRAM message: %s", err);
			return;
		}
		c->auth->step = AUTH_WAIT_SASL_RESP;
		ask(c, AUTH_REQ_SASL_CONT, out, outlen);
		return;
	}
	if (!scram_server_final(c->auth->scram, (const char *)body, len, out, sizeof(out), &outlen,
	                        err, sizeof(err))) {
		/* As PostgreSQL: a wrong proof is a wrong password, anything else in
		 * the message a protocol violation. */
		if (scram_server_bad_proof(c->auth->scram))
			auth_failed(c);
		else
			client_fail(c, "08P01", "malformed SCRAM message: %s", err);
		return;
	}
	ask(c, AUTH_REQ_SASL_FIN, out, outlen);
	if (c->state != CL_CLOSED)
		auth_done(c);
}

/* ---- startup packet ---- */

static bool take_param(struct client *c, const char *name, const char *value, char *bad,
                       size_t badlen)
{
	int id;

	if (strcmp(name, "user") == 0) {
		intern_free(c->user);
		c->user = intern_dup(value);
		return c->user != NULL;
	}
	if (strcmp(name, "database") == 0) {
		intern_free(c->dbname);
		c->dbname = intern_dup(value);
		return c->dbname != NULL;
	}
	if (strcmp(name, "replication") == 0) {
		/* A replication connection gets a server of its own (COPY BOTH). */
		if (strcasecmp(value, "false") == 0 || strcasecmp(value, "off") == 0 ||
		    strcasecmp(value, "no") == 0 || strcmp(value, "0") == 0)
			return true;
		free(c->replication);
		c->replication = strdup(value);
		return c->replication != NULL;
	}
	id = varcache_lookup(name);
	if (id >= 0)
		return varcache_set(&c->vars, id, value);
	if (cfg_list_contains(rt.cfg->ignore_startup_parameters, name))
		return true;
	snprintf(bad, badlen, "%s", name);
	return true;
}

static void negotiate_version(struct client *c, const char *const *opts, size_t n)
{
	struct pkt_writer w;
	size_t i;

	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_NegotiateProtocolVersion);
	pkt_put_u32(&w, PG_PROTOCOL_3_0);
	pkt_put_u32(&w, (uint32_t)n);
	for (i = 0; i < n; i++)
		pkt_put_str(&w, opts[i]);
	pkt_end(&w);
	send_or_close(c, &w);
}

static void handle_startup(struct client *c, const uint8_t *data, uint32_t len)
{
	struct pkt_reader r;
	uint32_t code;
	char bad[64] = "";
	const char *pq_opts[16];
	size_t n_pq = 0;

	pkt_reader_init(&r, data + 4, len - 4);
	code = pkt_get_u32(&r);
	if (code == NEGOTIATE_SSL_CODE || code == NEGOTIATE_GSS_CODE) {
		if (len != 8) {
			client_fail(c, "08P01", "invalid length of startup packet");
			return;
		}
		sbuf_write(&c->sb, "N", 1);
		return;
	}
	if (code == CANCEL_REQUEST_CODE) {
		struct client *target;

		if (len != 16) {
			client_close(c, "invalid cancel request");
			return;
		}
		target = client_by_cancel_key(data + 8);
		if (target != NULL && target->server != NULL &&
		    target->server->state == SV_ACTIVE) {
			/* This connection stays open until the cancel is done. */
			sbuf_pause(&c->sb);
			c->cancel_pending = true;
			cancel_send(target->server, c);
			return;
		}
		log_debug("C-%llu: cancel request for no running query", (unsigned long long)c->id);
		client_close(c, NULL);
		return;
	}
	if ((code >> 16) != 3) {
		client_fail(c, "08P01",
		            "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
		            code >> 16, code & 0xffff);
		return;
	}
	for (;;) {
		const char *name = pkt_get_str(&r), *value;

		if (r.bad || name[0] == '\0')
			break;
		value = pkt_get_str(&r);
		if (r.bad)
			break;
		if (strncmp(name, "_pq_.", 5) == 0) {
			if (n_pq < sizeof(pq_opts) / sizeof(pq_opts[0]))
				pq_opts[n_pq++] = name;
			continue;
		}
		if (!take_param(c, name, value, bad, sizeof(bad))) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	if (!pkt_reader_done(&r)) {
		client_fail(c, "08P01",
		            "invalid startup packet layout: expected terminator as last byte");
		return;
	}
	c->sb.startup = false;
	c->sb.max_len = PROTO_MAX_MSG_LEN;
	if ((code & 0xffff) != 0 || n_pq > 0)
		negotiate_version(c, pq_opts, n_pq);
	if (c->state == CL_CLOSED)
		return;
	if (c->over_limit) {
		client_fail(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (bad[0] != '\0') {
		client_fail(c, "08P01", "unsupported startup parameter: %s", bad);
		return;
	}
	if (c->user == NULL || c->user[0] == '\0') {
		client_fail(c, "28000", "no PostgreSQL user name specified in startup packet");
		return;
	}
	if (c->dbname == NULL || c->dbname[0] == '\0') {
		intern_free(c->dbname);
		c->dbname = intern_dup(c->user);
		if (c->dbname == NULL) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	if (rt.cfg->log_connections)
		log_info("C-%llu %s/%s: login attempt", (unsigned long long)c->id, c->dbname,
		         c->user);
	if (admin_is_console(c->dbname)) {
		bool peer = peer_is_self(c);

		if (!admin_may_login(c, peer)) {
			client_fail(c, "28000", "not allowed to use the admin console: %s",
			            c->user);
			return;
		}
		if (peer) {
			auth_done(c);
			return;
		}
	} else if (cfg_find_db(rt.cfg, c->dbname) == NULL) {
		client_fail(c, "3D000", "no such database: %s", c->dbname);
		return;
	} else if (admin_db_disabled(c->dbname)) {
		client_fail(c, "57P03", "database \"%s\" does not allow connections (DISABLE)",
		            c->dbname);
		return;
	}
	start_auth(c);
}

static void login_pkt(struct client *c, const struct pkt_hdr *hdr, const uint8_t *data)
{
	if (c->sb.startup) {
		handle_startup(c, data, hdr->len);
		return;
	}
	if (hdr->type != PqMsg_PasswordMessage) {
		client_fail(c, "08P01", "expected password response, got message type %d",
		            hdr->type);
		return;
	}
	switch (c->auth->step) {
	case AUTH_WAIT_PASSWORD:
		auth_password(c, data + 5, hdr->len - 5);
		return;
	case AUTH_WAIT_SASL_INIT:
	case AUTH_WAIT_SASL_RESP:
		auth_sasl(c, data + 5, hdr->len - 5);
		return;
	default:
		client_fail(c, "08P01", "unexpected password message");
		return;
	}
}

/* ---- after login ---- */

static enum sbuf_action client_on_pkt(struct sbuf *sb, const struct pkt_hdr *hdr,
                                      const uint8_t *data, size_t avail)
{
	struct client *c = sb->owner;

	switch (c->state) {
	case CL_LOGIN:
		if (c->cancel_pending)
			return SBUF_STOP;
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		login_pkt(c, hdr, data);
		return c->state == CL_CLOSED ? SBUF_STOP : SBUF_CONSUMED;
	case CL_WELCOME_WAIT:
	case CL_WAITING:
	case CL_CLOSED:
		return SBUF_STOP;
	case CL_IDLE:
	case CL_ACTIVE:
		break;
	}
	if (c->admin)
		return admin_on_pkt(c, hdr, data, avail);
	if (!proto_is_frontend_type(hdr->type)) {
		client_fail(c, "08P01", "invalid frontend message type %d", hdr->type);
		return SBUF_STOP;
	}
	if (hdr->type == PqMsg_Terminate) {
		client_close(c, "client terminated");
		return SBUF_STOP;
	}
	if (c->skip_to_sync) {
		/* pglease answered an extended-protocol message with an error: like
		 * PostgreSQL, ignore the rest of the batch up to its Sync. */
		if (hdr->type != PqMsg_Sync)
			return SBUF_SKIP;
		c->skip_to_sync = false;
	}
	if (c->server == NULL && !pool_lease(c->pool, c))
		return SBUF_STOP;
	if (c->state != CL_ACTIVE) {
		client_set_state(c, CL_ACTIVE);
	} else if (c->server->req_count == 0) {
		/* A new request batch: keep pool->clients in order of activity. */
		c->last_active = rt_now_usec();
		list_del(&c->node);
		list_append(&c->pool->clients, &c->node);
	}
	if (c->pool->mode != POOL_SESSION && rt.cfg->max_prepared_statements > 0)
		return prepared_client_msg(c, hdr, data, avail);
	if (!server_note_request(c->server, hdr->type, hdr->len, 0, NULL)) {
		client_fail(c, "53200", "out of memory");
		return SBUF_STOP;
	}
	return SBUF_FORWARD;
}

static void client_on_event(struct sbuf *sb, enum sbuf_event ev, long err)
{
	struct client *c = sb->owner;

	switch (ev) {
	case SBUF_EV_EOF:
		client_close(c, "client closed the connection");
		break;
	case SBUF_EV_ERROR:
		client_close(c, "socket error");
		break;
	case SBUF_EV_PROTO:
		client_fail(c, "08P01",
		            c->sb.startup ? "invalid startup packet length"
		                          : "invalid message length");
		break;
	case SBUF_EV_TOOBIG:
		client_fail(c, "08P01", "message of %ld bytes is too large", err);
		break;
	}
}

void client_leased(struct client *c, struct server *server)
{
	struct pool_stats *st = &server->pool->stats;

	stats_wait_done(st, rt_now_usec() - c->wait_start);
	client_set_state(c, CL_ACTIVE);
	sbuf_resume(&c->sb);
}

static const struct sbuf_ops client_ops = {client_on_pkt, client_on_event};

void client_accept(int fd, const struct sockaddr_storage *addr, socklen_t len, bool is_unix)
{
	struct client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		return;
	}
	list_init(&c->node);
	c->id = ++rt.next_id;
	c->is_unix = is_unix;
	/* TCP peers fit the compact address; for unix sockets only the family matters. */
	memcpy(&c->addr, addr, len < sizeof(c->addr) ? len : sizeof(c->addr));
	if (is_unix)
		c->addr.sa.sa_family = AF_UNIX;
	c->connect_time = rt_now_usec();
	c->state = CL_LOGIN;
	list_append(&rt.login_clients, &c->node);
	rt.n_clients++;
	if (!sbuf_init(&c->sb, rt.base, fd, &client_ops, c) || !assign_cancel_key(c)) {
		client_close(c, "could not set up connection");
		return;
	}
	c->sb.startup = true;
	c->sb.max_len = PROTO_MAX_STARTUP_LEN;
	c->over_limit = rt.n_clients > (unsigned)rt.cfg->max_client_conn;
	/* Clients send their first packet right after connect(): it is usually
	 * in the socket by the time we accept. */
	sbuf_read_soon(&c->sb);
	if (log_threshold >= LOG_LVL_DEBUG) {
		char text[64];

		net_addr_text(addr, text, sizeof(text));
		log_debug("C-%llu: new connection from %s", (unsigned long long)c->id, text);
	}
}
