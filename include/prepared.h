/*
 * prepared: protocol-level named prepared statements across leases.
 *
 * In transaction and statement pooling a client's next transaction may run
 * on another server, where its named statements do not exist.  pglease keeps
 * one shared registry of statement texts (Parse body without the name),
 * each with a server-side name "PGL_<n>"; a client's names map to registry
 * entries; each server remembers which entries it has prepared (bounded by
 * max_prepared_statements, least recently used evicted).  Pure bookkeeping:
 * the protocol rewriting lives in client.c/server.c.
 */
#ifndef PGL_PREPARED_H
#define PGL_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "sbuf.h"

struct pstmt {
	uint64_t id;
	uint64_t hash;
	uint32_t refs;
	char sname[24]; /* name on the servers */
	uint8_t *body;  /* query\0 int16 nparams int32 types[] */
	size_t body_len;
	struct pstmt *hnext; /* registry chain */
};

/* The registry entry for BODY (copied when new), with a reference taken.
 * NULL on out-of-memory. */
struct pstmt *pstmt_get(const uint8_t *body, size_t len);
/* Drop a reference; the entry is freed with the last one. */
void pstmt_put(struct pstmt *ps);
/* Entries in the registry (for tests and SHOW). */
size_t pstmt_count(void);

/* A client's names -> registry entries. */
struct pmap_entry;
struct pmap {
	struct pmap_entry **buckets;
	size_t n_buckets;
	size_t count;
};

/* Map NAME to PS, taking over the caller's reference; replaces an old
 * mapping.  False on out-of-memory (the reference is dropped). */
bool pmap_set(struct pmap *m, const char *name, struct pstmt *ps)
    __attribute__((warn_unused_result));
/* The entry for NAME or NULL (no reference taken). */
struct pstmt *pmap_find(const struct pmap *m, const char *name);
/* Forget NAME; true when it was mapped. */
bool pmap_remove(struct pmap *m, const char *name);
/* Forget everything. */
void pmap_clear(struct pmap *m);
/* A new empty map (NULL on out-of-memory), and freeing one (NULL is fine). */
struct pmap *pmap_new(void);
void pmap_free(struct pmap *m);

/* What one server has prepared, most recently used first. */
struct pcache {
	struct list lru;
	size_t count;
};

void pcache_init(struct pcache *c);
/* True when PS is prepared on this server; marks it most recently used. */
bool pcache_has(struct pcache *c, const struct pstmt *ps);
/* Record PS as prepared (takes a reference).  When that makes more than
 * LIMIT, the least recently used entry is removed and returned in *EVICTED
 * with its reference, for the caller to Close on the server and put. */
bool pcache_add(struct pcache *c, struct pstmt *ps, size_t limit, struct pstmt **evicted)
    __attribute__((warn_unused_result));
/* Forget PS (a failed Parse). */
void pcache_remove(struct pcache *c, const struct pstmt *ps);
/* Forget everything (DISCARD ALL / DEALLOCATE ALL ran on the server). */
void pcache_clear(struct pcache *c);

struct client;
struct pkt_hdr;

/* A message from CLIENT, whose server is leased, in transaction or statement
 * pooling with max_prepared_statements > 0: Parse/Bind/Describe/Close of
 * named statements are rewritten to the server-side names, DEALLOCATE ALL
 * and DISCARD ALL forget the client's names.  Records the request with the
 * server and returns what the sbuf should do with the message. */
enum sbuf_action prepared_client_msg(struct client *c, const struct pkt_hdr *hdr,
                                     const uint8_t *data, size_t avail);

#endif
