/*
 * harness_pool: harness functions for the pool, timeout and outage tests
 * (stop/start PostgreSQL, count backends, a listener that never answers,
 * phases that check pglease's exit).  See harness.h.
 */
#include "harness.h"
#include "harness_int.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

/* ==== additions for the pool, timeout and outage tests ================== */

/* pg_ctl ACTION with the cluster's data directory, log and port. */
static bool h_pg_ctl(const char *action, const char *what)
{
	const char *out = h_fmt("%s/pg_ctl.out", H.dir);
	const char *argv[] = {h_fmt("%s/pg_ctl", h_pg_bindir()),
	                      "-D",
	                      H.pgdata,
	                      "-l",
	                      H.pglog,
	                      "-o",
	                      h_fmt("-p %d", H.pgport),
	                      "-m",
	                      "fast",
	                      "-w",
	                      "-t",
	                      "60",
	                      action,
	                      NULL};
	long start = h_file_size(out);
	int rc;

	/* The superuser connection dies with the server: drop it, reconnect on demand. */
	if (H.admin) {
		PQfinish(H.admin);
		H.admin = NULL;
	}
	rc = h_run_pg(argv, out, 90000);
	if (rc != 0) {
		h_diag_file_from(h_fmt("pg_ctl %s output", action), out, start, 20);
		tap_diag("%s: pg_ctl %s failed (status %d)", what, action, rc);
		return false;
	}
	H.pg_started = true;
	return true;
}

bool h_pg_stop(void)
{
	return h_pg_ctl("stop", "h_pg_stop");
}

bool h_pg_start_again(void)
{
	return h_pg_ctl("start", "h_pg_start_again");
}

bool h_pg_restart(void)
{
	return h_pg_ctl("restart", "h_pg_restart");
}

/* The superuser connection, or NULL (no bail-out) when PostgreSQL does not answer. */
static PGconn *h_admin_quiet(void)
{
	if (H.admin && PQstatus(H.admin) == CONNECTION_OK)
		return H.admin;
	if (H.admin)
		PQfinish(H.admin);
	H.admin = PQconnectdb(h_fmt("host=%s port=%d user=postgres dbname=postgres "
	                            "connect_timeout=10",
	                            H.dir, H.pgport));
	if (PQstatus(H.admin) != CONNECTION_OK) {
		PQfinish(H.admin);
		H.admin = NULL;
	}
	return H.admin;
}

/* First value of SQL on the superuser connection (reconnecting once), or NULL. */
static const char *h_admin_value_quiet(const char *sql)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGconn *c = h_admin_quiet();
		PGresult *r;
		const char *v = NULL;

		if (c == NULL)
			return NULL;
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
			v = h_fmt("%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
			PQclear(r);
			return v;
		}
		if (attempt == 1 || PQstatus(c) == CONNECTION_OK)
			tap_diag("query \"%.60s\" failed: %s", sql,
			         r ? PQresultErrorMessage(r) : PQerrorMessage(c));
		PQclear(r);
		if (PQstatus(c) == CONNECTION_OK)
			return NULL;
		/* A connection broken by a server restart: reconnect and retry once. */
	}
	return NULL;
}

/* The WHERE clause selecting the client backends of DB and USER. */
static const char *h_backends_where(const char *db, const char *user)
{
	return h_fmt("backend_type = 'client backend' AND pid <> pg_backend_pid()%s%s",
	             db ? h_fmt(" AND datname = '%s'", db) : "",
	             user ? h_fmt(" AND usename = '%s'", user) : " AND usename <> 'postgres'");
}

int h_pg_backends(const char *db, const char *user)
{
	const char *v = h_admin_value_quiet(
	    h_fmt("SELECT count(*) FROM pg_stat_activity WHERE %s", h_backends_where(db, user)));

	return v ? atoi(v) : -1;
}

int h_pg_wait_backends(const char *db, const char *user, int want, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	int n;

	while ((n = h_pg_backends(db, user)) != want && h_now_ms() < deadline)
		h_sleep_ms(100);
	return n;
}

const char *h_pg_backend_pids(const char *db, const char *user)
{
	return h_admin_value_quiet(
	    h_fmt("SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') "
	          "FROM pg_stat_activity WHERE %s",
	          h_backends_where(db, user)));
}

int h_pg_terminate(const char *db, const char *user)
{
	const char *v = h_admin_value_quiet(
	    h_fmt("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE %s",
	          h_backends_where(db, user)));

	return v ? atoi(v) : -1;
}

int h_blackhole_listen(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd == -1)
		h_bail("socket: %s", strerror(errno));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 64) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
		h_bail("black-hole listener: %s", strerror(errno));
	*port = ntohs(sa.sin_port);
	return fd;
}

bool h_lease_try_start(void)
{
	const char *bin = h_lease_bin();

	if (access(bin, X_OK) != 0) {
		tap_diag("pglease binary %s not found or not executable", bin);
		return false;
	}
	if (H.lease_pid > 0) {
		tap_diag("h_lease_try_start: pglease is already running");
		return false;
	}
	for (int attempt = 1; attempt <= 3; attempt++) {
		const char *argv[] = {bin, H.lease_ini, NULL};
		int64_t deadline = h_now_ms() + 10000;
		FILE *f = fopen(H.lease_err, "ae");

		if (f) {
			fprintf(f, "---- starting %s %s\n", bin, H.lease_ini);
			fclose(f);
		}
		H.lease_err_start = h_file_size(H.lease_err);
		H.lease_pid = h_spawn(argv, NULL, H.lease_err);
		if (H.lease_pid == -1) {
			tap_diag("cannot fork pglease: %s", strerror(errno));
			return false;
		}
		while (h_lease_alive()) {
			if (h_port_open(H.lease_port)) {
				H.lease_log_seen = h_file_size(H.lease_log);
				return true;
			}
			if (h_now_ms() > deadline) {
				tap_diag(
				    "pglease does not accept connections on port %d after 10 s",
				    H.lease_port);
				h_lease_stop();
				return false;
			}
			h_sleep_ms(50);
		}
		if (attempt < 3 && h_lease_stderr_has("in use")) {
			tap_diag("port %d was taken meanwhile; retrying pglease on another",
			         H.lease_port);
			h_lease_config(H.cfg_auth, H.cfg_dbs, H.cfg_extra, H.cfg_users);
			continue;
		}
		tap_diag("pglease exited during start-up (status %d)", H.lease_status);
		h_diag_file_from("pglease stderr", H.lease_err, H.lease_err_start, 40);
		h_diag_file("config", H.lease_ini, 80);
		return false;
	}
	return false;
}

bool h_lease_try_restart(const char *auth_type, const char *databases, const char *extra,
                         const char *userlist)
{
	h_lease_stop();
	h_lease_config(auth_type, databases, extra, userlist);
	return h_lease_try_start();
}

static const char *h_phase = "";

bool h_lease_phase_stop(void)
{
	if (H.lease_pid <= 0)
		return true;
	return h_lease_stop_ok(h_fmt("end of phase \"%s\"", h_phase));
}

bool h_lease_phase(const char *what, const char *auth_type, const char *databases,
                   const char *extra, const char *userlist)
{
	h_lease_phase_stop();
	h_phase = h_fmt("%s", what);
	return h_ok(h_lease_try_restart(auth_type, databases, extra, userlist),
	            "pglease starts with %s", what);
}

void h_lease_phase_end(void)
{
	if (H.lease_pid <= 0)
		return;
	h_ok(h_lease_alive(), "pglease is alive at the end of phase \"%s\"", h_phase);
	h_lease_phase_stop();
}

bool h_wait_conn_closed(PGconn *conn, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;

	while (PQstatus(conn) != CONNECTION_BAD) {
		struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
		int64_t left = deadline - h_now_ms();

		if (p.fd < 0)
			break;
		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (!PQconsumeInput(conn))
			break;
		/* Parse what came (an unsolicited error is passed on as a notice). */
		while (!PQisBusy(conn)) {
			PGresult *r = PQgetResult(conn);

			if (r == NULL)
				break;
			PQclear(r);
		}
	}
	return true;
}
