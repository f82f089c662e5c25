/* tap: a tiny TAP producer for the test programs. */
#ifndef PGL_TAP_H
#define PGL_TAP_H

#include <stdbool.h>

/* Print the plan "1..N" (call once, first). */
void tap_plan(int n);
/* Skip the whole program: prints "1..0 # SKIP reason". */
void tap_skip_all(const char *reason);
/* One test point; returns COND so callers can chain. */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A diagnostic line ("# ..."). */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Compare strings, printing both on mismatch. */
bool tap_is_str(const char *got, const char *want, const char *name);
/* Compare integers, printing both on mismatch. */
bool tap_is_int(long long got, long long want, const char *name);
/* Print "1..N" when no plan was given and return the exit status (0 if all passed). */
int tap_done(void);
/* Abort the program with "Bail out! reason". */
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
