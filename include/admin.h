/*
 * admin: the admin console, a virtual database named "pglease" (also
 * "pgbouncer") answered inside the process over the simple query protocol.
 */
#ifndef PGL_ADMIN_H
#define PGL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

struct client;

/* True when DBNAME names the console. */
bool admin_is_console(const char *dbname);
/* May USER log in to the console?  Sets client->admin_readonly for
 * stats_users.  PEER_OK: the connection comes over the unix socket from the
 * OS user running pglease (no password needed). */
bool admin_may_login(struct client *client, bool peer_ok);
/* Authentication passed: send the console's welcome. */
void admin_login(struct client *client);
/* A message from a console client. */
enum sbuf_action admin_on_pkt(struct client *client, const struct pkt_hdr *hdr,
			      const uint8_t *data, size_t avail);

#endif
