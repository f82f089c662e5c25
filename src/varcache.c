/* varcache: tracked session parameters. */
#include "varcache.h"

#include "intern.h"

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

const char *varcache_get(const struct varcache *vc, int id)
{
	return intern_str(vc->id[id]);
}

bool varcache_set(struct varcache *vc, int id, const char *value)
{
	uint16_t v;

	if (vc->id[id] != INTERN_NONE && strcmp(intern_str(vc->id[id]), value) == 0)
		return true;
	v = intern_id(value);
	if (v == INTERN_NONE)
		return false;
	intern_put_id(vc->id[id]);
	vc->id[id] = v;
	return true;
}

bool varcache_fill(struct varcache *dst, const struct varcache *src)
{
	int i;

	for (i = 0; i < n_vars; i++)
		if (dst->id[i] == INTERN_NONE && src->id[i] != INTERN_NONE &&
		    !varcache_set(dst, i, intern_str(src->id[i])))
			return false;
	return true;
}

void varcache_clear(struct varcache *vc)
{
	int i;

	for (i = 0; i < n_vars; i++) {
		intern_put_id(vc->id[i]);
		vc->id[i] = INTERN_NONE;
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
		const char *v = intern_str(want->id[i]);

		/* Interned: equal values have the same id. */
		if (v == NULL || have->id[i] == want->id[i])
			continue;
		/* The server reports this one; SETting it is refused. */
		if (i == VAR_STD_STRINGS && have->id[i] == INTERN_NONE)
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
