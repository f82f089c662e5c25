/*
 * cancel: CancelRequest connections to PostgreSQL.
 *
 * A cancel is finished only when PostgreSQL closes the cancel connection
 * (it has signalled the backend by then).  Until that moment the server it
 * targets is not handed to another client -- otherwise the signal could land
 * on the next client's query -- and the client that asked for the cancel
 * keeps its connection open, as it would with PostgreSQL itself.
 */
#ifndef PGL_CANCEL_H
#define PGL_CANCEL_H

struct server;
struct client;
struct pool;

/* Cancel what SERVER runs.  REQUESTER (or NULL) is the cancel connection of a
 * client; it is closed when the cancel is done.  Failures are logged. */
void cancel_send(struct server *server, struct client *requester);
/* SERVER or REQUESTER is going away: forget it in pending cancels. */
void cancel_forget_server(const struct server *server);
void cancel_forget_client(const struct client *requester);
/* Cancels in flight for POOL's servers, as SHOW POOLS counts them. */
struct cancel_counts {
	unsigned requesters; /* cancel connections of clients waiting for the result */
	unsigned conns;      /* connections to PostgreSQL carrying a CancelRequest */
	unsigned servers;    /* servers with a cancel in flight (held until it is done) */
};
void cancel_pool_counts(const struct pool *pool, struct cancel_counts *out);
/* Abandon cancel requests still in flight (shutdown). */
void cancel_shutdown(void);

#endif
