/*
 * admin_int: what the three files of the admin module share, private to them.
 *
 *   admin.c          state, checks for the pool, controls, RELOAD/SET, waits
 *   admin_console.c  the console's protocol, parsing and dispatch, replies
 *   admin_show.c     the SHOW result sets and the row writer
 *
 * Column names, order and types of SHOW follow PgBouncer 1.25 wherever
 * PgBouncer has the command; columns pglease adds come after PgBouncer's.
 */
#ifndef PGL_ADMIN_INT_H
#define PGL_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct pool;

/* Type OIDs of result columns (PostgreSQL's pg_type). */
#define ADMIN_T_INT8    20u
#define ADMIN_T_INT4    23u
#define ADMIN_T_TEXT    25u
#define ADMIN_T_NUMERIC 1700u

/* One result column. */
struct admin_col {
	const char *name;
	uint32_t type;
};

/* RowDescription for N columns. */
void admin_rowdesc(struct pkt_writer *w, const struct admin_col *cols, size_t n);
/* DataRow of N columns: begin, one admin_put_*() per column, end. */
void admin_row_begin(struct pkt_writer *w, size_t n);
/* A text value; NULL sends SQL NULL. */
void admin_put_text(struct pkt_writer *w, const char *s);
void admin_put_int(struct pkt_writer *w, long long v);
void admin_put_u64(struct pkt_writer *w, uint64_t v);
void admin_row_end(struct pkt_writer *w);
/* CommandComplete with TAG. */
void admin_complete(struct pkt_writer *w, const char *tag);

/*
 * Answer "SHOW WHAT" (WHAT is the word after SHOW, any case) into W:
 * RowDescription, rows and CommandComplete (no ReadyForQuery).  False when
 * WHAT is not a SHOW command pglease knows (W untouched).
 */
bool admin_show(struct pkt_writer *w, const char *what);

/* ---- replies to a console client (admin_console.c) ----------------------- */

struct client;

/* Send W's messages to C (W is freed); closes C and returns false on failure. */
bool admin_send(struct client *c, struct pkt_writer *w);
/* ErrorResponse (severity ERROR) + ReadyForQuery. */
void admin_reply_error(struct client *c, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Optional NoticeResponse NOTICE, CommandComplete TAG, ReadyForQuery. */
void admin_reply_done(struct client *c, const char *tag, const char *notice);
/* Value pglease answers for a session setting drivers ask about, or NULL. */
const char *admin_fake_param(const char *name);

/* ---- state and commands (admin.c) ----------------------------------------- */

/* PAUSE or KILL given for DBNAME (or globally), or SUSPEND. */
bool admin_db_paused(const char *dbname);
/* A database a command may name: configured (or served by "*") or pooled. */
bool admin_db_known(const char *name);

/*
 * The commands that act on the process.  Each replies to console client C
 * itself: at once, or later for PAUSE, SUSPEND and WAIT_CLOSE (C is not read
 * meanwhile).  DB NULL means every database.  Access rights and the number
 * of arguments are checked by the caller.
 */
void admin_cmd_pause(struct client *c, const char *db);
void admin_cmd_resume(struct client *c, const char *db);
void admin_cmd_suspend(struct client *c);
void admin_cmd_kill(struct client *c, const char *db);
void admin_cmd_kill_client(struct client *c, const char *id);
void admin_cmd_reconnect(struct client *c, const char *db);
void admin_cmd_wait_close(struct client *c, const char *db);
void admin_cmd_able(struct client *c, const char *db, bool disable);
void admin_cmd_reload(struct client *c);
void admin_cmd_shutdown(struct client *c, const char *mode);
void admin_cmd_set(struct client *c, const char *key, const char *value);

#endif
