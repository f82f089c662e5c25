/* prepared: registry, client maps and server caches of named statements. */
#include "prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "runtime.h"

#define REG_BUCKETS 1024

static struct pstmt *registry[REG_BUCKETS];
static size_t registry_count;
static uint64_t next_id;

static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

struct pstmt *pstmt_get(const uint8_t *body, size_t len)
{
	uint64_t h = hash_bytes(body, len);
	struct pstmt **slot = &registry[h % REG_BUCKETS], *ps;

	for (ps = *slot; ps != NULL; ps = ps->hnext) {
		if (ps->hash == h && ps->body_len == len && memcmp(ps->body, body, len) == 0) {
			ps->refs++;
			return ps;
		}
	}
	ps = calloc(1, sizeof(*ps));
	if (ps == NULL)
		return NULL;
	ps->body = malloc(len ? len : 1);
	if (ps->body == NULL) {
		free(ps);
		return NULL;
	}
	memcpy(ps->body, body, len);
	ps->body_len = len;
	ps->hash = h;
	ps->id = ++next_id;
	ps->refs = 1;
	snprintf(ps->sname, sizeof(ps->sname), "PGL_%llu", (unsigned long long)ps->id);
	ps->hnext = *slot;
	*slot = ps;
	registry_count++;
	return ps;
}

void pstmt_put(struct pstmt *ps)
{
	struct pstmt **slot;

	if (ps == NULL || --ps->refs > 0)
		return;
	for (slot = &registry[ps->hash % REG_BUCKETS]; *slot != ps; slot = &(*slot)->hnext)
		;
	*slot = ps->hnext;
	registry_count--;
	free(ps->body);
	free(ps);
}

size_t pstmt_count(void)
{
	return registry_count;
}

/* ---- client maps ---- */

struct pmap_entry {
	struct pmap_entry *next;
	struct pstmt *ps;
	char name[];
};

static size_t name_bucket(const struct pmap *m, const char *name)
{
	return hash_bytes((const uint8_t *)name, strlen(name)) % m->n_buckets;
}

static bool pmap_grow(struct pmap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 4 : 16, i;
	struct pmap_entry **nb = calloc(n, sizeof(*nb));
	struct pmap old = *m;

	if (nb == NULL)
		return false;
	m->buckets = nb;
	m->n_buckets = n;
	for (i = 0; i < old.n_buckets; i++) {
		struct pmap_entry *e = old.buckets[i], *next;

		for (; e != NULL; e = next) {
			size_t b = name_bucket(m, e->name);

			next = e->next;
			e->next = nb[b];
			nb[b] = e;
		}
	}
	free(old.buckets);
	return true;
}

bool pmap_set(struct pmap *m, const char *name, struct pstmt *ps)
{
	struct pmap_entry *e;
	size_t b, len = strlen(name);

	if ((m->n_buckets == 0 || m->count >= m->n_buckets * 2) && !pmap_grow(m) &&
	    m->n_buckets == 0) {
		pstmt_put(ps);
		return false;
	}
	b = name_bucket(m, name);
	for (e = m->buckets[b]; e != NULL; e = e->next) {
		if (strcmp(e->name, name) == 0) {
			pstmt_put(e->ps);
			e->ps = ps;
			return true;
		}
	}
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL) {
		pstmt_put(ps);
		return false;
	}
	memcpy(e->name, name, len + 1);
	e->ps = ps;
	e->next = m->buckets[b];
	m->buckets[b] = e;
	m->count++;
	return true;
}

struct pstmt *pmap_find(const struct pmap *m, const char *name)
{
	struct pmap_entry *e;

	if (m == NULL || m->n_buckets == 0)
		return NULL;
	for (e = m->buckets[name_bucket(m, name)]; e != NULL; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e->ps;
	return NULL;
}

bool pmap_remove(struct pmap *m, const char *name)
{
	struct pmap_entry **p, *e;

	if (m == NULL || m->n_buckets == 0)
		return false;
	for (p = &m->buckets[name_bucket(m, name)]; (e = *p) != NULL; p = &e->next) {
		if (strcmp(e->name, name) == 0) {
			*p = e->next;
			pstmt_put(e->ps);
			free(e);
			m->count--;
			return true;
		}
	}
	return false;
}

void pmap_clear(struct pmap *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n_buckets; i++) {
		struct pmap_entry *e = m->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			pstmt_put(e->ps);
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = 0;
	m->count = 0;
}

struct pmap *pmap_new(void)
{
	return calloc(1, sizeof(struct pmap));
}

void pmap_free(struct pmap *m)
{
	if (m == NULL)
		return;
	pmap_clear(m);
	free(m);
}

/* ---- server caches ---- */

struct pcache_entry {
	struct list node;
	struct pstmt *ps;
};

void pcache_init(struct pcache *c)
{
	list_init(&c->lru);
	c->count = 0;
}

static struct pcache_entry *pcache_find(struct pcache *c, const struct pstmt *ps)
{
	struct list *it;

	if (c->lru.next == NULL)
		return NULL;
	for (it = c->lru.next; it != &c->lru; it = it->next) {
		struct pcache_entry *e = list_entry(it, struct pcache_entry, node);

		if (e->ps == ps)
			return e;
	}
	return NULL;
}

bool pcache_has(struct pcache *c, const struct pstmt *ps)
{
	struct pcache_entry *e = pcache_find(c, ps);

	if (e == NULL)
		return false;
	if (c->lru.next != &e->node) {
		list_del(&e->node);
		list_prepend(&c->lru, &e->node);
	}
	return true;
}

bool pcache_add(struct pcache *c, struct pstmt *ps, size_t limit, struct pstmt **evicted)
{
	struct pcache_entry *e = malloc(sizeof(*e));

	*evicted = NULL;
	if (e == NULL)
		return false;
	if (c->lru.next == NULL)
		pcache_init(c);
	ps->refs++;
	e->ps = ps;
	list_prepend(&c->lru, &e->node);
	c->count++;
	if (limit > 0 && c->count > limit) {
		struct pcache_entry *old = list_entry(c->lru.prev, struct pcache_entry, node);

		list_del(&old->node);
		c->count--;
		*evicted = old->ps;
		free(old);
	}
	return true;
}

void pcache_remove(struct pcache *c, const struct pstmt *ps)
{
	struct pcache_entry *e = pcache_find(c, ps);

	if (e == NULL)
		return;
	list_del(&e->node);
	c->count--;
	pstmt_put(e->ps);
	free(e);
}

void pcache_clear(struct pcache *c)
{
	struct list *n;

	if (c->lru.next == NULL)
		return;
	while ((n = list_pop(&c->lru)) != NULL) {
		struct pcache_entry *e = list_entry(n, struct pcache_entry, node);

		pstmt_put(e->ps);
		free(e);
	}
	c->count = 0;
}

/* ---- rewriting a client's messages ---- */

#include "client.h"
#include "pool.h"
#include "server.h"

/* Send Parse of PS under its server name. */
static bool send_parse(struct server *s, const struct pstmt *ps)
{
	struct pkt_writer w;
	bool ok;

	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_Parse);
	pkt_put_str(&w, ps->sname);
	pkt_put_bytes(&w, ps->body, ps->body_len);
	pkt_end(&w);
	ok = pkt_ok(&w) && sbuf_write(&s->sb, w.buf, w.len);
	pkt_writer_free(&w);
	return ok;
}

/* Record PS as prepared on S; Close the statement that falls out of the cache. */
static bool cache_add(struct server *s, struct pstmt *ps)
{
	struct pstmt *evicted;
	struct pkt_writer w;
	bool ok;

	if (!pcache_add(&s->pcache, ps, (size_t)rt.cfg->max_prepared_statements, &evicted))
		return false;
	if (evicted == NULL)
		return true;
	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_Close);
	pkt_put_u8(&w, 'S');
	pkt_put_str(&w, evicted->sname);
	pkt_end(&w);
	ok = pkt_ok(&w) && sbuf_write(&s->sb, w.buf, w.len) &&
	     server_push_req(s, PqMsg_Close, REQ_HIDE, NULL);
	pkt_writer_free(&w);
	pstmt_put(evicted);
	return ok;
}

/* Make sure S has PS prepared, with a hidden Parse when it has not. */
static bool ensure_prepared(struct server *s, struct pstmt *ps)
{
	if (pcache_has(&s->pcache, ps))
		return true;
	s->unsynced = true;
	return send_parse(s, ps) && server_push_req(s, PqMsg_Parse, REQ_HIDE, ps) &&
	       cache_add(s, ps);
}

static enum sbuf_action oom(struct client *c)
{
	client_fail(c, "53200", "out of memory");
	return SBUF_STOP;
}

static bool drops_all_statements(const char *q);

static enum sbuf_action on_parse(struct client *c, struct server *s, const struct pkt_hdr *hdr,
                                 const uint8_t *data, size_t avail)
{
	struct pkt_reader r;
	const char *name;
	struct pstmt *ps;

	if (avail < hdr->len)
		return SBUF_NEED_FULL;
	pkt_reader_init(&r, data + 5, hdr->len - 5);
	name = pkt_get_str(&r);
	if (!r.bad) {
		struct pkt_reader q = r;

		/* DEALLOCATE ALL / DISCARD ALL through the extended protocol. */
		if (drops_all_statements(pkt_get_str(&q)) && !q.bad) {
			pmap_clear(c->pmap);
			pcache_clear(&s->pcache);
		}
	}
	if (r.bad || name[0] == '\0')
		return server_note_request(s, hdr->type, hdr->len, 0, NULL) ? SBUF_FORWARD : oom(c);
	if (pmap_find(c->pmap, name) != NULL) {
		/* PostgreSQL refuses it and skips the rest of the batch; so do we. */
		c->skip_to_sync = true;
		if (!server_note_request(s, hdr->type, hdr->len, REQ_SYNTH, NULL) ||
		    !server_synth_duplicate(s, name))
			return oom(c);
		return SBUF_CONSUMED;
	}
	ps = pstmt_get(r.p + r.pos, r.len - r.pos);
	if (c->pmap == NULL && (c->pmap = pmap_new()) == NULL) {
		pstmt_put(ps);
		return oom(c);
	}
	if (ps == NULL || !pmap_set(c->pmap, name, ps))
		return oom(c);
	if (pcache_has(&s->pcache, ps)) {
		if (!server_note_request(s, hdr->type, hdr->len, REQ_SYNTH, NULL) ||
		    !server_synth_reply(s, PqMsg_Parse))
			return oom(c);
		return SBUF_CONSUMED;
	}
	if (!send_parse(s, ps) || !server_note_request(s, hdr->type, hdr->len, 0, ps) ||
	    !cache_add(s, ps))
		return oom(c);
	return SBUF_CONSUMED;
}

/* Bind: rewrite the statement name, stream the parameters unchanged. */
static enum sbuf_action on_bind(struct client *c, struct server *s, const struct pkt_hdr *hdr,
                                const uint8_t *data, size_t avail)
{
	const uint8_t *body = data + 5, *nul1, *nul2 = NULL;
	size_t have = avail - 5, plen, slen, rest, snlen;
	struct pstmt *ps = NULL;
	struct pkt_writer w;
	bool ok;

	nul1 = memchr(body, '\0', have);
	if (nul1 != NULL)
		nul2 = memchr(nul1 + 1, '\0', have - (size_t)(nul1 + 1 - body));
	if (nul2 == NULL) {
		if (avail < hdr->len && avail < 5 + 2048) {
			c->sb.want = 5 + 2048;
			return SBUF_NEED_FULL;
		}
	} else if (nul2 > nul1 + 1) {
		ps = pmap_find(c->pmap, (const char *)(nul1 + 1));
	}
	if (ps == NULL)
		return server_note_request(s, hdr->type, hdr->len, 0, NULL) ? SBUF_FORWARD : oom(c);
	plen = (size_t)(nul1 - body);
	slen = (size_t)(nul2 - nul1 - 1);
	rest = hdr->len - 5 - (plen + 1) - (slen + 1);
	snlen = strlen(ps->sname);
	if (!ensure_prepared(s, ps))
		return oom(c);
	pkt_writer_init(&w);
	pkt_put_u8(&w, PqMsg_Bind);
	pkt_put_u32(&w, (uint32_t)(4 + plen + 1 + snlen + 1 + rest));
	pkt_put_bytes(&w, body, plen + 1);
	pkt_put_str(&w, ps->sname);
	ok = pkt_ok(&w) && sbuf_write(&s->sb, w.buf, w.len);
	pkt_writer_free(&w);
	if (!ok || !server_note_request(s, hdr->type, hdr->len, 0, ps) ||
	    !server_name_last_req(s, (const char *)(nul1 + 1)))
		return oom(c);
	c->sb.fwd_skip = (uint32_t)(5 + plen + 1 + slen + 1);
	return SBUF_FORWARD;
}

/* Describe or Close of a statement ('S') by name. */
static enum sbuf_action on_describe_close(struct client *c, struct server *s,
                                          const struct pkt_hdr *hdr, const uint8_t *data,
                                          size_t avail)
{
	struct pkt_reader r;
	uint8_t kind;
	const char *name;
	struct pstmt *ps = NULL;
	struct pkt_writer w;
	bool ok;

	if (avail < hdr->len)
		return SBUF_NEED_FULL;
	pkt_reader_init(&r, data + 5, hdr->len - 5);
	kind = pkt_get_u8(&r);
	name = pkt_get_str(&r);
	if (!r.bad && kind == 'S' && name[0] != '\0')
		ps = pmap_find(c->pmap, name);
	if (ps == NULL)
		return server_note_request(s, hdr->type, hdr->len, 0, NULL) ? SBUF_FORWARD : oom(c);
	if (hdr->type == PqMsg_Close) {
		/* The server keeps it for whoever prepares the same text next. */
		pmap_remove(c->pmap, name);
		if (!server_note_request(s, hdr->type, hdr->len, REQ_SYNTH, NULL) ||
		    !server_synth_reply(s, PqMsg_Close))
			return oom(c);
		return SBUF_CONSUMED;
	}
	if (!ensure_prepared(s, ps))
		return oom(c);
	pkt_writer_init(&w);
	pkt_begin(&w, PqMsg_Describe);
	pkt_put_u8(&w, 'S');
	pkt_put_str(&w, ps->sname);
	pkt_end(&w);
	ok = pkt_ok(&w) && sbuf_write(&s->sb, w.buf, w.len);
	pkt_writer_free(&w);
	if (!ok || !server_note_request(s, hdr->type, hdr->len, 0, ps) ||
	    !server_name_last_req(s, name))
		return oom(c);
	return SBUF_CONSUMED;
}

/* "DEALLOCATE ALL" or "DISCARD ALL", any case, surrounding blanks and ';'. */
static bool drops_all_statements(const char *q)
{
	static const char *const forms[] = {"deallocate all", "discard all"};
	size_t i, n;

	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
		q++;
	if (*q != 'd' && *q != 'D')
		return false;
	for (i = 0; i < 2; i++) {
		n = strlen(forms[i]);
		if (strncasecmp(q, forms[i], n) == 0) {
			const char *t = q + n;

			while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r' || *t == ';')
				t++;
			if (*t == '\0')
				return true;
		}
	}
	return false;
}

static enum sbuf_action on_query(struct client *c, struct server *s, const struct pkt_hdr *hdr,
                                 const uint8_t *data, size_t avail)
{
	if (hdr->len <= 64) {
		if (avail < hdr->len)
			return SBUF_NEED_FULL;
		if (data[hdr->len - 1] == '\0' && drops_all_statements((const char *)data + 5)) {
			pmap_clear(c->pmap);
			pcache_clear(&s->pcache);
		}
	}
	return server_note_request(s, hdr->type, hdr->len, 0, NULL) ? SBUF_FORWARD : oom(c);
}

enum sbuf_action prepared_client_msg(struct client *c, const struct pkt_hdr *hdr,
                                     const uint8_t *data, size_t avail)
{
	struct server *s = c->server;

	switch (hdr->type) {
	case PqMsg_Parse:
		return on_parse(c, s, hdr, data, avail);
	case PqMsg_Bind:
		return on_bind(c, s, hdr, data, avail);
	case PqMsg_Describe:
	case PqMsg_Close:
		return on_describe_close(c, s, hdr, data, avail);
	case PqMsg_Query:
		return on_query(c, s, hdr, data, avail);
	default:
		return server_note_request(s, hdr->type, hdr->len, 0, NULL) ? SBUF_FORWARD : oom(c);
	}
}
