/*
 * harness_int: the harness's own state, shared by its source files
 * (harness.c, harness_pool.c).  Tests include harness.h only.
 */
#ifndef PGL_HARNESS_INT_H
#define PGL_HARNESS_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define H_PATH 512

/* One harness-owned string (h_fmt); the list is freed at exit. */
struct h_str {
	struct h_str *next;
	char s[];
};

struct h_state {
	bool inited;
	bool cleaned;
	bool failed;      /* a test point failed or the program bailed out */
	bool logs_dumped; /* the exit dump already ran */
	char dir[128];
	char pgdata[H_PATH];
	char pglog[H_PATH];
	int pgport;
	bool pg_started;
	bool as_postgres; /* run PostgreSQL programs via runuser -u postgres */
	PGconn *admin;    /* superuser connection over the unix socket */
	pid_t lease_pid;  /* -1 when not running */
	int lease_status; /* exit status of the last pglease that ended */
	int lease_port;
	char lease_ini[H_PATH];
	char lease_log[H_PATH];
	char lease_err[H_PATH];
	char userlist[H_PATH];
	long lease_log_seen;  /* bytes of the log already shown or passed */
	long lease_err_start; /* size of the stderr file when this pglease started */
	const char *cfg_auth, *cfg_dbs, *cfg_extra, *cfg_users; /* last h_lease_config() */
	int used_ports[64];
	int n_used_ports;
	struct h_str *strings;
};

extern struct h_state H;

/* Helpers of harness.c used by its other files. */
long h_file_size(const char *path);
int h_run_pg(const char *const argv[], const char *outfile, int timeout_ms);
void h_diag_file_from(const char *title, const char *path, long from, int max_lines);
const char *h_lease_bin(void);
pid_t h_spawn(const char *const argv[], const char *const env[], const char *outfile);
bool h_port_open(int port);
bool h_lease_stderr_has(const char *needle);

#endif
