/*
 * harness: throwaway PostgreSQL + pglease for the end-to-end tests.
 *
 * All state lives in one static struct: a test program is one process with
 * one temporary world.  Teardown is idempotent and runs from atexit(), from
 * the signal handlers and from h_bail(), so a failing or hung test leaves no
 * server and no directory behind.
 */
#include "harness.h"
#include "harness_int.h"
#include "tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct h_state H = {.lease_pid = -1, .lease_status = -1};

static void h_dump_logs(void);

/* ---- strings, time, files ---------------------------------------------- */

static const char *h_vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	char probe[256];
	int n;
	struct h_str *s;

	va_copy(ap2, ap);
	n = vsnprintf(probe, sizeof(probe), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	s = malloc(sizeof(*s) + (size_t)n + 1);
	if (s == NULL) {
		printf("Bail out! out of memory\n");
		exit(255);
	}
	vsnprintf(s->s, (size_t)n + 1, fmt, ap);
	s->next = H.strings;
	H.strings = s;
	return s->s;
}

const char *h_fmt(const char *fmt, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, fmt);
	s = h_vfmt(fmt, ap);
	va_end(ap);
	return s;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long h_file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return 0;
	return (long)st.st_size;
}

/* True when a line of PATH from byte FROM on contains NEEDLE. */
static bool h_file_has(const char *path, long from, const char *needle)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	bool found = false;

	if (f == NULL)
		return false;
	if (fseek(f, from, SEEK_SET) == 0)
		while (!found && fgets(line, sizeof(line), f))
			found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static void h_write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		h_bail("cannot write %s: %s", path, strerror(errno));
	fputs(content, f);
	if (fclose(f) != 0)
		h_bail("cannot write %s: %s", path, strerror(errno));
}

/* Print the last MAX_LINES lines of PATH starting at byte FROM (at most 256 KiB). */
void h_diag_file_from(const char *title, const char *path, long from, int max_lines)
{
	FILE *f = fopen(path, "re");
	long size, start;
	char *buf, *p, *line;
	size_t n;
	int lines = 0;

	if (f == NULL) {
		tap_diag("%s: (no file %s)", title, path);
		return;
	}
	size = h_file_size(path);
	start = from;
	if (size - start > 256 * 1024)
		start = size - 256 * 1024;
	if (start < 0 || start > size)
		start = 0;
	buf = malloc((size_t)(size - start) + 1);
	if (buf == NULL || fseek(f, start, SEEK_SET) == -1) {
		free(buf);
		fclose(f);
		return;
	}
	n = fread(buf, 1, (size_t)(size - start), f);
	fclose(f);
	buf[n] = '\0';
	for (p = buf; *p; p++)
		if (*p == '\n')
			lines++;
	if (n > 0 && buf[n - 1] != '\n')
		lines++;
	tap_diag("---- %s (%s)%s ----", title, path,
	         lines > max_lines ? h_fmt(", last %d lines", max_lines) : "");
	p = buf;
	while (lines > max_lines && (p = strchr(p, '\n')) != NULL) {
		p++;
		lines--;
	}
	for (line = strtok(p ? p : buf, "\n"); line != NULL; line = strtok(NULL, "\n"))
		tap_diag("  %s", line);
	tap_diag("---- end of %s ----", title);
	free(buf);
}

void h_diag_file(const char *title, const char *path, int max_lines)
{
	h_diag_file_from(title, path, 0, max_lines);
}

/* ---- assertions -------------------------------------------------------- */

/* Bookkeeping after each test point: show pglease's new log lines on failure. */
static void h_after_point(bool ok)
{
	long size = H.lease_log[0] ? h_file_size(H.lease_log) : 0;

	if (!ok) {
		H.failed = true;
		if (H.lease_log[0] && size > H.lease_log_seen)
			h_diag_file_from("pglease log since the previous test point", H.lease_log,
			                 H.lease_log_seen, 40);
	}
	H.lease_log_seen = size;
}

bool h_ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	const char *name;

	va_start(ap, fmt);
	name = h_vfmt(fmt, ap);
	va_end(ap);
	tap_ok(cond, "%s", name);
	h_after_point(cond);
	return cond;
}

bool h_is_str(const char *got, const char *want, const char *name)
{
	bool ok = tap_is_str(got, want, name);

	h_after_point(ok);
	return ok;
}

bool h_is_int(long long got, long long want, const char *name)
{
	bool ok = tap_is_int(got, want, name);

	h_after_point(ok);
	return ok;
}

void h_bail(const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	H.failed = true;
	tap_diag("%s", msg);
	/* Logs first: the TAP driver stops interpreting after "Bail out!". */
	h_dump_logs();
	tap_bail("%s", msg);
}

/* ---- processes --------------------------------------------------------- */

/* Fork and exec ARGV with output to OUTFILE; returns the pid or -1. */
pid_t h_spawn(const char *const argv[], const char *const env[], const char *outfile)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == -1)
		return -1;
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out =
		    open(outfile ? outfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (in == -1 || out == -1)
			_exit(127);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Wait for PID at most TIMEOUT_MS (<0: forever); SIGKILL after.  Exit status as h_run(). */
static int h_wait_pid(pid_t pid, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, timeout_ms < 0 ? 0 : WNOHANG);

		if (r == pid)
			break;
		if (r == -1 && errno != EINTR)
			return -1;
		if (timeout_ms >= 0 && h_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			timeout_ms = -1;
			continue;
		}
		if (r == 0)
			h_sleep_ms(10);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int h_run(const char *const argv[], const char *const env[], const char *outfile, int timeout_ms)
{
	pid_t pid = h_spawn(argv, env, outfile);

	if (pid == -1)
		return -1;
	return h_wait_pid(pid, timeout_ms);
}

/* h_run() for PostgreSQL programs: as the postgres OS user when we are root. */
int h_run_pg(const char *const argv[], const char *outfile, int timeout_ms)
{
	const char *full[32];
	size_t i = 0, j;

	if (H.as_postgres) {
		full[i++] = "runuser";
		full[i++] = "-u";
		full[i++] = "postgres";
		full[i++] = "--";
	}
	for (j = 0; argv[j] && i < 31; j++)
		full[i++] = argv[j];
	full[i] = NULL;
	return h_run(full, NULL, outfile, timeout_ms);
}

/* ---- teardown ---------------------------------------------------------- */

static void h_dump_logs(void)
{
	if (H.logs_dumped)
		return;
	H.logs_dumped = true;
	if (H.lease_log[0]) {
		if (h_file_size(H.lease_log) > 0)
			h_diag_file("pglease log", H.lease_log, 200);
		if (h_file_size(H.lease_err) > 0)
			h_diag_file("pglease stderr", H.lease_err, 150);
	}
	if (H.pg_started)
		h_diag_file("PostgreSQL log", H.pglog, 80);
}

/* Teardown; FROM_SIGNAL skips what could block on libpq state. */
static void h_teardown(bool from_signal)
{
	if (!H.inited || H.cleaned)
		return;
	H.cleaned = true;
	alarm(0);
	if (H.failed)
		h_dump_logs();
	if (H.lease_pid > 0) {
		kill(H.lease_pid, SIGTERM);
		if (h_wait_pid(H.lease_pid, 5000) == -1)
			kill(H.lease_pid, SIGKILL);
		H.lease_pid = -1;
	}
	if (!from_signal && H.admin) {
		PQfinish(H.admin);
		H.admin = NULL;
	}
	if (H.pg_started) {
		const char *argv[] = {h_fmt("%s/pg_ctl", h_pg_bindir()),
		                      "-D",
		                      H.pgdata,
		                      "-m",
		                      "immediate",
		                      "-w",
		                      "stop",
		                      NULL};

		h_run_pg(argv, NULL, 30000);
		H.pg_started = false;
	}
	if (H.dir[0] && getenv("PGL_KEEP_TMP") == NULL) {
		const char *argv[] = {"rm", "-rf", H.dir, NULL};

		h_run(argv, NULL, NULL, 30000);
	} else if (H.dir[0]) {
		tap_diag("kept %s (PGL_KEEP_TMP)", H.dir);
	}
	if (!from_signal) {
		while (H.strings) {
			struct h_str *next = H.strings->next;

			free(H.strings);
			H.strings = next;
		}
	}
}

void h_cleanup(void)
{
	h_teardown(false);
}

static void h_atexit(void)
{
	h_teardown(false);
}

static unsigned h_timeout_secs;

static void h_on_signal(int sig)
{
	signal(sig, SIG_DFL);
	H.failed = true;
	if (sig == SIGALRM)
		tap_diag("test timed out after %u s", h_timeout_secs);
	else
		tap_diag("killed by signal %d", sig);
	h_dump_logs();
	printf("Bail out! %s\n", sig == SIGALRM ? "timeout" : "signal");
	fflush(stdout);
	h_teardown(true);
	_exit(255);
}

void h_init(unsigned timeout_secs)
{
	struct sigaction sa;
	const char *tmp = "/tmp";

	if (H.inited)
		return;
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(H.dir, sizeof(H.dir), "%s/pglease-test-XXXXXX", tmp);
	if (mkdtemp(H.dir) == NULL) {
		H.dir[0] = '\0';
		tap_bail("mkdtemp: %s", strerror(errno));
	}
	H.inited = true;
	atexit(h_atexit);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	h_timeout_secs = timeout_secs ? timeout_secs : 300;
	alarm(h_timeout_secs);

	/* Keep the environment from steering libpq elsewhere. */
	unsetenv("PGOPTIONS");
	unsetenv("PGSERVICE");
	unsetenv("PGSSLMODE");
	unsetenv("PGPASSWORD");
	unsetenv("PGPASSFILE");
	unsetenv("PGREQUIRESSL");

	snprintf(H.pgdata, sizeof(H.pgdata), "%s/pgdata", H.dir);
	snprintf(H.pglog, sizeof(H.pglog), "%s/postgres.log", H.dir);
	snprintf(H.lease_ini, sizeof(H.lease_ini), "%s/pglease.ini", H.dir);
	snprintf(H.lease_log, sizeof(H.lease_log), "%s/pglease.log", H.dir);
	snprintf(H.lease_err, sizeof(H.lease_err), "%s/pglease.stderr", H.dir);
	snprintf(H.userlist, sizeof(H.userlist), "%s/userlist.txt", H.dir);

	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");

		if (pw == NULL)
			h_bail("running as root but there is no 'postgres' OS user");
		if (chown(H.dir, pw->pw_uid, pw->pw_gid) == -1)
			h_bail("chown %s: %s", H.dir, strerror(errno));
		H.as_postgres = true;
	}
}

const char *h_tmpdir(void)
{
	return H.dir;
}

/* ---- ports ------------------------------------------------------------- */

static int h_bind_port0(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -1;

	if (fd == -1)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int h_free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int port = h_bind_port0();
		bool used = false;

		if (port <= 0)
			continue;
		for (int i = 0; i < H.n_used_ports; i++)
			used = used || H.used_ports[i] == port;
		if (used)
			continue;
		if (H.n_used_ports < (int)(sizeof(H.used_ports) / sizeof(H.used_ports[0])))
			H.used_ports[H.n_used_ports++] = port;
		return port;
	}
	h_bail("cannot find a free TCP port");
}

/* ---- PostgreSQL -------------------------------------------------------- */

const char *h_pg_bindir(void)
{
	static char dir[H_PATH];
	const char *env = getenv("PGL_PG_BINDIR");
	glob_t g;

	if (dir[0])
		return dir;
	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
		return dir;
	}
	snprintf(dir, sizeof(dir), "/usr/lib/postgresql/15/bin");
	if (access("/usr/lib/postgresql/15/bin/initdb", X_OK) == 0)
		return dir;
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
		/* Highest version last in sort order (good enough for 1-2 installs). */
		snprintf(dir, sizeof(dir), "%s", g.gl_pathv[g.gl_pathc - 1]);
		*strrchr(dir, '/') = '\0';
		globfree(&g);
		return dir;
	}
	snprintf(dir, sizeof(dir), "/usr/bin");
	return dir;
}

int h_pg_port(void)
{
	return H.pgport;
}

const char *h_pg_logfile(void)
{
	return H.pglog;
}

const char *h_pg_conninfo(const char *user, const char *password, const char *dbname)
{
	return h_fmt("host=127.0.0.1 port=%d user=%s dbname=%s%s%s sslmode=disable "
	             "gssencmode=disable connect_timeout=10",
	             H.pgport, user, dbname, password ? " password=" : "",
	             password ? password : "");
}

static PGconn *h_admin(void)
{
	if (H.admin && PQstatus(H.admin) == CONNECTION_OK)
		return H.admin;
	if (H.admin)
		PQfinish(H.admin);
	H.admin = PQconnectdb(h_fmt("host=%s port=%d user=postgres dbname=postgres "
	                            "connect_timeout=10",
	                            H.dir, H.pgport));
	if (PQstatus(H.admin) != CONNECTION_OK)
		h_bail("superuser connection to PostgreSQL failed: %s", PQerrorMessage(H.admin));
	return H.admin;
}

bool h_pg_exec(const char *sql)
{
	return h_exec(h_admin(), sql);
}

const char *h_pg_value(const char *sql)
{
	return h_value(h_admin(), sql);
}

const char *h_pg_secret(const char *role)
{
	const char *v =
	    h_pg_value(h_fmt("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'", role));

	if (v == NULL)
		h_bail("no password for role %s in pg_authid", role);
	return v;
}

const char *h_md5_secret(const char *user, const char *password)
{
	char *enc = PQencryptPassword(password, user);
	const char *s;

	if (enc == NULL)
		h_bail("PQencryptPassword failed");
	s = h_fmt("%s", enc);
	PQfreemem(enc);
	return s;
}

static const char h_pg_hba[] = "# written by the pglease test harness\n"
                               "local all postgres trust\n"
                               "host all trustuser 127.0.0.1/32 trust\n"
                               "host all pwuser 127.0.0.1/32 password\n"
                               "host all md5user 127.0.0.1/32 md5\n"
                               "host all all 127.0.0.1/32 scram-sha-256\n";

static const char h_pg_roles[] = "CREATE ROLE alice LOGIN PASSWORD 'alicepw';"
                                 "CREATE ROLE bob LOGIN PASSWORD 'bobpw';"
                                 "CREATE ROLE trustuser LOGIN PASSWORD 'trustpw';"
                                 "CREATE ROLE pwuser LOGIN PASSWORD 'pwpw';"
                                 "SET password_encryption = 'md5';"
                                 "CREATE ROLE md5user LOGIN PASSWORD 'md5pw';"
                                 "RESET password_encryption;";

void h_pg_start(void)
{
	const char *bindir = h_pg_bindir();
	const char *initdb_log = h_fmt("%s/initdb.log", H.dir);
	const char *conf = h_fmt("%s/postgresql.conf", H.pgdata);
	FILE *f;
	int rc;

	if (!H.inited)
		h_init(0);
	H.pgport = h_free_port();
	{
		const char *argv[] = {h_fmt("%s/initdb", bindir),
		                      "-D",
		                      H.pgdata,
		                      "-U",
		                      "postgres",
		                      "-A",
		                      "trust",
		                      "-E",
		                      "UTF8",
		                      "--locale=C",
		                      "--no-sync",
		                      NULL};

		rc = h_run_pg(argv, initdb_log, 120000);
		if (rc != 0) {
			h_diag_file("initdb output", initdb_log, 40);
			h_bail("initdb failed (status %d)", rc);
		}
	}
	f = fopen(conf, "ae");
	if (f == NULL)
		h_bail("cannot append to %s: %s", conf, strerror(errno));
	fprintf(f,
	        "\n# pglease test harness\n"
	        "listen_addresses = '127.0.0.1'\n"
	        "unix_socket_directories = '%s'\n"
	        "max_connections = 200\n"
	        "fsync = off\n"
	        "synchronous_commit = off\n"
	        "full_page_writes = off\n"
	        "log_connections = on\n"
	        "log_line_prefix = '%%m [%%p] %%u@%%d '\n",
	        H.dir);
	fclose(f);
	h_write_file(h_fmt("%s/pg_hba.conf", H.pgdata), h_pg_hba);

	/* The port is given on the command line so that a port taken meanwhile by
	 * someone else (it was free when picked) can be retried with another. */
	for (int attempt = 1;; attempt++) {
		const char *argv[] = {
		    h_fmt("%s/pg_ctl", bindir), "-D", H.pgdata, "-l", H.pglog, "-o",
		    h_fmt("-p %d", H.pgport),   "-w", "-t",     "60", "start", NULL};
		long log_start = h_file_size(H.pglog);

		H.pg_started = true; /* from here on teardown must stop it */
		rc = h_run_pg(argv, initdb_log, 90000);
		if (rc == 0)
			break;
		if (attempt < 3 && h_file_has(H.pglog, log_start, "could not bind")) {
			tap_diag("port %d was taken meanwhile; retrying PostgreSQL on another",
			         H.pgport);
			H.pgport = h_free_port();
			continue;
		}
		h_diag_file("pg_ctl output", initdb_log, 40);
		h_bail("pg_ctl start failed (status %d)", rc);
	}
	if (!h_pg_exec(h_pg_roles))
		h_bail("cannot create roles");
	if (!h_pg_exec("CREATE DATABASE testdb OWNER alice"))
		h_bail("cannot create database testdb");
}

/* ---- pglease ----------------------------------------------------------- */

const char *h_db_line(const char *name, const char *dbname, const char *extra)
{
	return h_fmt("%s = host=127.0.0.1 port=%d dbname=%s%s%s\n", name, H.pgport, dbname,
	             extra && *extra ? " " : "", extra ? extra : "");
}

const char *h_db_testdb(void)
{
	return h_db_line("testdb", "testdb", NULL);
}

const char *h_userlist_line(const char *user, const char *secret)
{
	return h_fmt("\"%s\" \"%s\"\n", user, secret);
}

void h_lease_config(const char *auth_type, const char *databases, const char *extra,
                    const char *userlist)
{
	/* Kept (harness-owned copies) so h_lease_start() can retry on another port. */
	H.cfg_auth = h_fmt("%s", auth_type);
	H.cfg_dbs = databases ? h_fmt("%s", databases) : NULL;
	H.cfg_extra = extra ? h_fmt("%s", extra) : NULL;
	H.cfg_users = userlist ? h_fmt("%s", userlist) : NULL;
	H.lease_port = h_free_port();
	h_write_file(H.lease_ini,
	             h_fmt("; generated by the pglease test harness\n"
	                   "[databases]\n"
	                   "%s\n"
	                   "[pgbouncer]\n"
	                   "listen_addr = 127.0.0.1\n"
	                   "listen_port = %d\n"
	                   "unix_socket_dir = %s\n"
	                   "auth_type = %s\n"
	                   "auth_file = %s\n"
	                   "logfile = %s\n"
	                   "pidfile = %s/pglease.pid\n"
	                   "%s\n",
	                   databases ? databases : h_db_testdb(), H.lease_port, H.dir, auth_type,
	                   H.userlist, H.lease_log, H.dir, extra ? extra : ""));
	h_write_file(H.userlist, userlist ? userlist : "");
}

const char *h_lease_config_path(void)
{
	return H.lease_ini;
}

const char *h_lease_bin(void)
{
	const char *env = getenv("PGLEASE_BIN");

	if (env && *env)
		return env;
#ifdef PGL_BUILDDIR
	return PGL_BUILDDIR "/pglease";
#else
	return "./pglease";
#endif
}

/* True when something accepts TCP connections on 127.0.0.1:PORT. */
bool h_port_open(int port)
{
	int fd = h_raw_connect(port);

	if (fd == -1)
		return false;
	close(fd);
	return true;
}

void h_lease_start(void)
{
	const char *bin = h_lease_bin();
	const char *argv[] = {bin, H.lease_ini, NULL};
	int64_t deadline;
	static int attempt;

	if (access(bin, X_OK) != 0)
		h_bail("pglease binary %s not found or not executable", bin);
	if (H.lease_pid > 0)
		h_bail("h_lease_start: pglease is already running");
	{
		FILE *f = fopen(H.lease_err, "ae");

		if (f) {
			fprintf(f, "---- starting %s %s\n", bin, H.lease_ini);
			fclose(f);
		}
	}
	H.lease_err_start = h_file_size(H.lease_err);
	H.lease_pid = h_spawn(argv, NULL, H.lease_err);
	if (H.lease_pid == -1)
		h_bail("cannot fork pglease: %s", strerror(errno));
	deadline = h_now_ms() + 10000;
	for (;;) {
		if (!h_lease_alive()) {
			if (++attempt < 3 && h_file_has(H.lease_err, H.lease_err_start, "in use")) {
				tap_diag("port %d was taken meanwhile; retrying pglease on another",
				         H.lease_port);
				h_lease_config(H.cfg_auth, H.cfg_dbs, H.cfg_extra, H.cfg_users);
				h_lease_start();
				attempt = 0;
				return;
			}
			h_diag_file("config", H.lease_ini, 60);
			h_bail("pglease exited during start-up (status %d)", H.lease_status);
		}
		if (h_port_open(H.lease_port))
			break;
		if (h_now_ms() > deadline) {
			h_bail("pglease does not accept connections on port %d after 10 s",
			       H.lease_port);
		}
		h_sleep_ms(50);
	}
	attempt = 0;
	H.lease_log_seen = h_file_size(H.lease_log);
}

int h_lease_stop(void)
{
	if (H.lease_pid <= 0)
		return H.lease_status;
	kill(H.lease_pid, SIGTERM);
	H.lease_status = h_wait_pid(H.lease_pid, 10000);
	H.lease_pid = -1;
	if (H.lease_status != 0)
		h_diag_file_from("pglease stderr", H.lease_err, H.lease_err_start, 40);
	return H.lease_status;
}

/* True when pglease's stderr of the current run mentions NEEDLE. */
bool h_lease_stderr_has(const char *needle)
{
	return h_file_has(H.lease_err, H.lease_err_start, needle);
}

bool h_lease_stop_ok(const char *what)
{
	int st = h_lease_stop();
	bool san = h_lease_stderr_has("Sanitizer") || h_lease_stderr_has("runtime error:");

	if (san && st == 0)
		h_diag_file_from("pglease stderr", H.lease_err, H.lease_err_start, 60);
	if (!h_ok(st == 0 && !san,
	          "%s: pglease exits with status 0 on SIGTERM, no sanitizer report", what))
		tap_diag("exit status %d%s", st, san ? ", sanitizer report in stderr" : "");
	return st == 0 && !san;
}

void h_lease_restart(const char *auth_type, const char *databases, const char *extra,
                     const char *userlist)
{
	h_lease_stop();
	h_lease_config(auth_type, databases, extra, userlist);
	h_lease_start();
}

pid_t h_lease_pid(void)
{
	return H.lease_pid;
}

int h_lease_port(void)
{
	return H.lease_port;
}

const char *h_lease_logfile(void)
{
	return H.lease_log;
}

bool h_lease_alive(void)
{
	int st;
	pid_t r;

	if (H.lease_pid <= 0)
		return false;
	r = waitpid(H.lease_pid, &st, WNOHANG);
	if (r == 0)
		return true;
	if (r == H.lease_pid) {
		H.lease_status = WIFEXITED(st)     ? WEXITSTATUS(st)
		                 : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
		                                   : -1;
		H.lease_pid = -1;
		tap_diag("pglease exited with status %d", H.lease_status);
	}
	return false;
}

int h_lease_fd_count(void)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	if (H.lease_pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)H.lease_pid);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int h_lease_wait_fds(int want, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	int n;

	while ((n = h_lease_fd_count()) > want && h_now_ms() < deadline)
		h_sleep_ms(50);
	return n;
}

const char *h_lease_conninfo(const char *user, const char *password, const char *dbname)
{
	return h_fmt("host=127.0.0.1 port=%d user=%s dbname=%s%s%s sslmode=disable "
	             "gssencmode=disable connect_timeout=10",
	             H.lease_port, user, dbname, password ? " password=" : "",
	             password ? password : "");
}

const char *h_lease_conninfo_unix(const char *user, const char *password, const char *dbname)
{
	return h_fmt("host=%s port=%d user=%s dbname=%s%s%s connect_timeout=10", H.dir,
	             H.lease_port, user, dbname, password ? " password=" : "",
	             password ? password : "");
}

/* ---- libpq helpers ----------------------------------------------------- */

PGconn *h_connect(const char *conninfo)
{
	PGconn *c = PQconnectStart(conninfo);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t deadline = h_now_ms() + 15000;

	if (c == NULL)
		h_bail("PQconnectStart: out of memory");
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	if (PQstatus(c) == CONNECTION_BAD)
		return c;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd p = {.fd = PQsocket(c),
		                   .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int64_t left = deadline - h_now_ms();

		if (left <= 0) {
			tap_diag("h_connect: login not finished after 15 s");
			break;
		}
		if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
			break;
		st = PQconnectPoll(c);
	}
	return c;
}

bool h_can_query(const char *conninfo)
{
	PGconn *c = h_connect(conninfo);
	const char *v = NULL;

	if (PQstatus(c) != CONNECTION_OK)
		tap_diag("connect failed: %s", PQerrorMessage(c));
	else
		v = h_value(c, "SELECT 1");
	PQfinish(c);
	return v != NULL && strcmp(v, "1") == 0;
}

/* The first "SEVERITY:  XXXXX:" SQLSTATE in a verbose libpq message, or "". */
static const char *h_parse_sqlstate(const char *msg)
{
	static const char *const sev[] = {"FATAL:  ", "ERROR:  ", "PANIC:  "};

	for (size_t i = 0; msg && i < sizeof(sev) / sizeof(sev[0]); i++) {
		const char *p = strstr(msg, sev[i]);

		while (p) {
			const char *code = p + strlen(sev[i]);
			bool ok = strlen(code) > 5 && code[5] == ':';

			for (int k = 0; ok && k < 5; k++)
				ok = (code[k] >= '0' && code[k] <= '9') ||
				     (code[k] >= 'A' && code[k] <= 'Z');
			if (ok)
				return h_fmt("%.5s", code);
			p = strstr(code, sev[i]);
		}
	}
	return "";
}

const char *h_conn_sqlstate(const PGconn *conn)
{
	return h_parse_sqlstate(PQerrorMessage(conn));
}

const char *h_value(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	const char *v = NULL;

	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
			v = h_fmt("%s", PQgetvalue(r, 0, 0));
	} else {
		tap_diag("query \"%s\" failed: %s", sql,
		         r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	}
	PQclear(r);
	return v;
}

const char *h_cell(PGconn *conn, const char *sql, const char *keycol, const char *key,
                   const char *col)
{
	PGresult *r = PQexec(conn, sql);
	const char *v = NULL;
	int k, c;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		tap_diag("query \"%s\" failed: %s", sql,
		         r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
		PQclear(r);
		return NULL;
	}
	k = PQfnumber(r, keycol);
	c = PQfnumber(r, col);
	for (int i = 0; k >= 0 && c >= 0 && i < PQntuples(r) && v == NULL; i++) {
		if (strcmp(PQgetvalue(r, i, k), key) == 0)
			v = h_fmt("%s", PQgetvalue(r, i, c));
	}
	PQclear(r);
	return v;
}

const char *h_async_value(PGconn *conn, int timeout_ms)
{
	PGresult *r = h_wait_result(conn, timeout_ms);
	const char *v;

	if (r == NULL)
		return "timeout";
	if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
		v = PQntuples(r) > 0 ? h_fmt("%s", PQgetvalue(r, 0, 0)) : "";
	} else {
		const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		v = h_fmt("ERR:%s", st ? st : "?");
		tap_diag("async query failed: %s", PQresultErrorMessage(r));
	}
	PQclear(r);
	return v;
}

bool h_still_busy_after(PGconn *conn, int ms)
{
	int64_t deadline = h_now_ms() + ms;

	while (h_now_ms() < deadline) {
		struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};

		poll(&p, 1, 50);
		if (!PQconsumeInput(conn) || !PQisBusy(conn))
			return false;
	}
	return true;
}

long long h_number_after(const char *file, const char *prefix)
{
	FILE *f = fopen(file, "re");
	char line[1024];
	long long v = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, prefix);

		if (p) {
			v = strtoll(p + strlen(prefix), NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

int h_pg_active(const char *text)
{
	const char *n = h_pg_value(h_fmt("SELECT count(*) FROM pg_stat_activity WHERE state = "
	                                 "'active' AND query LIKE '%%%s%%' AND pid <> "
	                                 "pg_backend_pid()",
	                                 text));

	return n ? atoi(n) : -1;
}

bool h_exec(PGconn *conn, const char *sql)
{
	const char *state = h_exec_sqlstate(conn, sql);

	return state[0] == '\0';
}

const char *h_exec_sqlstate(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	const char *code = "";

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *f = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

		code = f ? h_fmt("%s", f) : h_parse_sqlstate(PQerrorMessage(conn));
		if (code[0] == '\0')
			code = "?????";
		tap_diag("query \"%.60s\" failed: %s", sql,
		         r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	}
	PQclear(r);
	return code;
}

PGresult *h_wait_result(PGconn *conn, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	PGresult *last = NULL, *r;

	for (;;) {
		while (PQisBusy(conn)) {
			struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
			int64_t left = deadline - h_now_ms();

			if (left <= 0) {
				PQclear(last);
				return NULL;
			}
			if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
				break;
			if (!PQconsumeInput(conn))
				break;
		}
		r = PQgetResult(conn);
		if (r == NULL)
			break;
		PQclear(last);
		last = r;
		if (PQstatus(conn) == CONNECTION_BAD)
			break;
	}
	return last;
}

PGresult *h_wait_result_one(PGconn *conn, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;

	while (PQisBusy(conn)) {
		struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
		int64_t left = deadline - h_now_ms();

		if (left <= 0)
			return NULL;
		if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
			break;
		if (!PQconsumeInput(conn))
			break;
	}
	return PQgetResult(conn);
}

/* ==== additions for the transaction-pooling and differential tests ====== */

void h_pg_hba_add(const char *line)
{
	const char *path = h_fmt("%s/pg_hba.conf", H.pgdata);
	FILE *f = fopen(path, "ae");

	if (f == NULL)
		h_bail("cannot append to %s: %s", path, strerror(errno));
	fprintf(f, "%s\n", line);
	fclose(f);
	if (!h_pg_exec("SELECT pg_reload_conf()"))
		h_bail("pg_reload_conf() failed");
	h_sleep_ms(200); /* the postmaster rereads pg_hba.conf on SIGHUP */
}

static void h_wb_reserve(struct h_wbuf *w, size_t more)
{
	if (w->n + more <= w->cap)
		return;
	while (w->n + more > w->cap)
		w->cap = w->cap ? w->cap * 2 : 4096;
	w->b = realloc(w->b, w->cap);
	if (w->b == NULL)
		h_bail("out of memory");
}

static void h_wb_put(struct h_wbuf *w, const void *p, size_t len)
{
	h_wb_reserve(w, len);
	memcpy(w->b + w->n, p, len);
	w->n += len;
}

static void h_wb_put32(struct h_wbuf *w, uint32_t v)
{
	char b[4];

	h_put32(b, v);
	h_wb_put(w, b, 4);
}

static void h_wb_put16(struct h_wbuf *w, uint16_t v)
{
	uint16_t n = htons(v);

	h_wb_put(w, &n, 2);
}

static void h_wb_putstr(struct h_wbuf *w, const char *s)
{
	h_wb_put(w, s, strlen(s) + 1);
}

/* Start a message; returns the offset of its length word for h_wb_end(). */
static size_t h_wb_begin(struct h_wbuf *w, char type)
{
	size_t at;

	h_wb_put(w, &type, 1);
	at = w->n;
	h_wb_put32(w, 0);
	return at;
}

static void h_wb_end(struct h_wbuf *w, size_t at)
{
	h_put32(w->b + at, (uint32_t)(w->n - at));
}

void h_wb_free(struct h_wbuf *w)
{
	free(w->b);
	w->b = NULL;
	w->n = w->cap = 0;
}

static uint64_t h_rng = 1;

void h_rand_seed(uint64_t seed)
{
	h_rng = seed ? seed : 1;
}

uint32_t h_rand(uint32_t n)
{
	h_rng ^= h_rng << 13; /* xorshift64 */
	h_rng ^= h_rng >> 7;
	h_rng ^= h_rng << 17;
	return n ? (uint32_t)((h_rng >> 11) % n) : 0;
}

void h_wb_raw(struct h_wbuf *w, const void *data, size_t len)
{
	if (len > 0)
		h_wb_put(w, data, len);
}

void h_wb_msg(struct h_wbuf *w, char type, const void *body, size_t len)
{
	size_t at = h_wb_begin(w, type);

	if (len > 0)
		h_wb_put(w, body, len);
	h_wb_end(w, at);
}

void h_wb_query(struct h_wbuf *w, const char *sql)
{
	h_wb_msg(w, 'Q', sql, strlen(sql) + 1);
}

void h_wb_parse(struct h_wbuf *w, const char *stmt, const char *sql)
{
	size_t at = h_wb_begin(w, 'P');

	h_wb_putstr(w, stmt);
	h_wb_putstr(w, sql);
	h_wb_put16(w, 0);
	h_wb_end(w, at);
}

void h_wb_bind(struct h_wbuf *w, const char *portal, const char *stmt, int nparams,
               const char *const *values)
{
	size_t at = h_wb_begin(w, 'B');

	h_wb_putstr(w, portal);
	h_wb_putstr(w, stmt);
	h_wb_put16(w, 0); /* all parameters text */
	h_wb_put16(w, (uint16_t)nparams);
	for (int i = 0; i < nparams; i++) {
		if (values[i] == NULL) {
			h_wb_put32(w, 0xffffffffu);
		} else {
			h_wb_put32(w, (uint32_t)strlen(values[i]));
			h_wb_put(w, values[i], strlen(values[i]));
		}
	}
	h_wb_put16(w, 0); /* all results text */
	h_wb_end(w, at);
}

void h_wb_describe(struct h_wbuf *w, char kind, const char *name)
{
	size_t at = h_wb_begin(w, 'D');

	h_wb_put(w, &kind, 1);
	h_wb_putstr(w, name);
	h_wb_end(w, at);
}

void h_wb_close(struct h_wbuf *w, char kind, const char *name)
{
	size_t at = h_wb_begin(w, 'C');

	h_wb_put(w, &kind, 1);
	h_wb_putstr(w, name);
	h_wb_end(w, at);
}

void h_wb_execute(struct h_wbuf *w, const char *portal, uint32_t max_rows)
{
	size_t at = h_wb_begin(w, 'E');

	h_wb_putstr(w, portal);
	h_wb_put32(w, max_rows);
	h_wb_end(w, at);
}

void h_wb_sync(struct h_wbuf *w)
{
	h_wb_msg(w, 'S', NULL, 0);
}

void h_wb_flush(struct h_wbuf *w)
{
	h_wb_msg(w, 'H', NULL, 0);
}

void h_wb_copy_data(struct h_wbuf *w, const void *data, size_t len)
{
	h_wb_msg(w, 'd', data, len);
}

void h_wb_copy_done(struct h_wbuf *w)
{
	h_wb_msg(w, 'c', NULL, 0);
}

void h_wb_copy_fail(struct h_wbuf *w, const char *msg)
{
	h_wb_msg(w, 'f', msg, strlen(msg) + 1);
}

void h_wb_fcall(struct h_wbuf *w, uint32_t oid, int nargs, const char *const *args)
{
	size_t at = h_wb_begin(w, 'F');

	h_wb_put32(w, oid);
	h_wb_put16(w, 1);
	h_wb_put16(w, 0); /* text arguments */
	h_wb_put16(w, (uint16_t)nargs);
	for (int i = 0; i < nargs; i++) {
		if (args[i] == NULL) {
			h_wb_put32(w, 0xffffffffu);
		} else {
			h_wb_put32(w, (uint32_t)strlen(args[i]));
			h_wb_put(w, args[i], strlen(args[i]));
		}
	}
	h_wb_put16(w, 0); /* text result */
	h_wb_end(w, at);
}

bool h_wb_send(int fd, struct h_wbuf *w)
{
	bool ok = h_raw_send(fd, w->b, w->n);

	w->n = 0;
	return ok;
}

void h_conn_init(struct h_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void h_conn_close(struct h_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int h_conn_read(struct h_conn *c, struct h_bmsg *m, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;

	for (;;) {
		size_t have = c->w - c->r;

		if (have >= 5) {
			uint32_t len = h_get32(c->buf + c->r + 1);

			if (len < 4 || len > 0x40000000u)
				return -1;
			if (have >= (size_t)len + 1) {
				m->type = c->buf[c->r];
				m->len = len;
				m->body = c->buf + c->r + 5;
				m->n = len - 4;
				c->r += (size_t)len + 1;
				return 1;
			}
			if ((size_t)len + 1 > c->cap - c->r) {
				/* Make room: move the partial message to the front, grow. */
				memmove(c->buf, c->buf + c->r, have);
				c->w = have;
				c->r = 0;
				if ((size_t)len + 1 > c->cap) {
					c->cap = (size_t)len + 1 + 65536;
					c->buf = realloc(c->buf, c->cap);
					if (c->buf == NULL)
						h_bail("out of memory");
				}
			}
		}
		if (c->r == c->w)
			c->r = c->w = 0;
		if (c->cap - c->w < 65536) {
			if (c->r > 0) {
				memmove(c->buf, c->buf + c->r, c->w - c->r);
				c->w -= c->r;
				c->r = 0;
			}
			if (c->cap - c->w < 65536) {
				c->cap = c->cap ? c->cap * 2 : 262144;
				c->buf = realloc(c->buf, c->cap);
				if (c->buf == NULL)
					h_bail("out of memory");
			}
		}
		{
			struct pollfd p = {.fd = c->fd, .events = POLLIN};
			int64_t left = deadline - h_now_ms();
			ssize_t r;

			if (left <= 0)
				return -1;
			if (poll(&p, 1, (int)left) <= 0)
				continue;
			r = recv(c->fd, c->buf + c->w, c->cap - c->w, 0);
			if (r == -1 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0)
				return 0;
			c->w += (size_t)r;
		}
	}
}

const char *h_bmsg_field(const struct h_bmsg *m, char code)
{
	size_t i = 0;

	if (m->type != 'E' && m->type != 'N')
		return NULL;
	while (i < m->n && m->body[i] != '\0') {
		char f = m->body[i++];
		size_t len = strnlen(m->body + i, m->n - i);

		if (f == code)
			return h_fmt("%.*s", (int)len, m->body + i);
		i += len + 1;
	}
	return NULL;
}

uint32_t h_be32(const void *p)
{
	return h_get32(p);
}

uint16_t h_be16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return ntohs(v);
}

bool h_raw_send_startup_kv(int fd, const char *const *kv)
{
	struct h_wbuf w = {0};
	bool ok;

	h_wb_put32(&w, 0);
	h_wb_put32(&w, H_PROTO_V3);
	for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
		h_wb_putstr(&w, kv[i]);
		h_wb_putstr(&w, kv[i + 1]);
	}
	h_wb_put(&w, "", 1);
	h_put32(w.b, (uint32_t)w.n);
	ok = h_raw_send(fd, w.b, w.n);
	h_wb_free(&w);
	return ok;
}

bool h_conn_login(struct h_conn *c, int port, const char *const *kv, const char *password,
                  char sqlstate[6], void (*on_msg)(const struct h_bmsg *, void *), void *arg)
{
	int64_t deadline = h_now_ms() + 15000;
	struct h_bmsg m;
	bool authed = false;

	h_conn_init(c, h_raw_connect(port));
	if (sqlstate)
		sqlstate[0] = '\0';
	if (c->fd < 0 || !h_raw_send_startup_kv(c->fd, kv)) {
		tap_diag("login: cannot connect to port %d", port);
		h_conn_close(c);
		return false;
	}
	for (;;) {
		int64_t left = deadline - h_now_ms();

		if (left <= 0 || h_conn_read(c, &m, (int)left) != 1) {
			tap_diag("login: no answer or connection closed");
			break;
		}
		if (m.type == 'E') {
			const char *code = h_bmsg_field(&m, 'C');

			if (sqlstate)
				snprintf(sqlstate, 6, "%s", code ? code : "");
			tap_diag("login failed: %s %s", code ? code : "",
			         h_bmsg_field(&m, 'M') ? h_bmsg_field(&m, 'M') : "");
			break;
		}
		if (m.type == 'R' && m.n >= 4) {
			uint32_t code = h_get32(m.body);

			if (code == 0) {
				authed = true;
				continue;
			}
			if (code == 3 && password) {
				struct h_wbuf w = {0};

				h_wb_msg(&w, 'p', password, strlen(password) + 1);
				if (!h_wb_send(c->fd, &w)) {
					h_wb_free(&w);
					break;
				}
				h_wb_free(&w);
				continue;
			}
			tap_diag("login: unsupported authentication request %u", code);
			break;
		}
		if (authed && on_msg)
			on_msg(&m, arg);
		if (m.type == 'Z')
			return true;
	}
	h_conn_close(c);
	return false;
}

int h_conn_until_ready(struct h_conn *c, int nz, int timeout_ms,
                       void (*on_msg)(const struct h_bmsg *, void *), void *arg)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	struct h_bmsg m;
	int seen = 0;

	for (;;) {
		int64_t left = deadline - h_now_ms();
		int r = left > 0 ? h_conn_read(c, &m, (int)left) : -1;

		if (r != 1)
			return r == 0 ? 0 : -1;
		if (on_msg)
			on_msg(&m, arg);
		if (m.type == 'Z' && ++seen >= nz)
			return m.n >= 1 ? (unsigned char)m.body[0] : 'I';
	}
}

bool h_pg_exec_db(const char *db, const char *sql)
{
	PGconn *c = PQconnectdb(h_fmt("host=%s port=%d user=postgres dbname=%s connect_timeout=10",
	                              H.dir, H.pgport, db));
	bool ok;

	if (PQstatus(c) != CONNECTION_OK) {
		tap_diag("superuser connection to %s failed: %s", db, PQerrorMessage(c));
		PQfinish(c);
		return false;
	}
	ok = h_exec(c, sql);
	PQfinish(c);
	return ok;
}
