/* main: arguments, daemonizing, signals, the event loop. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "janitor.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "pool.h"
#include "runtime.h"
#include "sbuf.h"
#include "server.h"
#include "stats.h"
#include "varcache.h"

#include "pgl_build.h"

static void usage(FILE *out)
{
	fprintf(out, "pglease, a PostgreSQL connection pooler\n\n"
	             "Usage: pglease [OPTION]... CONFIG.ini\n\n"
	             "  -d, --daemon    run in the background (writes pidfile)\n"
	             "  -q, --quiet     do not log to stderr\n"
	             "  -v, --verbose   more logging (repeat for more)\n"
	             "  -V, --version   print the version and exit\n"
	             "  -h, --help      print this help and exit\n");
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	client_reap();
	server_reap();
}

static bool load_auth(const struct config *cfg, struct auth_file **out)
{
	char err[512];

	if (cfg->auth_file == NULL || cfg->auth_file[0] == '\0') {
		*out = auth_file_empty();
		return *out != NULL;
	}
	*out = auth_file_load(cfg->auth_file, err, sizeof(err));
	if (*out == NULL) {
		log_error("%s", err);
		return false;
	}
	return true;
}

/* Signals map to console commands (admin.h): HUP = RELOAD, TERM = SHUTDOWN
 * WAIT_FOR_CLIENTS, INT = SHUTDOWN WAIT_FOR_SERVERS, QUIT = SHUTDOWN,
 * USR1 = PAUSE, USR2 = RESUME. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	char err[1024];

	(void)what;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		log_info("got SIGHUP, reloading the configuration");
		if (!admin_reload(err, sizeof(err)))
			log_error("reload failed, keeping the old configuration: %s", err);
		break;
	case SIGTERM:
		admin_shutdown(ADMIN_SHUTDOWN_WAIT_FOR_CLIENTS);
		break;
	case SIGINT:
		admin_shutdown(ADMIN_SHUTDOWN_WAIT_FOR_SERVERS);
		break;
	case SIGQUIT:
		admin_shutdown(ADMIN_SHUTDOWN_NOW);
		break;
	case SIGUSR1:
		admin_pause_all();
		break;
	case SIGUSR2:
		admin_resume_all();
		break;
	default:
		break;
	}
}

static bool write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return true;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return false;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return false;
	}
	return close(fd) == 0;
}

static bool daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid == -1)
		return false;
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		return false;
	pid = fork();
	if (pid == -1)
		return false;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	log_set_quiet(true);
	log_forked();
	return true;
}

/* Descriptors the config can use: every client, every server connection the
 * database entries allow (max_db_connections, else pool sizes; one user per
 * entry is assumed, as PgBouncer's estimate does), and some spare. */
static unsigned long wanted_descriptors(const struct config *cfg)
{
	unsigned long n = (unsigned long)cfg->max_client_conn + 64;
	size_t i;

	for (i = 0; i < cfg->n_dbs; i++) {
		const struct cfg_db *db = &cfg->dbs[i];
		int cap =
		    db->max_db_connections >= 0 ? db->max_db_connections : cfg->max_db_connections;
		int size =
		    (db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size) +
		    (db->max_overflow >= 0 ? db->max_overflow : cfg->max_overflow) +
		    (db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size);

		n += (unsigned long)(cap > 0 && cap < size ? cap : size);
	}
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"daemon", no_argument, NULL, 'd'},  {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'}, {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},    {NULL, 0, NULL, 0}};
	const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	struct event *sig_ev[6];
	bool daemon_mode = false;
	int verbose = 0, c;
	size_t i;
	char err[512];
	unsigned long want_fds, got_fds;

	while ((c = getopt_long(argc, argv, "dqvVh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			daemon_mode = true;
			break;
		case 'q':
			log_set_quiet(true);
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("pglease %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	rt_init();
	rt.config_path = argv[optind];
	rt.cfg = cfg_load(rt.config_path, err, sizeof(err));
	if (rt.cfg == NULL) {
		log_fatal("%s", err);
		return 1;
	}
	if (verbose + rt.cfg->verbose > 0)
		log_threshold = verbose + rt.cfg->verbose >= 2 ? LOG_LVL_NOISE : LOG_LVL_DEBUG;
	if (!log_open(rt.cfg->logfile)) {
		log_fatal("could not open logfile \"%s\": %s", rt.cfg->logfile, strerror(errno));
		return 1;
	}
	if (!load_auth(rt.cfg, &rt.auth))
		return 1;
	if (!varcache_configure(rt.cfg->track_extra_parameters)) {
		log_fatal("track_extra_parameters: at most %d extra parameters", VAR_EXTRA_MAX);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	want_fds = wanted_descriptors(rt.cfg);
	got_fds = net_raise_nofile(want_fds);
	if (got_fds < want_fds)
		log_warn("descriptor limit is %lu, max_client_conn needs about %lu", got_fds,
		         want_fds);
	if (daemon_mode && !daemonize()) {
		log_fatal("could not daemonize: %s", strerror(errno));
		return 1;
	}
	rt.base = event_base_new();
	if (rt.base == NULL) {
		log_fatal("could not create the event loop");
		return 1;
	}
	rt.ev_reap = event_new(rt.base, -1, 0, reap, NULL);
	if (rt.ev_reap == NULL ||
	    !dns_init(rt.base, rt.cfg->dns_max_ttl, rt.cfg->dns_nxdomain_ttl, err, sizeof(err))) {
		log_fatal("could not start: %s", rt.ev_reap ? err : "out of memory");
		return 1;
	}
	if (!net_listen_all(rt.base, rt.cfg, client_accept, err, sizeof(err))) {
		log_fatal("%s", err);
		return 1;
	}
	if (!write_pidfile(rt.cfg->pidfile)) {
		log_fatal("could not write pidfile \"%s\": %s", rt.cfg->pidfile, strerror(errno));
		net_close_listeners();
		return 1;
	}
	for (i = 0; i < 6; i++) {
		sig_ev[i] = evsignal_new(rt.base, sigs[i], on_signal, NULL);
		if (sig_ev[i] == NULL || event_add(sig_ev[i], NULL) == -1) {
			log_fatal("could not install signal handlers");
			return 1;
		}
	}
	if (!janitor_start() || !admin_start() || !stats_start()) {
		log_fatal("could not start the maintenance timers");
		return 1;
	}
	if (!metrics_start(err, sizeof(err))) {
		log_fatal("%s", err);
		return 1;
	}
	log_info("pglease %s listening on port %d", PACKAGE_VERSION, rt.cfg->listen_port);
	event_base_dispatch(rt.base);

	metrics_stop();
	stats_stop();
	admin_stop();
	janitor_stop();
	for (i = 0; i < 6; i++)
		event_free(sig_ev[i]);
	cancel_shutdown();
	client_reap();
	server_reap();
	dns_shutdown();
	event_free(rt.ev_reap);
	event_base_free(rt.base);
	if (rt.cfg->pidfile != NULL && rt.cfg->pidfile[0] != '\0')
		unlink(rt.cfg->pidfile);
	auth_file_free(rt.auth);
	cfg_free(rt.cfg);
	sbuf_cleanup();
	log_info("pglease stopped");
	log_close();
	return 0;
}
