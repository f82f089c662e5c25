/* intern: a hash of refcounted strings, addressed by a dense 16-bit id. */
#include "intern.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 1024
#define MAX_IDS 65535

struct istr {
	struct istr *next;
	uint32_t refs;
	uint32_t hash;
	uint16_t id;
	char s[];
};

static struct istr *buckets[BUCKETS];
static struct istr **by_id; /* by_id[id]; slot 0 unused */
static uint16_t *free_ids;  /* recycled ids */
static unsigned n_free, cap_ids, next_id = 1, live;

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static uint16_t take_id(void)
{
	if (n_free > 0)
		return free_ids[--n_free];
	if (next_id > MAX_IDS)
		return 0;
	if (next_id >= cap_ids) {
		unsigned cap = cap_ids ? cap_ids * 2 : 256;
		struct istr **nb = realloc(by_id, cap * sizeof(*nb));
		uint16_t *nf;

		if (nb == NULL)
			return 0;
		by_id = nb;
		nf = realloc(free_ids, cap * sizeof(*nf));
		if (nf == NULL)
			return 0;
		free_ids = nf;
		cap_ids = cap;
	}
	return (uint16_t)next_id++;
}

uint16_t intern_id(const char *s)
{
	uint32_t h = str_hash(s);
	struct istr **slot = &buckets[h % BUCKETS], *e;
	size_t len;
	uint16_t id;

	for (e = *slot; e != NULL; e = e->next) {
		if (e->hash == h && strcmp(e->s, s) == 0) {
			e->refs++;
			return e->id;
		}
	}
	id = take_id();
	if (id == 0)
		return 0;
	len = strlen(s);
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL) {
		free_ids[n_free++] = id;
		return 0;
	}
	e->refs = 1;
	e->hash = h;
	e->id = id;
	memcpy(e->s, s, len + 1);
	e->next = *slot;
	*slot = e;
	by_id[id] = e;
	live++;
	return id;
}

const char *intern_str(uint16_t id)
{
	return id != INTERN_NONE ? by_id[id]->s : NULL;
}

void intern_put_id(uint16_t id)
{
	struct istr *e, **slot;

	if (id == INTERN_NONE)
		return;
	e = by_id[id];
	if (--e->refs > 0)
		return;
	for (slot = &buckets[e->hash % BUCKETS]; *slot != e; slot = &(*slot)->next)
		;
	*slot = e->next;
	by_id[id] = NULL;
	free_ids[n_free++] = id;
	live--;
	free(e);
	if (live == 0) {
		/* Everything released (shutdown): give the tables back too. */
		free(by_id);
		free(free_ids);
		by_id = NULL;
		free_ids = NULL;
		n_free = cap_ids = 0;
		next_id = 1;
	}
}

const char *intern_dup(const char *s)
{
	return intern_str(intern_id(s));
}

void intern_free(const char *s)
{
	if (s != NULL)
		intern_put_id(
		    ((const struct istr *)(const void *)(s - offsetof(struct istr, s)))->id);
}

unsigned intern_count(void)
{
	return live;
}
