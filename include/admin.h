/*
 * admin: the admin console, a virtual database named "pglease" (also
 * "pgbouncer") answered inside the process over the simple query protocol,
 * and the process controls behind it: PAUSE/RESUME/SUSPEND, DISABLE/ENABLE,
 * RECONNECT/WAIT_CLOSE, KILL/KILL_CLIENT, RELOAD, SHUTDOWN and SET.  The
 * signal handlers in main call the same entry points.
 *
 * State kept here and consulted by the pool (admin_pool_paused(),
 * admin_server_stale()) and the login (admin_db_disabled()): the global
 * pause/suspend mode and a small table of per-database flags.  The checks
 * cost one branch while no command has touched any database.
 */
#ifndef PGL_ADMIN_H
#define PGL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

struct client;
struct pool;
struct server;

/* True when DBNAME names the console. */
bool admin_is_console(const char *dbname);
/* May USER log in to the console?  Sets client->admin_readonly for
 * stats_users.  PEER_OK: the connection comes over the unix socket from the
 * OS user running pglease (no password needed). */
bool admin_may_login(struct client *client, bool peer_ok);
/* Authentication passed: send the console's welcome. */
void admin_login(struct client *client);
/* A message from a console client. */
enum sbuf_action admin_on_pkt(struct client *client, const struct pkt_hdr *hdr, const uint8_t *data,
                              size_t avail);

/* ---- checks for the pool and the login --------------------------------- */

/* True while POOL must not lease servers nor open new ones (PAUSE, KILL,
 * SUSPEND, SHUTDOWN WAIT_FOR_SERVERS); released servers are closed. */
bool admin_pool_paused(const struct pool *pool);
/* True when SERVER was connected before a RECONNECT or a RELOAD that changed
 * its database's target: it is closed instead of being reused. */
bool admin_server_stale(const struct server *server);
/* NULL when SERVER, just ready (logged in, reset or released), may be reused;
 * else why it is closed instead: its pool is paused (PAUSE, KILL, SHUTDOWN
 * WAIT_FOR_SERVERS) or it is stale. */
const char *admin_server_discard(const struct server *server);
/* True when new clients of DBNAME are refused (DISABLE). */
bool admin_db_disabled(const char *dbname);
/* Whether a PAUSE (global or of any database) or a SUSPEND is in effect. */
void admin_state(bool *paused, bool *suspended);

/* ---- process control (console commands and signals) ------------------- */

enum admin_shutdown_mode {
	ADMIN_SHUTDOWN_NOW,              /* SHUTDOWN, SIGQUIT: close everything and exit */
	ADMIN_SHUTDOWN_WAIT_FOR_SERVERS, /* SIGINT: pause, exit when no server is left */
	ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS, /* SIGTERM: exit when no client is left */
};

/* Start the console's timer (waiting commands, shutdown checks).  False on failure. */
bool admin_start(void) __attribute__((warn_unused_result));
/* Stop it and forget the console state (at exit). */
void admin_stop(void);
/*
 * Re-read the config file and the auth_file and apply them: pools take the
 * new sizes and modes, pools whose target changed close their servers as
 * they come back, pools of removed databases are closed.  On failure the old
 * configuration stays and ERR says why (file:line); the caller logs.
 */
bool admin_reload(char *err, size_t errlen) __attribute__((warn_unused_result));
/* Begin a shutdown.  A second request while one waits makes it immediate. */
void admin_shutdown(enum admin_shutdown_mode mode);
/* PAUSE / RESUME of every database (SIGUSR1 / SIGUSR2). */
void admin_pause_all(void);
void admin_resume_all(void);

#endif
