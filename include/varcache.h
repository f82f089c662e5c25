/*
 * varcache: the session parameters pglease tracks per client and per server
 * (client_encoding, DateStyle, TimeZone, IntervalStyle,
 * standard_conforming_strings, application_name).  When a client is given a
 * server whose values differ, one combined SET brings the server in line
 * before the client's first message.
 */
#ifndef PGL_VARCACHE_H
#define PGL_VARCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

enum var_id {
	VAR_CLIENT_ENCODING,
	VAR_DATESTYLE,
	VAR_TIMEZONE,
	VAR_INTERVALSTYLE,
	VAR_STD_STRINGS,
	VAR_APPNAME,
	VAR_FIXED_COUNT
};

/* Room for track_extra_parameters beyond the fixed ones. */
#define VAR_EXTRA_MAX 8
#define VAR_MAX       (VAR_FIXED_COUNT + VAR_EXTRA_MAX)

/* Values are interned (intern.h): equal strings are stored once for all
 * connections (most clients of an application send the same settings), so
 * a client's parameters cost two bytes each. */
struct varcache {
	uint16_t id[VAR_MAX]; /* INTERN_NONE: not known */
};

/* The value of parameter ID, or NULL when not known. */
const char *varcache_get(const struct varcache *vc, int id);

/* Track the parameters named in LIST (comma/space separated) as well, as
 * track_extra_parameters asks; names already tracked are skipped.  Call at
 * start-up only (ids must not change under live varcaches).  False when
 * there are more than VAR_EXTRA_MAX. */
bool varcache_configure(const char *list) __attribute__((warn_unused_result));

/* The id of a tracked parameter (case-insensitive), or -1. */
int varcache_lookup(const char *name);
/* The canonical name (as PostgreSQL reports it). */
const char *varcache_name(int id);
/* Set a value (copied); false on out-of-memory. */
bool varcache_set(struct varcache *vc, int id, const char *value)
    __attribute__((warn_unused_result));
/* Fill the values that DST does not know from SRC. */
bool varcache_fill(struct varcache *dst, const struct varcache *src)
    __attribute__((warn_unused_result));
/* Free the values. */
void varcache_clear(struct varcache *vc);
/* Append to W a Query message with SET for every value of WANT that HAVE
 * lacks or differs in; false when nothing needs setting. */
bool varcache_apply_query(const struct varcache *want, const struct varcache *have,
                          struct pkt_writer *w);

#endif
