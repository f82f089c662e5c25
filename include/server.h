/*
 * server: one connection from pglease to PostgreSQL.  Connect (DNS, TCP or
 * unix socket), startup and authentication, then forwarding replies to the
 * linked client while watching ReadyForQuery.
 */
#ifndef PGL_SERVER_H
#define PGL_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "prepared.h"
#include "sbuf.h"
#include "varcache.h"

struct pool;
struct client;
struct dns_req;
struct scram_client;
struct pool_param;

enum server_state {
	SV_CONNECTING, /* resolving the host or waiting for connect() */
	SV_LOGIN,      /* startup packet sent, authenticating */
	SV_IDLE,       /* logged in, in the pool's idle list */
	SV_ACTIVE,     /* linked to a client */
	SV_RESET,      /* running server_reset_query before going idle */
	SV_CHECK,      /* running server_check_query before a lease */
	SV_CLOSED,     /* closed, waiting to be freed */
};

#define REQ_HIDE  1 /* pglease's own request: its replies are swallowed */
#define REQ_SYNTH 2 /* answered by pglease when it reaches the head of the queue */

/* One request sent to the server whose reply has not finished yet. */
struct req {
	uint8_t type; /* frontend message type */
	uint8_t flags;
	struct pstmt *ps; /* Parse of a named statement (a reference), or NULL */
	char *name;       /* the client's statement name (owned), for its error messages */
};

struct server {
	struct sbuf sb;
	enum server_state state;
	struct list node; /* in a pool list by state, or rt.free_servers */
	struct pool *pool;
	struct client *client;
	uint64_t id;

	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct event ev_connect;
	bool connect_armed;
	struct dns_req *dns;
	struct scram_client *scram;

	uint8_t cancel_key[8]; /* the backend's pid and key */
	struct varcache vars;  /* values of tracked parameters on this server */

	uint8_t last_status; /* status byte of the last ReadyForQuery */
	bool unsynced;       /* extended-protocol messages sent after the last Sync */
	bool hidden_failed;  /* the reset or check query failed: close, don't reuse */

	/* requests sent and not yet answered, oldest at req_head (a ring) */
	struct req *reqs;
	uint32_t req_head, req_count, req_cap;
	struct pcache pcache; /* named statements prepared on this server */

	/* ParameterStatus seen during login, for the pool's welcome */
	struct pool_param *login_params;
	size_t n_login_params;
	bool login_oom;

	uint64_t connect_time;
	uint64_t last_used;
	uint64_t query_start; /* first outstanding request sent */
	uint64_t ready_time;  /* last ReadyForQuery */
	uint64_t cancel_time; /* a timeout sent a CancelRequest (0: none pending) */
	uint64_t reset_start; /* SV_RESET or SV_CHECK began (its query was sent) */
	unsigned cancels;     /* CancelRequests in flight for this server */
	uint64_t xact_start;  /* first request after ReadyForQuery 'I' */
};

/* Open a new server connection for POOL (asynchronously).  NULL on failure
 * to even start; the pool is told of failures later through pool_server_gone(). */
struct server *server_launch(struct pool *pool);
/* Link to CLIENT: forwarding in both directions, tracked parameters applied. */
void server_link(struct server *server, struct client *client);
/* Unlink from its client. */
void server_unlink(struct server *server);
/* Send server_reset_query; the server reports ready through pool_server_ready(). */
void server_reset(struct server *server);
/* Roll back the transaction a departed client left open (then reset when
 * THEN_RESET); ready again through pool_server_ready(). */
void server_rollback(struct server *server, bool then_reset);
/* The last cancel in flight for SERVER finished: release it if it is due. */
void server_cancel_done(struct server *server);
/* Send server_check_query before a lease; ready through pool_server_ready(). */
void server_check(struct server *server);
/* Record a request sent to the server (PS: referenced while queued).  False on OOM. */
bool server_push_req(struct server *s, uint8_t type, uint8_t flags, struct pstmt *ps)
    __attribute__((warn_unused_result));
/* Book a client's request going to S: statistics, Sync tracking, and the
 * reply queue (FLAGS as for server_push_req; REQ_SYNTH: counted, not queued).
 * False on OOM. */
bool server_note_request(struct server *s, uint8_t type, uint32_t len, uint8_t flags,
                         struct pstmt *ps) __attribute__((warn_unused_result));
/* Reply to a Parse or Close that pglease answers itself, in order with the
 * replies still coming from the server.  False on OOM. */
bool server_synth_reply(struct server *s, uint8_t type) __attribute__((warn_unused_result));
/* Answer, in order, with PostgreSQL's error for a Parse of a statement NAME
 * the client already has (42P05).  False on OOM. */
bool server_synth_duplicate(struct server *s, const char *name) __attribute__((warn_unused_result));
/* The client's name for the statement of the request just queued (its
 * errors will say NAME, not the server-side name).  False on OOM. */
bool server_name_last_req(struct server *s, const char *name) __attribute__((warn_unused_result));
/* True when no reply is pending, the session is not inside a transaction and
 * no message of its client is half forwarded. */
bool server_is_clean(const struct server *server);
/* Give up a login (timeout): tell waiting clients, close. */
void server_fail_login(struct server *server, const char *sqlstate, const char *msg);
/* Close now (the memory is freed later); REASON is logged. */
void server_close(struct server *server, const char *reason);
/* Free closed servers (called from the deferred-free pass). */
void server_reap(void);
/* Move to STATE and to the list that goes with it. */
void server_set_state(struct server *server, enum server_state state);
/* Name of a state for logs. */
const char *server_state_name(enum server_state state);

#endif
