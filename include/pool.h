/*
 * pool: server connections per (database, user), leased to clients.
 *
 * A pool owns lists of its servers by state (idle: most recently used first,
 * so the warmest is leased and the coldest ages out; active; other: being
 * connected, logging in, or reset) and of its clients (waiting for a lease in
 * FIFO order, waiting for the welcome, logged in).  Every server of a pool
 * counts once in n_servers from launch to close; pool_server_gone() is the
 * one place that gives that slot back.
 */
#ifndef PGL_POOL_H
#define PGL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "list.h"
#include "scram.h"
#include "stats.h"
#include "varcache.h"

struct client;
struct server;

/* Counters shared by every pool of one database name (db limits) or one user
 * name (user limits): server connections and logged-in clients. */
struct pool_limit {
	struct list node; /* in rt.db_limits or rt.user_limits */
	unsigned servers;
	unsigned clients;
	char name[];
};

struct pool_param {
	char *name;
	char *value;
};

struct pool {
	struct list node;  /* in rt.pools */
	char *db_name;     /* the [databases] name the clients asked for */
	char *user;        /* user the server connections log in as */
	bool forced_user;  /* user= given in the database entry */
	char *replication; /* replication connections: the startup value; else NULL */

	/* target, copied from the database entry */
	char *host; /* NULL: default unix socket dir */
	int port;
	char *target_db;
	char *password; /* from the database entry, or NULL */
	int pool_size;
	int max_overflow;
	int reserve_pool_size;
	int min_pool_size;
	int max_db_connections;   /* 0: unlimited */
	int max_user_connections; /* 0: unlimited */
	enum pool_mode mode;
	bool autodb;         /* made from the "*" entry: freed after autodb_idle_timeout */
	bool dying;          /* being freed: open nothing more */
	uint64_t idle_since; /* autodb: when it last had no clients */

	struct pool_limit *db_limit;   /* this database's server count */
	struct pool_limit *user_limit; /* this login user's server count */

	struct list idle_servers;
	struct list active_servers;
	struct list other_servers;
	struct list waiting_clients;
	struct list welcome_clients;
	struct list clients; /* logged in: idle or active */
	unsigned n_servers;
	unsigned n_waiting; /* clients in waiting_clients (kept by client_set_state) */
	uint64_t
	    login_fail_time;   /* last failed server login (no relaunch for server_login_retry) */
	char login_error[256]; /* its message, told to clients during the retry wait */
	char login_sqlstate[6];

	/* what a new client is told at login: the first server's ParameterStatus */
	struct pool_param *params;
	size_t n_params;
	struct varcache defaults;
	bool have_welcome;

	/* SCRAM passthrough: ClientKey recovered from a client's login */
	bool have_scram_key;
	uint8_t scram_client_key[SCRAM_KEY_LEN];
	struct scram_secret scram_secret;

	struct pool_stats stats;
};

/* Find or create the pool for database entry DB as asked under DB_NAME by
 * CLIENT_USER.  REPLICATION (the client's "replication" startup value, or
 * NULL) selects a separate pool of replication connections: session
 * pooling, never reset or reused.  NULL on out-of-memory. */
struct pool *pool_get(const char *db_name, const struct cfg_db *db, const char *client_user,
                      const char *replication);
/* Take the settings of database entry DB again (RELOAD).  True when the
 * target (host, port, dbname, password) changed: the caller retires the
 * servers connected to the old one. */
bool pool_reconfigure(struct pool *pool, const struct cfg_db *db);
/* A server of POOL is being opened: take its slot in every limit.  The one
 * place slots are taken; pool_server_gone() is the one place they return. */
void pool_slot_take(struct pool *pool);
/* Count a logged-in CLIENT against the client limits of its pool's database
 * and its user.  False (and the client failed with 53300) when over. */
bool pool_client_admit(struct pool *pool, struct client *client)
    __attribute__((warn_unused_result));
/* Give back what pool_client_admit() took. */
void pool_client_gone(struct client *client);
/* Open servers while clients wait for more than are coming, within the limits. */
void pool_launch(struct pool *pool);
/* Free POOL when nothing uses it (autodb_idle_timeout); true when freed. */
bool pool_try_free(struct pool *pool);
/* Has idle SERVER sat long enough to need server_check_query before use
 * (SHOW POOLS sv_used)? */
bool pool_server_needs_check(const struct server *server, uint64_t now);
/* Lease a server to CLIENT: true when linked at once, false when the client
 * now waits (a server is launched if the pool has room). */
bool pool_lease(struct pool *pool, struct client *client);
/* Ask for the welcome parameters: launches a server if none is coming. */
void pool_want_welcome(struct pool *pool);
/* Take back SERVER from its client (client left or lease ended); the server
 * is reset or closed as needed and then serves the next waiting client. */
void pool_release(struct server *server, bool client_gone);
/* SERVER finished login or reset: hand it to a waiting client or idle it. */
void pool_server_ready(struct server *server);
/* SERVER is closed: give back its slot, launch a replacement if clients wait. */
void pool_server_gone(struct server *server);
/* Login of a server failed: tell every client waiting on the pool. */
void pool_login_failed(struct pool *pool, const char *sqlstate, const char *msg);
/* Remember the first server's ParameterStatus values as the pool's welcome. */
bool pool_set_welcome(struct pool *pool, const struct pool_param *params, size_t n)
    __attribute__((warn_unused_result));
/* Close every server and free every pool (shutdown). */
void pool_free_all(void);

#endif
