/*
 * runtime: the one global of the process -- the event base, the current
 * config (immutable, replaced whole on reload), the auth_file, and the
 * top-level lists.  Everything else hangs off these.
 */
#ifndef PGL_RUNTIME_H
#define PGL_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"

struct event_base;
struct event;
struct config;
struct auth_file;

struct runtime {
	struct event_base *base;
	struct config *cfg;
	struct auth_file *auth;
	const char *config_path;

	struct list pools;         /* struct pool, by node */
	struct list db_limits;     /* struct pool_limit per database name */
	struct list user_limits;   /* struct pool_limit per user name */
	struct list login_clients; /* clients still logging in */
	struct list admin_clients; /* logged in to the admin console */
	struct list free_clients;  /* closed, freed at a safe point */
	struct list free_servers;  /* closed, freed at a safe point */
	struct event *ev_reap;     /* runs the deferred frees */

	unsigned n_clients; /* every accepted client connection */
	uint64_t next_id;   /* connection ids for log lines */
	bool shutting_down;
};

extern struct runtime rt;

/* Initialise the lists (once, at start). */
void rt_init(void);
/* Make sure the deferred-free pass runs after the current callbacks. */
void rt_schedule_reap(void);
/* Monotonic time in microseconds. */
uint64_t rt_now_usec(void);

#endif
