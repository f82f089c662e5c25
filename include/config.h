/*
 * config: pgbouncer.ini-syntax configuration.
 *
 * A loaded config is immutable: cfg_load() builds a new struct config and the
 * runtime swaps it in whole (on start and on reload).  Every key pglease knows
 * is described once in a table in config.c (name, type, default, whether a
 * reload changes it); SHOW CONFIG and doc/config.md are derived from it.
 */
#ifndef PGL_CONFIG_H
#define PGL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum pool_mode { POOL_SESSION = 0, POOL_TRANSACTION, POOL_STATEMENT };

enum auth_type {
	AUTH_TRUST = 0, /* no password asked; user must exist in auth_file */
	AUTH_ANY,       /* no password asked; any user name accepted */
	AUTH_PLAIN,     /* cleartext password */
	AUTH_MD5,       /* md5, or SCRAM when the stored secret is SCRAM */
	AUTH_SCRAM,     /* scram-sha-256 */
};

/* One [databases] entry; NULL/-1 means "not given" so the global default applies. */
struct cfg_db {
	char *name;       /* key in [databases]; "*" is the fallback entry */
	char *host;       /* NULL: unix socket in /var/run/postgresql; leading '/': socket dir */
	int port;         /* default 5432 */
	char *dbname;     /* NULL: same as name (for "*": the client's database name) */
	char *user;       /* forced server login user, or NULL */
	char *password;   /* password for that user, or NULL */
	char *auth_user;  /* accepted, not used yet */
	int pool_size;    /* -1: default_pool_size */
	int max_overflow; /* -1: global max_overflow */
	int reserve_pool_size;         /* -1: global */
	int min_pool_size;             /* -1: global */
	int pool_mode;                 /* -1: global; else enum pool_mode */
	int max_db_connections;        /* -1: global */
	int max_db_client_connections; /* -1: global */
	char *connect_query;           /* or NULL */
	char *client_encoding;         /* server-side defaults sent at login, or NULL */
	char *datestyle;
	char *timezone;
	char *application_name;
	int line; /* line in the file that defined it, for messages */
};

/* One [users] entry. */
struct cfg_user {
	char *name;
	int pool_mode;                   /* -1: not set */
	int pool_size;                   /* -1: not set */
	int max_user_connections;        /* -1: global */
	int max_user_client_connections; /* -1: global */
	int line;
};

struct config {
	char *path; /* the main file as given */

	/* [pgbouncer] / [pglease] */
	char *listen_addr;     /* "*", addresses, comma separated; "" = no TCP */
	int listen_port;       /* 6432 */
	char *unix_socket_dir; /* "" = no unix socket; default "/tmp" */
	int unix_socket_mode;  /* 0777 */
	enum auth_type auth_type;
	char *auth_file;
	enum pool_mode pool_mode;
	int default_pool_size;           /* 20 */
	int max_overflow;                /* 0 */
	int reserve_pool_size;           /* 0 */
	double reserve_pool_timeout;     /* seconds, 5 */
	int min_pool_size;               /* 0 */
	int max_client_conn;             /* 100 */
	int max_db_connections;          /* 0 = unlimited */
	int max_user_connections;        /* 0 = unlimited */
	int max_db_client_connections;   /* 0 = unlimited */
	int max_user_client_connections; /* 0 = unlimited */
	char *server_reset_query;        /* "DISCARD ALL" */
	bool server_reset_query_always;
	char *server_check_query;        /* "select 1" */
	double server_check_delay;       /* 30 */
	double server_idle_timeout;      /* 600 */
	double server_lifetime;          /* 3600 */
	double server_connect_timeout;   /* 15 */
	double server_login_retry;       /* 15 */
	double client_login_timeout;     /* 60 */
	double client_idle_timeout;      /* 0 */
	double query_timeout;            /* 0 */
	double query_wait_timeout;       /* 120 */
	double idle_transaction_timeout; /* 0 */
	double autodb_idle_timeout;      /* 3600 */
	double overflow_idle_timeout;    /* 0: close overflow servers when released */
	double query_wait_notify;        /* 5 */
	double transaction_timeout;      /* 0 */
	bool server_round_robin;         /* false: LIFO */
	char *logfile;                   /* "" */
	char *pidfile;                   /* "" */
	char *admin_users;               /* comma list, "" */
	char *stats_users;               /* comma list, "" */
	char *ignore_startup_parameters; /* comma list, "" */
	char *track_extra_parameters;    /* comma list, "IntervalStyle" */
	int max_packet_size;             /* 2147483647 */
	int pkt_buf;                     /* 4096 */
	int listen_backlog;              /* 128 */
	int verbose;                     /* 0 */
	bool log_connections;            /* true */
	bool log_disconnections;         /* true */
	bool log_pooler_errors;          /* true */
	int stats_period;                /* 60 */
	bool log_stats;                  /* true: a stats line every stats_period */
	char *application_name_add_host; /* accepted only */
	int max_prepared_statements;     /* 200 */
	double dns_max_ttl;              /* 15 */
	double dns_nxdomain_ttl;         /* 15 */
	char *metrics_listen;            /* "" = off */

	struct cfg_db *dbs; /* [databases] entries in file order */
	size_t n_dbs;
	struct cfg_user *users; /* [users] entries in file order */
	size_t n_users;
};

/*
 * Load PATH (following %include).  On success returns a new config owned by
 * the caller.  On failure returns NULL and writes into ERR one message naming
 * file and line, e.g. "pglease.ini:12: invalid value \"x\" for key pool_mode".
 * Keys PgBouncer knows that pglease does not implement are accepted and each
 * produces one warning via log_warn().
 */
struct config *cfg_load(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* cfg_load(PATH), then the [pgbouncer] settings KEYS[i] = VALUES[i] on top
 * (the console's SET).  Their messages name "SET" instead of a file:line. */
struct config *cfg_load_with(const char *path, const char *const *keys, const char *const *values,
                             size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free a config from cfg_load(); NULL is fine. */
void cfg_free(struct config *cfg);

/* The [databases] entry for NAME, else the "*" entry, else NULL. */
const struct cfg_db *cfg_find_db(const struct config *cfg, const char *name);

/* The [users] entry for NAME, or NULL. */
const struct cfg_user *cfg_find_user(const struct config *cfg, const char *name);

/* True when NAME appears in the comma/space separated LIST (case-sensitive). */
bool cfg_list_contains(const char *list, const char *name);

/* Pool mode / auth type name for messages ("session", "md5", ...). */
const char *cfg_pool_mode_name(enum pool_mode mode);
const char *cfg_auth_type_name(enum auth_type type);

/*
 * Read access to the [pgbouncer] settings table, for SHOW CONFIG and the docs.
 * Keys are indexed 0 .. cfg_key_count()-1 in alphabetical order and include
 * the PgBouncer keys pglease accepts but ignores (cfg_key_implemented() false).
 */

/* Number of keys in the settings table. */
size_t cfg_key_count(void);

/*
 * Name, default as text ("" when the default is "not set") and whether RELOAD
 * applies a change of key I.  Any output pointer may be NULL.  False when I is
 * out of range.  The strings are static.
 */
bool cfg_key_info(size_t i, const char **name, const char **default_text, bool *reloadable);

/* True when pglease acts on key I; false for accepted-and-ignored keys or I out of range. */
bool cfg_key_implemented(size_t i);

/* One-line description of key I (static string; "" when I is out of range). */
const char *cfg_key_description(size_t i);

/* Index of the key called NAME (case-insensitive) into *INDEX; false when unknown. */
bool cfg_key_find(const char *name, size_t *index) __attribute__((warn_unused_result));

/*
 * Value of key I in CFG as SHOW CONFIG prints it (bools as 1/0, times in
 * seconds, unix_socket_mode in octal, "" for unset strings), truncated to fit
 * LEN bytes of BUF.  Ignored keys show their default.  "" when I is out of range.
 */
void cfg_value_text(const struct config *cfg, size_t i, char *buf, size_t len);

#endif
