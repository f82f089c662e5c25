/*
 * e2e_pgbench: pgbench's select-only load through pglease in session mode.
 *
 * Plan:
 *   1   pgbench -i -s 1 directly against PostgreSQL (as alice over TCP)
 *   2-4 pgbench -S -c 20 -j 2 -T 5 through pglease (pool_size 20, md5 auth):
 *       exit status 0, transactions processed > 0, zero failed transactions
 *   5-6 pglease alive, clean exit on SIGTERM
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number after PREFIX on its line in FILE, or -1. */
static long long number_after(const char *file, const char *prefix)
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

int main(void)
{
	const char *pgbench, *init_out, *run_out, *port;
	const char *env[] = {"PGPASSWORD=alicepw", "PGCONNECT_TIMEOUT=10", NULL};
	int rc;

	h_init(300);
	h_pg_start();
	pgbench = h_fmt("%s/pgbench", h_pg_bindir());
	init_out = h_fmt("%s/pgbench-init.out", h_tmpdir());
	run_out = h_fmt("%s/pgbench-run.out", h_tmpdir());

	port = h_fmt("%d", h_pg_port());
	{
		const char *argv[] = {pgbench, "-i", "-s", "1",     "-h",     "127.0.0.1",
		                      "-p",    port, "-U", "alice", "testdb", NULL};

		rc = h_run(argv, env, init_out, 120000);
		if (!h_is_int(rc, 0, "pgbench -i -s 1 directly against PostgreSQL"))
			h_diag_file("pgbench -i output", init_out, 40);
	}

	h_lease_config("md5", h_db_line("testdb", "testdb", "pool_size=20"),
	               "pool_mode = session\nmax_client_conn = 100\n",
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();
	port = h_fmt("%d", h_lease_port());
	{
		const char *argv[] = {pgbench, "-S",    "-c",     "20",        "-j", "2",
		                      "-T",    "5",     "-h",     "127.0.0.1", "-p", port,
		                      "-U",    "alice", "testdb", NULL};
		long long processed, failed;

		rc = h_run(argv, env, run_out, 120000);
		processed = number_after(run_out, "number of transactions actually processed: ");
		failed = number_after(run_out, "number of failed transactions: ");
		if (!h_is_int(rc, 0, "pgbench -S -c 20 -j 2 -T 5 through pglease exits 0"))
			h_diag_file("pgbench output", run_out, 60);
		h_ok(processed > 0, "pgbench through pglease processed transactions (%lld)",
		     processed);
		h_is_int(failed, 0, "pgbench through pglease: zero failed transactions");
		tap_diag("pgbench: %lld transactions, about %lld tps", processed,
		         number_after(run_out, "tps = "));
	}

	h_ok(h_lease_alive(), "pglease is alive after pgbench");
	h_lease_stop_ok("end");
	return tap_done();
}
