/*
 * e2e_diff: differential test.  The SQL cases of test/diff_cases.txt (DDL,
 * DML, errors, notices, multi-statement queries, empty queries, COPY, large
 * results, the extended protocol with and without statement names, function
 * calls, parameters, notifications) are sent with a raw-protocol client
 * directly to PostgreSQL and through pglease in session, transaction and
 * statement mode.  The client records the sequence of messages it receives,
 * normalised: CommandComplete tags, DataRow values (runs of rows folded into
 * a count and a hash), RowDescription names and types (not table oids),
 * ErrorResponse/NoticeResponse severity, SQLSTATE, message, detail, hint,
 * position, ParameterStatus, NotificationResponse channel and payload (not
 * the pid), ReadyForQuery status, COPY responses and data; BackendKeyData and
 * timings are ignored.  Each pooled run must equal the direct run.
 *
 * Every run uses its own database (created empty for it), so the cases see
 * the same state in each run.  Statement mode skips the cases marked nostmt
 * and is compared with a direct run that skips them too.
 *
 * Points: the case file loads with at least 60 cases; the direct runs complete
 * every case; the login ParameterStatus set through pglease in each mode equals
 * PostgreSQL's; one point per case and mode; pglease alive and a clean exit.
 * PGL_DIFF_CASE=name runs only the cases whose name contains it.
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PGL_SRCDIR
#define PGL_SRCDIR "."
#endif

enum step_kind {
	ST_MSG,  /* a prebuilt frontend message in buf */
	ST_GEN,  /* GEN_COPY n */
	ST_WAIT, /* W t */
};

struct step {
	enum step_kind kind;
	char type; /* message type (ST_MSG), awaited type (ST_WAIT) */
	struct h_wbuf msg;
	long n; /* GEN_COPY rows */
};

struct dcase {
	char name[64];
	bool nostmt;
	struct step *steps;
	int n_steps;
	int n_ready; /* ReadyForQuery messages to expect */
	int line;
};

static struct dcase *cases;
static int n_cases;

/* ---- case file --------------------------------------------------------- */

/* Unescape \n \t \\ in place; a whole "\N" stays as is (NULL marker). */
static char *unescape(char *s)
{
	char *r = s, *w = s;

	while (*r) {
		if (r[0] == '\\' && r[1] == 'n') {
			*w++ = '\n';
			r += 2;
		} else if (r[0] == '\\' && r[1] == 't') {
			*w++ = '\t';
			r += 2;
		} else if (r[0] == '\\' && r[1] == '\\') {
			*w++ = '\\';
			r += 2;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return s;
}

/* Next space-separated token of *P (NULL when none); *P moves past it and one space. */
static char *token(char **p)
{
	char *s = *p, *e;

	if (s == NULL || *s == '\0')
		return NULL;
	e = strchr(s, ' ');
	if (e) {
		*e = '\0';
		*p = e + 1;
	} else {
		*p = s + strlen(s);
	}
	return s;
}

static const char *dash(const char *s)
{
	return s == NULL || strcmp(s, "-") == 0 ? "" : s;
}

/* Split REST on '|' into VALS (\N = NULL); returns the count. */
static int split_params(char *rest, const char **vals, int max)
{
	int n = 0;

	if (rest == NULL || *rest == '\0')
		return 0;
	for (char *p = rest; n < max;) {
		char *bar = strchr(p, '|');

		if (bar)
			*bar = '\0';
		vals[n++] = strcmp(p, "\\N") == 0 ? NULL : unescape(p);
		if (!bar)
			break;
		p = bar + 1;
	}
	return n;
}

static uint32_t func_oid(const char *name)
{
	const char *v = h_pg_value(h_fmt("SELECT '%s'::regprocedure::oid", name));

	if (v == NULL)
		h_bail("diff_cases: unknown function %s", name);
	return (uint32_t)strtoul(v, NULL, 10);
}

static struct step *add_step(struct dcase *c, enum step_kind kind)
{
	struct step *s;

	c->steps = realloc(c->steps, sizeof(*c->steps) * (size_t)(c->n_steps + 1));
	if (c->steps == NULL)
		h_bail("out of memory");
	s = &c->steps[c->n_steps++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	return s;
}

static void load_cases(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	struct dcase *c = NULL;

	if (f == NULL)
		h_bail("cannot open %s", path);
	while ((len = getline(&line, &cap, f)) != -1) {
		char *p = line, *cmd;
		struct step *s;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "== ", 3) == 0) {
			char *name, *flag;

			cases = realloc(cases, sizeof(*cases) * (size_t)(n_cases + 1));
			if (cases == NULL)
				h_bail("out of memory");
			c = &cases[n_cases++];
			memset(c, 0, sizeof(*c));
			p = line + 3;
			name = token(&p);
			snprintf(c->name, sizeof(c->name), "%s", name ? name : "?");
			while ((flag = token(&p)) != NULL)
				c->nostmt = c->nostmt || strcmp(flag, "nostmt") == 0;
			c->line = lineno;
			continue;
		}
		if (c == NULL)
			h_bail("%s:%d: a step before the first case", path, lineno);
		cmd = token(&p);
		if (strcmp(cmd, "Q") == 0) {
			s = add_step(c, ST_MSG);
			h_wb_query(&s->msg, unescape(p));
			c->n_ready++;
		} else if (strcmp(cmd, "P") == 0) {
			char *name = token(&p);

			s = add_step(c, ST_MSG);
			h_wb_parse(&s->msg, dash(name), unescape(p));
		} else if (strcmp(cmd, "B") == 0) {
			const char *vals[32];
			char *portal = token(&p), *stmt = token(&p);
			int n = split_params(p, vals, 32);

			s = add_step(c, ST_MSG);
			h_wb_bind(&s->msg, dash(portal), dash(stmt), n, vals);
		} else if (strcmp(cmd, "D") == 0 || strcmp(cmd, "C") == 0) {
			char *kind = token(&p), *name = token(&p);

			s = add_step(c, ST_MSG);
			if (cmd[0] == 'D')
				h_wb_describe(&s->msg, kind ? kind[0] : 'S', dash(name));
			else
				h_wb_close(&s->msg, kind ? kind[0] : 'S', dash(name));
		} else if (strcmp(cmd, "E") == 0) {
			char *portal = token(&p), *rows = token(&p);

			s = add_step(c, ST_MSG);
			h_wb_execute(&s->msg, dash(portal), rows ? (uint32_t)atol(rows) : 0);
		} else if (strcmp(cmd, "S") == 0) {
			s = add_step(c, ST_MSG);
			h_wb_sync(&s->msg);
			c->n_ready++;
		} else if (strcmp(cmd, "H") == 0) {
			s = add_step(c, ST_MSG);
			h_wb_flush(&s->msg);
		} else if (strcmp(cmd, "d") == 0) {
			unescape(p);
			s = add_step(c, ST_MSG);
			h_wb_copy_data(&s->msg, p, strlen(p));
		} else if (strcmp(cmd, "c") == 0) {
			s = add_step(c, ST_MSG);
			h_wb_copy_done(&s->msg);
		} else if (strcmp(cmd, "f") == 0) {
			s = add_step(c, ST_MSG);
			h_wb_copy_fail(&s->msg, unescape(p));
		} else if (strcmp(cmd, "F") == 0) {
			const char *vals[32];
			char *fn = token(&p);
			int n = split_params(p, vals, 32);

			s = add_step(c, ST_MSG);
			h_wb_fcall(&s->msg, func_oid(fn), n, vals);
			c->n_ready++;
		} else if (strcmp(cmd, "GEN_COPY") == 0) {
			s = add_step(c, ST_GEN);
			s->n = atol(p);
		} else if (strcmp(cmd, "W") == 0) {
			s = add_step(c, ST_WAIT);
			s->type = p[0];
		} else {
			h_bail("%s:%d: unknown step \"%s\"", path, lineno, cmd);
		}
	}
	free(line);
	fclose(f);
}

/* ---- recording --------------------------------------------------------- */

struct record {
	char *text; /* one normalised message per line */
	size_t len, cap;
	char fold;       /* type of the run being folded ('D' or 'd'), or 0 */
	long fold_n;     /* rows in the run */
	uint64_t fold_h; /* FNV-1a over the run */
	char first[256]; /* first row of the run, readable */
	int ready;
	bool eof, timeout;
};

static void rec_add(struct record *r, const char *s)
{
	size_t n = strlen(s);

	if (r->len + n + 2 > r->cap) {
		r->cap = (r->len + n + 2) * 2;
		r->text = realloc(r->text, r->cap);
		if (r->text == NULL)
			h_bail("out of memory");
	}
	memcpy(r->text + r->len, s, n);
	r->len += n;
	r->text[r->len++] = '\n';
	r->text[r->len] = '\0';
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void rec_flush_fold(struct record *r)
{
	if (r->fold == 0)
		return;
	if (r->fold_n == 1)
		rec_add(r, h_fmt("%c %s", r->fold, r->first));
	else
		rec_add(r, h_fmt("%c x%ld first=[%s] hash=%016llx", r->fold, r->fold_n, r->first,
		                 (unsigned long long)r->fold_h));
	r->fold = 0;
}

/* Readable text of a DataRow: "v1|v2|NULL", cut at 200 bytes. */
static void datarow_text(const struct h_bmsg *m, char *out, size_t outlen)
{
	const char *p = m->body + 2, *end = m->body + m->n;
	uint16_t n = m->n >= 2 ? h_be16(m->body) : 0;
	size_t used = 0;

	out[0] = '\0';
	for (uint16_t i = 0; i < n && p + 4 <= end; i++) {
		uint32_t len = h_be32(p);
		int w;

		p += 4;
		if (len == 0xffffffffu)
			w = snprintf(out + used, outlen - used, "%sNULL", i ? "|" : "");
		else
			w = snprintf(out + used, outlen - used, "%s%.*s%s", i ? "|" : "",
			             (int)(len > 200 ? 200 : len), p, len > 200 ? "..." : "");
		if (len != 0xffffffffu)
			p += len;
		if (w < 0 || (size_t)w >= outlen - used)
			break;
		used += (size_t)w;
	}
}

static void fields_text(const struct h_bmsg *m, struct record *r)
{
	static const char codes[] = "VCMDHP";
	const char *s = h_fmt("%c", m->type);

	for (const char *c = codes; *c; c++) {
		const char *v = h_bmsg_field(m, *c);

		if (v)
			s = h_fmt("%s %c=%s", s, *c, v);
	}
	rec_add(r, s);
}

static void record_msg(const struct h_bmsg *m, void *arg)
{
	struct record *r = arg;

	if (m->type == 'D' || m->type == 'd') {
		if (r->fold != m->type) {
			rec_flush_fold(r);
			r->fold = m->type;
			r->fold_n = 0;
			r->fold_h = 1469598103934665603ull;
			if (m->type == 'D') {
				datarow_text(m, r->first, sizeof(r->first));
			} else {
				size_t n = m->n < 60 ? m->n : 60;

				for (size_t i = 0; i < n; i++)
					r->first[i] = (m->body[i] >= 32 && m->body[i] < 127)
					                  ? m->body[i]
					                  : '.';
				r->first[n] = '\0';
			}
		}
		r->fold_n++;
		r->fold_h = fnv(r->fold_h, &m->n, sizeof(m->n));
		r->fold_h = fnv(r->fold_h, m->body, m->n);
		return;
	}
	rec_flush_fold(r);
	switch (m->type) {
	case 'C':
		rec_add(r, h_fmt("C %.*s", (int)strnlen(m->body, m->n), m->body));
		break;
	case 'T': {
		uint16_t n = m->n >= 2 ? h_be16(m->body) : 0;
		const char *p = m->body + 2, *s = "T";

		for (uint16_t i = 0; i < n && p < m->body + m->n; i++) {
			const char *name = p;

			p += strnlen(p, (size_t)(m->body + m->n - p)) + 1;
			if (p + 18 > m->body + m->n)
				break;
			/* skip table oid (4) and attnum (2); keep type oid, size, typmod, format */
			s = h_fmt("%s %s:%u:%d:%d:%u", s, name, h_be32(p + 6),
			          (int16_t)h_be16(p + 10), (int32_t)h_be32(p + 12), h_be16(p + 16));
			p += 18;
		}
		rec_add(r, s);
		break;
	}
	case 't': {
		uint16_t n = m->n >= 2 ? h_be16(m->body) : 0;
		const char *s = "t";

		for (uint16_t i = 0; i < n && 2 + 4 * (size_t)(i + 1) <= m->n; i++)
			s = h_fmt("%s %u", s, h_be32(m->body + 2 + 4 * i));
		rec_add(r, s);
		break;
	}
	case 'E':
	case 'N':
		fields_text(m, r);
		break;
	case 'S':
		rec_add(r, h_fmt("S %s=%s", m->body, m->body + strlen(m->body) + 1));
		break;
	case 'A': {
		const char *ch = m->body + 4;

		rec_add(r, h_fmt("A %s %s", ch, ch + strlen(ch) + 1));
		break;
	}
	case 'Z':
		rec_add(r, h_fmt("Z %c", m->n ? m->body[0] : '?'));
		r->ready++;
		break;
	case 'G':
	case 'H':
	case 'W':
		rec_add(r, h_fmt("%c format=%d columns=%u", m->type, m->n ? m->body[0] : -1,
		                 m->n >= 3 ? h_be16(m->body + 1) : 0));
		break;
	case 'V': {
		uint32_t len = m->n >= 4 ? h_be32(m->body) : 0;

		if (len == 0xffffffffu)
			rec_add(r, "V NULL");
		else
			rec_add(r, h_fmt("V %.*s", (int)len, m->body + 4));
		break;
	}
	case 'K':
		break; /* keys differ by design */
	default:
		rec_add(r, h_fmt("%c", m->type));
		break;
	}
}

/* ---- running ----------------------------------------------------------- */

static bool read_until(struct h_conn *c, struct record *r, char type, int want_ready,
                       int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	struct h_bmsg m;

	for (;;) {
		int64_t left = deadline - h_now_ms();
		int rc;

		if (type == 0 && r->ready >= want_ready)
			return true;
		rc = left > 0 ? h_conn_read(c, &m, (int)left) : -1;
		if (rc != 1) {
			rec_flush_fold(r);
			rec_add(r, rc == 0 ? "EOF (connection closed)" : "TIMEOUT");
			r->eof = rc == 0;
			r->timeout = rc != 0;
			return false;
		}
		record_msg(&m, r);
		if (type != 0 && m.type == type)
			return true;
	}
}

/* Append the prebuilt message(s) of SRC to DST. */
static void append(struct h_wbuf *dst, const struct h_wbuf *src)
{
	if (dst->n + src->n > dst->cap) {
		dst->cap = (dst->n + src->n) * 2;
		dst->b = realloc(dst->b, dst->cap);
		if (dst->b == NULL)
			h_bail("out of memory");
	}
	memcpy(dst->b + dst->n, src->b, src->n);
	dst->n += src->n;
}

/* Run case C on a fresh connection to PORT/DB; the normalised record (caller frees). */
static char *run_case(const struct dcase *c, int port, const char *db)
{
	const char *kv[] = {"user", "trustuser", "database", db, NULL};
	struct record r = {0};
	struct h_conn conn;
	struct h_wbuf w = {0};
	char sqlstate[6];
	bool ok = true;

	if (!h_conn_login(&conn, port, kv, NULL, sqlstate, NULL, NULL)) {
		rec_add(&r, h_fmt("LOGIN FAILED %s", sqlstate));
		return r.text;
	}
	for (int i = 0; ok && i < c->n_steps; i++) {
		const struct step *s = &c->steps[i];

		switch (s->kind) {
		case ST_MSG:
			append(&w, &s->msg);
			break;
		case ST_GEN:
			for (long k = 1; k <= s->n; k++) {
				char row[96];
				int n = snprintf(row, sizeof(row), "%ld\tpayload-%ld\n", k, k);

				h_wb_copy_data(&w, row, (size_t)n);
			}
			break;
		case ST_WAIT:
			ok = h_wb_send(conn.fd, &w) && read_until(&conn, &r, s->type, 0, 60000);
			break;
		}
	}
	if (ok && h_wb_send(conn.fd, &w))
		read_until(&conn, &r, 0, c->n_ready, 60000);
	rec_flush_fold(&r);
	h_wb_free(&w);
	if (!r.eof) {
		struct h_wbuf x = {0};

		h_wb_msg(&x, 'X', NULL, 0);
		h_wb_send(conn.fd, &x);
		h_wb_free(&x);
	}
	h_conn_close(&conn);
	if (r.text == NULL)
		rec_add(&r, "(nothing)");
	return r.text;
}

/* Login ParameterStatus lines, sorted, as one string. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct params {
	const char *v[64];
	int n;
};

static void on_login_msg(const struct h_bmsg *m, void *arg)
{
	struct params *p = arg;

	if (m->type == 'S' && p->n < 64)
		p->v[p->n++] = h_fmt("%s=%s", m->body, m->body + strlen(m->body) + 1);
}

static const char *login_params(int port, const char *db)
{
	const char *kv[] = {"user", "trustuser", "database", db, NULL};
	struct params p = {.n = 0};
	struct h_conn conn;
	const char *out = "";

	if (!h_conn_login(&conn, port, kv, NULL, NULL, on_login_msg, &p))
		return "LOGIN FAILED";
	h_conn_close(&conn);
	qsort(p.v, (size_t)p.n, sizeof(p.v[0]), cmp_str);
	for (int i = 0; i < p.n; i++)
		out = h_fmt("%s%s%s", out, i ? ", " : "", p.v[i]);
	return out;
}

/* Print where A and B (newline-separated) first differ, with some context. */
static void show_diff(const char *a, const char *b)
{
	int line = 0;
	const char *pa = a, *pb = b;

	while (*pa && *pb) {
		const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
		size_t la = ea ? (size_t)(ea - pa) : strlen(pa);
		size_t lb = eb ? (size_t)(eb - pb) : strlen(pb);

		if (la != lb || memcmp(pa, pb, la) != 0)
			break;
		line++;
		pa += la + (ea ? 1 : 0);
		pb += lb + (eb ? 1 : 0);
	}
	tap_diag("first difference at message %d", line + 1);
	tap_diag("direct:");
	for (int i = 0; i < 6 && *pa; i++) {
		const char *e = strchr(pa, '\n');
		size_t l = e ? (size_t)(e - pa) : strlen(pa);

		tap_diag("    %.*s", (int)(l > 300 ? 300 : l), pa);
		pa += l + (e ? 1 : 0);
	}
	tap_diag("through pglease:");
	for (int i = 0; i < 6 && *pb; i++) {
		const char *e = strchr(pb, '\n');
		size_t l = e ? (size_t)(e - pb) : strlen(pb);

		tap_diag("    %.*s", (int)(l > 300 ? 300 : l), pb);
		pb += l + (e ? 1 : 0);
	}
}

static bool selected(const struct dcase *c)
{
	const char *only = getenv("PGL_DIFF_CASE");

	return only == NULL || *only == '\0' || strstr(c->name, only) != NULL;
}

/* Direct run of every case (skipping nostmt ones when STMT); NULL for skipped. */
static char **run_direct(const char *db, bool stmt, int *incomplete)
{
	char **out = calloc((size_t)n_cases, sizeof(*out));

	if (out == NULL)
		h_bail("out of memory");
	for (int i = 0; i < n_cases; i++) {
		if (!selected(&cases[i]) || (stmt && cases[i].nostmt))
			continue;
		out[i] = run_case(&cases[i], h_pg_port(), db);
		if (strstr(out[i], "TIMEOUT") || strstr(out[i], "EOF (") ||
		    strstr(out[i], "LOGIN FAILED")) {
			(*incomplete)++;
			tap_diag("direct run of case %s (line %d) did not complete:", cases[i].name,
			         cases[i].line);
			tap_diag("%s", out[i]);
		}
	}
	return out;
}

static void run_pooled(const char *mode, const char *db, char **direct, bool stmt)
{
	for (int i = 0; i < n_cases; i++) {
		char *got;

		if (!selected(&cases[i]) || (stmt && cases[i].nostmt))
			continue;
		got = run_case(&cases[i], h_lease_port(), db);
		if (!h_ok(strcmp(got, direct[i]) == 0, "%s: %s", mode, cases[i].name))
			show_diff(direct[i], got);
		free(got);
	}
}

int main(void)
{
	const char *path = PGL_SRCDIR "/test/diff_cases.txt";
	const char *const dbs[] = {"diff_direct", "diff_direct_stmt", "diff_session", "diff_txn",
	                           "diff_stmt"};
	char **direct, **direct_stmt;
	int incomplete = 0, n_stmt = 0;
	const char *want;

	h_init(1200);
	h_pg_start();
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
		if (!h_pg_exec(h_fmt("CREATE DATABASE %s OWNER trustuser", dbs[i])))
			h_bail("cannot create database %s", dbs[i]);
	load_cases(path);
	for (int i = 0; i < n_cases; i++)
		n_stmt += !cases[i].nostmt;
	h_ok(n_cases >= 60, "diff_cases.txt: %d cases (%d also in statement mode)", n_cases,
	     n_stmt);

	h_lease_config(
	    "trust",
	    h_fmt("%s%s%s",
	          h_db_line("diff_session", "diff_session", "pool_size=2 pool_mode=session"),
	          h_db_line("diff_txn", "diff_txn", "pool_size=2 pool_mode=transaction"),
	          h_db_line("diff_stmt", "diff_stmt", "pool_size=2 pool_mode=statement")),
	    "max_client_conn = 50\n", h_userlist_line("trustuser", "trustpw"));
	h_lease_start();

	direct = run_direct("diff_direct", false, &incomplete);
	direct_stmt = run_direct("diff_direct_stmt", true, &incomplete);
	h_is_int(incomplete, 0, "direct: every case completes with its ReadyForQuery messages");

	want = login_params(h_pg_port(), "diff_direct");
	h_is_str(login_params(h_lease_port(), "diff_session"), want,
	         "session: login ParameterStatus set equals PostgreSQL's");
	h_is_str(login_params(h_lease_port(), "diff_txn"), want,
	         "transaction: login ParameterStatus set equals PostgreSQL's");
	h_is_str(login_params(h_lease_port(), "diff_stmt"), want,
	         "statement: login ParameterStatus set equals PostgreSQL's");

	run_pooled("session", "diff_session", direct, false);
	run_pooled("transaction", "diff_txn", direct, false);
	run_pooled("statement", "diff_stmt", direct_stmt, true);

	for (int i = 0; i < n_cases; i++) {
		free(direct[i]);
		free(direct_stmt[i]);
		for (int k = 0; k < cases[i].n_steps; k++)
			h_wb_free(&cases[i].steps[k].msg);
		free(cases[i].steps);
	}
	free(direct);
	free(direct_stmt);
	free(cases);

	h_ok(h_lease_alive(), "end: pglease is alive");
	h_lease_stop_ok("end");
	return tap_done();
}
