/* log: leveled logging to stderr and an optional log file. */
#ifndef PGL_LOG_H
#define PGL_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_FATAL,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE
};

/* Current threshold; messages above it are dropped before formatting. */
extern enum log_level log_threshold;

/* Open (or reopen) the log file; NULL or "" logs to stderr only. False on failure (errno set). */
bool log_open(const char *path) __attribute__((warn_unused_result));
/* Stop writing to stderr (after daemonizing). */
void log_set_quiet(bool quiet);
/* The process forked (daemonizing): log lines carry the new pid. */
void log_forked(void);
/* Close the log file. */
void log_close(void);
/* Format and write one line at LEVEL; use the macros below. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_fatal(...) log_write(LOG_LVL_FATAL, __VA_ARGS__)
#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_threshold >= LOG_LVL_INFO)                                                 \
			log_write(LOG_LVL_INFO, __VA_ARGS__);                                      \
	} while (0)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_threshold >= LOG_LVL_DEBUG)                                                \
			log_write(LOG_LVL_DEBUG, __VA_ARGS__);                                     \
	} while (0)
#define log_noise(...)                                                                             \
	do {                                                                                       \
		if (log_threshold >= LOG_LVL_NOISE)                                                \
			log_write(LOG_LVL_NOISE, __VA_ARGS__);                                     \
	} while (0)

#endif
