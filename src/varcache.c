/* varcache: tracked session parameters. */
#include "varcache.h"

#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *var_names[VAR_MAX] = {
    "client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name"};
static char extra_names[VAR_EXTRA_MAX][64];
static int n_vars = VAR_FIXED_COUNT;

bool varcache_configure(const char *list)
{
	char buf[1024], *tok, *save = NULL;

	n_vars = VAR_FIXED_COUNT;
	if (list == NULL)
		return true;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (varcache_lookup(tok) >= 0)
			continue;
		if (n_vars == VAR_MAX)
			return false;
		snprintf(extra_names[n_vars - VAR_FIXED_COUNT], sizeof(extra_names[0]), "%s", tok);
		var_names[n_vars] = extra_names[n_vars - VAR_FIXED_COUNT];
		n_vars++;
	}
	return true;
}

/* ---- interned values ---- */

#define INTERN_BUCKETS 256

struct istr {
	struct istr *next;
	uint32_t refs;
	uint32_t hash;
	char s[];
};

static struct istr *interned[INTERN_BUCKETS];

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* A shared copy of S with a reference taken, or NULL on out-of-memory. */
static const char *intern(const char *s)
{
	uint32_t h = str_hash(s);
	struct istr **slot = &interned[h % INTERN_BUCKETS], *e;
	size_t len;

	for (e = *slot; e != NULL; e = e->next) {
		if (e->hash == h && strcmp(e->s, s) == 0) {
			e->refs++;
			return e->s;
		}
	}
	len = strlen(s);
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL)
		return NULL;
	e->refs = 1;
	e->hash = h;
	memcpy(e->s, s, len + 1);
	e->next = *slot;
	*slot = e;
	return e->s;
}

static void unintern(const char *s)
{
	struct istr *e, **slot;

	if (s == NULL)
		return;
	e = (struct istr *)(void *)(s - offsetof(struct istr, s));
	if (--e->refs > 0)
		return;
	for (slot = &interned[e->hash % INTERN_BUCKETS]; *slot != e; slot = &(*slot)->next)
		;
	*slot = e->next;
	free(e);
}

int varcache_lookup(const char *name)
{
	int i;

	for (i = 0; i < n_vars; i++)
		if (strcasecmp(name, var_names[i]) == 0)
			return i;
	return -1;
}

const char *varcache_name(int id)
{
	return var_names[id];
}

bool varcache_set(struct varcache *vc, int id, const char *value)
{
	const char *v;

	if (vc->val[id] != NULL && strcmp(vc->val[id], value) == 0)
		return true;
	v = intern(value);
	if (v == NULL)
		return false;
	unintern(vc->val[id]);
	vc->val[id] = v;
	return true;
}

bool varcache_fill(struct varcache *dst, const struct varcache *src)
{
	int i;

	for (i = 0; i < n_vars; i++)
		if (dst->val[i] == NULL && src->val[i] != NULL &&
		    !varcache_set(dst, i, src->val[i]))
			return false;
	return true;
}

void varcache_clear(struct varcache *vc)
{
	int i;

	for (i = 0; i < n_vars; i++) {
		unintern(vc->val[i]);
		vc->val[i] = NULL;
	}
}

/* A string literal that reads the same whatever standard_conforming_strings is. */
static void put_literal(struct pkt_writer *w, const char *v)
{
	bool backslash = strchr(v, '\\') != NULL;

	if (backslash)
		pkt_put_bytes(w, "E", 1);
	pkt_put_bytes(w, "'", 1);
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			pkt_put_bytes(w, v, 1);
		pkt_put_bytes(w, v, 1);
	}
	pkt_put_bytes(w, "'", 1);
}

bool varcache_apply_query(const struct varcache *want, const struct varcache *have,
                          struct pkt_writer *w)
{
	bool any = false;
	int i;

	for (i = 0; i < n_vars; i++) {
		const char *v = want->val[i];

		/* Interned: equal values are the same pointer. */
		if (v == NULL || have->val[i] == v)
			continue;
		/* The server reports this one; SETting it is refused. */
		if (i == VAR_STD_STRINGS && have->val[i] == NULL)
			continue;
		if (!any)
			pkt_begin(w, PqMsg_Query);
		any = true;
		pkt_put_bytes(w, "SET ", 4);
		pkt_put_bytes(w, var_names[i], strlen(var_names[i]));
		pkt_put_bytes(w, " = ", 3);
		put_literal(w, v);
		pkt_put_bytes(w, ";", 1);
	}
	if (any) {
		pkt_put_u8(w, 0);
		pkt_end(w);
	}
	return any;
}
