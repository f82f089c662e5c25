/*
 * auth: the auth_file (PgBouncer userlist.txt syntax) and the md5 / plain
 * password checks.  The loaded file is a sorted array searched with bsearch,
 * so lookups stay O(log n) for files with tens of thousands of users.
 * Secrets are wiped before their memory is freed.
 */
#include "auth.h"

#include "scram.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_DIGEST_LEN 16
#define MD5_SECRET_LEN 35 /* "md5" + 32 hex */
#define SCRAM_PREFIX   "SCRAM-SHA-256$"

struct auth_file {
	struct auth_entry *entries; /* sorted by name, names unique */
	size_t count;
};

/* ---- loading ---------------------------------------------------------- */

static void free_entry(struct auth_entry *e)
{
	if (e->secret != NULL)
		OPENSSL_cleanse(e->secret, strlen(e->secret));
	free(e->secret);
	e->secret = NULL;
	free(e->name);
	e->name = NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * Read one double-quoted field at *PP ("" inside is a literal quote) into a
 * new string.  On success *PP points just past the closing quote.  NULL with
 * *WHY set when the field is missing or unterminated, or on out-of-memory.
 */
static char *read_quoted(const char **pp, const char **why)
{
	const char *p = *pp;
	char *out, *o;

	if (*p != '"') {
		*why = "expected a double-quoted field";
		return NULL;
	}
	p++;
	out = malloc(strlen(p) + 1);
	if (out == NULL) {
		*why = "out of memory";
		return NULL;
	}
	o = out;
	for (;;) {
		if (*p == '\0') {
			OPENSSL_cleanse(out, (size_t)(o - out));
			free(out);
			*why = "unterminated quoted field";
			return NULL;
		}
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++;
		}
		*o++ = *p++;
	}
	*o = '\0';
	*pp = p + 1;
	return out;
}

/*
 * Parse one line into E.  Returns 1 for an entry, 0 for a line to skip, -1 on
 * a malformed line with *WHY set.
 */
static int parse_line(const char *line, struct auth_entry *e, const char **why)
{
	const char *p = line;

	while (is_space(*p))
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return 0;
	e->name = read_quoted(&p, why);
	if (e->name == NULL)
		return -1;
	if (e->name[0] == '\0') {
		*why = "empty user name";
		goto fail;
	}
	if (*p != '\0' && !is_space(*p)) {
		*why = "expected whitespace after the user name";
		goto fail;
	}
	while (is_space(*p))
		p++;
	if (*p == '\0') {
		*why = "missing secret after the user name";
		goto fail;
	}
	e->secret = read_quoted(&p, why);
	if (e->secret == NULL)
		goto fail;
	/* Anything after the secret is extra fields, ignored as in PgBouncer. */
	e->kind = auth_secret_kind(e->secret);
	if (e->kind == SECRET_SCRAM) {
		struct scram_secret s;
		bool ok = scram_parse_secret(e->secret, &s);

		OPENSSL_cleanse(&s, sizeof(s));
		if (!ok) {
			*why = "invalid SCRAM-SHA-256 secret";
			goto fail;
		}
	}
	return 1;
fail:
	free_entry(e);
	return -1;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct auth_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* An entry while loading, with its line so duplicates resolve by order. */
struct loaded {
	struct auth_entry e;
	unsigned long line;
};

static int cmp_loaded(const void *a, const void *b)
{
	const struct loaded *x = a, *y = b;
	int c = strcmp(x->e.name, y->e.name);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/*
 * Sort the COUNT loaded entries by name into AF; when a user appears twice
 * the later line wins, as a later setting does in a config file.  Consumes V
 * (entries are moved or freed).  False on out-of-memory.
 */
static bool build_table(struct auth_file *af, struct loaded *v, size_t count)
{
	size_t i, n = 0;

	if (count == 0)
		return true;
	af->entries = malloc(count * sizeof(*af->entries));
	if (af->entries == NULL) {
		for (i = 0; i < count; i++)
			free_entry(&v[i].e);
		return false;
	}
	qsort(v, count, sizeof(*v), cmp_loaded);
	for (i = 0; i < count; i++) {
		if (i + 1 < count && strcmp(v[i].e.name, v[i + 1].e.name) == 0) {
			free_entry(&v[i].e);
			continue;
		}
		af->entries[n++] = v[i].e;
	}
	af->count = n;
	return true;
}

static bool push_loaded(struct loaded **v, size_t *count, size_t *cap, const struct auth_entry *e,
                        unsigned long line)
{
	if (*count == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct loaded *nv = realloc(*v, ncap * sizeof(*nv));

		if (nv == NULL)
			return false;
		*v = nv;
		*cap = ncap;
	}
	(*v)[*count].e = *e;
	(*v)[*count].line = line;
	(*count)++;
	return true;
}

/* Wipe and free the getline buffer and the entries read so far. */
static void load_cleanup(char *line, size_t linecap, struct loaded *v, size_t count)
{
	size_t i;

	if (line != NULL)
		OPENSSL_cleanse(line, linecap);
	free(line);
	for (i = 0; i < count; i++)
		free_entry(&v[i].e);
	free(v);
}

struct auth_file *auth_file_load(const char *path, char *err, size_t errlen)
{
	struct auth_file *af;
	struct loaded *v = NULL;
	size_t count = 0, cap = 0, linecap = 0;
	char *line = NULL;
	unsigned long lineno = 0;
	ssize_t n;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = getline(&line, &linecap, f)) != -1) {
		struct auth_entry e = {0};
		const char *why = NULL;
		int r;

		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			why = "NUL byte in line";
			r = -1;
		} else {
			r = parse_line(line, &e, &why);
		}
		if (r == 1 && !push_loaded(&v, &count, &cap, &e, lineno)) {
			free_entry(&e);
			why = "out of memory";
			r = -1;
		}
		if (r == -1) {
			snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	load_cleanup(line, linecap, NULL, 0);
	af = auth_file_empty();
	if (af == NULL || !build_table(af, v, count)) {
		if (af == NULL)
			load_cleanup(NULL, 0, v, count);
		else
			free(v);
		auth_file_free(af);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	free(v);
	return af;
fail:
	fclose(f);
	load_cleanup(line, linecap, v, count);
	return NULL;
}

struct auth_file *auth_file_empty(void)
{
	return calloc(1, sizeof(struct auth_file));
}

void auth_file_free(struct auth_file *af)
{
	size_t i;

	if (af == NULL)
		return;
	for (i = 0; i < af->count; i++)
		free_entry(&af->entries[i]);
	free(af->entries);
	free(af);
}

const struct auth_entry *auth_file_find(const struct auth_file *af, const char *user)
{
	struct auth_entry key = {.name = (char *)user};

	if (af == NULL || af->count == 0 || user == NULL)
		return NULL;
	return bsearch(&key, af->entries, af->count, sizeof(key), cmp_entry);
}

size_t auth_file_count(const struct auth_file *af)
{
	return af != NULL ? af->count : 0;
}

const struct auth_entry *auth_file_entry(const struct auth_file *af, size_t i)
{
	return af != NULL && i < af->count ? &af->entries[i] : NULL;
}

/* ---- secrets ------------------------------------------------------------ */

enum auth_secret_kind auth_secret_kind(const char *secret)
{
	if (strncmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0)
		return SECRET_SCRAM;
	if (strlen(secret) == MD5_SECRET_LEN && strncmp(secret, "md5", 3) == 0 &&
	    strspn(secret + 3, "0123456789abcdef") == 32)
		return SECRET_MD5;
	return SECRET_PLAIN;
}

/* out = "md5" + hex(md5(A || B)); out is "" if the digest is unavailable
 * (MD5 disabled by a FIPS provider), which then never matches anything. */
static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t dig[MD5_DIGEST_LEN];
	unsigned int diglen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;
	int i;

	out[0] = '\0';
	if (ctx == NULL)
		return;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, dig, &diglen) == 1 &&
	     diglen == MD5_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return;
	memcpy(out, "md5", 3);
	for (i = 0; i < MD5_DIGEST_LEN; i++) {
		out[3 + 2 * i] = hex[dig[i] >> 4];
		out[4 + 2 * i] = hex[dig[i] & 15];
	}
	out[MD5_SECRET_LEN] = '\0';
	OPENSSL_cleanse(dig, sizeof(dig));
}

void auth_md5_secret(const char *user, const char *password, char out[36])
{
	md5_hex2(password, strlen(password), user, strlen(user), out);
}

void auth_md5_response(const char *md5_secret, const uint8_t salt[4], char out[36])
{
	if (auth_secret_kind(md5_secret) != SECRET_MD5) {
		out[0] = '\0';
		return;
	}
	md5_hex2(md5_secret + 3, 32, salt, 4, out);
}

/* Constant-time equality of two 35-byte md5 strings; false if either is
 * not exactly that long (e.g. "" from an unavailable digest). */
static bool md5_equal(const char *a, const char *b)
{
	if (strnlen(a, MD5_SECRET_LEN + 1) != MD5_SECRET_LEN ||
	    strnlen(b, MD5_SECRET_LEN + 1) != MD5_SECRET_LEN)
		return false;
	return CRYPTO_memcmp(a, b, MD5_SECRET_LEN) == 0;
}

bool auth_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
                     const char *response)
{
	char stored[36], expect[36];
	bool ok;

	switch (auth_secret_kind(secret)) {
	case SECRET_PLAIN:
		if (secret[0] == '\0')
			return false;
		auth_md5_secret(user, secret, stored);
		break;
	case SECRET_MD5:
		memcpy(stored, secret, MD5_SECRET_LEN + 1);
		break;
	default:
		return false;
	}
	auth_md5_response(stored, salt, expect);
	ok = md5_equal(expect, response);
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(expect, sizeof(expect));
	return ok;
}

/* Compare two strings without leaking where they differ: hash both with
 * SHA-256 and compare the digests in constant time. */
static bool plain_equal(const char *a, const char *b)
{
	uint8_t da[32], db[32];
	unsigned int la = 0, lb = 0;
	bool ok;

	ok = EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) == 1 &&
	     EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL) == 1 && la == 32 && lb == 32 &&
	     CRYPTO_memcmp(da, db, 32) == 0;
	OPENSSL_cleanse(da, sizeof(da));
	OPENSSL_cleanse(db, sizeof(db));
	return ok;
}

static bool scram_plain_verify(const char *secret, const char *password)
{
	struct scram_secret stored, derived;
	bool ok;

	ok = scram_parse_secret(secret, &stored) &&
	     scram_build_secret(password, stored.salt, stored.salt_len, stored.iterations,
	                        &derived) &&
	     CRYPTO_memcmp(stored.stored_key, derived.stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(&stored, sizeof(stored));
	OPENSSL_cleanse(&derived, sizeof(derived));
	return ok;
}

bool auth_plain_verify(const char *user, const char *secret, const char *password)
{
	char md5[36];
	bool ok;

	/* An empty stored password would let an empty answer in: never. */
	if (secret[0] == '\0')
		return false;
	switch (auth_secret_kind(secret)) {
	case SECRET_PLAIN:
		return plain_equal(secret, password);
	case SECRET_MD5:
		auth_md5_secret(user, password, md5);
		ok = md5_equal(md5, secret);
		OPENSSL_cleanse(md5, sizeof(md5));
		return ok;
	case SECRET_SCRAM:
		return scram_plain_verify(secret, password);
	}
	return false;
}
