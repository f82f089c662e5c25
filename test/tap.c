#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count;
static int tap_failed;
static bool tap_planned;

void tap_plan(int n)
{
	printf("1..%d\n", n);
	fflush(stdout);
	tap_planned = true;
}

void tap_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	exit(0);
}

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

bool tap_is_str(const char *got, const char *want, const char *name)
{
	bool eq = (got == NULL && want == NULL) ||
	          (got != NULL && want != NULL && strcmp(got, want) == 0);

	if (!tap_ok(eq, "%s", name))
		tap_diag("  got: '%s'\n#   expected: '%s'", got ? got : "(null)",
		         want ? want : "(null)");
	return eq;
}

bool tap_is_int(long long got, long long want, const char *name)
{
	if (!tap_ok(got == want, "%s", name)) {
		tap_diag("  got: %lld, expected: %lld", got, want);
		return false;
	}
	return true;
}

int tap_done(void)
{
	if (!tap_planned)
		printf("1..%d\n", tap_count);
	fflush(stdout);
	return tap_failed == 0 ? 0 : 1;
}

void tap_bail(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(255);
}
