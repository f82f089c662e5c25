/* varcache: tracked session parameters. */
#include "varcache.h"

#include <stdio.h>
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

bool varcache_set(struct varcache *vc, int id, const char *value)
{
	char *copy;

	if (vc->val[id] != NULL && strcmp(vc->val[id], value) == 0)
		return true;
	copy = strdup(value);
	if (copy == NULL)
		return false;
	free(vc->val[id]);
	vc->val[id] = copy;
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
		free(vc->val[i]);
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

		if (v == NULL || (have->val[i] != NULL && strcmp(have->val[i], v) == 0))
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
