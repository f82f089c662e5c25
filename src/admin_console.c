/*
 * admin_console: the console's side of the wire.  Login and welcome, the
 * simple query protocol (the extended protocol is refused), splitting a query
 * into a command and its arguments, driver probes (SET/SHOW of session
 * settings), and dispatch to SHOW (admin_show.c) or to the process controls
 * (admin.c).  Every reply ends with ReadyForQuery.
 */
#include "admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admin_int.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "runtime.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- replies -------------------------------------------------------------- */

bool admin_send(struct client *c, struct pkt_writer *w)
{
	bool ok = pkt_ok(w) && sbuf_write(&c->sb, w->buf, w->len);

	pkt_writer_free(w);
	if (!ok && c->state != CL_CLOSED)
		client_close(c, "could not send to console client");
	return ok;
}

static void put_error(struct pkt_writer *w, const char *sqlstate, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	proto_error(w, "ERROR", sqlstate, msg);
}

/* ErrorResponse + ReadyForQuery. */
void admin_reply_error(struct client *c, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void admin_reply_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	struct pkt_writer w;
	va_list ap;

	pkt_writer_init(&w);
	va_start(ap, fmt);
	put_error(&w, sqlstate, fmt, ap);
	va_end(ap);
	proto_ready(&w, 'I');
	admin_send(c, &w);
}

/* CommandComplete TAG (+ an optional notice first) + ReadyForQuery. */
void admin_reply_done(struct client *c, const char *tag, const char *notice)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	if (notice != NULL)
		proto_notice(&w, "00000", notice);
	admin_complete(&w, tag);
	proto_ready(&w, 'I');
	admin_send(c, &w);
}

/* ---- the console protocol --------------------------------------------------- */

bool admin_is_console(const char *dbname)
{
	return strcmp(dbname, "pglease") == 0 || strcmp(dbname, "pgbouncer") == 0;
}

bool admin_may_login(struct client *c, bool peer_ok)
{
	if (cfg_list_contains(rt.cfg->admin_users, c->user)) {
		c->admin_readonly = false;
		return true;
	}
	if (peer_ok) {
		c->admin_readonly = false;
		return true;
	}
	if (cfg_list_contains(rt.cfg->stats_users, c->user) || rt.cfg->auth_type == AUTH_ANY) {
		c->admin_readonly = true;
		return true;
	}
	return false;
}

void admin_login(struct client *c)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	proto_param_status(&w, "server_version", "15.0 (pglease)");
	proto_param_status(&w, "client_encoding", "UTF8");
	proto_param_status(&w, "server_encoding", "UTF8");
	proto_param_status(&w, "DateStyle", "ISO");
	proto_param_status(&w, "TimeZone", "UTC");
	proto_param_status(&w, "standard_conforming_strings", "on");
	proto_param_status(&w, "integer_datetimes", "on");
	proto_param_status(&w, "application_name", "");
	proto_backend_key(&w, c->cancel_key);
	proto_ready(&w, 'I');
	c->admin = true;
	client_set_state(c, CL_IDLE);
	if (pkt_ok(&w))
		sbuf_write(&c->sb, w.buf, w.len);
	pkt_writer_free(&w);
	if (rt.cfg->log_connections)
		log_info("C-%llu %s/%s: console login", (unsigned long long)c->id, c->dbname,
		         c->user);
	sbuf_resume(&c->sb);
}

/* Session settings drivers ask about; SHOW answers them, SET is ignored. */
static const struct {
	const char *name, *value;
} fake_params[] = {
    {"application_name", ""},
    {"client_encoding", "UTF8"},
    {"datestyle", "ISO"},
    {"default_transaction_isolation", "read committed"},
    {"default_transaction_read_only", "off"},
    {"extra_float_digits", "2"},
    {"integer_datetimes", "on"},
    {"intervalstyle", "postgres"},
    {"server_encoding", "UTF8"},
    {"server_version", "15.0 (pglease)"},
    {"standard_conforming_strings", "on"},
    {"statement_timeout", "0"},
    {"timezone", "UTC"},
    {"transaction_isolation", "read committed"},
    {"transaction_read_only", "off"},
};

const char *admin_fake_param(const char *name)
{
	size_t i;

	for (i = 0; i < N_ELEMS(fake_params); i++)
		if (strcasecmp(name, fake_params[i].name) == 0)
			return fake_params[i].value;
	return NULL;
}

/* The parsed command: up to 4 words, a quoted word keeps its case. */
struct cmd {
	char word[4][256];
	size_t n;
	char set_key[128];
	char set_value[1024];
	bool is_set;
};

/* Next word of *P into OUT ("quoted" or 'quoted' with doubled quotes); false at the end. */
static bool next_word(const char **p, char *out, size_t len, bool *bad)
{
	const char *s = *p;
	size_t n = 0;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return false;
	if (*s == '"' || *s == '\'') {
		char q = *s++;

		for (;;) {
			if (*s == '\0') {
				*bad = true;
				return false;
			}
			if (*s == q) {
				if (s[1] != q)
					break;
				s++;
			}
			if (n + 1 < len)
				out[n++] = *s;
			s++;
		}
		s++;
	} else if (*s == '=') {
		out[n++] = *s++;
	} else {
		while (*s != '\0' && !isspace((unsigned char)*s) && *s != '=') {
			if (n + 1 < len)
				out[n++] = *s;
			s++;
		}
	}
	out[n] = '\0';
	*p = s;
	return true;
}

/* Split SQL (one command, optional trailing ';') into CMD.  False: syntax error. */
static bool parse_cmd(const char *sql, struct cmd *cmd)
{
	char buf[2048], word[1024];
	const char *p;
	size_t len;
	bool bad = false;

	memset(cmd, 0, sizeof(*cmd));
	len = strlen(sql);
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, sql, len + 1);
	while (len > 0 && (isspace((unsigned char)buf[len - 1]) || buf[len - 1] == ';'))
		buf[--len] = '\0';
	p = buf;
	if (!next_word(&p, word, sizeof(word), &bad))
		return !bad;
	if (strcasecmp(word, "set") == 0) {
		cmd->is_set = true;
		if (!next_word(&p, cmd->set_key, sizeof(cmd->set_key), &bad))
			return false;
		if (!next_word(&p, word, sizeof(word), &bad) ||
		    (strcmp(word, "=") != 0 && strcasecmp(word, "to") != 0))
			return false;
		while (isspace((unsigned char)*p))
			p++;
		if (!next_word(&p, cmd->set_value, sizeof(cmd->set_value), &bad))
			return false;
		while (isspace((unsigned char)*p))
			p++;
		return !bad && *p == '\0';
	}
	if (strlen(word) >= sizeof(cmd->word[0]))
		return false;
	memcpy(cmd->word[0], word, strlen(word) + 1);
	cmd->n = 1;
	while (cmd->n < N_ELEMS(cmd->word) &&
	       next_word(&p, cmd->word[cmd->n], sizeof(cmd->word[0]), &bad))
		cmd->n++;
	while (isspace((unsigned char)*p))
		p++;
	return !bad && *p == '\0';
}

static void show_fake(struct client *c, const char *name, const char *value)
{
	const struct admin_col col = {name, ADMIN_T_TEXT};
	struct pkt_writer w;

	pkt_writer_init(&w);
	admin_rowdesc(&w, &col, 1);
	admin_row_begin(&w, 1);
	admin_put_text(&w, value);
	admin_row_end(&w);
	admin_complete(&w, "SHOW");
	proto_ready(&w, 'I');
	admin_send(c, &w);
}

static void cmd_show(struct client *c, const struct cmd *cmd)
{
	struct pkt_writer w;
	const char *fake;

	if (cmd->n != 2) {
		admin_reply_error(c, "42601", "SHOW needs one argument, see SHOW HELP");
		return;
	}
	fake = admin_fake_param(cmd->word[1]);
	if (fake != NULL) {
		show_fake(c, cmd->word[1], fake);
		return;
	}
	pkt_writer_init(&w);
	if (!admin_show(&w, cmd->word[1])) {
		pkt_writer_free(&w);
		admin_reply_error(c, "42601", "unknown SHOW command \"%s\", see SHOW HELP",
		                  cmd->word[1]);
		return;
	}
	proto_ready(&w, 'I');
	admin_send(c, &w);
}

/* The database argument of CMD (NULL when absent); false after an error reply. */
static bool db_arg(struct client *c, const struct cmd *cmd, bool required, const char **db)
{
	*db = cmd->n >= 2 ? cmd->word[1] : NULL;
	if (cmd->n > 2) {
		admin_reply_error(c, "42601", "%s takes at most one argument", cmd->word[0]);
		return false;
	}
	if (*db == NULL && required) {
		admin_reply_error(c, "42601", "%s needs a database name", cmd->word[0]);
		return false;
	}
	if (*db != NULL && admin_is_console(*db)) {
		admin_reply_error(c, "42601", "%s cannot act on the admin console", cmd->word[0]);
		return false;
	}
	if (*db != NULL && !admin_db_known(*db)) {
		admin_reply_error(c, "3D000", "no such database: %s", *db);
		return false;
	}
	return true;
}

static void upper(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

/* Statements drivers send on connect; answered and otherwise ignored. */
static bool harmless(struct client *c, const struct cmd *cmd)
{
	static const struct {
		const char *word, *tag;
	} stmts[] = {{"BEGIN", "BEGIN"},         {"START", "START TRANSACTION"},
	             {"COMMIT", "COMMIT"},       {"END", "COMMIT"},
	             {"ROLLBACK", "ROLLBACK"},   {"ABORT", "ROLLBACK"},
	             {"DISCARD", "DISCARD ALL"}, {"RESET", "RESET"}};
	size_t i;

	for (i = 0; i < N_ELEMS(stmts); i++) {
		if (strcasecmp(cmd->word[0], stmts[i].word) == 0) {
			admin_reply_done(c, stmts[i].tag, NULL);
			return true;
		}
	}
	return false;
}

static void run_cmd(struct client *c, const char *sql)
{
	struct cmd cmd;
	const char *db;
	char *verb;

	if (!parse_cmd(sql, &cmd)) {
		admin_reply_error(c, "42601", "invalid command '%s', use SHOW HELP;", sql);
		return;
	}
	if (cmd.is_set) {
		admin_cmd_set(c, cmd.set_key, cmd.set_value);
		return;
	}
	if (cmd.n == 0) {
		struct pkt_writer w;

		pkt_writer_init(&w);
		pkt_begin(&w, PqMsg_EmptyQueryResponse);
		pkt_end(&w);
		proto_ready(&w, 'I');
		admin_send(c, &w);
		return;
	}
	verb = cmd.word[0];
	upper(verb);
	if (strcmp(verb, "SHOW") == 0) {
		cmd_show(c, &cmd);
		return;
	}
	if (harmless(c, &cmd))
		return;
	if (c->admin_readonly) {
		static const char *const known[] = {
		    "PAUSE", "RESUME",      "SUSPEND",    "DISABLE", "ENABLE",  "RECONNECT",
		    "KILL",  "KILL_CLIENT", "WAIT_CLOSE", "RELOAD",  "SHUTDOWN"};
		size_t i;

		for (i = 0; i < N_ELEMS(known); i++)
			if (strcmp(verb, known[i]) == 0) {
				admin_reply_error(c, "42501", "admin access needed for %s", verb);
				return;
			}
	}
	if (strcmp(verb, "KILL_CLIENT") == 0) {
		if (cmd.n != 2)
			admin_reply_error(c, "42601",
			                  "KILL_CLIENT needs a client id (see SHOW CLIENTS)");
		else
			admin_cmd_kill_client(c, cmd.word[1]);
		return;
	}
	if (strcmp(verb, "SHUTDOWN") == 0) {
		if (cmd.n > 2)
			admin_reply_error(c, "42601", "SHUTDOWN takes at most one argument");
		else
			admin_cmd_shutdown(c, cmd.n == 2 ? cmd.word[1] : NULL);
		return;
	}
	if (strcmp(verb, "RELOAD") == 0 || strcmp(verb, "SUSPEND") == 0) {
		if (cmd.n != 1)
			admin_reply_error(c, "42601", "%s takes no argument", verb);
		else if (verb[1] == 'E')
			admin_cmd_reload(c);
		else
			admin_cmd_suspend(c);
		return;
	}
	if (strcmp(verb, "PAUSE") == 0 || strcmp(verb, "RESUME") == 0 ||
	    strcmp(verb, "RECONNECT") == 0 || strcmp(verb, "KILL") == 0 ||
	    strcmp(verb, "WAIT_CLOSE") == 0 || strcmp(verb, "DISABLE") == 0 ||
	    strcmp(verb, "ENABLE") == 0) {
		bool need = strcmp(verb, "DISABLE") == 0 || strcmp(verb, "ENABLE") == 0;

		if (!db_arg(c, &cmd, need, &db))
			return;
		if (strcmp(verb, "PAUSE") == 0)
			admin_cmd_pause(c, db);
		else if (strcmp(verb, "RESUME") == 0)
			admin_cmd_resume(c, db);
		else if (strcmp(verb, "RECONNECT") == 0)
			admin_cmd_reconnect(c, db);
		else if (strcmp(verb, "KILL") == 0)
			admin_cmd_kill(c, db);
		else if (strcmp(verb, "WAIT_CLOSE") == 0)
			admin_cmd_wait_close(c, db);
		else
			admin_cmd_able(c, db, strcmp(verb, "DISABLE") == 0);
		return;
	}
	admin_reply_error(c, "42601", "invalid command '%s', use SHOW HELP;", sql);
}

enum sbuf_action admin_on_pkt(struct client *c, const struct pkt_hdr *hdr, const uint8_t *data,
                              size_t avail)
{
	struct pkt_reader r;
	const char *sql;

	switch (hdr->type) {
	case PqMsg_Query:
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		pkt_reader_init(&r, data + 5, hdr->len - 5);
		sql = pkt_get_str(&r);
		if (!pkt_reader_done(&r)) {
			client_fail(c, "08P01", "invalid Query message");
			return SBUF_STOP;
		}
		run_cmd(c, sql);
		break;
	case PqMsg_Terminate:
		client_close(c, "client terminated");
		return SBUF_STOP;
	case PqMsg_Sync:
		/* The extended protocol: refused once per Sync, the rest is skipped. */
		admin_reply_error(c, "0A000",
		                  "the admin console supports only the simple query protocol");
		return c->state == CL_CLOSED ? SBUF_STOP : SBUF_SKIP;
	case PqMsg_Parse:
	case PqMsg_Bind:
	case PqMsg_Describe:
	case PqMsg_Execute:
	case PqMsg_Close:
	case PqMsg_Flush:
		return SBUF_SKIP;
	case PqMsg_FunctionCall:
		admin_reply_error(c, "0A000", "the admin console does not run functions");
		return c->state == CL_CLOSED ? SBUF_STOP : SBUF_SKIP;
	default:
		client_fail(c, "08P01", "unexpected message type %d on the admin console",
		            hdr->type);
		return SBUF_STOP;
	}
	return c->state == CL_CLOSED ? SBUF_STOP : SBUF_CONSUMED;
}
