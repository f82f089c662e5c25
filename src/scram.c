/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677) both ways.  The server machine
 * checks a client's proof against a stored secret and can keep the ClientKey
 * it recovers (passthrough); the client machine logs in to PostgreSQL with a
 * password or with such a recovered ClientKey.  Every parser works on a
 * (pointer, end) cursor and never reads past the length it was given.
 */
#include "scram.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SCRAM_PREFIX    "SCRAM-SHA-256$"
#define SCRAM_RAW_NONCE 18   /* random bytes in a nonce, as PostgreSQL */
#define SCRAM_MAX_MSG   2048 /* longest SCRAM message we accept */
#define SCRAM_MAX_NONCE 256  /* longest nonce part we accept or configure */
#define B64_LEN(n)      (((n) + 2) / 3 * 4)

/* ---- small helpers ---------------------------------------------------- */

static __attribute__((format(printf, 3, 4))) void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Standard base64 with padding; OUT needs B64_LEN(N) + 1 bytes. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/*
 * Strict base64 decode of IN[0..N) into OUT (at most OUTMAX <= SCRAM_MAX_SALT
 * bytes).  EVP_DecodeBlock is lenient (whitespace, stray bits), so the result
 * is encoded again and must give back exactly the input: only canonical,
 * padded base64 passes.
 */
static bool b64_decode(const char *in, size_t n, uint8_t *out, size_t outmax, size_t *outlen)
{
	uint8_t raw[SCRAM_MAX_SALT + 3];
	char again[B64_LEN(SCRAM_MAX_SALT) + 1];
	size_t pad = 0;
	int r;
	bool ok;

	if (n % 4 != 0 || n / 4 * 3 > sizeof(raw))
		return false;
	while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
		pad++;
	r = EVP_DecodeBlock(raw, (const unsigned char *)in, (int)n);
	ok = r >= 0 && (size_t)r >= pad && (size_t)r - pad <= outmax;
	if (ok) {
		*outlen = (size_t)r - pad;
		ok = b64_encode(raw, *outlen, again) == n && memcmp(again, in, n) == 0;
	}
	if (ok)
		memcpy(out, raw, *outlen);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(again, sizeof(again));
	return ok;
}

static bool hmac256(const uint8_t *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &olen) != NULL &&
	       olen == SCRAM_KEY_LEN;
}

static bool sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	return EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) == 1 && olen == SCRAM_KEY_LEN;
}

/* A nonce is printable ASCII without ','. */
static bool nonce_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return n > 0;
}

/* OUT = base64 of SCRAM_RAW_NONCE random bytes (OUT needs 25 bytes). */
static bool random_nonce(char *out)
{
	uint8_t raw[SCRAM_RAW_NONCE];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	b64_encode(raw, sizeof(raw), out);
	return true;
}

/* Copy N bytes of S into a new NUL-terminated string (NULL on OOM). */
static char *dup_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static void free_wiped(char *s)
{
	if (s != NULL)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static char *auth_message(const char *cfb, const char *sf, size_t b, const char *cfwp,
                          size_t cfwp_len, size_t *len)
{
	size_t a = strlen(cfb);
	char *m = malloc(a + b + cfwp_len + 3);

	if (m == NULL)
		return NULL;
	memcpy(m, cfb, a);
	m[a] = ',';
	memcpy(m + a + 1, sf, b);
	m[a + 1 + b] = ',';
	memcpy(m + a + b + 2, cfwp, cfwp_len);
	*len = a + b + cfwp_len + 2;
	m[*len] = '\0';
	return m;
}

/* Write the formatted text into OUT, failing if it does not fit. */
static __attribute__((format(printf, 6, 7))) bool
put_out(char *out, size_t outsize, size_t *outlen, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outsize, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outsize) {
		set_err(err, errlen, "output buffer too small for SCRAM message");
		if (outsize > 0)
			OPENSSL_cleanse(out, outsize);
		return false;
	}
	if (outlen != NULL)
		*outlen = (size_t)n;
	return true;
}

/* ---- message cursor ----------------------------------------------------- */

struct cursor {
	const char *p;
	const char *end;
};

/* Check a whole message: bounded, no NUL bytes. */
static bool message_ok(const char *in, size_t len, char *err, size_t errlen)
{
	if (in == NULL || len == 0) {
		set_err(err, errlen, "empty SCRAM message");
		return false;
	}
	if (len > SCRAM_MAX_MSG) {
		set_err(err, errlen, "SCRAM message too long (%zu bytes)", len);
		return false;
	}
	if (memchr(in, '\0', len) != NULL) {
		set_err(err, errlen, "NUL byte in SCRAM message");
		return false;
	}
	return true;
}

static bool at_attr(const struct cursor *c, char name)
{
	return c->end - c->p >= 2 && c->p[0] == name && c->p[1] == '=';
}

/*
 * Read attribute NAME ("N=value") at the cursor; the value runs to the next
 * ',' or the end.  Consumes a following ',' and sets *MORE when there was
 * one.  False if the attribute is not next.
 */
static bool read_attr(struct cursor *c, char name, const char **val, size_t *vlen, bool *more)
{
	const char *v, *comma;

	if (!at_attr(c, name))
		return false;
	v = c->p + 2;
	comma = memchr(v, ',', (size_t)(c->end - v));
	*val = v;
	*vlen = (size_t)((comma != NULL ? comma : c->end) - v);
	*more = comma != NULL;
	c->p = comma != NULL ? comma + 1 : c->end;
	return true;
}

/* Skip optional extension attributes ("x=value", x a letter other than
 * STOP) until attribute STOP or the end.  False on a malformed attribute. */
static bool skip_extensions(struct cursor *c, char stop, bool *more)
{
	while (*more && !at_attr(c, stop)) {
		const char *v;
		size_t vlen;
		char a = c->end > c->p ? c->p[0] : '\0';

		if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) ||
		    !read_attr(c, a, &v, &vlen, more))
			return false;
	}
	return true;
}

/* Strict positive decimal integer within int range. */
static bool parse_int(const char *s, size_t n, int *out)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 10 || s[0] == '0')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* ---- secrets ------------------------------------------------------------ */

bool scram_parse_secret(const char *text, struct scram_secret *out)
{
	const char *p, *colon, *dollar, *end;
	size_t n;
	struct scram_secret s;
	bool ok;

	memset(&s, 0, sizeof(s));
	if (text == NULL || strncmp(text, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
		return false;
	p = text + strlen(SCRAM_PREFIX);
	end = p + strlen(p);
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon == NULL || !parse_int(p, (size_t)(colon - p), &s.iterations))
		return false;
	p = colon + 1;
	dollar = memchr(p, '$', (size_t)(end - p));
	if (dollar == NULL ||
	    !b64_decode(p, (size_t)(dollar - p), s.salt, sizeof(s.salt), &s.salt_len) ||
	    s.salt_len == 0)
		return false;
	p = dollar + 1;
	colon = memchr(p, ':', (size_t)(end - p));
	ok = colon != NULL && b64_decode(p, (size_t)(colon - p), s.stored_key, SCRAM_KEY_LEN, &n) &&
	     n == SCRAM_KEY_LEN &&
	     b64_decode(colon + 1, (size_t)(end - colon - 1), s.server_key, SCRAM_KEY_LEN, &n) &&
	     n == SCRAM_KEY_LEN;
	if (ok)
		*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

/* SaltedPassword = Hi(password, salt, i) = PBKDF2-HMAC-SHA-256. */
static bool salted_password(const char *password, const uint8_t *salt, size_t salt_len,
                            int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
	                         EVP_sha256(), SCRAM_KEY_LEN, out) == 1;
}

bool scram_build_secret(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out)
{
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	struct scram_secret s;
	bool ok;

	if (password == NULL || salt == NULL || salt_len == 0 || salt_len > SCRAM_MAX_SALT ||
	    iterations < 1)
		return false;
	memset(&s, 0, sizeof(s));
	s.iterations = iterations;
	memcpy(s.salt, salt, salt_len);
	s.salt_len = salt_len;
	ok = salted_password(password, salt, salt_len, iterations, salted) &&
	     hmac256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) &&
	     sha256(client_key, SCRAM_KEY_LEN, s.stored_key) &&
	     hmac256(salted, SCRAM_KEY_LEN, "Server Key", 10, s.server_key);
	if (ok)
		*out = s;
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

/* ---- server side -------------------------------------------------------- */

enum scram_server_state {
	SS_WANT_FIRST, /* waiting for client-first-message */
	SS_WANT_FINAL, /* server-first sent, waiting for client-final-message */
	SS_DONE,       /* proof verified, server-final produced */
	SS_FAILED,     /* a message was rejected; the exchange is over */
	SS_BAD_PROOF,  /* well-formed client-final, wrong proof: the password is wrong */
};

struct scram_server {
	enum scram_server_state state;
	struct scram_secret secret;
	char gs2[4];             /* "n,," or "y,," as the client sent it */
	char *client_first_bare; /* for AuthMessage */
	char *server_first;      /* for AuthMessage */
	char *nonce;             /* client nonce + server part */
	char *fixed_nonce;       /* tests: server part to use instead of random */
	uint8_t client_key[SCRAM_KEY_LEN];
};

struct scram_server *scram_server_new(const struct scram_secret *secret)
{
	struct scram_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->secret = *secret;
	s->state = SS_WANT_FIRST;
	return s;
}

void scram_server_set_nonce(struct scram_server *s, const char *nonce)
{
	free(s->fixed_nonce);
	s->fixed_nonce = nonce != NULL ? strdup(nonce) : NULL;
}

/* Parse the gs2 header; on success the cursor is at client-first-bare. */
static bool parse_gs2(struct scram_server *s, struct cursor *c, char *err, size_t errlen)
{
	size_t left = (size_t)(c->end - c->p);

	if (left >= 2 && c->p[0] == 'p' && c->p[1] == '=') {
		set_err(err, errlen, "SCRAM channel binding (p=) is not supported");
		return false;
	}
	if (left < 3 || (c->p[0] != 'n' && c->p[0] != 'y') || c->p[1] != ',') {
		set_err(err, errlen, "malformed SCRAM gs2 header");
		return false;
	}
	if (c->p[2] != ',') {
		set_err(err, errlen, "SCRAM authorization identity (a=) is not supported");
		return false;
	}
	memcpy(s->gs2, c->p, 3);
	s->gs2[3] = '\0';
	c->p += 3;
	return true;
}

/* Parse client-first-message; sets gs2, client_first_bare and the client
 * nonce (returned through CNONCE/CNLEN, pointing into IN). */
static bool parse_client_first(struct scram_server *s, const char *in, size_t len,
                               const char **cnonce, size_t *cnlen, char *err, size_t errlen)
{
	struct cursor c = {in, in + len};
	const char *bare, *v;
	size_t vlen;
	bool more;

	if (!parse_gs2(s, &c, err, errlen))
		return false;
	bare = c.p;
	if (at_attr(&c, 'm')) {
		set_err(err, errlen, "SCRAM mandatory extension (m=) is not supported");
		return false;
	}
	/* n= is ignored: PostgreSQL clients send it empty, the startup user counts. */
	if (!read_attr(&c, 'n', &v, &vlen, &more)) {
		set_err(err, errlen, "malformed SCRAM client-first-message: expected n=");
		return false;
	}
	if (!more || !read_attr(&c, 'r', cnonce, cnlen, &more) || !nonce_valid(*cnonce, *cnlen) ||
	    *cnlen > SCRAM_MAX_NONCE) {
		set_err(err, errlen, "malformed SCRAM client-first-message: bad nonce r=");
		return false;
	}
	if (!skip_extensions(&c, '\0', &more) || c.p != c.end) {
		set_err(err, errlen, "malformed SCRAM client-first-message: bad attribute");
		return false;
	}
	s->client_first_bare = dup_n(bare, (size_t)(c.end - bare));
	if (s->client_first_bare == NULL) {
		set_err(err, errlen, "out of memory");
		return false;
	}
	return true;
}

bool scram_server_first(struct scram_server *s, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
{
	char rnd[B64_LEN(SCRAM_RAW_NONCE) + 1], salt[B64_LEN(SCRAM_MAX_SALT) + 1];
	const char *cnonce, *part;
	size_t cnlen, plen;

	if (s->state != SS_WANT_FIRST) {
		set_err(err, errlen, "SCRAM client-first-message out of order");
		s->state = SS_FAILED;
		return false;
	}
	s->state = SS_FAILED;
	if (!message_ok(in, len, err, errlen) ||
	    !parse_client_first(s, in, len, &cnonce, &cnlen, err, errlen))
		return false;
	part = s->fixed_nonce != NULL ? s->fixed_nonce : random_nonce(rnd) ? rnd : "";
	plen = strlen(part);
	if (!nonce_valid(part, plen) || plen > SCRAM_MAX_NONCE) {
		set_err(err, errlen, "could not make a valid SCRAM server nonce");
		return false;
	}
	s->nonce = malloc(cnlen + plen + 1);
	if (s->nonce == NULL) {
		set_err(err, errlen, "out of memory");
		return false;
	}
	memcpy(s->nonce, cnonce, cnlen);
	memcpy(s->nonce + cnlen, part, plen + 1);
	b64_encode(s->secret.salt, s->secret.salt_len, salt);
	if (!put_out(out, outsize, outlen, err, errlen, "r=%s,s=%s,i=%d", s->nonce, salt,
	             s->secret.iterations))
		return false;
	s->server_first = strdup(out);
	if (s->server_first == NULL) {
		set_err(err, errlen, "out of memory");
		return false;
	}
	s->state = SS_WANT_FINAL;
	return true;
}

/* Parse client-final-message: check c= and r=, find the proof and where the
 * part without proof ends. */
static bool parse_client_final(const struct scram_server *s, const char *in, size_t len,
                               size_t *without_proof, uint8_t proof[SCRAM_KEY_LEN], char *err,
                               size_t errlen)
{
	struct cursor c = {in, in + len};
	char cbind[B64_LEN(3) + 1];
	const char *v;
	size_t vlen, cblen, plen;
	bool more;

	cblen = b64_encode((const uint8_t *)s->gs2, 3, cbind);
	if (!read_attr(&c, 'c', &v, &vlen, &more)) {
		set_err(err, errlen, "malformed SCRAM client-final-message: expected c=");
		return false;
	}
	if (vlen != cblen || memcmp(v, cbind, cblen) != 0) {
		set_err(err, errlen, "SCRAM channel binding c= does not match the gs2 header");
		return false;
	}
	if (!more || !read_attr(&c, 'r', &v, &vlen, &more)) {
		set_err(err, errlen, "malformed SCRAM client-final-message: expected r=");
		return false;
	}
	if (vlen != strlen(s->nonce) || memcmp(v, s->nonce, vlen) != 0) {
		set_err(err, errlen, "SCRAM nonce in client-final-message does not match");
		return false;
	}
	if (!more || !skip_extensions(&c, 'p', &more) || !more || !at_attr(&c, 'p')) {
		set_err(err, errlen, "malformed SCRAM client-final-message: missing proof p=");
		return false;
	}
	*without_proof = (size_t)(c.p - 1 - in);
	if (!read_attr(&c, 'p', &v, &vlen, &more) || more ||
	    !b64_decode(v, vlen, proof, SCRAM_KEY_LEN, &plen) || plen != SCRAM_KEY_LEN) {
		set_err(err, errlen, "malformed SCRAM client-final-message: bad proof p=");
		return false;
	}
	return true;
}

/* Verify PROOF over AUTHMSG; on success keep the ClientKey and compute the
 * ServerSignature. */
static bool check_proof(struct scram_server *s, const char *authmsg, size_t amlen,
                        const uint8_t proof[SCRAM_KEY_LEN], uint8_t server_sig[SCRAM_KEY_LEN])
{
	uint8_t client_sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	bool ok;
	int i;

	ok = hmac256(s->secret.stored_key, SCRAM_KEY_LEN, authmsg, amlen, client_sig);
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ client_sig[i];
	ok = ok && sha256(key, SCRAM_KEY_LEN, stored) &&
	     CRYPTO_memcmp(stored, s->secret.stored_key, SCRAM_KEY_LEN) == 0 &&
	     hmac256(s->secret.server_key, SCRAM_KEY_LEN, authmsg, amlen, server_sig);
	if (ok)
		memcpy(s->client_key, key, SCRAM_KEY_LEN);
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(stored, sizeof(stored));
	return ok;
}

bool scram_server_final(struct scram_server *s, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
{
	uint8_t proof[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char sig[B64_LEN(SCRAM_KEY_LEN) + 1];
	size_t wplen, amlen;
	char *authmsg;
	bool ok;

	if (s->state != SS_WANT_FINAL) {
		set_err(err, errlen, "SCRAM client-final-message out of order");
		s->state = SS_FAILED;
		return false;
	}
	s->state = SS_FAILED;
	if (!message_ok(in, len, err, errlen) ||
	    !parse_client_final(s, in, len, &wplen, proof, err, errlen))
		return false;
	authmsg = auth_message(s->client_first_bare, s->server_first, strlen(s->server_first), in,
	                       wplen, &amlen);
	if (authmsg == NULL) {
		set_err(err, errlen, "out of memory");
		return false;
	}
	ok = check_proof(s, authmsg, amlen, proof, server_sig);
	free(authmsg);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (!ok) {
		set_err(err, errlen, "SCRAM proof is wrong (password authentication failed)");
		s->state = SS_BAD_PROOF;
		return false;
	}
	b64_encode(server_sig, SCRAM_KEY_LEN, sig);
	if (!put_out(out, outsize, outlen, err, errlen, "v=%s", sig))
		return false;
	s->state = SS_DONE;
	return true;
}

bool scram_server_bad_proof(const struct scram_server *s)
{
	return s != NULL && s->state == SS_BAD_PROOF;
}

bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN])
{
	if (s == NULL || s->state != SS_DONE)
		return false;
	memcpy(out, s->client_key, SCRAM_KEY_LEN);
	return true;
}

void scram_server_free(struct scram_server *s)
{
	if (s == NULL)
		return;
	free_wiped(s->client_first_bare);
	free_wiped(s->server_first);
	free_wiped(s->nonce);
	free_wiped(s->fixed_nonce);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* ---- client side -------------------------------------------------------- */

enum scram_client_state {
	SC_INIT,              /* nothing sent yet */
	SC_WANT_SERVER_FIRST, /* client-first sent */
	SC_WANT_SERVER_FINAL, /* client-final sent, server signature expected */
	SC_DONE,              /* server signature verified */
	SC_FAILED,            /* the exchange is over */
};

struct scram_client {
	enum scram_client_state state;
	char *password;                    /* NULL when logging in with keys */
	uint8_t client_key[SCRAM_KEY_LEN]; /* keys mode */
	struct scram_secret secret;        /* keys mode: salt, iterations, ServerKey */
	char *nonce;                       /* client nonce (tests may set it) */
	char *user;                        /* n= value, already escaped; NULL = empty */
	char *client_first_bare;
	uint8_t server_sig[SCRAM_KEY_LEN]; /* expected in server-final */
};

struct scram_client *scram_client_new_password(const char *password)
{
	struct scram_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->password = strdup(password);
	if (c->password == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
                                           const struct scram_secret *secret)
{
	struct scram_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	c->secret = *secret;
	return c;
}

void scram_client_set_nonce(struct scram_client *c, const char *nonce)
{
	free(c->nonce);
	c->nonce = nonce != NULL ? strdup(nonce) : NULL;
}

void scram_client_set_user(struct scram_client *c, const char *user)
{
	size_t i, n = 0;
	char *e;

	free(c->user);
	c->user = NULL;
	if (user == NULL)
		return;
	e = malloc(strlen(user) * 3 + 1);
	if (e == NULL)
		return;
	for (i = 0; user[i] != '\0'; i++) {
		if (user[i] == ',' || user[i] == '=') {
			memcpy(e + n, user[i] == ',' ? "=2C" : "=3D", 3);
			n += 3;
		} else {
			e[n++] = user[i];
		}
	}
	e[n] = '\0';
	c->user = e;
}

bool scram_client_first(struct scram_client *c, char *out, size_t outsize, size_t *outlen)
{
	char rnd[B64_LEN(SCRAM_RAW_NONCE) + 1];

	if (c->state != SC_INIT) {
		c->state = SC_FAILED;
		return false;
	}
	c->state = SC_FAILED;
	if (c->nonce == NULL) {
		if (!random_nonce(rnd))
			return false;
		c->nonce = strdup(rnd);
		if (c->nonce == NULL)
			return false;
	}
	if (!nonce_valid(c->nonce, strlen(c->nonce)) || strlen(c->nonce) > SCRAM_MAX_NONCE)
		return false;
	if (!put_out(out, outsize, outlen, NULL, 0, "n,,n=%s,r=%s", c->user ? c->user : "",
	             c->nonce))
		return false;
	c->client_first_bare = strdup(out + 3);
	if (c->client_first_bare == NULL)
		return false;
	c->state = SC_WANT_SERVER_FIRST;
	return true;
}

/* Parse server-first-message: full nonce (must extend ours), salt, iterations. */
static bool parse_server_first(const struct scram_client *c, const char *in, size_t len,
                               const char **nonce, size_t *nlen, uint8_t *salt, size_t *salt_len,
                               int *iterations, char *err, size_t errlen)
{
	struct cursor cur = {in, in + len};
	size_t ours = strlen(c->nonce);
	const char *v;
	size_t vlen;
	bool more;

	if (at_attr(&cur, 'm')) {
		set_err(err, errlen, "SCRAM mandatory extension (m=) is not supported");
		return false;
	}
	if (!read_attr(&cur, 'r', nonce, nlen, &more) || !nonce_valid(*nonce, *nlen) ||
	    *nlen > 2 * SCRAM_MAX_NONCE) {
		set_err(err, errlen, "malformed SCRAM server-first-message: bad nonce r=");
		return false;
	}
	if (*nlen <= ours || memcmp(*nonce, c->nonce, ours) != 0) {
		set_err(err, errlen, "SCRAM server nonce does not extend the client nonce");
		return false;
	}
	if (!more || !read_attr(&cur, 's', &v, &vlen, &more) ||
	    !b64_decode(v, vlen, salt, SCRAM_MAX_SALT, salt_len) || *salt_len == 0) {
		set_err(err, errlen, "malformed SCRAM server-first-message: bad salt s=");
		return false;
	}
	if (!more || !read_attr(&cur, 'i', &v, &vlen, &more) || !parse_int(v, vlen, iterations)) {
		set_err(err, errlen,
		        "malformed SCRAM server-first-message: bad iteration count i=");
		return false;
	}
	if (!skip_extensions(&cur, '\0', &more) || cur.p != cur.end) {
		set_err(err, errlen, "malformed SCRAM server-first-message: bad attribute");
		return false;
	}
	return true;
}

/* Work out ClientKey, StoredKey and ServerKey for this exchange. */
static bool client_keys(const struct scram_client *c, const uint8_t *salt, size_t salt_len,
                        int iterations, uint8_t ck[SCRAM_KEY_LEN], uint8_t sk[SCRAM_KEY_LEN],
                        uint8_t srvk[SCRAM_KEY_LEN], char *err, size_t errlen)
{
	uint8_t salted[SCRAM_KEY_LEN];
	bool ok;

	if (c->password == NULL) {
		if (salt_len != c->secret.salt_len || iterations != c->secret.iterations ||
		    memcmp(salt, c->secret.salt, salt_len) != 0) {
			set_err(err, errlen,
			        "SCRAM passthrough impossible: the server's salt or iteration "
			        "count differs from the stored secret");
			return false;
		}
		memcpy(ck, c->client_key, SCRAM_KEY_LEN);
		memcpy(srvk, c->secret.server_key, SCRAM_KEY_LEN);
		if (!sha256(ck, SCRAM_KEY_LEN, sk)) {
			set_err(err, errlen, "SHA-256 failed");
			return false;
		}
		return true;
	}
	ok = salted_password(c->password, salt, salt_len, iterations, salted) &&
	     hmac256(salted, SCRAM_KEY_LEN, "Client Key", 10, ck) &&
	     sha256(ck, SCRAM_KEY_LEN, sk) &&
	     hmac256(salted, SCRAM_KEY_LEN, "Server Key", 10, srvk);
	OPENSSL_cleanse(salted, sizeof(salted));
	if (!ok)
		set_err(err, errlen, "SCRAM key derivation failed");
	return ok;
}

/* Build client-final-message into OUT, remembering the expected server
 * signature. */
static bool build_client_final(struct scram_client *c, const char *server_first, size_t sflen,
                               const char *nonce, size_t nlen, const uint8_t ck[SCRAM_KEY_LEN],
                               const uint8_t sk[SCRAM_KEY_LEN], const uint8_t srvk[SCRAM_KEY_LEN],
                               char *out, size_t outsize, size_t *outlen, char *err, size_t errlen)
{
	char cfwp[SCRAM_MAX_MSG], proof64[B64_LEN(SCRAM_KEY_LEN) + 1];
	uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char *authmsg;
	size_t amlen;
	bool ok;
	int n, i;

	/* nlen < SCRAM_MAX_MSG, so this always fits */
	n = snprintf(cfwp, sizeof(cfwp), "c=biws,r=%.*s", (int)nlen, nonce);
	authmsg = auth_message(c->client_first_bare, server_first, sflen, cfwp, (size_t)n, &amlen);
	ok = authmsg != NULL && hmac256(sk, SCRAM_KEY_LEN, authmsg, amlen, sig) &&
	     hmac256(srvk, SCRAM_KEY_LEN, authmsg, amlen, c->server_sig);
	free(authmsg);
	if (!ok) {
		set_err(err, errlen, "SCRAM signature computation failed (or out of memory)");
		return false;
	}
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = ck[i] ^ sig[i];
	b64_encode(proof, SCRAM_KEY_LEN, proof64);
	ok = put_out(out, outsize, outlen, err, errlen, "%s,p=%s", cfwp, proof64);
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(proof64, sizeof(proof64));
	return ok;
}

bool scram_client_final(struct scram_client *c, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
{
	uint8_t salt[SCRAM_MAX_SALT], ck[SCRAM_KEY_LEN], sk[SCRAM_KEY_LEN], srvk[SCRAM_KEY_LEN];
	const char *nonce;
	size_t nlen, salt_len;
	int iterations;
	bool ok;

	if (c->state != SC_WANT_SERVER_FIRST) {
		set_err(err, errlen, "SCRAM server-first-message out of order");
		c->state = SC_FAILED;
		return false;
	}
	c->state = SC_FAILED;
	if (!message_ok(in, len, err, errlen) ||
	    !parse_server_first(c, in, len, &nonce, &nlen, salt, &salt_len, &iterations, err,
	                        errlen) ||
	    !client_keys(c, salt, salt_len, iterations, ck, sk, srvk, err, errlen))
		return false;
	ok = build_client_final(c, in, len, nonce, nlen, ck, sk, srvk, out, outsize, outlen, err,
	                        errlen);
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(srvk, sizeof(srvk));
	if (ok)
		c->state = SC_WANT_SERVER_FINAL;
	return ok;
}

bool scram_client_verify(struct scram_client *c, const char *in, size_t len, char *err,
                         size_t errlen)
{
	struct cursor cur = {in, in + len};
	uint8_t sig[SCRAM_KEY_LEN];
	const char *v;
	size_t vlen, slen;
	bool more;

	if (c->state != SC_WANT_SERVER_FINAL) {
		set_err(err, errlen, "SCRAM server-final-message out of order");
		c->state = SC_FAILED;
		return false;
	}
	c->state = SC_FAILED;
	if (!message_ok(in, len, err, errlen))
		return false;
	if (read_attr(&cur, 'e', &v, &vlen, &more)) {
		set_err(err, errlen, "SCRAM server error: %.*s", (int)vlen, v);
		return false;
	}
	if (!read_attr(&cur, 'v', &v, &vlen, &more) ||
	    !b64_decode(v, vlen, sig, SCRAM_KEY_LEN, &slen) || slen != SCRAM_KEY_LEN ||
	    !skip_extensions(&cur, '\0', &more) || cur.p != cur.end) {
		set_err(err, errlen, "malformed SCRAM server-final-message");
		return false;
	}
	if (CRYPTO_memcmp(sig, c->server_sig, SCRAM_KEY_LEN) != 0) {
		set_err(err, errlen, "SCRAM server signature is wrong");
		return false;
	}
	c->state = SC_DONE;
	return true;
}

void scram_client_free(struct scram_client *c)
{
	if (c == NULL)
		return;
	free_wiped(c->password);
	free_wiped(c->nonce);
	free(c->user);
	free_wiped(c->client_first_bare);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}
