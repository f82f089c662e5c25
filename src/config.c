/*
 * config: load pgbouncer.ini-syntax files into a new, immutable struct config.
 *
 * The file is read line by line: "[section]" headers, "key = value" lines,
 * comments (';' or '#' as the first non-blank character only, so values may
 * contain them), and "%include FILE".  Every [pgbouncer] key is one row of
 * settings[] below; defaults are applied by parsing each row's default text,
 * so a default lives in exactly one place.  [databases] and [users] values
 * are libpq-style connection strings described by db_keys[] and user_keys[].
 *
 * Errors go to the caller's buffer as "FILE:LINE: message" and the partly
 * built config is freed.  The only logging done here is one log_warn() per
 * key that PgBouncer knows and pglease accepts but ignores.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* %include may nest this deep; deeper is almost surely a loop. */
#define CFG_MAX_INCLUDE_DEPTH 10

/* How a value is parsed and where it is stored. */
enum cfg_type {
	T_STR,       /* char *: the raw text, trimmed */
	T_INT,       /* int: decimal, range checked */
	T_BOOL,      /* bool: 0/1, yes/no, true/false, on/off */
	T_TIME,      /* double seconds: "15", "0.5", "100ms", "2min" */
	T_POOL_MODE, /* enum pool_mode in struct config, int in [databases]/[users] */
	T_AUTH_TYPE, /* enum auth_type */
	T_FILEMODE,  /* int: octal file mode such as 0777 */
};

/* Offset of a key whose value is not kept (accepted and ignored). */
#define NO_FIELD ((size_t)-1)

/* One [pgbouncer] setting. */
struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;      /* into struct config, or NO_FIELD */
	const char *def;    /* default as text; NULL means "not set" */
	bool reload;        /* a RELOAD applies a change (else only a restart) */
	bool impl;          /* pglease acts on it; if not, setting it warns */
	long long min, max; /* allowed range for T_INT and T_TIME (seconds) */
	const char *doc;    /* one line for doc/config.md */
};

#define RELOAD  true
#define RESTART false
/* A range is one macro argument that expands to "lo, hi". */
#define RANGE(lo, hi) lo, hi
#define NOLIMIT       RANGE(0, 0)
#define NONNEG        RANGE(0, INT_MAX)

/*
 * KEY: a key pglease implements; the struct config field has the key's name.
 * IGNORED: a PgBouncer key pglease accepts, warns about and ignores.
 * (Kept on one line each: clang-format splits braced macro bodies badly.)
 */
/* clang-format off */
#define KEY(f, t, d, r, range, doc) {#f, t, offsetof(struct config, f), d, r, true, range, doc}
#define IGNORED(n, d, r, doc)       {n, T_STR, NO_FIELD, d, r, false, NOLIMIT, doc}
/* clang-format on */

/* Sorted by name, like PgBouncer's SHOW CONFIG. */
static const struct cfg_key settings[] = {
    KEY(admin_users, T_STR, "", RELOAD, NOLIMIT, "users allowed to run all admin console commands"),
    {"application_name_add_host", T_STR, offsetof(struct config, application_name_add_host), "0",
     RELOAD, false, NOLIMIT, "append client host and port to application_name"},
    IGNORED("auth_dbname", NULL, RELOAD, "database used for auth_query"),
    KEY(auth_file, T_STR, NULL, RELOAD, NOLIMIT, "file with user names and passwords"),
    IGNORED("auth_hba_file", "", RELOAD, "pg_hba.conf-style file for auth_type hba"),
    IGNORED("auth_ident_file", NULL, RELOAD, "ident map file for auth_type hba"),
    IGNORED("auth_ldap_options", NULL, RELOAD, "LDAP options for auth_type ldap"),
    IGNORED("auth_query",
            "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE "
            "rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin",
            RELOAD, "query that looks up a password for users not in auth_file"),
    KEY(auth_type, T_AUTH_TYPE, "md5", RELOAD, NOLIMIT,
        "client authentication: any, trust, plain, md5 or scram-sha-256"),
    IGNORED("auth_user", NULL, RELOAD, "user that runs auth_query"),
    KEY(autodb_idle_timeout, T_TIME, "3600", RELOAD, NONNEG,
        "free pools made from the \"*\" entry after this long unused"),
    IGNORED("cancel_wait_timeout", "10", RELOAD, "how long a cancel request may wait"),
    KEY(client_idle_timeout, T_TIME, "0", RELOAD, NONNEG,
        "close clients idle this long (0 = never)"),
    KEY(client_login_timeout, T_TIME, "60", RELOAD, NONNEG,
        "close clients that have not logged in within this time"),
    IGNORED("client_tls13_ciphers", NULL, RELOAD, "TLS 1.3 ciphers for clients"),
    IGNORED("client_tls_ca_file", "", RELOAD, "CA file to check client certificates"),
    IGNORED("client_tls_cert_file", "", RELOAD, "certificate shown to clients"),
    IGNORED("client_tls_ciphers", "default", RELOAD, "TLS ciphers for clients"),
    IGNORED("client_tls_dheparams", "auto", RELOAD, "DHE parameters for clients"),
    IGNORED("client_tls_ecdhcurve", "auto", RELOAD, "ECDH curve for clients"),
    IGNORED("client_tls_key_file", "", RELOAD, "private key for client TLS"),
    IGNORED("client_tls_protocols", "secure", RELOAD, "TLS versions for clients"),
    IGNORED("client_tls_sslmode", "disable", RELOAD, "TLS mode for client connections"),
    IGNORED("conffile", NULL, RELOAD, "config file to read on the next RELOAD"),
    KEY(default_pool_size, T_INT, "20", RELOAD, NONNEG,
        "server connections per (database, user) pool (pool_size)"),
    IGNORED("disable_pqexec", "0", RESTART, "reject the simple query protocol"),
    KEY(dns_max_ttl, T_TIME, "15", RELOAD, NONNEG, "how long DNS answers are cached"),
    KEY(dns_nxdomain_ttl, T_TIME, "15", RELOAD, NONNEG,
        "how long DNS errors and NXDOMAIN are cached"),
    IGNORED("dns_zone_check_period", "0", RELOAD, "period of DNS zone serial checks"),
    KEY(idle_transaction_timeout, T_TIME, "0", RELOAD, NONNEG,
        "close clients idle in a transaction this long (0 = never)"),
    KEY(ignore_startup_parameters, T_STR, "", RELOAD, NOLIMIT,
        "startup parameters accepted from clients and not forwarded"),
    IGNORED("job_name", "pgbouncer", RESTART, "Windows service name"),
    KEY(listen_addr, T_STR, "", RESTART, NOLIMIT,
        "TCP addresses to listen on, comma separated; * = all; empty = none"),
    KEY(listen_backlog, T_INT, "128", RESTART, RANGE(1, INT_MAX), "backlog argument of listen(2)"),
    KEY(listen_port, T_INT, "6432", RESTART, RANGE(1, 65535),
        "TCP port, also names the unix socket"),
    KEY(log_connections, T_BOOL, "1", RELOAD, NOLIMIT, "log successful logins"),
    KEY(log_disconnections, T_BOOL, "1", RELOAD, NOLIMIT, "log disconnections with reason"),
    KEY(log_pooler_errors, T_BOOL, "1", RELOAD, NOLIMIT, "log errors sent to clients"),
    KEY(log_stats, T_BOOL, "1", RELOAD, NOLIMIT,
        "write aggregated stats to the log every stats_period"),
    KEY(logfile, T_STR, "", RELOAD, NOLIMIT, "log file (reopened on RELOAD); empty = stderr"),
    IGNORED("login_notify_message", "", RELOAD, "notice sent to clients after login"),
    KEY(max_client_conn, T_INT, "100", RELOAD, NONNEG, "maximum client connections"),
    KEY(max_db_client_connections, T_INT, "0", RELOAD, NONNEG,
        "client connections per database (0 = unlimited)"),
    KEY(max_db_connections, T_INT, "0", RELOAD, NONNEG,
        "server connections per database (0 = unlimited)"),
    KEY(max_overflow, T_INT, "0", RELOAD, NONNEG,
        "extra server connections a pool opens under demand, closed when released idle"),
    KEY(max_packet_size, T_INT, "2147483647", RELOAD, RANGE(1024, INT_MAX),
        "largest protocol message accepted"),
    KEY(max_prepared_statements, T_INT, "200", RELOAD, NONNEG,
        "prepared statements tracked per server connection (0 = off)"),
    KEY(max_user_client_connections, T_INT, "0", RELOAD, NONNEG,
        "client connections per user (0 = unlimited)"),
    KEY(max_user_connections, T_INT, "0", RELOAD, NONNEG,
        "server connections per user (0 = unlimited)"),
    KEY(metrics_listen, T_STR, "", RESTART, NOLIMIT,
        "address:port for the metrics endpoint; empty = off"),
    KEY(min_pool_size, T_INT, "0", RELOAD, NONNEG, "server connections kept open even when idle"),
    KEY(overflow_idle_timeout, T_TIME, "0", RELOAD, NONNEG,
        "keep a released overflow connection this long before closing it (0 = close at once)"),
    IGNORED("peer_id", "0", RELOAD, "id of this process among peers"),
    KEY(pidfile, T_STR, "", RESTART, NOLIMIT, "file the process id is written to"),
    KEY(pkt_buf, T_INT, "4096", RESTART, RANGE(512, 1 << 26), "I/O buffer size per connection"),
    IGNORED("pool_idle_timeout", "0", RELOAD, "free empty pools after this long"),
    KEY(pool_mode, T_POOL_MODE, "session", RELOAD, NOLIMIT,
        "when a server is released: session, transaction or statement"),
    KEY(query_timeout, T_TIME, "0", RELOAD, NONNEG, "cancel queries running this long (0 = never)"),
    KEY(query_wait_notify, T_TIME, "5", RELOAD, NONNEG,
        "send a NOTICE to clients that have waited this long for a server (0 = never)"),
    KEY(query_wait_timeout, T_TIME, "120", RELOAD, NONNEG,
        "how long a client may wait for a server (0 = forever)"),
    KEY(reserve_pool_size, T_INT, "0", RELOAD, NONNEG,
        "extra connections for pools whose clients waited reserve_pool_timeout"),
    KEY(reserve_pool_timeout, T_TIME, "5", RELOAD, NONNEG,
        "wait after which the reserve pool may be used"),
    IGNORED("resolv_conf", "", RESTART, "custom resolv.conf"),
    IGNORED("sbuf_loopcnt", "5", RELOAD, "reads per connection per loop"),
    IGNORED("scram_iterations", "4096", RELOAD, "iterations for SCRAM secrets pglease makes"),
    KEY(server_check_delay, T_TIME, "30", RELOAD, NONNEG,
        "run server_check_query on servers idle longer than this"),
    KEY(server_check_query, T_STR, "select 1", RELOAD, NOLIMIT,
        "query that checks an idle server is alive; empty = no check"),
    KEY(server_connect_timeout, T_TIME, "15", RELOAD, NONNEG,
        "limit for server connect and login, and for the reset and check queries"),
    IGNORED("server_fast_close", "0", RELOAD, "close session servers early after RECONNECT"),
    KEY(server_idle_timeout, T_TIME, "600", RELOAD, NONNEG,
        "close servers idle this long (0 = never)"),
    KEY(server_lifetime, T_TIME, "3600", RELOAD, NONNEG,
        "close released servers connected longer than this"),
    KEY(server_login_retry, T_TIME, "15", RELOAD, NONNEG,
        "wait after a failed server login before trying again"),
    KEY(server_reset_query, T_STR, "DISCARD ALL", RELOAD, NOLIMIT,
        "query run on a server released by a session-mode client"),
    KEY(server_reset_query_always, T_BOOL, "0", RELOAD, NOLIMIT,
        "run server_reset_query in every pool mode"),
    KEY(server_round_robin, T_BOOL, "0", RELOAD, NOLIMIT,
        "lease idle servers in FIFO order instead of most recently used first"),
    IGNORED("server_tls13_ciphers", NULL, RELOAD, "TLS 1.3 ciphers for servers"),
    IGNORED("server_tls_ca_file", "", RELOAD, "CA file to check server certificates"),
    IGNORED("server_tls_cert_file", "", RELOAD, "client certificate shown to servers"),
    IGNORED("server_tls_ciphers", "default", RELOAD, "TLS ciphers for servers"),
    IGNORED("server_tls_key_file", "", RELOAD, "private key for server TLS"),
    IGNORED("server_tls_protocols", "secure", RELOAD, "TLS versions for servers"),
    IGNORED("server_tls_sslmode", "prefer", RELOAD, "TLS mode for server connections"),
    IGNORED("service_name", NULL, RESTART, "Windows service name"),
    IGNORED("so_reuseport", "0", RESTART, "set SO_REUSEPORT on listening sockets"),
    KEY(stats_period, T_INT, "60", RELOAD, RANGE(1, INT_MAX), "seconds between stats averages"),
    KEY(stats_users, T_STR, "", RELOAD, NOLIMIT, "users allowed to run SHOW commands"),
    IGNORED("suspend_timeout", "10", RELOAD, "buffer flush wait for SUSPEND"),
    IGNORED("syslog", "0", RELOAD, "log to syslog"),
    IGNORED("syslog_facility", "daemon", RELOAD, "syslog facility"),
    IGNORED("syslog_ident", "pgbouncer", RELOAD, "syslog program name"),
    IGNORED("tcp_defer_accept", "1", RELOAD, "TCP_DEFER_ACCEPT on listening sockets"),
    IGNORED("tcp_keepalive", "1", RELOAD, "TCP keepalive"),
    IGNORED("tcp_keepcnt", "0", RELOAD, "TCP keepalive probe count"),
    IGNORED("tcp_keepidle", "0", RELOAD, "TCP keepalive idle time"),
    IGNORED("tcp_keepintvl", "0", RELOAD, "TCP keepalive probe interval"),
    IGNORED("tcp_socket_buffer", "0", RELOAD, "kernel socket buffer size"),
    IGNORED("tcp_user_timeout", "0", RELOAD, "TCP_USER_TIMEOUT in milliseconds"),
    KEY(track_extra_parameters, T_STR, "IntervalStyle", RESTART, NOLIMIT,
        "extra reported parameters kept per client and restored on lease"),
    KEY(transaction_timeout, T_TIME, "0", RELOAD, NONNEG,
        "cancel, then close, transactions open this long (0 = never)"),
    KEY(unix_socket_dir, T_STR, "/tmp", RESTART, NOLIMIT,
        "directory of the unix socket; empty = none"),
    IGNORED("unix_socket_group", "", RESTART, "group of the unix socket"),
    KEY(unix_socket_mode, T_FILEMODE, "0777", RESTART, RANGE(0, 0777), "mode of the unix socket"),
    IGNORED("user", NULL, RESTART, "Unix user to switch to after start"),
    KEY(verbose, T_INT, "0", RELOAD, RANGE(0, 10), "extra log verbosity, like -v"),
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* One key of a [databases] or [users] connection string. */
struct conn_key {
	const char *name;
	enum cfg_type type; /* T_STR (char *), T_INT or T_POOL_MODE (both int) */
	size_t offset;      /* into struct cfg_db or cfg_user, or NO_FIELD */
	bool impl;
	long long min, max;
};

/* clang-format off */
#define DB_KEY(n, t, f, range)   {n, t, offsetof(struct cfg_db, f), true, range}
#define USER_KEY(n, t, f, range) {n, t, offsetof(struct cfg_user, f), true, range}
#define CONN_IGNORED(n)          {n, T_STR, NO_FIELD, false, NOLIMIT}
/* clang-format on */

static const struct conn_key db_keys[] = {
    DB_KEY("host", T_STR, host, NOLIMIT),
    DB_KEY("port", T_INT, port, RANGE(1, 65535)),
    DB_KEY("dbname", T_STR, dbname, NOLIMIT),
    DB_KEY("user", T_STR, user, NOLIMIT),
    DB_KEY("password", T_STR, password, NOLIMIT),
    {"auth_user", T_STR, offsetof(struct cfg_db, auth_user), false, NOLIMIT},
    DB_KEY("pool_size", T_INT, pool_size, NONNEG),
    DB_KEY("max_overflow", T_INT, max_overflow, NONNEG),
    DB_KEY("reserve_pool", T_INT, reserve_pool_size, NONNEG),
    DB_KEY("reserve_pool_size", T_INT, reserve_pool_size, NONNEG),
    DB_KEY("min_pool_size", T_INT, min_pool_size, NONNEG),
    DB_KEY("pool_mode", T_POOL_MODE, pool_mode, NOLIMIT),
    DB_KEY("max_db_connections", T_INT, max_db_connections, NONNEG),
    DB_KEY("max_db_client_connections", T_INT, max_db_client_connections, NONNEG),
    DB_KEY("connect_query", T_STR, connect_query, NOLIMIT),
    DB_KEY("client_encoding", T_STR, client_encoding, NOLIMIT),
    DB_KEY("datestyle", T_STR, datestyle, NOLIMIT),
    DB_KEY("timezone", T_STR, timezone, NOLIMIT),
    DB_KEY("application_name", T_STR, application_name, NOLIMIT),
    CONN_IGNORED("auth_query"),
    CONN_IGNORED("auth_dbname"),
    CONN_IGNORED("server_lifetime"),
    CONN_IGNORED("load_balance_hosts"),
    CONN_IGNORED("target_session_attrs"),
    CONN_IGNORED("query_wait_timeout"),
};

static const struct conn_key user_keys[] = {
    USER_KEY("pool_mode", T_POOL_MODE, pool_mode, NOLIMIT),
    USER_KEY("pool_size", T_INT, pool_size, NONNEG),
    USER_KEY("max_user_connections", T_INT, max_user_connections, NONNEG),
    USER_KEY("max_user_client_connections", T_INT, max_user_client_connections, NONNEG),
    CONN_IGNORED("reserve_pool_size"),
    CONN_IGNORED("query_timeout"),
    CONN_IGNORED("query_wait_timeout"),
    CONN_IGNORED("idle_transaction_timeout"),
    CONN_IGNORED("transaction_timeout"),
    CONN_IGNORED("client_idle_timeout"),
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Indexed by enum pool_mode / enum auth_type. */
static const char *const pool_mode_names[] = {"session", "transaction", "statement"};
static const char *const auth_type_names[] = {"trust", "any", "plain", "md5", "scram-sha-256"};

enum section { SECT_NONE, SECT_PGBOUNCER, SECT_DATABASES, SECT_USERS, SECT_PEERS };

/* State of one cfg_load(): where we are, for messages, and where errors go. */
struct loader {
	struct config *cfg;
	char *err;
	size_t errlen;
	enum section sect;
	const char *file; /* file being read */
	int line;         /* line being read, 1-based */
};

/* A parsed value before it is stored. */
union value {
	long long i;
	double d;
	bool b;
	const char *s;
};

/* Write "FILE:LINE: message" into the caller's buffer; returns false for "return ld_error()". */
static bool ld_error(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool ld_error(struct loader *ld, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ld->err == NULL || ld->errlen == 0)
		return false;
	n = ld->line > 0 ? snprintf(ld->err, ld->errlen, "%s:%d: ", ld->file, ld->line)
	                 : snprintf(ld->err, ld->errlen, "%s: ", ld->file);
	if (n < 0 || (size_t)n >= ld->errlen)
		return false;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static void warn_ignored(const struct loader *ld, const char *key)
{
	if (ld->line > 0)
		log_warn("%s:%d: key %s is not supported by pglease yet, ignored", ld->file,
		         ld->line, key);
	else
		log_warn("%s: key %s is not supported by pglease yet, ignored", ld->file, key);
}

/* Trim leading and trailing whitespace in place; returns the new start. */
static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Index of NAME in NAMES (case-insensitive), or -1. */
static int lookup_name(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

static void expect_int_text(long long min, long long max, char *why, size_t len)
{
	if (max == INT_MAX)
		snprintf(why, len, "expected an integer >= %lld", min);
	else
		snprintf(why, len, "expected an integer from %lld to %lld", min, max);
}

static bool parse_int(const char *text, long long min, long long max, long long *out, char *why,
                      size_t len)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (end == text || *end != '\0' || errno == ERANGE || v < min || v > max) {
		expect_int_text(min, max, why, len);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_filemode(const char *text, long long max, long long *out, char *why, size_t len)
{
	size_t n = strlen(text);
	long v = n > 0 && n <= 6 && strspn(text, "01234567") == n ? strtol(text, NULL, 8) : -1;

	if (v < 0 || v > max) {
		snprintf(why, len, "expected an octal file mode from 0 to 0%llo, such as 0777",
		         max);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_bool(const char *text, bool *out, char *why, size_t len)
{
	static const char *const yes[] = {"1", "yes", "true", "on"};
	static const char *const no[] = {"0", "no", "false", "off"};

	if (lookup_name(yes, N_ELEMS(yes), text) >= 0) {
		*out = true;
		return true;
	}
	if (lookup_name(no, N_ELEMS(no), text) >= 0) {
		*out = false;
		return true;
	}
	snprintf(why, len, "expected 0, 1, yes, no, true, false, on or off");
	return false;
}

/* Seconds: a decimal number, optionally followed by a unit (us, ms, s, min, h, d). */
static bool parse_time(const char *text, long long min, long long max, double *out, char *why,
                       size_t len)
{
	static const struct {
		const char *unit;
		double scale;
	} units[] = {{"", 1},      {"s", 1},    {"sec", 1},  {"ms", 1e-3},
	             {"us", 1e-6}, {"min", 60}, {"h", 3600}, {"d", 86400}};
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	/* A leading digit or '.' rules out signs, "inf" and "nan". */
	if (text[0] != '\0' && strchr("0123456789.", text[0]) != NULL && end != text &&
	    errno != ERANGE && isfinite(v)) {
		while (isspace((unsigned char)*end))
			end++;
		for (size_t i = 0; i < N_ELEMS(units); i++) {
			if (strcasecmp(end, units[i].unit) != 0)
				continue;
			v *= units[i].scale;
			if (v >= (double)min && v <= (double)max) {
				*out = v;
				return true;
			}
			break;
		}
	}
	if (max == INT_MAX)
		snprintf(why, len, "expected seconds >= %lld", min);
	else
		snprintf(why, len, "expected seconds from %lld to %lld", min, max);
	strncat(why, ", optionally with a unit (us, ms, s, min, h, d)", len - strlen(why) - 1);
	return false;
}

static bool parse_pool_mode(const char *text, long long *out, char *why, size_t len)
{
	int i = lookup_name(pool_mode_names, N_ELEMS(pool_mode_names), text);

	if (i < 0) {
		snprintf(why, len, "expected session, transaction or statement");
		return false;
	}
	*out = i;
	return true;
}

static bool parse_auth_type(const char *text, long long *out, char *why, size_t len)
{
	static const char *const unsupported[] = {"cert", "hba", "ldap", "pam"};
	int i = lookup_name(auth_type_names, N_ELEMS(auth_type_names), text);

	if (i >= 0) {
		*out = i;
		return true;
	}
	snprintf(why, len, "expected any, trust, plain, md5 or scram-sha-256%s",
	         lookup_name(unsupported, N_ELEMS(unsupported), text) >= 0
	             ? " (cert, hba, ldap and pam are not supported by pglease yet)"
	             : "");
	return false;
}

/* Parse TEXT as TYPE into OUT; on failure put "expected ..." into WHY. */
static bool parse_value(enum cfg_type type, const char *text, long long min, long long max,
                        union value *out, char *why, size_t len)
{
	switch (type) {
	case T_STR:
		out->s = text;
		return true;
	case T_INT:
		return parse_int(text, min, max, &out->i, why, len);
	case T_BOOL:
		return parse_bool(text, &out->b, why, len);
	case T_TIME:
		return parse_time(text, min, max, &out->d, why, len);
	case T_POOL_MODE:
		return parse_pool_mode(text, &out->i, why, len);
	case T_AUTH_TYPE:
		return parse_auth_type(text, &out->i, why, len);
	case T_FILEMODE:
		return parse_filemode(text, max, &out->i, why, len);
	}
	return false;
}

/* Replace the string at *FIELD with a copy of S (NULL allowed); false when out of memory. */
static bool store_str(char **field, const char *s)
{
	char *copy = NULL;

	if (s != NULL && (copy = strdup(s)) == NULL)
		return false;
	free(*field);
	*field = copy;
	return true;
}

/* Store V into the struct config field of K; false when out of memory. */
static bool store_setting(struct config *cfg, const struct cfg_key *k, const union value *v)
{
	void *field = (char *)cfg + k->offset;

	switch (k->type) {
	case T_STR:
		return store_str(field, v->s);
	case T_INT:
	case T_FILEMODE:
		*(int *)field = (int)v->i;
		break;
	case T_BOOL:
		*(bool *)field = v->b;
		break;
	case T_TIME:
		*(double *)field = v->d;
		break;
	case T_POOL_MODE:
		*(enum pool_mode *)field = (enum pool_mode)v->i;
		break;
	case T_AUTH_TYPE:
		*(enum auth_type *)field = (enum auth_type)v->i;
		break;
	}
	return true;
}

static const struct cfg_key *find_setting(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strcasecmp(settings[i].name, name) == 0)
			return &settings[i];
	}
	return NULL;
}

/* Parse the default text of every kept key into CFG. */
static bool apply_defaults(struct loader *ld)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct cfg_key *k = &settings[i];
		union value v = {.s = NULL};
		char why[160];

		if (k->offset == NO_FIELD)
			continue;
		if (k->def != NULL &&
		    !parse_value(k->type, k->def, k->min, k->max, &v, why, sizeof(why)))
			return ld_error(ld, "bad built-in default \"%s\" for key %s: %s", k->def,
			                k->name, why);
		if (!store_setting(ld->cfg, k, &v))
			return ld_error(ld, "out of memory");
	}
	return true;
}

/* A TLS mode that makes TLS mandatory.  pglease has no TLS yet, and ignoring
 * such a setting would let through in clear text what it was set to protect,
 * so it is refused (as auth_type cert/hba/ldap/pam are). */
static bool tls_demanded(const char *key, const char *value)
{
	return (strcasecmp(key, "client_tls_sslmode") == 0 ||
	        strcasecmp(key, "server_tls_sslmode") == 0) &&
	       (strcasecmp(value, "require") == 0 || strcasecmp(value, "verify-ca") == 0 ||
	        strcasecmp(value, "verify-full") == 0);
}

/* A "key = value" line in [pgbouncer]. */
static bool set_setting(struct loader *ld, const char *key, const char *value)
{
	const struct cfg_key *k = find_setting(key);
	union value v;
	char why[160];

	if (k == NULL)
		return ld_error(ld, "unknown key \"%s\"", key);
	if (tls_demanded(key, value))
		return ld_error(ld,
		                "%s = %s: TLS is not supported by pglease yet (disable, allow and "
		                "prefer are accepted, with a warning)",
		                k->name, value);
	if (!k->impl)
		warn_ignored(ld, k->name);
	if (k->offset == NO_FIELD)
		return true;
	if (!parse_value(k->type, value, k->min, k->max, &v, why, sizeof(why)))
		return ld_error(ld, "invalid value \"%s\" for key %s: %s", value, k->name, why);
	if (!store_setting(ld->cfg, k, &v))
		return ld_error(ld, "out of memory");
	return true;
}

/*
 * Connection strings: "key=value key2='quoted value'" as libpq writes them.
 * A quoted value may contain '' or \' for a quote and \\ for a backslash; an
 * unquoted value ends at whitespace and may use backslash escapes.
 */
enum cs_status {
	CS_PAIR,         /* *key and *val are set */
	CS_END,          /* nothing but whitespace left */
	CS_NO_EQUALS,    /* *key is a word not followed by "=" */
	CS_UNTERMINATED, /* *key's quoted value has no closing quote */
	CS_AFTER_QUOTE,  /* *key's closing quote is followed by more text */
};

/* Next pair from *POS, splitting the string in place. */
static enum cs_status cs_next(char **pos, char **key, char **val)
{
	char *p = *pos, *src, *dst, *key_end;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return CS_END;
	*key = p;
	while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
		p++;
	key_end = p;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '=') {
		*key_end = '\0';
		return CS_NO_EQUALS;
	}
	*key_end = '\0';
	p++;
	while (isspace((unsigned char)*p))
		p++;
	*val = dst = p;
	src = p;
	if (*src == '\'') {
		for (src++;; src++) {
			if (*src == '\0')
				return CS_UNTERMINATED;
			if (*src == '\\' && src[1] != '\0') {
				*dst++ = *++src;
			} else if (*src == '\'' && src[1] == '\'') {
				*dst++ = '\'';
				src++;
			} else if (*src == '\'') {
				src++;
				break;
			} else {
				*dst++ = *src;
			}
		}
		if (*src != '\0' && !isspace((unsigned char)*src))
			return CS_AFTER_QUOTE;
	} else {
		while (*src != '\0' && !isspace((unsigned char)*src)) {
			if (*src == '\\' && src[1] != '\0')
				src++;
			*dst++ = *src++;
		}
	}
	/* dst never passes src, so the terminator cannot clobber unread text. */
	*pos = *src != '\0' ? src + 1 : src;
	*dst = '\0';
	return CS_PAIR;
}

/*
 * Parse connection string TEXT of the WHAT entry NAME ("database", "user")
 * into the struct at BASE, using KEYS.
 */
static bool parse_connstr(struct loader *ld, const char *what, const char *name, const char *text,
                          const struct conn_key *keys, size_t n_keys, void *base)
{
	char *copy = strdup(text), *pos = copy, *key = NULL, *val;
	enum cs_status st = CS_END;
	bool ok = true;

	if (copy == NULL)
		return ld_error(ld, "out of memory");
	while (ok && (st = cs_next(&pos, &key, &val)) == CS_PAIR) {
		const struct conn_key *k = NULL;
		union value v;
		char why[160];

		for (size_t i = 0; i < n_keys && k == NULL; i++) {
			if (strcasecmp(keys[i].name, key) == 0)
				k = &keys[i];
		}
		if (k == NULL) {
			ok = ld_error(ld, "%s \"%s\": unknown key \"%s\"", what, name, key);
			break;
		}
		if (!k->impl)
			warn_ignored(ld, k->name);
		if (k->offset == NO_FIELD)
			continue;
		if (!parse_value(k->type, val, k->min, k->max, &v, why, sizeof(why))) {
			ok = ld_error(ld, "%s \"%s\": invalid value \"%s\" for key %s: %s", what,
			              name, val, k->name, why);
		} else if (k->type == T_STR) {
			if (!store_str((char **)(void *)((char *)base + k->offset), v.s))
				ok = ld_error(ld, "out of memory");
		} else {
			*(int *)(void *)((char *)base + k->offset) = (int)v.i;
		}
	}
	if (ok && st == CS_NO_EQUALS)
		ok = ld_error(ld, "%s \"%s\": expected key=value, found \"%s\"", what, name, key);
	else if (ok && st == CS_UNTERMINATED)
		ok = ld_error(ld, "%s \"%s\": unterminated quoted value for key %s", what, name,
		              key);
	else if (ok && st == CS_AFTER_QUOTE)
		ok = ld_error(ld, "%s \"%s\": text after the closing quote of key %s", what, name,
		              key);
	free(copy);
	return ok;
}

static void db_clear(struct cfg_db *db)
{
	char **strs[] = {&db->name,      &db->host,      &db->dbname,          &db->user,
	                 &db->password,  &db->auth_user, &db->connect_query,   &db->client_encoding,
	                 &db->datestyle, &db->timezone,  &db->application_name};

	for (size_t i = 0; i < N_ELEMS(strs); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

/* A "name = connstr" line in [databases]; a later entry of the same name replaces the earlier. */
static bool add_db(struct loader *ld, const char *name, const char *connstr)
{
	struct config *cfg = ld->cfg;
	struct cfg_db db = {.port = 5432,
	                    .pool_size = -1,
	                    .max_overflow = -1,
	                    .reserve_pool_size = -1,
	                    .min_pool_size = -1,
	                    .pool_mode = -1,
	                    .max_db_connections = -1,
	                    .max_db_client_connections = -1,
	                    .line = ld->line};
	struct cfg_db *grown;

	if (strcmp(name, "pgbouncer") == 0)
		return ld_error(ld,
		                "database name \"pgbouncer\" is reserved for the admin console");
	if ((db.name = strdup(name)) == NULL)
		return ld_error(ld, "out of memory");
	if (!parse_connstr(ld, "database", name, connstr, db_keys, N_ELEMS(db_keys), &db)) {
		db_clear(&db);
		return false;
	}
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0) {
			db_clear(&cfg->dbs[i]);
			cfg->dbs[i] = db;
			return true;
		}
	}
	grown = realloc(cfg->dbs, (cfg->n_dbs + 1) * sizeof(*grown));
	if (grown == NULL) {
		db_clear(&db);
		return ld_error(ld, "out of memory");
	}
	cfg->dbs = grown;
	cfg->dbs[cfg->n_dbs++] = db;
	return true;
}

/* A "name = settings" line in [users]; a later entry of the same name replaces the earlier. */
static bool add_user(struct loader *ld, const char *name, const char *settings_text)
{
	struct config *cfg = ld->cfg;
	struct cfg_user user = {.pool_mode = -1,
	                        .pool_size = -1,
	                        .max_user_connections = -1,
	                        .max_user_client_connections = -1,
	                        .line = ld->line};
	struct cfg_user *grown;

	if ((user.name = strdup(name)) == NULL)
		return ld_error(ld, "out of memory");
	if (!parse_connstr(ld, "user", name, settings_text, user_keys, N_ELEMS(user_keys), &user)) {
		free(user.name);
		return false;
	}
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0) {
			free(cfg->users[i].name);
			cfg->users[i] = user;
			return true;
		}
	}
	grown = realloc(cfg->users, (cfg->n_users + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(user.name);
		return ld_error(ld, "out of memory");
	}
	cfg->users = grown;
	cfg->users[cfg->n_users++] = user;
	return true;
}

static bool set_section(struct loader *ld, char *s)
{
	static const struct {
		const char *name;
		enum section sect;
	} sections[] = {{"pgbouncer", SECT_PGBOUNCER},
	                {"pglease", SECT_PGBOUNCER},
	                {"databases", SECT_DATABASES},
	                {"users", SECT_USERS},
	                {"peers", SECT_PEERS}};
	size_t len = strlen(s);
	char *name;

	if (len < 2 || s[len - 1] != ']')
		return ld_error(ld, "syntax error: section header \"%s\" lacks \"]\"", s);
	s[len - 1] = '\0';
	name = trim(s + 1);
	for (size_t i = 0; i < N_ELEMS(sections); i++) {
		if (strcasecmp(sections[i].name, name) == 0) {
			ld->sect = sections[i].sect;
			return true;
		}
	}
	return ld_error(ld, "unknown section [%s]", name);
}

/*
 * Split "key = value" in place.  A key may be written in double quotes with
 * "" for a quote, for database names with unusual characters.
 */
static bool split_key_value(struct loader *ld, char *s, char **key, char **value)
{
	char *eq;

	if (*s == '"') {
		char *src = s + 1, *dst = s;

		for (;; src++) {
			if (*src == '\0')
				return ld_error(ld, "unterminated quoted key");
			if (*src == '"' && src[1] == '"')
				src++;
			else if (*src == '"')
				break;
			*dst++ = *src;
		}
		*dst = '\0';
		eq = src + 1;
		while (isspace((unsigned char)*eq))
			eq++;
		if (*eq != '=')
			return ld_error(ld, "syntax error: expected \"=\" after quoted key");
		*key = s;
	} else {
		eq = strchr(s, '=');
		if (eq == NULL)
			return ld_error(ld,
			                "syntax error: expected \"key = value\", \"[section]\" or "
			                "\"%%include FILE\"");
		*eq = '\0';
		*key = trim(s);
	}
	*value = trim(eq + 1);
	if (**key == '\0')
		return ld_error(ld, "syntax error: missing key before \"=\"");
	return true;
}

static bool load_path(struct loader *ld, const char *path, int depth);

/* "%include FILE": a relative FILE is taken from the including file's directory. */
static bool include_file(struct loader *ld, char *arg, int depth)
{
	const char *slash = strrchr(ld->file, '/');
	char *name = trim(arg), *path;
	size_t dirlen;
	bool ok;

	if (*name == '\0')
		return ld_error(ld, "%%include needs a file name");
	if (depth >= CFG_MAX_INCLUDE_DEPTH)
		return ld_error(ld, "%%include nested more than %d deep (include loop?)",
		                CFG_MAX_INCLUDE_DEPTH);
	dirlen = (name[0] != '/' && slash != NULL) ? (size_t)(slash - ld->file) + 1 : 0;
	path = malloc(dirlen + strlen(name) + 1);
	if (path == NULL)
		return ld_error(ld, "out of memory");
	memcpy(path, ld->file, dirlen);
	strcpy(path + dirlen, name);
	ok = load_path(ld, path, depth + 1);
	free(path);
	return ok;
}

static bool handle_line(struct loader *ld, char *raw, int depth)
{
	char *s = trim(raw), *key = NULL, *value = NULL;

	if (*s == '\0' || *s == ';' || *s == '#')
		return true;
	if (*s == '[')
		return set_section(ld, s);
	if (*s == '%') {
		if (strncmp(s, "%include", 8) == 0 &&
		    (s[8] == '\0' || isspace((unsigned char)s[8])))
			return include_file(ld, s + 8, depth);
		return ld_error(ld, "unknown directive \"%s\"", s);
	}
	if (!split_key_value(ld, s, &key, &value))
		return false;
	switch (ld->sect) {
	case SECT_NONE:
		return ld_error(ld, "key \"%s\" is outside of any section", key);
	case SECT_PGBOUNCER:
		return set_setting(ld, key, value);
	case SECT_DATABASES:
		return add_db(ld, key, value);
	case SECT_USERS:
		return add_user(ld, key, value);
	case SECT_PEERS:
		log_warn(
		    "%s:%d: section [peers] is not supported by pglease yet, entry \"%s\" ignored",
		    ld->file, ld->line, key);
		return true;
	}
	return true;
}

/*
 * Read PATH at include DEPTH.  Sections carry across %include as if the file
 * were pasted in place.  Open errors name the including line, if any.
 */
static bool load_path(struct loader *ld, const char *path, int depth)
{
	const char *outer_file = ld->file;
	int outer_line = ld->line;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	bool ok = true;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		const char *reason = strerror(errno);

		if (depth == 0) {
			snprintf(ld->err, ld->errlen, "cannot open config file \"%s\": %s", path,
			         reason);
			return false;
		}
		return ld_error(ld, "cannot open included file \"%s\": %s", path, reason);
	}
	ld->file = path;
	ld->line = 0;
	while (ok && (n = getline(&buf, &cap, f)) != -1) {
		char *s = buf;

		ld->line++;
		if (ld->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* UTF-8 byte order mark from Windows editors */
		if (strlen(buf) != (size_t)n)
			ok = ld_error(ld, "line contains a NUL byte");
		else
			ok = handle_line(ld, s, depth);
	}
	if (ok && ferror(f))
		ok = ld_error(ld, "read error: %s", strerror(errno));
	free(buf);
	fclose(f);
	/* The message, if any, is written; PATH may be freed once we return. */
	ld->file = outer_file;
	ld->line = outer_line;
	return ok;
}

struct config *cfg_load(const char *path, char *err, size_t errlen)
{
	return cfg_load_with(path, NULL, NULL, 0, err, errlen);
}

struct config *cfg_load_with(const char *path, const char *const *keys, const char *const *values,
                             size_t n, char *err, size_t errlen)
{
	char dummy[1];
	struct loader ld = {.err = err, .errlen = errlen, .file = path};

	if (err == NULL || errlen == 0) {
		ld.err = dummy;
		ld.errlen = sizeof(dummy);
	}
	ld.err[0] = '\0';
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (ld.cfg == NULL) {
		snprintf(ld.err, ld.errlen, "out of memory");
		return NULL;
	}
	if ((ld.cfg->path = strdup(path)) == NULL) {
		snprintf(ld.err, ld.errlen, "out of memory");
		cfg_free(ld.cfg);
		return NULL;
	}
	if (!apply_defaults(&ld) || !load_path(&ld, path, 0)) {
		cfg_free(ld.cfg);
		return NULL;
	}
	ld.file = "SET";
	ld.line = 0;
	ld.sect = SECT_PGBOUNCER;
	for (size_t i = 0; i < n; i++) {
		if (!set_setting(&ld, keys[i], values[i])) {
			cfg_free(ld.cfg);
			return NULL;
		}
	}
	return ld.cfg;
}

void cfg_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (settings[i].offset != NO_FIELD && settings[i].type == T_STR) {
			char **field = (char **)(void *)((char *)cfg + settings[i].offset);

			free(*field);
			*field = NULL;
		}
	}
	for (size_t i = 0; i < cfg->n_dbs; i++)
		db_clear(&cfg->dbs[i]);
	free(cfg->dbs);
	for (size_t i = 0; i < cfg->n_users; i++)
		free(cfg->users[i].name);
	free(cfg->users);
	free(cfg->path);
	free(cfg);
}

const struct cfg_db *cfg_find_db(const struct config *cfg, const char *name)
{
	const struct cfg_db *fallback = NULL;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
		if (strcmp(cfg->dbs[i].name, "*") == 0)
			fallback = &cfg->dbs[i];
	}
	return fallback;
}

const struct cfg_user *cfg_find_user(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	}
	return NULL;
}

bool cfg_list_contains(const char *list, const char *name)
{
	size_t name_len;

	if (list == NULL || name == NULL || name[0] == '\0')
		return false;
	name_len = strlen(name);
	while (*list != '\0') {
		size_t len;

		while (*list == ',' || isspace((unsigned char)*list))
			list++;
		len = 0;
		while (list[len] != '\0' && list[len] != ',' && !isspace((unsigned char)list[len]))
			len++;
		if (len == name_len && strncmp(list, name, len) == 0)
			return true;
		list += len;
	}
	return false;
}

const char *cfg_pool_mode_name(enum pool_mode mode)
{
	if ((unsigned)mode < N_ELEMS(pool_mode_names))
		return pool_mode_names[mode];
	return "unknown";
}

const char *cfg_auth_type_name(enum auth_type type)
{
	if ((unsigned)type < N_ELEMS(auth_type_names))
		return auth_type_names[type];
	return "unknown";
}

size_t cfg_key_count(void)
{
	return N_SETTINGS;
}

bool cfg_key_info(size_t i, const char **name, const char **default_text, bool *reloadable)
{
	if (i >= N_SETTINGS)
		return false;
	if (name != NULL)
		*name = settings[i].name;
	if (default_text != NULL)
		*default_text = settings[i].def != NULL ? settings[i].def : "";
	if (reloadable != NULL)
		*reloadable = settings[i].reload;
	return true;
}

bool cfg_key_implemented(size_t i)
{
	return i < N_SETTINGS && settings[i].impl;
}

const char *cfg_key_description(size_t i)
{
	return i < N_SETTINGS ? settings[i].doc : "";
}

bool cfg_key_find(const char *name, size_t *index)
{
	const struct cfg_key *k = name != NULL ? find_setting(name) : NULL;

	if (k == NULL)
		return false;
	if (index != NULL)
		*index = (size_t)(k - settings);
	return true;
}

/* Seconds without trailing zeros: 5, 0.1, 3600. */
static void format_seconds(double v, char *buf, size_t len)
{
	char *end;

	snprintf(buf, len, "%.6f", v);
	if (strchr(buf, '.') == NULL)
		return;
	end = buf + strlen(buf);
	while (end > buf && end[-1] == '0')
		*--end = '\0';
	if (end > buf && end[-1] == '.')
		end[-1] = '\0';
}

void cfg_value_text(const struct config *cfg, size_t i, char *buf, size_t len)
{
	const struct cfg_key *k;
	const void *field;

	if (buf == NULL || len == 0)
		return;
	buf[0] = '\0';
	if (i >= N_SETTINGS || cfg == NULL)
		return;
	k = &settings[i];
	if (k->offset == NO_FIELD) {
		snprintf(buf, len, "%s", k->def != NULL ? k->def : "");
		return;
	}
	field = (const char *)cfg + k->offset;
	switch (k->type) {
	case T_STR: {
		const char *s = *(char *const *)field;

		snprintf(buf, len, "%s", s != NULL ? s : "");
		break;
	}
	case T_INT:
		snprintf(buf, len, "%d", *(const int *)field);
		break;
	case T_FILEMODE:
		snprintf(buf, len, "0%o", (unsigned)*(const int *)field);
		break;
	case T_BOOL:
		snprintf(buf, len, "%d", *(const bool *)field ? 1 : 0);
		break;
	case T_TIME:
		format_seconds(*(const double *)field, buf, len);
		break;
	case T_POOL_MODE:
		snprintf(buf, len, "%s", cfg_pool_mode_name(*(const enum pool_mode *)field));
		break;
	case T_AUTH_TYPE:
		snprintf(buf, len, "%s", cfg_auth_type_name(*(const enum auth_type *)field));
		break;
	}
}
