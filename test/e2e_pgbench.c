/*
 * e2e_pgbench: pgbench's select-only load through pglease in session mode.
 *
 * Plan:
 *   1   pgbench -i -s 1 directly against PostgreSQL (as alice over TCP)
 *   2-4 pgbench -S -c 20 -j 2 -T 5 through pglease (pool_size 20, md5 auth):
 *       exit status 0, transactions processed > 0, zero failed transactions
 *   5-7 the same for pgbench -S -M extended -C -c 30 -j 2 -T 3: more clients
 *       than pool_size and a new login per transaction
 *   8-9 pglease alive, clean exit on SIGTERM
 */
#include "harness.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const pgbench_env[] = {"PGPASSWORD=alicepw", "PGCONNECT_TIMEOUT=10", NULL};

/*
 * Three test points for one pgbench run through pglease with ARGS (NULL
 * terminated, without connection options): exit status 0, transactions
 * processed, zero failed.
 */
static void pgbench_through_pglease(const char *name, const char *const args[])
{
	const char *argv[32];
	const char *out = h_fmt("%s/pgbench-%d.out", h_tmpdir(), h_lease_port());
	size_t n = 0;
	long long processed, failed;
	int rc;

	argv[n++] = h_fmt("%s/pgbench", h_pg_bindir());
	for (size_t i = 0; args[i] && n < 24; i++)
		argv[n++] = args[i];
	argv[n++] = "-h";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = h_fmt("%d", h_lease_port());
	argv[n++] = "-U";
	argv[n++] = "alice";
	argv[n++] = "testdb";
	argv[n] = NULL;
	/* Output from an earlier run on the same port must not be read again. */
	unlink(out);
	rc = h_run(argv, pgbench_env, out, 120000);
	processed = h_number_after(out, "number of transactions actually processed: ");
	failed = h_number_after(out, "number of failed transactions: ");
	if (!h_is_int(rc, 0, h_fmt("%s through pglease exits 0", name)))
		h_diag_file("pgbench output", out, 60);
	h_ok(processed > 0, "%s: transactions processed (%lld)", name, processed);
	h_is_int(failed, 0, h_fmt("%s: zero failed transactions", name));
	tap_diag("%s: %lld transactions, about %lld tps", name, processed,
	         h_number_after(out, "tps = "));
}

int main(void)
{
	static const char *const select_only[] = {"-S", "-c", "20", "-j", "2", "-T", "5", NULL};
	static const char *const churn[] = {"-S", "-M", "extended", "-C", "-c", "30",
	                                    "-j", "2",  "-T",       "3",  NULL};
	const char *init_out;
	int rc;

	h_init(300);
	h_pg_start();
	init_out = h_fmt("%s/pgbench-init.out", h_tmpdir());
	{
		const char *argv[] = {h_fmt("%s/pgbench", h_pg_bindir()),
		                      "-i",
		                      "-s",
		                      "1",
		                      "-h",
		                      "127.0.0.1",
		                      "-p",
		                      h_fmt("%d", h_pg_port()),
		                      "-U",
		                      "alice",
		                      "testdb",
		                      NULL};

		rc = h_run(argv, pgbench_env, init_out, 120000);
		if (!h_is_int(rc, 0, "pgbench -i -s 1 directly against PostgreSQL"))
			h_diag_file("pgbench -i output", init_out, 40);
	}

	h_lease_config("md5", h_db_line("testdb", "testdb", "pool_size=20"),
	               "pool_mode = session\nmax_client_conn = 100\n",
	               h_userlist_line("alice", "alicepw"));
	h_lease_start();
	pgbench_through_pglease("pgbench -S -c 20 -j 2 -T 5", select_only);
	/* More clients than pool_size, a login per transaction: the wait queue and
	 * the reset/reuse path under churn, with the extended query protocol. */
	pgbench_through_pglease("pgbench -S -M extended -C -c 30 -j 2 -T 3", churn);

	h_ok(h_lease_alive(), "pglease is alive after pgbench");
	h_lease_stop_ok("end");
	return tap_done();
}
