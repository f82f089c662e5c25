/*
 * e2e_cli: the pglease command line -- version and help, exit codes for a
 * broken config and a port in use, -d with its pidfile, SIGTERM, and a
 * [databases] host given as a name (resolved with c-ares inside the loop).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static const char *bin(void)
{
	const char *b = getenv("PGLEASE_BIN");

	return b != NULL ? b : PGL_BUILDDIR "/pglease";
}

static bool file_has(const char *path, const char *needle)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%d", &pid) != 1)
		pid = -1;
	fclose(f);
	return (pid_t)pid;
}

/* Run out of descriptors on purpose: pglease started with ulimit -n 48. */
static void fd_exhaustion(void)
{
	struct h_msg m;
	int fds[80], n_ok = 0, n_refused = 0, i;
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "ulimit -n 48 && exec \"$0\" \"$1\"", bin(),
		      h_lease_config_path(), (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100 && !h_can_query(h_lease_conninfo("alice", NULL, "byname")); i++)
		h_sleep_ms(100);
	for (i = 0; i < 80; i++) {
		fds[i] = h_raw_connect(h_lease_port());
		if (fds[i] == -1 || !h_raw_send_startup(fds[i], H_PROTO_V3, "alice", "byname"))
			continue;
		if (h_raw_read_msg(fds[i], &m, 3000) != 1)
			continue;
		if (m.type == 'E' && h_msg_field(&m, 'C') != NULL &&
		    strcmp(h_msg_field(&m, 'C'), "53300") == 0)
			n_refused++;
		else if (m.type == 'R' || m.type == 'S')
			n_ok++;
	}
	h_ok(n_ok > 0 && n_refused > 0,
	     "out of descriptors: later clients get 53300 at once, not a hang (%d served, %d "
	     "refused)",
	     n_ok, n_refused);
	for (i = 0; i < 80; i++)
		if (fds[i] != -1)
			close(fds[i]);
	h_sleep_ms(500);
	h_ok(h_can_query(h_lease_conninfo("alice", NULL, "byname")),
	     "after they leave, a new client is served");
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	const char *out = h_fmt("%s/cli.out", "/tmp");
	const char *bad, *ini;
	FILE *f;
	PGconn *adm;
	int rc, i;
	pid_t pid = -1;

	h_init(0);
	out = h_fmt("%s/cli.out", h_tmpdir());

	rc = h_run((const char *const[]){bin(), "--version", NULL}, NULL, out, 10000);
	h_ok(rc == 0 && file_has(out, "pglease "), "--version prints the version and exits 0");
	rc = h_run((const char *const[]){bin(), "-h", NULL}, NULL, out, 10000);
	h_ok(rc == 0 && file_has(out, "CONFIG.ini") && file_has(out, "--daemon"),
	     "-h prints usage and exits 0");
	rc = h_run((const char *const[]){bin(), NULL}, NULL, out, 10000);
	h_ok(rc != 0, "no config file: non-zero exit");

	bad = h_fmt("%s/bad.ini", h_tmpdir());
	f = fopen(bad, "w");
	fprintf(f, "[pgbouncer]\nlisten_port = 6432\npool_mode = sometimes\n");
	fclose(f);
	rc = h_run((const char *const[]){bin(), bad, NULL}, NULL, out, 10000);
	h_ok(rc != 0 && file_has(out, "bad.ini:3") && file_has(out, "pool_mode"),
	     "broken config: non-zero exit, message names file:line and key");

	h_pg_start();
	h_lease_config("trust",
	               h_fmt("byname = host=localhost port=%d dbname=testdb\n", h_pg_port()), NULL,
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();
	h_ok(h_can_query(h_lease_conninfo("alice", NULL, "byname")),
	     "a database entry with host=localhost is resolved and served");
	adm = PQconnectdb(h_lease_conninfo_unix("root", NULL, "pgbouncer"));
	if (PQstatus(adm) == CONNECTION_OK) {
		h_is_str(h_value(adm, "SHOW DNS_HOSTS"), "localhost",
		         "SHOW DNS_HOSTS lists the cached name");
		h_is_str(h_cell(adm, "SHOW LISTS", "list", "dns_names", "items"), "1",
		         "SHOW LISTS counts it in dns_names");
		h_is_str(h_value(adm, "SHOW USERS"), "alice", "SHOW USERS lists auth_file users");
	} else {
		tap_ok(true, "# SKIP console needs the unix socket as pglease's OS user");
		tap_ok(true, "# SKIP console needs the unix socket as pglease's OS user");
		tap_ok(true, "# SKIP console needs the unix socket as pglease's OS user");
	}
	PQfinish(adm);

	rc = h_run((const char *const[]){bin(), h_lease_config_path(), NULL}, NULL, out, 10000);
	h_ok(rc != 0 && file_has(out, "could not listen"),
	     "port already in use: non-zero exit with a message");
	h_ok(h_lease_stop_ok("SIGTERM"), "SIGTERM: clean exit with status 0");

	fd_exhaustion();

	/* -d: daemonize, write the pidfile, go on serving; SIGTERM removes the pidfile. */
	ini = h_lease_config_path();
	rc = h_run((const char *const[]){bin(), "-d", ini, NULL}, NULL, out, 10000);
	h_ok(rc == 0, "-d returns at once with status 0");
	for (i = 0; i < 100 && (pid = read_pid(h_fmt("%s/pglease.pid", h_tmpdir()))) <= 0; i++)
		h_sleep_ms(100);
	h_ok(pid > 0 && kill(pid, 0) == 0, "-d writes the pidfile of a running process");
	h_ok(h_can_query(h_lease_conninfo("alice", NULL, "byname")), "the daemon serves clients");
	if (pid > 0)
		kill(pid, SIGTERM);
	for (i = 0; i < 100 && pid > 0 && kill(pid, 0) == 0; i++)
		h_sleep_ms(100);
	h_ok(pid > 0 && kill(pid, 0) != 0, "the daemon exits on SIGTERM");
	h_ok(access(h_fmt("%s/pglease.pid", h_tmpdir()), F_OK) != 0, "and removes its pidfile");
	return tap_done();
}
