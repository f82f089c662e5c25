/*
 * unit_config: the pgbouncer.ini loader, without sockets.
 *
 * Each case writes files into a fresh temporary directory, loads them and
 * checks values, or checks the exact "FILE:LINE: message" of a rejection.
 * Warnings are captured by pointing the log at a file in that directory.
 */
#include "config.h"
#include "log.h"
#include "tap.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256]; /* the temporary directory; short, so joined paths fit PATH_MAX */
static char log_path[PATH_MAX];

static void path_of(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		tap_bail("path too long: %s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	path_of(path, sizeof(path), name);
	f = fopen(path, "w");
	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		tap_bail("cannot write %s", path);
}

static struct config *load(const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];

	path_of(path, sizeof(path), name);
	return cfg_load(path, err, errlen);
}

static char last_warning[4096]; /* the last one take_warnings() saw */

/* Number of "not supported" warnings logged since the last call. */
static int take_warnings(void)
{
	char line[4096];
	int n = 0;
	FILE *f;

	log_close();
	f = fopen(log_path, "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strstr(line, "not supported by pglease yet") != NULL) {
				n++;
				line[strcspn(line, "\n")] = '\0';
				snprintf(last_warning, sizeof(last_warning), "%s", line);
			}
		}
		fclose(f);
	}
	f = fopen(log_path, "w");
	if (f != NULL)
		fclose(f);
	if (!log_open(log_path))
		tap_bail("cannot open %s", log_path);
	return n;
}

/* Load TEXT as FILE (after writing EXTRA files) and expect ERRFILE:LINE: MSG. */
static void expect_error_in(const char *file, const char *text, const char *errfile, int line,
                            const char *msg)
{
	char err[512], want[PATH_MAX + 512], path[PATH_MAX];
	struct config *cfg;

	write_file(file, text);
	cfg = load(file, err, sizeof(err));
	path_of(path, sizeof(path), errfile);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	tap_ok(cfg == NULL, "rejected: %s", msg);
	tap_is_str(err, want, "  with file:line and message");
	cfg_free(cfg);
}

static void expect_error(const char *text, int line, const char *msg)
{
	expect_error_in("bad.ini", text, "bad.ini", line, msg);
}

/* Keys named like PgBouncer's shipped pgbouncer.ini, all set, with our own values. */
static const char debian_ini[] =
    ";; a complete pgbouncer.ini as Debian ships it, every key set\n"
    "[databases]\n"
    "foodb =\n"
    "bardb = host=localhost dbname=bazdb\n"
    "forcedb = host=localhost port=300 user=baz password=foo client_encoding=UNICODE "
    "datestyle=ISO connect_query='SELECT 1'\n"
    "nondefaultdb = pool_size=50 reserve_pool=10\n"
    "foodb = auth_user=bar\n"
    "* = host=testserver\n"
    "\n"
    "[users]\n"
    "user1 = pool_mode=transaction max_user_connections=10\n"
    "\n"
    "[pgbouncer]\n"
    "logfile = /var/log/postgresql/pgbouncer.log\n"
    "pidfile = /var/run/postgresql/pgbouncer.pid\n"
    "listen_addr = localhost\n"
    "listen_port = 6432\n"
    "unix_socket_dir = /var/run/postgresql\n"
    "unix_socket_mode = 0777\n"
    "unix_socket_group =\n"
    "client_tls_sslmode = disable\n"
    "client_tls_ca_file = /etc/ssl/certs/ca-certificates.crt\n"
    "client_tls_key_file =\n"
    "client_tls_cert_file =\n"
    "client_tls_ciphers = fast\n"
    "client_tls_protocols = secure\n"
    "client_tls_dheparams = auto\n"
    "client_tls_ecdhcurve = auto\n"
    "server_tls_sslmode = disable\n"
    "server_tls_ca_file =\n"
    "server_tls_key_file =\n"
    "server_tls_cert_file =\n"
    "server_tls_protocols = secure\n"
    "server_tls_ciphers = fast\n"
    "auth_type = md5\n"
    "auth_file = /etc/pgbouncer/userlist.txt\n"
    "auth_hba_file =\n"
    "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n"
    "admin_users = user2, someadmin, otheradmin\n"
    "stats_users = stats, root\n"
    "pool_mode = session\n"
    "server_reset_query = DISCARD ALL\n"
    "server_reset_query_always = 0\n"
    "ignore_startup_parameters = extra_float_digits\n"
    "server_check_query = select 1\n"
    "server_check_delay = 30\n"
    "server_fast_close = 0\n"
    "application_name_add_host = 0\n"
    "stats_period = 60\n"
    "max_client_conn = 100\n"
    "default_pool_size = 20\n"
    "min_pool_size = 0\n"
    "reserve_pool_size = 0\n"
    "reserve_pool_timeout = 5\n"
    "max_db_connections = 0\n"
    "max_user_connections = 0\n"
    "server_round_robin = 0\n"
    "syslog = 0\n"
    "syslog_facility = daemon\n"
    "syslog_ident = pgbouncer\n"
    "log_connections = 1\n"
    "log_disconnections = 1\n"
    "log_pooler_errors = 1\n"
    "log_stats = 1\n"
    "verbose = 0\n"
    "server_lifetime = 3600\n"
    "server_idle_timeout = 600\n"
    "server_connect_timeout = 15\n"
    "server_login_retry = 15\n"
    "query_timeout = 0\n"
    "query_wait_timeout = 120\n"
    "client_idle_timeout = 0\n"
    "client_login_timeout = 60\n"
    "autodb_idle_timeout = 3600\n"
    "idle_transaction_timeout = 0\n"
    "suspend_timeout = 10\n"
    "pkt_buf = 4096\n"
    "listen_backlog = 128\n"
    "sbuf_loopcnt = 5\n"
    "max_packet_size = 2147483647\n"
    "so_reuseport = 0\n"
    "tcp_defer_accept = 0\n"
    "tcp_socket_buffer = 0\n"
    "tcp_keepalive = 1\n"
    "tcp_keepcnt = 0\n"
    "tcp_keepidle = 0\n"
    "tcp_keepintvl = 0\n"
    "tcp_user_timeout = 0\n"
    "dns_max_ttl = 15\n"
    "dns_zone_check_period = 0\n"
    "dns_nxdomain_ttl = 15\n"
    "resolv_conf = /etc/pgbouncer/resolv.conf\n"
    "disable_pqexec = 0\n"
    "conffile = /etc/pgbouncer/pgbouncer.ini\n"
    "service_name = pgbouncer\n"
    "job_name = pgbouncer\n"
    "%include debian-other.ini\n";

/* Unsupported [pgbouncer] keys set in TEXT, counted from the key table. */
static int count_unsupported(const char *text)
{
	const char *p = text;
	bool in_pgbouncer = false;
	int n = 0;

	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		char line[512], *eq;
		size_t i;

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		p += len + (p[len] == '\n');
		if (line[0] == '[')
			in_pgbouncer = strcmp(line, "[pgbouncer]") == 0;
		eq = strstr(line, " =");
		if (!in_pgbouncer || eq == NULL)
			continue;
		*eq = '\0';
		if (cfg_key_find(line, &i) && !cfg_key_implemented(i))
			n++;
	}
	return n;
}

static void test_debian_ini(void)
{
	char err[512];
	struct config *cfg;
	const struct cfg_db *db;
	const struct cfg_user *user;
	int want_warnings = count_unsupported(debian_ini) + 1; /* + foodb's auth_user */

	write_file("debian.ini", debian_ini);
	write_file("debian-other.ini", "; included from debian.ini\nmax_client_conn = 250\n");
	take_warnings();
	cfg = load("debian.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "Debian-style pgbouncer.ini with every key loads"))
		tap_diag("error: %s", err);
	tap_is_int(take_warnings(), want_warnings, "one warning per unsupported key");
	tap_ok(want_warnings > 30, "the file sets many unsupported keys (%d)", want_warnings);
	if (cfg == NULL)
		return;
	tap_is_str(cfg->listen_addr, "localhost", "listen_addr");
	tap_is_str(cfg->unix_socket_dir, "/var/run/postgresql", "unix_socket_dir");
	tap_is_str(cfg->admin_users, "user2, someadmin, otheradmin", "admin_users kept raw");
	tap_is_str(cfg->auth_file, "/etc/pgbouncer/userlist.txt", "auth_file");
	tap_is_int(cfg->max_client_conn, 250, "%include at the end overrides max_client_conn");
	tap_is_int(cfg->n_dbs, 5, "five databases (foodb given twice)");
	db = cfg_find_db(cfg, "foodb");
	tap_ok(db != NULL && db->auth_user != NULL && strcmp(db->auth_user, "bar") == 0,
	       "later foodb entry replaces the earlier");
	tap_ok(db == &cfg->dbs[0], "replaced entry keeps its place");
	db = cfg_find_db(cfg, "forcedb");
	tap_ok(db != NULL, "forcedb found");
	if (db != NULL) {
		tap_is_int(db->port, 300, "forcedb port");
		tap_is_str(db->user, "baz", "forcedb user");
		tap_is_str(db->password, "foo", "forcedb password");
		tap_is_str(db->client_encoding, "UNICODE", "forcedb client_encoding");
		tap_is_str(db->datestyle, "ISO", "forcedb datestyle");
		tap_is_str(db->connect_query, "SELECT 1", "quoted connect_query");
	}
	db = cfg_find_db(cfg, "nondefaultdb");
	tap_ok(db != NULL && db->pool_size == 50 && db->reserve_pool_size == 10,
	       "pool_size and reserve_pool alias");
	user = cfg_find_user(cfg, "user1");
	tap_ok(user != NULL && user->pool_mode == POOL_TRANSACTION &&
	           user->max_user_connections == 10,
	       "[users] user1");
	cfg_free(cfg);
}

static void test_defaults(void)
{
	char err[512], path[PATH_MAX], buf[256];
	struct config *cfg;
	size_t i, mismatches = 0;

	write_file("empty.ini", "[pgbouncer]\n");
	cfg = load("empty.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "file with only [pgbouncer] loads"))
		return;
	path_of(path, sizeof(path), "empty.ini");
	tap_is_str(cfg->path, path, "path remembered");
	tap_is_str(cfg->listen_addr, "", "listen_addr default empty");
	tap_is_int(cfg->listen_port, 6432, "listen_port default");
	tap_is_str(cfg->unix_socket_dir, "/tmp", "unix_socket_dir default");
	tap_is_int(cfg->unix_socket_mode, 0777, "unix_socket_mode default");
	tap_is_int(cfg->auth_type, AUTH_MD5, "auth_type default md5");
	tap_ok(cfg->auth_file == NULL, "auth_file default unset");
	tap_is_int(cfg->pool_mode, POOL_SESSION, "pool_mode default session");
	tap_is_int(cfg->default_pool_size, 20, "default_pool_size");
	tap_is_int(cfg->max_overflow, 0, "max_overflow");
	tap_is_int(cfg->reserve_pool_size, 0, "reserve_pool_size");
	tap_ok(cfg->reserve_pool_timeout == 5.0, "reserve_pool_timeout 5");
	tap_is_int(cfg->max_client_conn, 100, "max_client_conn");
	tap_is_str(cfg->server_reset_query, "DISCARD ALL", "server_reset_query");
	tap_ok(!cfg->server_reset_query_always, "server_reset_query_always off");
	tap_is_str(cfg->server_check_query, "select 1", "server_check_query");
	tap_ok(cfg->server_check_delay == 30 && cfg->server_idle_timeout == 600 &&
	           cfg->server_lifetime == 3600 && cfg->server_connect_timeout == 15 &&
	           cfg->server_login_retry == 15,
	       "server timeouts");
	tap_ok(cfg->client_login_timeout == 60 && cfg->client_idle_timeout == 0 &&
	           cfg->query_timeout == 0 && cfg->query_wait_timeout == 120 &&
	           cfg->idle_transaction_timeout == 0 && cfg->autodb_idle_timeout == 3600,
	       "client and query timeouts");
	tap_is_str(cfg->track_extra_parameters, "IntervalStyle", "track_extra_parameters");
	tap_is_int(cfg->max_packet_size, 2147483647, "max_packet_size");
	tap_is_int(cfg->pkt_buf, 4096, "pkt_buf");
	tap_is_int(cfg->listen_backlog, 128, "listen_backlog");
	tap_ok(cfg->log_connections && cfg->log_disconnections && cfg->log_pooler_errors,
	       "log_* on");
	tap_is_int(cfg->stats_period, 60, "stats_period");
	tap_is_int(cfg->max_prepared_statements, 200, "max_prepared_statements");
	tap_ok(cfg->dns_max_ttl == 15 && cfg->dns_nxdomain_ttl == 15, "dns ttls");
	tap_is_str(cfg->metrics_listen, "", "metrics_listen off");
	tap_ok(cfg->n_dbs == 0 && cfg->n_users == 0, "no databases or users");
	for (i = 0; i < cfg_key_count(); i++) {
		const char *name, *def;

		if (!cfg_key_info(i, &name, &def, NULL))
			break;
		cfg_value_text(cfg, i, buf, sizeof(buf));
		if (strcmp(buf, def) != 0) {
			tap_diag("%s: value \"%s\", default text \"%s\"", name, buf, def);
			mismatches++;
		}
	}
	tap_is_int((long long)mismatches, 0, "every value's text equals its default text");
	cfg_free(cfg);

	write_file("blank.ini", "");
	cfg = load("blank.ini", err, sizeof(err));
	tap_ok(cfg != NULL && cfg->listen_port == 6432, "empty file loads with defaults");
	cfg_free(cfg);
}

static void test_values(void)
{
	char err[512], buf[256];
	struct config *cfg;
	size_t i;

	write_file("values.ini", "\xEF\xBB\xBF; byte order mark above, CRLF line ends below\r\n"
	                         "[PgLease]\r\n"
	                         "  listen_port=7000  \r\n"
	                         "POOL_MODE = Transaction\n"
	                         "auth_type = scram-sha-256\n"
	                         "log_connections = off\n"
	                         "log_disconnections = NO\n"
	                         "log_pooler_errors = yes\n"
	                         "server_reset_query_always = true\n"
	                         "reserve_pool_timeout = 250ms\n"
	                         "server_check_delay = 1.5\n"
	                         "server_idle_timeout = 2min\n"
	                         "server_lifetime = 1h\n"
	                         "query_timeout = 3 s\n"
	                         "dns_max_ttl = 500us\n"
	                         "unix_socket_mode = 0700\n"
	                         "server_reset_query = DISCARD ALL; SELECT 1 # not a comment\n"
	                         "# a comment\n"
	                         "   ; an indented comment\n"
	                         "admin_users =    alice ,bob   \n"
	                         "max_overflow = 5\n"
	                         "listen_addr = 127.0.0.1, ::1\n"
	                         "default_pool_size = 8\n"
	                         "default_pool_size = 9\n");
	cfg = load("values.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "values file with BOM, CRLF and [pglease] loads")) {
		tap_diag("error: %s", err);
		return;
	}
	tap_is_int(cfg->listen_port, 7000, "key without spaces around =");
	tap_is_int(cfg->pool_mode, POOL_TRANSACTION, "key and enum are case-insensitive");
	tap_is_int(cfg->auth_type, AUTH_SCRAM, "auth_type scram-sha-256");
	tap_ok(!cfg->log_connections && !cfg->log_disconnections, "bool off / NO");
	tap_ok(cfg->log_pooler_errors && cfg->server_reset_query_always, "bool yes / true");
	tap_ok(cfg->reserve_pool_timeout > 0.2499 && cfg->reserve_pool_timeout < 0.2501, "250ms");
	tap_ok(cfg->server_check_delay == 1.5, "fractional seconds");
	tap_ok(cfg->server_idle_timeout == 120, "2min");
	tap_ok(cfg->server_lifetime == 3600, "1h");
	tap_ok(cfg->query_timeout == 3, "3 s");
	tap_ok(cfg->dns_max_ttl > 0.000499 && cfg->dns_max_ttl < 0.000501, "500us");
	tap_is_int(cfg->unix_socket_mode, 0700, "octal mode");
	tap_is_str(cfg->server_reset_query, "DISCARD ALL; SELECT 1 # not a comment",
	           "; and # inside a value are kept");
	tap_is_str(cfg->admin_users, "alice ,bob", "value trimmed");
	tap_is_int(cfg->max_overflow, 5, "max_overflow");
	tap_is_int(cfg->default_pool_size, 9, "a repeated key: last wins");
	tap_ok(cfg_list_contains(cfg->admin_users, "bob"), "bob is an admin");

	tap_ok(cfg_key_find("unix_socket_mode", &i), "find unix_socket_mode");
	cfg_value_text(cfg, i, buf, sizeof(buf));
	tap_is_str(buf, "0700", "mode shown in octal");
	tap_ok(cfg_key_find("reserve_pool_timeout", &i), "find reserve_pool_timeout");
	cfg_value_text(cfg, i, buf, sizeof(buf));
	tap_is_str(buf, "0.25", "seconds shown without trailing zeros");
	tap_ok(cfg_key_find("POOL_MODE", &i), "find is case-insensitive");
	cfg_value_text(cfg, i, buf, sizeof(buf));
	tap_is_str(buf, "transaction", "enum shown by name");
	tap_ok(cfg_key_find("auth_type", &i), "find auth_type");
	cfg_value_text(cfg, i, buf, sizeof(buf));
	tap_is_str(buf, "scram-sha-256", "auth_type shown by name");
	tap_ok(cfg_key_find("log_connections", &i), "find log_connections");
	cfg_value_text(cfg, i, buf, sizeof(buf));
	tap_is_str(buf, "0", "bool shown as 0");
	tap_ok(cfg_key_find("listen_addr", &i), "find listen_addr");
	cfg_value_text(cfg, i, buf, 6);
	tap_is_str(buf, "127.0", "value text truncated to the buffer");
	cfg_free(cfg);
}

static void test_databases(void)
{
	char err[512];
	struct config *cfg;
	const struct cfg_db *db;

	write_file("dbs.ini",
	           "[databases]\n"
	           "plain =\n"
	           "spaced = host = db.example.com   port = 5433 dbname=real\n"
	           "q = connect_query='SELECT ''it''''s'' AS x' application_name=my\\ app "
	           "password='p\\'w\\\\d' timezone=''\n"
	           "limits = pool_size=7 max_overflow=3 reserve_pool_size=2 min_pool_size=1 "
	           "pool_mode=statement max_db_connections=30 max_db_client_connections=300\n"
	           "\"my-db\" = host=/var/run/postgresql\n"
	           "\"a\"\"b\" = dbname=ab\n"
	           "* = host=fallback.example.com\n"
	           "moved = auth_query='SELECT 1' server_lifetime=10 load_balance_hosts=disable\n");
	take_warnings();
	cfg = load("dbs.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "[databases] file loads")) {
		tap_diag("error: %s", err);
		return;
	}
	tap_is_int(take_warnings(), 3, "unsupported connection keys warn once each");
	db = cfg_find_db(cfg, "plain");
	tap_ok(db != NULL && db->host == NULL && db->port == 5432 && db->dbname == NULL &&
	           db->pool_size == -1 && db->pool_mode == -1 && db->max_overflow == -1 &&
	           db->reserve_pool_size == -1 && db->min_pool_size == -1 &&
	           db->max_db_connections == -1 && db->max_db_client_connections == -1,
	       "empty entry: unix socket, port 5432, everything else unset");
	tap_ok(db != NULL && db->line == 2, "entry remembers its line");
	db = cfg_find_db(cfg, "spaced");
	tap_ok(db != NULL && db->port == 5433, "spaces around = in connection string");
	tap_is_str(db ? db->host : NULL, "db.example.com", "spaced host");
	tap_is_str(db ? db->dbname : NULL, "real", "spaced dbname");
	db = cfg_find_db(cfg, "q");
	tap_is_str(db ? db->connect_query : NULL, "SELECT 'it''s' AS x", "'' inside quotes");
	tap_is_str(db ? db->application_name : NULL, "my app", "backslash escape unquoted");
	tap_is_str(db ? db->password : NULL, "p'w\\d", "backslash escapes inside quotes");
	tap_is_str(db ? db->timezone : NULL, "", "empty quoted value");
	db = cfg_find_db(cfg, "limits");
	tap_ok(db != NULL && db->pool_size == 7 && db->max_overflow == 3 &&
	           db->reserve_pool_size == 2 && db->min_pool_size == 1 &&
	           db->pool_mode == POOL_STATEMENT && db->max_db_connections == 30 &&
	           db->max_db_client_connections == 300,
	       "all pool limits per database");
	db = cfg_find_db(cfg, "my-db");
	tap_is_str(db ? db->name : NULL, "my-db", "quoted database name");
	db = cfg_find_db(cfg, "a\"b");
	tap_is_str(db ? db->dbname : NULL, "ab", "\"\" in a quoted database name");
	db = cfg_find_db(cfg, "nosuch");
	tap_is_str(db ? db->name : NULL, "*", "unknown name falls back to \"*\"");
	tap_is_str(db ? db->host : NULL, "fallback.example.com", "fallback host");
	db = cfg_find_db(cfg, "moved");
	tap_ok(db != NULL && db->host == NULL, "ignored keys leave the entry alone");
	tap_ok(cfg_find_db(cfg, NULL) == NULL, "NULL name finds nothing");
	cfg_free(cfg);

	write_file("nofallback.ini", "[databases]\nonly = host=x\nonly = host=y\n");
	cfg = load("nofallback.ini", err, sizeof(err));
	tap_ok(cfg != NULL && cfg_find_db(cfg, "other") == NULL, "no \"*\": unknown name is NULL");
	tap_ok(cfg != NULL && cfg->n_dbs == 1 && strcmp(cfg->dbs[0].host, "y") == 0,
	       "duplicate name: one entry, the last one");
	cfg_free(cfg);
}

static void test_users(void)
{
	char err[512];
	struct config *cfg;
	const struct cfg_user *u;

	write_file("users.ini", "[users]\n"
	                        "alice = pool_mode=transaction pool_size=5 max_user_connections=10 "
	                        "max_user_client_connections=40\n"
	                        "bob =\n"
	                        "carol = query_timeout=5 client_idle_timeout=10\n"
	                        "bob = pool_size=2\n");
	take_warnings();
	cfg = load("users.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "[users] loads")) {
		tap_diag("error: %s", err);
		return;
	}
	tap_is_int(take_warnings(), 2, "unsupported user keys warn");
	u = cfg_find_user(cfg, "alice");
	tap_ok(u != NULL && u->pool_mode == POOL_TRANSACTION && u->pool_size == 5 &&
	           u->max_user_connections == 10 && u->max_user_client_connections == 40 &&
	           u->line == 2,
	       "alice's settings");
	u = cfg_find_user(cfg, "bob");
	tap_ok(u != NULL && u->pool_size == 2 && u->pool_mode == -1 &&
	           u->max_user_connections == -1 && u->max_user_client_connections == -1,
	       "bob: last entry wins, rest unset");
	tap_is_int(cfg->n_users, 3, "three users");
	tap_ok(cfg_find_user(cfg, "dave") == NULL, "unknown user is NULL");
	tap_ok(cfg_find_user(cfg, "Alice") == NULL, "user names are case-sensitive");
	cfg_free(cfg);
}

static void test_include(void)
{
	char err[512], sub[PATH_MAX];
	struct config *cfg;

	path_of(sub, sizeof(sub), "conf.d");
	if (mkdir(sub, 0700) != 0)
		tap_bail("mkdir %s", sub);
	write_file("conf.d/dbs.ini", "db1 = host=h1\n");
	write_file("conf.d/pgb.ini", "pool_mode = transaction\n%include ../more.ini\n");
	write_file("more.ini", "max_client_conn = 55\n");
	write_file("main.ini", "[databases]\n"
	                       "%include conf.d/dbs.ini\n"
	                       "[pgbouncer]\n"
	                       "%include   conf.d/pgb.ini  \n"
	                       "listen_port = 7001\n");
	cfg = load("main.ini", err, sizeof(err));
	if (!tap_ok(cfg != NULL, "nested relative %%include loads"))
		tap_diag("error: %s", err);
	tap_ok(cfg != NULL && cfg_find_db(cfg, "db1") != NULL,
	       "included file continues the current section");
	tap_ok(cfg != NULL && cfg->pool_mode == POOL_TRANSACTION, "included setting applied");
	tap_ok(cfg != NULL && cfg->max_client_conn == 55,
	       "nested include relative to its includer");
	tap_ok(cfg != NULL && cfg->listen_port == 7001, "lines after %%include still read");
	cfg_free(cfg);

	expect_error_in("after.ini", "[pgbouncer]\n%include more.ini\nbogus = 1\n", "after.ini", 3,
	                "unknown key \"bogus\"");
	write_file("inner.ini", "listen_port = 1\nnope = 2\n");
	expect_error_in("outer.ini", "[pgbouncer]\n%include inner.ini\n", "inner.ini", 2,
	                "unknown key \"nope\"");
	expect_error_in("loop.ini", "[pgbouncer]\n%include loop.ini\n", "loop.ini", 2,
	                "%include nested more than 10 deep (include loop?)");
}

static void test_errors(void)
{
	char err[512], path[PATH_MAX], want[PATH_MAX + 100];
	struct config *cfg;

	expect_error("[pgbouncer]\nlisten_port = 6432\nfoo = 1\n", 3, "unknown key \"foo\"");
	expect_error("[pgbouncer]\ndefault_pool_size = lots\n", 2,
	             "invalid value \"lots\" for key default_pool_size: expected an integer >= 0");
	expect_error("[pgbouncer]\ndefault_pool_size = 5x\n", 2,
	             "invalid value \"5x\" for key default_pool_size: expected an integer >= 0");
	expect_error("[pgbouncer]\nlisten_port = 70000\n", 2,
	             "invalid value \"70000\" for key listen_port: expected an integer from 1 to "
	             "65535");
	expect_error(
	    "[pgbouncer]\nlisten_port = 0\n", 2,
	    "invalid value \"0\" for key listen_port: expected an integer from 1 to 65535");
	expect_error("[pgbouncer]\nmax_client_conn = -1\n", 2,
	             "invalid value \"-1\" for key max_client_conn: expected an integer >= 0");
	expect_error("[pgbouncer]\nmax_client_conn = 99999999999\n", 2,
	             "invalid value \"99999999999\" for key max_client_conn: expected an integer "
	             ">= 0");
	expect_error("[pgbouncer]\npool_mode = x\n", 2,
	             "invalid value \"x\" for key pool_mode: expected session, transaction or "
	             "statement");
	expect_error("[pgbouncer]\nauth_type = hba\n", 2,
	             "invalid value \"hba\" for key auth_type: expected any, trust, plain, md5 or "
	             "scram-sha-256 (cert, hba, ldap and pam are not supported by pglease yet)");
	expect_error("[pgbouncer]\nclient_tls_sslmode = require\n", 2,
	             "client_tls_sslmode = require: TLS is not supported by pglease yet (disable, "
	             "allow and prefer are accepted, with a warning)");
	expect_error("[pgbouncer]\nlisten_port = 1\nserver_tls_sslmode = Verify-Full\n", 3,
	             "server_tls_sslmode = Verify-Full: TLS is not supported by pglease yet "
	             "(disable, allow and prefer are accepted, with a warning)");
	expect_error("[pgbouncer]\nauth_type = mdfive\n", 2,
	             "invalid value \"mdfive\" for key auth_type: expected any, trust, plain, md5 "
	             "or scram-sha-256");
	expect_error("[pgbouncer]\nlog_connections = maybe\n", 2,
	             "invalid value \"maybe\" for key log_connections: expected 0, 1, yes, no, "
	             "true, false, on or off");
	expect_error("[pgbouncer]\nquery_wait_timeout = 5 parsecs\n", 2,
	             "invalid value \"5 parsecs\" for key query_wait_timeout: expected seconds "
	             ">= 0, optionally with a unit (us, ms, s, min, h, d)");
	expect_error("[pgbouncer]\nserver_lifetime = -1\n", 2,
	             "invalid value \"-1\" for key server_lifetime: expected seconds >= 0, "
	             "optionally with a unit (us, ms, s, min, h, d)");
	expect_error("[pgbouncer]\nserver_lifetime = nan\n", 2,
	             "invalid value \"nan\" for key server_lifetime: expected seconds >= 0, "
	             "optionally with a unit (us, ms, s, min, h, d)");
	expect_error("[pgbouncer]\nunix_socket_mode = 0999\n", 2,
	             "invalid value \"0999\" for key unix_socket_mode: expected an octal file mode "
	             "from 0 to 0777, such as 0777");
	expect_error("[pgbouncer]\n\n[database]\n", 3, "unknown section [database]");
	expect_error("[pgbouncer\n", 1, "syntax error: section header \"[pgbouncer\" lacks \"]\"");
	expect_error("listen_port = 1\n", 1, "key \"listen_port\" is outside of any section");
	expect_error("[pgbouncer]\nlisten_port\n", 2,
	             "syntax error: expected \"key = value\", \"[section]\" or \"%include FILE\"");
	expect_error("[pgbouncer]\n = 5\n", 2, "syntax error: missing key before \"=\"");
	expect_error("[pgbouncer]\n%includes x\n", 2, "unknown directive \"%includes x\"");
	expect_error("[pgbouncer]\n%include\n", 2, "%include needs a file name");
	path_of(path, sizeof(path), "nothere.ini");
	snprintf(want, sizeof(want), "cannot open included file \"%s\": No such file or directory",
	         path);
	expect_error("[pgbouncer]\n%include nothere.ini\n", 2, want);
	expect_error("[databases]\nfoo = host=x dbnme=y\n", 2,
	             "database \"foo\": unknown key \"dbnme\"");
	expect_error("[databases]\nfoo = host=x connect_query='SELECT 1\n", 2,
	             "database \"foo\": unterminated quoted value for key connect_query");
	expect_error("[databases]\nfoo = host='x'y\n", 2,
	             "database \"foo\": text after the closing quote of key host");
	expect_error("[databases]\nfoo = localhost\n", 2,
	             "database \"foo\": expected key=value, found \"localhost\"");
	expect_error(
	    "[databases]\nfoo = pool_size=-3\n", 2,
	    "database \"foo\": invalid value \"-3\" for key pool_size: expected an integer "
	    ">= 0");
	expect_error(
	    "[databases]\nfoo = port=0\n", 2,
	    "database \"foo\": invalid value \"0\" for key port: expected an integer from 1 "
	    "to 65535");
	expect_error("[databases]\nfoo = pool_mode=tx\n", 2,
	             "database \"foo\": invalid value \"tx\" for key pool_mode: expected session, "
	             "transaction or statement");
	expect_error("[databases]\npgbouncer = host=x\n", 2,
	             "database name \"pgbouncer\" is reserved for the admin console");
	expect_error("[databases]\n\"foo = host=x\n", 2, "unterminated quoted key");
	expect_error("[users]\nbob = pool_mode=tx\n", 2,
	             "user \"bob\": invalid value \"tx\" for key pool_mode: expected session, "
	             "transaction or statement");
	expect_error("[users]\nbob = host=x\n", 2, "user \"bob\": unknown key \"host\"");

	path_of(path, sizeof(path), "none.ini");
	cfg = cfg_load(path, err, sizeof(err));
	snprintf(want, sizeof(want), "cannot open config file \"%s\": No such file or directory",
	         path);
	tap_ok(cfg == NULL, "missing main file rejected");
	tap_is_str(err, want, "  names the file");
	cfg = load("bad.ini", NULL, 0);
	tap_ok(cfg == NULL, "no error buffer: still NULL, no crash");
	{
		char nul_text[] = "[pgbouncer]\nlisten_port = 1\0002\n";
		FILE *f;

		path_of(path, sizeof(path), "nul.ini");
		f = fopen(path, "w");
		if (f == NULL ||
		    fwrite(nul_text, 1, sizeof(nul_text) - 1, f) != sizeof(nul_text) - 1)
			tap_bail("cannot write %s", path);
		fclose(f);
	}
	cfg = load("nul.ini", err, sizeof(err));
	snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", path);
	tap_ok(cfg == NULL, "NUL byte rejected");
	tap_is_str(err, want, "  with file:line");
}

static void test_warnings(void)
{
	char err[512];
	struct config *cfg;

	write_file("warn.ini", "[pgbouncer]\n"
	                       "client_tls_sslmode = prefer\n"
	                       "tcp_keepalive = 1\n"
	                       "application_name_add_host = 1\n"
	                       "listen_port = 6000\n"
	                       "[peers]\n"
	                       "1 = host=/tmp/pglease-1\n");
	take_warnings();
	cfg = load("warn.ini", err, sizeof(err));
	tap_ok(cfg != NULL, "unsupported keys and [peers] do not fail loading");
	tap_is_int(take_warnings(), 4, "one warning each");
	tap_is_str(cfg ? cfg->application_name_add_host : NULL, "1", "accepted-only key is kept");
	tap_ok(cfg != NULL && cfg->listen_port == 6000, "supported keys still applied");
	cfg_free(cfg);
}

/* cfg_load_with(): the console's SET on top of the file. */
static void test_load_with(void)
{
	static const char *const k2[] = {"default_pool_size", "default_pool_size"};
	static const char *const v2[] = {"7", "9"};
	static const char *const kbad[] = {"default_pool_size"}, *const vbad[] = {"many"};
	static const char *const kign[] = {"tcp_keepalive"}, *const vign[] = {"0"};
	char err[512], path[PATH_MAX];
	struct config *cfg;

	write_file("with.ini", "[pgbouncer]\nlisten_port = 6000\ndefault_pool_size = 5\n");
	path_of(path, sizeof(path), "with.ini");
	cfg = cfg_load_with(path, k2, v2, 2, err, sizeof(err));
	tap_ok(cfg != NULL && cfg->default_pool_size == 9 && cfg->listen_port == 6000,
	       "cfg_load_with: the file, then the settings on top, later ones winning");
	cfg_free(cfg);
	cfg = cfg_load_with(path, kbad, vbad, 1, err, sizeof(err));
	tap_ok(cfg == NULL, "cfg_load_with: an invalid value fails the load");
	tap_is_str(
	    err, "SET: invalid value \"many\" for key default_pool_size: expected an integer >= 0",
	    "  and its message names SET, not a file");
	take_warnings();
	cfg = cfg_load_with(path, kign, vign, 1, err, sizeof(err));
	tap_ok(cfg != NULL && take_warnings() == 1 &&
	           strstr(last_warning, "SET: key tcp_keepalive is not supported") != NULL,
	       "cfg_load_with: an unsupported key warns naming SET (%s)", last_warning);
	cfg_free(cfg);
}

static void test_key_table(void)
{
	const char *name, *prev = "", *def;
	bool reloadable, sorted = true;
	size_t i, n = cfg_key_count(), implemented = 0;
	char buf[8];

	tap_ok(n > 90, "settings table has %zu keys", n);
	for (i = 0; i < n; i++) {
		if (!cfg_key_info(i, &name, &def, &reloadable) || strcmp(prev, name) >= 0)
			sorted = false;
		if (cfg_key_description(i)[0] == '\0')
			sorted = false;
		prev = name;
		implemented += cfg_key_implemented(i);
	}
	tap_ok(sorted, "keys sorted, unique, each with a description");
	tap_ok(implemented > 40 && implemented < n, "%zu implemented, the rest accepted",
	       implemented);
	tap_ok(!cfg_key_info(n, &name, &def, &reloadable), "out of range index");
	tap_ok(!cfg_key_implemented(n) && cfg_key_description(n)[0] == '\0',
	       "out of range: not implemented, no description");
	buf[0] = 'x';
	cfg_value_text(NULL, 0, buf, sizeof(buf));
	tap_is_str(buf, "", "value of NULL config is empty");
	tap_ok(cfg_key_find("listen_port", &i) && cfg_key_info(i, NULL, NULL, &reloadable) &&
	           !reloadable,
	       "listen_port needs a restart");
	tap_ok(cfg_key_find("pool_mode", &i) && cfg_key_info(i, NULL, NULL, &reloadable) &&
	           reloadable && cfg_key_implemented(i),
	       "pool_mode reloadable and implemented");
	tap_ok(cfg_key_find("server_tls_sslmode", &i) && !cfg_key_implemented(i),
	       "server_tls_sslmode known, not implemented");
	tap_ok(!cfg_key_find("pool_size", &i), "pool_size is not a [pgbouncer] key");
	tap_is_str(cfg_pool_mode_name(POOL_STATEMENT), "statement", "pool mode name");
	tap_is_str(cfg_auth_type_name(AUTH_ANY), "any", "auth type name");
	tap_is_str(cfg_pool_mode_name((enum pool_mode)9), "unknown", "bad pool mode name");
}

static void test_list_contains(void)
{
	tap_ok(cfg_list_contains("user2, someadmin, otheradmin", "someadmin"), "middle of list");
	tap_ok(cfg_list_contains("user2, someadmin,otheradmin", "otheradmin"), "no space");
	tap_ok(cfg_list_contains("user2, someadmin", "user2"), "first");
	tap_ok(cfg_list_contains("a b\tc", "c"), "whitespace separated");
	tap_ok(cfg_list_contains(" ,, x ,", "x"), "empty items skipped");
	tap_ok(!cfg_list_contains("someadmin", "some"), "prefix is no match");
	tap_ok(!cfg_list_contains("some", "someadmin"), "longer name is no match");
	tap_ok(!cfg_list_contains("Admin", "admin"), "case-sensitive");
	tap_ok(!cfg_list_contains("a,,b", ""), "empty name never matches");
	tap_ok(!cfg_list_contains("", "a"), "empty list");
	tap_ok(!cfg_list_contains(NULL, "a"), "NULL list");
}

/* doc/config.md must mention every key of the table. */
static void test_doc(void)
{
	const char *srcdir = getenv("srcdir");
	char path[PATH_MAX], *text;
	size_t i, missing = 0;
	long len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/doc/config.md", srcdir ? srcdir : ".");
	f = fopen(path, "r");
	if (f == NULL) {
		tap_ok(true, "doc/config.md lists every key # SKIP %s not found", path);
		return;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	if (text == NULL || fread(text, 1, (size_t)len, f) != (size_t)len)
		tap_bail("cannot read %s", path);
	fclose(f);
	for (i = 0; i < cfg_key_count(); i++) {
		const char *name;
		char cell[128];

		if (!cfg_key_info(i, &name, NULL, NULL))
			break;
		snprintf(cell, sizeof(cell), "| `%s` |", name);
		if (strstr(text, cell) == NULL) {
			tap_diag("doc/config.md lacks %s", cell);
			missing++;
		}
	}
	free(text);
	tap_is_int((long long)missing, 0, "doc/config.md lists every key");
}

/* The example etc/pglease.ini must load without errors or warnings. */
static void test_example(void)
{
	const char *srcdir = getenv("srcdir");
	char path[PATH_MAX], err[512];
	struct config *cfg;

	snprintf(path, sizeof(path), "%s/etc/pglease.ini", srcdir ? srcdir : ".");
	if (access(path, R_OK) != 0) {
		tap_ok(true, "etc/pglease.ini loads # SKIP %s not found", path);
		tap_ok(true, "etc/pglease.ini has no warnings # SKIP %s not found", path);
		return;
	}
	take_warnings();
	cfg = cfg_load(path, err, sizeof(err));
	if (!tap_ok(cfg != NULL && cfg_find_db(cfg, "postgres") != NULL, "etc/pglease.ini loads"))
		tap_diag("error: %s", err);
	tap_is_int(take_warnings(), 0, "etc/pglease.ini has no warnings");
	cfg_free(cfg);
}

static void remove_tree(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/unit_config.XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		tap_bail("mkdtemp failed");
	path_of(log_path, sizeof(log_path), "log.txt");
	log_set_quiet(true);
	if (!log_open(log_path))
		tap_bail("cannot open %s", log_path);

	test_debian_ini();
	test_defaults();
	test_values();
	test_databases();
	test_users();
	test_include();
	test_errors();
	test_warnings();
	test_load_with();
	test_key_table();
	test_list_contains();
	test_doc();
	test_example();

	log_close();
	remove_tree();
	return tap_done();
}
