/* log: one line per call, "2026-12-04 21:00:00.123 UTC [pid] LEVEL message". */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LVL_INFO;

static FILE *log_file;
static bool log_quiet;

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};

bool log_open(const char *path)
{
	log_close();
	if (path == NULL || path[0] == '\0')
		return true;
	log_file = fopen(path, "a");
	if (log_file == NULL)
		return false;
	setvbuf(log_file, NULL, _IOLBF, 0);
	return true;
}

void log_set_quiet(bool quiet)
{
	log_quiet = quiet;
}

void log_close(void)
{
	if (log_file != NULL)
		fclose(log_file);
	log_file = NULL;
}

static pid_t log_pid;

/* getpid() once, again after a fork (log_forked()). */
static pid_t cached_pid(void)
{
	if (log_pid == 0)
		log_pid = getpid();
	return log_pid;
}

void log_forked(void)
{
	log_pid = 0;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int saved_errno = errno;

	if (level > log_threshold || (log_quiet && log_file == NULL))
		return; /* nowhere to write: skip the formatting too */
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03d UTC [%d] %s ",
	                      (int)(tv.tv_usec / 1000), (int)cached_pid(), level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	if (!log_quiet)
		fputs(line, stderr);
	if (log_file != NULL)
		fputs(line, log_file);
	errno = saved_errno;
}
