/*
 * harness: what every end-to-end test needs.
 *
 * One test program = one throwaway world: a temporary directory (mkdtemp under
 * /tmp) holding a fresh PostgreSQL cluster on a free 127.0.0.1 port, its unix
 * socket, a generated pglease config (pgbouncer.ini syntax), the auth_file and
 * all logs; pglease runs as a foreground child of the test.  Everything is
 * torn down at exit, on failure, on SIGINT/SIGTERM and on the overall alarm()
 * that keeps a hung test from hanging CI.  When a test point fails, pglease's
 * new log lines are printed right away as TAP diagnostics ("# ..."); at exit
 * after any failure both pglease's and PostgreSQL's logs are printed.
 *
 * The cluster (created by h_pg_start()):
 *   roles (LOGIN)  password  server-side auth over TCP 127.0.0.1
 *   trustuser      trustpw   trust
 *   pwuser         pwpw      password (cleartext)
 *   md5user        md5pw     md5 (stored as md5)
 *   alice          alicepw   scram-sha-256 (owner of testdb)
 *   bob            bobpw     scram-sha-256
 * databases: postgres, testdb.  The superuser "postgres" logs in by trust over
 * the unix socket only.  max_connections = 200.
 *
 * Strings returned as "const char *" by h_fmt() and friends belong to the
 * harness and live until exit: tests never free them.
 *
 * Fatal set-up problems (cannot initdb, pglease does not start) end the
 * program with "Bail out!", which the TAP driver counts as a failure.
 */
#ifndef PGL_HARNESS_H
#define PGL_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

/* ---- life cycle -------------------------------------------------------- */

/*
 * Create the temporary directory and install the teardown: atexit handler,
 * SIGINT/SIGTERM/SIGALRM handlers and alarm(TIMEOUT_SECS) (0: 300 s).
 * Ignores SIGPIPE.  Call first, once.
 */
void h_init(unsigned timeout_secs);

/* The temporary directory (no trailing slash). */
const char *h_tmpdir(void);

/* Tear everything down now (also run automatically at exit); idempotent. */
void h_cleanup(void);

/* ---- assertions that remember failures --------------------------------- */

/*
 * tap_ok() that also records the failure, prints pglease's log lines written
 * since the previous test point, and makes the exit handler dump all logs.
 */
bool h_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* tap_is_str() with the same failure bookkeeping as h_ok(). */
bool h_is_str(const char *got, const char *want, const char *name);
/* tap_is_int() with the same failure bookkeeping as h_ok(). */
bool h_is_int(long long got, long long want, const char *name);
/* Print "Bail out! ..." (after the logs) and exit; the teardown runs. */
void h_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- small utilities --------------------------------------------------- */

/* printf into a string owned by the harness (freed at exit). */
const char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). */
int h_free_port(void);

/* Sleep MS milliseconds. */
void h_sleep_ms(int ms);

/* Monotonic clock in milliseconds. */
int64_t h_now_ms(void);

/*
 * Run ARGV (argv[0] is a path or a name looked up in PATH) with stdout and
 * stderr appended to OUTFILE (NULL: /dev/null), ENV extra "K=V" strings (NULL
 * terminated, or NULL), wait at most TIMEOUT_MS (then SIGKILL).  Returns the
 * exit status, 128+signal when killed, -1 when it could not be started.
 */
int h_run(const char *const argv[], const char *const env[], const char *outfile, int timeout_ms);

/* Print the last MAX_LINES lines of PATH as "# " diagnostics under TITLE. */
void h_diag_file(const char *title, const char *path, int max_lines);

/* ---- PostgreSQL -------------------------------------------------------- */

/* Directory with initdb, pg_ctl, postgres, pgbench, psql. */
const char *h_pg_bindir(void);

/*
 * initdb + configure + start the cluster (as the postgres OS user when root)
 * and create the roles and databases listed above.  Bails out on failure.
 */
void h_pg_start(void);

/* PostgreSQL's TCP port. */
int h_pg_port(void);

/* PostgreSQL's log file. */
const char *h_pg_logfile(void);

/* libpq conninfo for a direct TCP connection to PostgreSQL; PASSWORD may be NULL. */
const char *h_pg_conninfo(const char *user, const char *password, const char *dbname);

/* Run SQL as the superuser (unix socket, db postgres); false and a diag on error. */
bool h_pg_exec(const char *sql);

/* First column of the first row of SQL run as the superuser, or NULL on error/no row. */
const char *h_pg_value(const char *sql);

/* ROLE's rolpassword from pg_authid ("SCRAM-SHA-256$..." or "md5..."); bails if absent. */
const char *h_pg_secret(const char *role);

/* The auth_file md5 secret: "md5" + md5(PASSWORD + USER). */
const char *h_md5_secret(const char *user, const char *password);

/* ---- pglease ----------------------------------------------------------- */

/* The "[databases]" line `NAME = host=127.0.0.1 port=<pgport> dbname=DBNAME EXTRA`. */
const char *h_db_line(const char *name, const char *dbname, const char *extra);

/* The common entry: `testdb = host=127.0.0.1 port=<pgport> dbname=testdb`. */
const char *h_db_testdb(void);

/* One auth_file line: "USER" "SECRET". */
const char *h_userlist_line(const char *user, const char *secret);

/*
 * Write <tmpdir>/pglease.ini and <tmpdir>/userlist.txt.  DATABASES is the
 * body of [databases] (NULL: h_db_testdb()); the [pgbouncer] section gets
 * listen_addr=127.0.0.1, a fresh free listen_port, unix_socket_dir=<tmpdir>,
 * auth_type=AUTH_TYPE, auth_file, logfile=<tmpdir>/pglease.log,
 * pidfile=<tmpdir>/pglease.pid, then the lines in EXTRA (may be NULL).
 * USERLIST is the auth_file content (may be NULL: empty file).
 */
void h_lease_config(const char *auth_type, const char *databases, const char *extra,
                    const char *userlist);

/* Path of the generated config file. */
const char *h_lease_config_path(void);

/*
 * Start pglease ($PGLEASE_BIN, else PGL_BUILDDIR/pglease) in the foreground
 * with the config from h_lease_config(); wait (<= 10 s) until its port
 * accepts connections.  Bails out with its log if it exits or never listens.
 */
void h_lease_start(void);

/*
 * Stop pglease: SIGTERM, wait up to 10 s, then SIGKILL.  Returns its exit
 * status (128+signal when it died by a signal, -1 if it was not running).
 * Prints its stderr as diagnostics when the status is not 0.
 */
int h_lease_stop(void);

/*
 * One test point: stop pglease (h_lease_stop()) and check it exited with
 * status 0 and wrote no sanitizer report (ASan/LSan/UBSan) to stderr during
 * this run.  WHAT names the phase in the test point's name.
 */
bool h_lease_stop_ok(const char *what);

/* h_lease_stop() then h_lease_start() with a new config (same arguments as h_lease_config()). */
void h_lease_restart(const char *auth_type, const char *databases, const char *extra,
                     const char *userlist);

/* pglease's process id, or -1 when not started. */
pid_t h_lease_pid(void);

/* pglease's TCP port (from the last h_lease_config()). */
int h_lease_port(void);

/* pglease's log file. */
const char *h_lease_logfile(void);

/* True when the pglease child process is still running (reaps it if not). */
bool h_lease_alive(void);

/* Number of open fds of pglease (entries of /proc/PID/fd), -1 on error. */
int h_lease_fd_count(void);

/*
 * Wait up to TIMEOUT_MS for pglease's fd count to drop to at most WANT;
 * returns the last count seen.
 */
int h_lease_wait_fds(int want, int timeout_ms);

/* libpq conninfo for pglease over TCP; PASSWORD may be NULL. */
const char *h_lease_conninfo(const char *user, const char *password, const char *dbname);

/* libpq conninfo for pglease over its unix socket in h_tmpdir(). */
const char *h_lease_conninfo_unix(const char *user, const char *password, const char *dbname);

/* ---- libpq helpers ----------------------------------------------------- */

/*
 * Connect with CONNINFO, error verbosity set to VERBOSE before the startup
 * so that a failed login's PQerrorMessage carries the SQLSTATE.  Always
 * returns a PGconn (check PQstatus); the caller PQfinish()es it.
 */
PGconn *h_connect(const char *conninfo);

/* True when CONNINFO connects and "SELECT 1" returns 1; diag on failure. */
bool h_can_query(const char *conninfo);

/*
 * The SQLSTATE in a failed connection's or result's verbose error message
 * ("FATAL:  28P01: ..."), or "" when there is none.  Owned by the harness.
 */
const char *h_conn_sqlstate(const PGconn *conn);

/* First column of the first row of SQL on CONN (owned by the harness), NULL on error; diag on
 * error. */
const char *h_value(PGconn *conn, const char *sql);

/* Column COL of the first row of SQL on CONN whose column KEYCOL is KEY (a SHOW
 * command on the console, say), owned by the harness; NULL when no such row or
 * column, or on error (diag). */
const char *h_cell(PGconn *conn, const char *sql, const char *keycol, const char *key,
                   const char *col);

/* Result of the query sent (PQsendQuery) on CONN: its first value, "" when it
 * returned no row, "ERR:<sqlstate>" on error (diag), "timeout" when not done
 * within TIMEOUT_MS.  Owned by the harness. */
const char *h_async_value(PGconn *conn, int timeout_ms);

/* True when the query sent on CONN has not finished after MS milliseconds
 * (consumes input only). */
bool h_still_busy_after(PGconn *conn, int ms);

/* The number after PREFIX on the first line of FILE that has it, or -1. */
long long h_number_after(const char *file, const char *prefix);

/* Active backends, other than the one asking, whose query contains TEXT; -1 on error. */
int h_pg_active(const char *text);

/* Run SQL on CONN; true when it succeeded (PGRES_COMMAND_OK or TUPLES_OK); diag on error. */
bool h_exec(PGconn *conn, const char *sql);

/* SQLSTATE of running SQL on CONN ("" when it succeeded), owned by the harness. */
const char *h_exec_sqlstate(PGconn *conn, const char *sql);

/*
 * Wait up to TIMEOUT_MS for the query sent with PQsendQuery on CONN to finish;
 * returns its last PGresult (caller PQclear()s) or NULL on timeout.
 */
PGresult *h_wait_result(PGconn *conn, int timeout_ms);

/*
 * Wait up to TIMEOUT_MS until CONN has a result ready and return the next
 * PQgetResult() (caller PQclear()s; NULL on timeout or end of results).
 * Works in pipeline mode, where h_wait_result() would stop at a boundary.
 */
PGresult *h_wait_result_one(PGconn *conn, int timeout_ms);

/* ---- raw protocol ------------------------------------------------------ */

/* Well-known protocol codes. */
#define H_PROTO_V3        196608u   /* 3.0 */
#define H_PROTO_V2        131072u   /* 2.0 */
#define H_CANCEL_CODE     80877102u /* CancelRequest */
#define H_SSLREQUEST_CODE 80877103u /* SSLRequest */
#define H_GSSENC_CODE     80877104u /* GSSENCRequest */

/* One backend message read by h_raw_read_msg(). */
struct h_msg {
	char type;       /* message type byte, e.g. 'E', 'R', 'Z' */
	uint32_t len;    /* length word as sent (includes itself) */
	size_t n;        /* bytes of body stored in data (may be truncated) */
	char data[8192]; /* body, NUL terminated */
};

/* Big-endian 32-bit store and load (raw protocol helpers). */
void h_put32(char *p, uint32_t v);
uint32_t h_get32(const char *p);

/* A blocking TCP connection to 127.0.0.1:PORT, or -1. */
int h_raw_connect(int port);

/* Send all LEN bytes (MSG_NOSIGNAL); false on error. */
bool h_raw_send(int fd, const void *buf, size_t len);

/* Send an 8-byte request (length 8 + CODE): SSLRequest, GSSENCRequest. */
bool h_raw_send_code(int fd, uint32_t code);

/* Send a startup packet: VERSION, user=USER, database=DB (either may be NULL). */
bool h_raw_send_startup(int fd, uint32_t version, const char *user, const char *db);

/* Send a simple Query ('Q') message. */
bool h_raw_send_query(int fd, const char *sql);

/*
 * Read one byte within TIMEOUT_MS: returns the byte (0..255), -1 on EOF or
 * error (connection closed/reset), -2 on timeout.
 */
int h_raw_read_byte(int fd, int timeout_ms);

/*
 * Read one backend message within TIMEOUT_MS (for the whole message).
 * Returns 1 when M holds a message, 0 on EOF/reset, -1 on timeout or a
 * length word < 4.
 */
int h_raw_read_msg(int fd, struct h_msg *m, int timeout_ms);

/* Field CODE ('C' SQLSTATE, 'M' message, ...) of an ErrorResponse/NoticeResponse, or NULL. */
const char *h_msg_field(const struct h_msg *m, char code);

/*
 * Read messages until an ErrorResponse (its SQLSTATE copied to SQLSTATE[6]),
 * EOF, or TIMEOUT_MS.  Returns 1 for an error, 0 for EOF without error, -1 on
 * timeout.
 */
int h_raw_expect_error(int fd, char sqlstate[6], int timeout_ms);

/* Read until EOF; true when the peer closed within TIMEOUT_MS. */
bool h_raw_wait_close(int fd, int timeout_ms);

/*
 * Log in on FD (startup already possible: fresh socket or after 'N'): sends
 * the v3 startup packet, answers AuthenticationCleartextPassword with
 * PASSWORD, reads until ReadyForQuery.  True when logged in; on a server
 * error SQLSTATE (if non-NULL) gets its code.
 */
bool h_raw_login(int fd, const char *user, const char *password, const char *db, char sqlstate[6]);

/* Open a new connection to PORT and send a CancelRequest for PID/KEY; true when sent. */
bool h_raw_cancel(int port, uint32_t pid, uint32_t key);

/* ==== additions for the transaction-pooling and differential tests ====== */
/*
 * A frontend message builder, a buffered reader of whole backend messages of
 * any size, startup with arbitrary parameters, and pg_hba.conf additions.
 * Nothing above this line depends on them.
 */

/* Append LINE (no newline needed) to pg_hba.conf, then pg_reload_conf(); bails on failure. */
void h_pg_hba_add(const char *line);

/* Frontend messages accumulated in memory, sent with h_wb_send(). */
struct h_wbuf {
	char *b;
	size_t n, cap;
};

void h_wb_free(struct h_wbuf *w);
/* A small deterministic PRNG for fuzz tests: seed it, then draw 0..N-1. */
void h_rand_seed(uint64_t seed);
uint32_t h_rand(uint32_t n);

/* LEN bytes as they are (damaged messages). */
void h_wb_raw(struct h_wbuf *w, const void *data, size_t len);
/* One message TYPE with BODY of LEN bytes. */
void h_wb_msg(struct h_wbuf *w, char type, const void *body, size_t len);
void h_wb_query(struct h_wbuf *w, const char *sql);
/* Parse: statement name STMT ("" unnamed), SQL, no parameter types (the server infers them). */
void h_wb_parse(struct h_wbuf *w, const char *stmt, const char *sql);
/* Bind with NPARAMS text parameters (a NULL entry is SQL NULL), text results. */
void h_wb_bind(struct h_wbuf *w, const char *portal, const char *stmt, int nparams,
               const char *const *values);
/* Describe / Close: KIND 'S' statement or 'P' portal. */
void h_wb_describe(struct h_wbuf *w, char kind, const char *name);
void h_wb_close(struct h_wbuf *w, char kind, const char *name);
void h_wb_execute(struct h_wbuf *w, const char *portal, uint32_t max_rows);
void h_wb_sync(struct h_wbuf *w);
void h_wb_flush(struct h_wbuf *w);
void h_wb_copy_data(struct h_wbuf *w, const void *data, size_t len);
void h_wb_copy_done(struct h_wbuf *w);
void h_wb_copy_fail(struct h_wbuf *w, const char *msg);
/* FunctionCall of OID with NARGS text arguments (NULL entry: SQL NULL), text result. */
void h_wb_fcall(struct h_wbuf *w, uint32_t oid, int nargs, const char *const *args);
/* Send everything accumulated and empty the buffer; false on a send error. */
bool h_wb_send(int fd, struct h_wbuf *w);

/* A socket with a read buffer that yields whole backend messages of any size. */
struct h_conn {
	int fd;
	char *buf;
	size_t cap, r, w;
};

/* One message; BODY points into the connection's buffer until the next read. */
struct h_bmsg {
	char type;
	uint32_t len; /* length word (includes itself) */
	const char *body;
	size_t n; /* body bytes (len - 4) */
};

/* Take FD (may be -1); h_conn_close() closes it. */
void h_conn_init(struct h_conn *c, int fd);
void h_conn_close(struct h_conn *c);
/* Read one message within TIMEOUT_MS: 1 read, 0 EOF/reset, -1 timeout or bad length. */
int h_conn_read(struct h_conn *c, struct h_bmsg *m, int timeout_ms);
/* Field CODE of an ErrorResponse/NoticeResponse, or NULL (copied, owned by the harness). */
const char *h_bmsg_field(const struct h_bmsg *m, char code);
/* Big-endian helpers for message bodies. */
uint32_t h_be32(const void *p);
uint16_t h_be16(const void *p);

/* Startup packet v3 with KV = {name, value, ..., NULL}. */
bool h_raw_send_startup_kv(int fd, const char *const *kv);

/*
 * Connect to 127.0.0.1:PORT and log in with startup parameters KV, answering a
 * cleartext password request with PASSWORD.  ON_MSG (may be NULL) sees every
 * message after authentication up to and including ReadyForQuery.  Returns
 * true and C set up when logged in; on failure C is closed, SQLSTATE (if not
 * NULL) gets the server's code and the error message is printed as a diag.
 */
bool h_conn_login(struct h_conn *c, int port, const char *const *kv, const char *password,
                  char sqlstate[6], void (*on_msg)(const struct h_bmsg *, void *), void *arg);

/*
 * Read until ReadyForQuery number NZ (counting from 1) within TIMEOUT_MS,
 * calling ON_MSG (may be NULL) on each message.  Returns the status byte of
 * the last ReadyForQuery, 0 on EOF, -1 on timeout.
 */
int h_conn_until_ready(struct h_conn *c, int nz, int timeout_ms,
                       void (*on_msg)(const struct h_bmsg *, void *), void *arg);

/* Run SQL as the superuser in database DB (a separate connection); false and a diag on error. */
bool h_pg_exec_db(const char *db, const char *sql);

/* ==== additions for the pool, timeout and outage tests ================== */
/*
 * Stopping and restarting PostgreSQL on its port, counting its backends in
 * pg_stat_activity, a TCP listener that never answers, and a pglease start
 * that reports failure instead of bailing out.  Nothing above depends on them.
 */

/* pg_ctl stop -m fast (waits until stopped); false and a diag on failure. */
bool h_pg_stop(void);

/* Start the cluster again, on the same port, after h_pg_stop(); false and a diag on failure. */
bool h_pg_start_again(void);

/* pg_ctl restart -m fast on the same port, waiting until it accepts connections. */
bool h_pg_restart(void);

/*
 * Client backends in pg_stat_activity of database DB and role USER (NULL: any
 * database / any role but the superuser "postgres"), not counting the
 * harness's own connection.  -1 when PostgreSQL cannot be asked (no bail-out).
 */
int h_pg_backends(const char *db, const char *user);

/* Poll h_pg_backends() every 100 ms for up to TIMEOUT_MS until it equals WANT; the last count. */
int h_pg_wait_backends(const char *db, const char *user, int want, int timeout_ms);

/* The pids of those backends, sorted, comma separated ("" when none); NULL on error. */
const char *h_pg_backend_pids(const char *db, const char *user);

/* pg_terminate_backend() on each of those backends; how many, -1 on error. */
int h_pg_terminate(const char *db, const char *user);

/*
 * A TCP socket listening on 127.0.0.1 that never accepts: the kernel completes
 * the handshakes and nobody ever sends a byte.  *PORT gets its port.  Returns
 * the fd (the caller closes it); bails out on failure.
 */
int h_blackhole_listen(int *port);

/*
 * h_lease_start() that returns false with diagnostics (pglease's stderr)
 * instead of bailing out when pglease exits during start-up or does not
 * listen within 10 s.  Use it for configurations with keys that may not
 * exist yet, so that the rest of the program still runs.
 */
bool h_lease_try_start(void);

/* h_lease_stop(), h_lease_config() with these arguments, h_lease_try_start(). */
bool h_lease_try_restart(const char *auth_type, const char *databases, const char *extra,
                         const char *userlist);

/*
 * Programs that run pglease in phases, one configuration each.  h_lease_phase()
 * ends the running phase with h_lease_stop_ok() (a test point naming it), then
 * starts pglease with the new configuration (h_lease_try_restart()) and checks
 * that with a point "pglease starts with WHAT"; it returns that result (on
 * false, skip the phase's scenarios).  h_lease_phase_stop() only ends the
 * running phase (true when none ran).  h_lease_phase_end() ends the last one
 * with an "alive" point and h_lease_stop_ok().
 */
bool h_lease_phase(const char *what, const char *auth_type, const char *databases,
                   const char *extra, const char *userlist);
bool h_lease_phase_stop(void);
void h_lease_phase_end(void);

/*
 * Wait up to TIMEOUT_MS until libpq sees that the peer closed CONN (PQstatus
 * becomes CONNECTION_BAD).  Anything received meanwhile is parsed and
 * dropped (notices go to CONN's notice receiver).  True when it closed.
 */
bool h_wait_conn_closed(PGconn *conn, int timeout_ms);

#endif
