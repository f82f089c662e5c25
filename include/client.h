/*
 * client: one connection from an application to pglease.  Startup packet,
 * SSL/GSS refusal, cancel requests, authentication against the auth_file,
 * the welcome, then forwarding queries to a leased server.
 */
#ifndef PGL_CLIENT_H
#define PGL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "net.h"
#include "prepared.h"
#include "sbuf.h"
#include "varcache.h"

struct pool;
struct server;
struct scram_server;

enum client_state {
	CL_LOGIN,        /* startup packet and authentication */
	CL_WELCOME_WAIT, /* authenticated, waiting for the pool's first server */
	CL_IDLE,         /* logged in, no server leased */
	CL_WAITING,      /* a message arrived, waiting for a lease */
	CL_ACTIVE,       /* a server is leased */
	CL_CLOSED,       /* closed, waiting to be freed */
};

struct client_auth;

struct client {
	struct sbuf sb;
	struct list node;         /* rt.login_clients, a pool list, or rt.free_clients */
	struct client *hash_next; /* cancel key table chain */
	struct pool *pool;
	struct server *server;
	uint64_t id;
	enum client_state state;

	bool is_unix;
	bool over_limit;      /* accepted past max_client_conn: refuse after startup */
	bool admin;           /* logged in to the admin console */
	bool admin_readonly;  /* stats_users: SHOW only */
	bool admitted;        /* counted by pool_client_admit() */
	bool cancel_pending;  /* a CancelRequest connection waiting for its cancel */
	bool skip_to_sync;    /* pglease sent an error in a batch: skip to its Sync */
	bool wait_notified;   /* got the query_wait_notify NOTICE */
	bool hashed;          /* in the cancel key table */
	bool auth_ok_pending; /* AuthenticationOk not sent yet: goes with the welcome */
	uint8_t cancel_key[8];

	union net_addr addr; /* the peer (family AF_UNIX on the unix socket) */
	const char *user;    /* interned (intern.h) */
	const char *dbname;  /* interned */
	char *replication;   /* "replication" startup value (true, database), or NULL */
	struct varcache vars;
	struct pmap *pmap;        /* named prepared statements, created on first use */
	struct client_auth *auth; /* only while authenticating */

	uint64_t connect_time;
	uint64_t wait_start;
	uint64_t last_active; /* last request batch started (client_idle_timeout) */
};

/* Take over an accepted socket. */
void client_accept(int fd, const struct sockaddr_storage *addr, socklen_t len, bool is_unix);
/* A server was leased to CLIENT (called by the pool): resume forwarding. */
void client_leased(struct client *client, struct server *server);
/* The pool has its welcome parameters: finish CLIENT's login. */
void client_welcome(struct client *client);
/* Send an error and close. */
void client_fail(struct client *client, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Close now (memory freed later). */
void client_close(struct client *client, const char *reason);
/* Find the client owning a cancel key, or NULL. */
struct client *client_by_cancel_key(const uint8_t key[8]);
/* Free closed clients (deferred-free pass). */
void client_reap(void);
/* Close every client (shutdown). */
void client_close_all(void);
/* Move to STATE and to the list that goes with it. */
void client_set_state(struct client *client, enum client_state state);
/* Name of a state for logs. */
const char *client_state_name(enum client_state state);

#endif
