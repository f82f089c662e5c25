/*
 * unit_auth: auth_file parsing (quotes, comments, errors with FILE:LINE, a
 * 10,000-user file), secret classification, md5 secret / response / verify
 * against values computed outside pglease, and plain verify against plain,
 * md5 and SCRAM stored secrets.
 */
#include "auth.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* echo -n secretpostgres | md5sum */
#define PG_MD5_SECRET "md553f48b7c4b76a86ce72276c5755f217d"
/* printf '53f48b7c4b76a86ce72276c5755f217d\x01\x02\x03\x04' | md5sum */
#define PG_MD5_RESPONSE "md5bb41a296aab6baccb36ff243a562abff"
/* SCRAM-SHA-256 secret of "secret", salt "pglease-salt-16b", 4096 iterations
 * (computed with Python's hashlib/hmac). */
#define PG_SCRAM_SECRET                                                                            \
	"SCRAM-SHA-256$4096:cGdsZWFzZS1zYWx0LTE2Yg==$rlpXKYclF+gQphR1/"                            \
	"qHnBCdMGrC7ZatIdiV14AffaBc=:"                                                             \
	"mTChKRxHRdnW1gA8RolScchgy9+hT1Q8YK10IUM62SI="

static const uint8_t salt1234[4] = {1, 2, 3, 4};

/* Write TEXT to a new temp file; the path goes into PATH (PATHLEN bytes). */
static void write_temp(const char *text, char *path, size_t pathlen)
{
	FILE *f;
	int fd;

	snprintf(path, pathlen, "/tmp/pglease_unit_auth_XXXXXX");
	fd = mkstemp(path);
	if (fd == -1)
		tap_bail("mkstemp failed");
	f = fdopen(fd, "w");
	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		tap_bail("cannot write %s", path);
}

/* Load TEXT as an auth_file; ERR gets the error message. */
static struct auth_file *load_text(const char *text, char *path, size_t pathlen, char *err,
                                   size_t errlen)
{
	struct auth_file *af;

	write_temp(text, path, pathlen);
	err[0] = '\0';
	af = auth_file_load(path, err, errlen);
	unlink(path);
	return af;
}

static const char *secret_of(const struct auth_file *af, const char *user)
{
	const struct auth_entry *e = auth_file_find(af, user);

	return e != NULL ? e->secret : NULL;
}

static void test_good_file(void)
{
	static const char text[] = "; PgBouncer-style comment\n"
	                           "# another comment\n"
	                           "\n"
	                           "   \t\n"
	                           "\"alice\" \"wonderland\"\n"
	                           "  \"bob\"\t\"" PG_MD5_SECRET "\" \"extra\" field\n"
	                           "\"carol\" \"" PG_SCRAM_SECRET "\"\r\n"
	                           "\"we\"\"ird\" \"pa\"\"ss word\"\n"
	                           "\"dave\" \"first\"\n"
	                           "\"empty\" \"\"\n"
	                           "\"dave\" \"second\"\n"
	                           "\"noeol\" \"last\"";
	char path[64], err[256];
	struct auth_file *af = load_text(text, path, sizeof(path), err, sizeof(err));
	const struct auth_entry *e;

	if (!tap_ok(af != NULL, "good file loads"))
		tap_bail("load failed: %s", err);
	tap_is_str(secret_of(af, "alice"), "wonderland", "plain secret");
	e = auth_file_find(af, "alice");
	tap_ok(e != NULL && e->kind == SECRET_PLAIN, "alice is SECRET_PLAIN");
	tap_is_str(secret_of(af, "bob"), PG_MD5_SECRET, "md5 secret, extra fields ignored");
	e = auth_file_find(af, "bob");
	tap_ok(e != NULL && e->kind == SECRET_MD5, "bob is SECRET_MD5");
	tap_is_str(secret_of(af, "carol"), PG_SCRAM_SECRET, "SCRAM secret, CRLF line");
	e = auth_file_find(af, "carol");
	tap_ok(e != NULL && e->kind == SECRET_SCRAM, "carol is SECRET_SCRAM");
	tap_is_str(secret_of(af, "we\"ird"), "pa\"ss word", "doubled quotes are literal quotes");
	tap_is_str(secret_of(af, "dave"), "second", "a later line for the same user wins");
	tap_is_str(secret_of(af, "empty"), "", "empty secret loads");
	tap_is_str(secret_of(af, "noeol"), "last", "last line without newline");
	tap_ok(auth_file_find(af, "mallory") == NULL, "unknown user not found");
	tap_ok(auth_file_find(af, "") == NULL, "empty user name not found");
	tap_ok(auth_file_find(af, "alic") == NULL && auth_file_find(af, "alicee") == NULL,
	       "prefix and extension of a name not found");
	auth_file_free(af);
}

static void test_bad_files(void)
{
	static const struct {
		const char *text;
		int line;
		const char *why;
	} bad[] = {
	    {"\"a\" \"b\"\nuser \"x\"\n", 2, "quoted"},
	    {"# c\n\n\"a\" \"b\n", 3, "unterminated"},
	    {"\"a\"\n", 1, "missing secret"},
	    {"\"a\"   \t\n", 1, "missing secret"},
	    {"\"a\" b\n", 1, "quoted"},
	    {"\"a\"\"b\"\n", 1, "missing secret"},
	    {"\"a\"x \"b\"\n", 1, "whitespace"},
	    {"\"\" \"b\"\n", 1, "empty user"},
	    {"\"a\" \"b\"\n\"c\" \"SCRAM-SHA-256$4096:bad\"\n", 2, "SCRAM"},
	    {"\"a", 1, "unterminated"},
	};
	char path[64], err[256], want[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct auth_file *af = load_text(bad[i].text, path, sizeof(path), err, sizeof(err));

		snprintf(want, sizeof(want), "%s:%d: ", path, bad[i].line);
		tap_ok(af == NULL, "malformed file %zu rejected", i + 1);
		if (!tap_ok(strncmp(err, want, strlen(want)) == 0 &&
		                strstr(err, bad[i].why) != NULL,
		            "  error is FILE:%d with '%s'", bad[i].line, bad[i].why))
			tap_diag("error was: %s", err);
		auth_file_free(af);
	}

	err[0] = '\0';
	tap_ok(auth_file_load("/nonexistent/pglease/userlist.txt", err, sizeof(err)) == NULL,
	       "missing file rejected");
	tap_ok(strncmp(err, "/nonexistent/pglease/userlist.txt: ", 35) == 0, "  error: %s", err);
}

static void test_big_file(void)
{
	enum { N = 10000 };
	size_t cap = (size_t)N * 48 + 1, len = 0;
	char *text = malloc(cap);
	char path[64], err[256], name[32], want[32];
	struct auth_file *af;
	bool all = true;
	int i;

	if (text == NULL)
		tap_bail("out of memory");
	/* Descending order so the loader has to sort. */
	for (i = N - 1; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len, "\"user%05d\" \"pw%d\"\n", i, i);
	af = load_text(text, path, sizeof(path), err, sizeof(err));
	free(text);
	if (!tap_ok(af != NULL, "10000-user file loads"))
		tap_bail("load failed: %s", err);
	for (i = 0; i < N; i++) {
		const char *s;

		snprintf(name, sizeof(name), "user%05d", i);
		snprintf(want, sizeof(want), "pw%d", i);
		s = secret_of(af, name);
		if (s == NULL || strcmp(s, want) != 0)
			all = false;
	}
	tap_ok(all, "every one of the 10000 users is found with its secret");
	tap_ok(auth_file_find(af, "user10000") == NULL, "a user past the end is not found");
	auth_file_free(af);

	af = auth_file_empty();
	tap_ok(af != NULL && auth_file_find(af, "alice") == NULL, "empty table finds no one");
	auth_file_free(af);

	af = load_text("# only comments\n\n", path, sizeof(path), err, sizeof(err));
	tap_ok(af != NULL && auth_file_find(af, "alice") == NULL, "comment-only file is empty");
	auth_file_free(af);
}

static void test_kinds(void)
{
	tap_ok(auth_secret_kind(PG_MD5_SECRET) == SECRET_MD5, "md5 + 32 hex is MD5");
	tap_ok(auth_secret_kind("md553f48b7c4b76a86ce72276c5755f217") == SECRET_PLAIN,
	       "md5 + 31 hex is PLAIN");
	tap_ok(auth_secret_kind("md553f48b7c4b76a86ce72276c5755f217dd") == SECRET_PLAIN,
	       "md5 + 33 hex is PLAIN");
	tap_ok(auth_secret_kind("md553f48b7c4b76a86ce72276c5755f217x") == SECRET_PLAIN,
	       "md5 + non-hex is PLAIN");
	tap_ok(auth_secret_kind(PG_SCRAM_SECRET) == SECRET_SCRAM, "SCRAM-SHA-256$ is SCRAM");
	tap_ok(auth_secret_kind("hunter2") == SECRET_PLAIN, "anything else is PLAIN");
}

static void test_md5(void)
{
	char out[36];
	uint8_t other[4] = {1, 2, 3, 5};

	auth_md5_secret("postgres", "secret", out);
	tap_is_str(out, PG_MD5_SECRET, "md5 secret of postgres/secret matches PostgreSQL");
	auth_md5_response(PG_MD5_SECRET, salt1234, out);
	tap_is_str(out, PG_MD5_RESPONSE, "md5 response for salt 01020304");

	tap_ok(auth_md5_verify("postgres", PG_MD5_SECRET, salt1234, PG_MD5_RESPONSE),
	       "md5 verify against a stored md5 secret");
	tap_ok(auth_md5_verify("postgres", "secret", salt1234, PG_MD5_RESPONSE),
	       "md5 verify against a stored plain secret");
	tap_ok(!auth_md5_verify("postgres", PG_MD5_SECRET, other, PG_MD5_RESPONSE),
	       "md5 verify fails with another salt");
	tap_ok(!auth_md5_verify("other", "secret", salt1234, PG_MD5_RESPONSE),
	       "md5 verify fails for another user (plain secret)");
	tap_ok(!auth_md5_verify("postgres", "wrong", salt1234, PG_MD5_RESPONSE),
	       "md5 verify fails for a wrong plain secret");
	tap_ok(!auth_md5_verify("postgres", PG_MD5_SECRET, salt1234,
	                        "md5bb41a296aab6baccb36ff243a562abfe"),
	       "md5 verify fails for a wrong response");
	tap_ok(!auth_md5_verify("postgres", PG_MD5_SECRET, salt1234,
	                        "md5bb41a296aab6baccb36ff243a562abf"),
	       "md5 verify fails for a truncated response");
	tap_ok(!auth_md5_verify("postgres", PG_MD5_SECRET, salt1234, PG_MD5_RESPONSE "0"),
	       "md5 verify fails for a too long response");
	tap_ok(!auth_md5_verify("postgres", PG_MD5_SECRET, salt1234, ""),
	       "md5 verify fails for an empty response");
	tap_ok(!auth_md5_verify("postgres", PG_SCRAM_SECRET, salt1234, PG_MD5_RESPONSE),
	       "md5 verify is false for a SCRAM secret");
	tap_ok(!auth_md5_verify("postgres", "", salt1234, PG_MD5_RESPONSE),
	       "md5 verify is false for an empty stored secret");
}

static void test_plain(void)
{
	tap_ok(auth_plain_verify("postgres", "secret", "secret"), "plain vs plain");
	tap_ok(!auth_plain_verify("postgres", "secret", "secreT"), "plain vs plain, wrong");
	tap_ok(!auth_plain_verify("postgres", "secret", "secret2"), "plain vs plain, longer");
	tap_ok(!auth_plain_verify("postgres", "secret", ""), "plain vs plain, empty");
	tap_ok(!auth_plain_verify("postgres", "", ""), "empty stored secret never matches");
	tap_ok(auth_plain_verify("postgres", PG_MD5_SECRET, "secret"), "plain vs md5");
	tap_ok(!auth_plain_verify("postgres", PG_MD5_SECRET, "wrong"), "plain vs md5, wrong");
	tap_ok(!auth_plain_verify("other", PG_MD5_SECRET, "secret"), "plain vs md5, wrong user");
	tap_ok(!auth_plain_verify("postgres", PG_MD5_SECRET, PG_MD5_SECRET),
	       "plain vs md5: the hash itself is not the password");
	tap_ok(auth_plain_verify("postgres", PG_SCRAM_SECRET, "secret"), "plain vs SCRAM");
	tap_ok(auth_plain_verify("anyone", PG_SCRAM_SECRET, "secret"),
	       "plain vs SCRAM does not depend on the user");
	tap_ok(!auth_plain_verify("postgres", PG_SCRAM_SECRET, "Secret"), "plain vs SCRAM, wrong");
	tap_ok(!auth_plain_verify("postgres", "SCRAM-SHA-256$4096:garbage", "secret"),
	       "plain vs an unparsable SCRAM secret fails");
}

int main(void)
{
	test_good_file();
	test_bad_files();
	test_big_file();
	test_kinds();
	test_md5();
	test_plain();
	return tap_done();
}
