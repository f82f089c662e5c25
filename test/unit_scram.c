/*
 * unit_scram: SCRAM-SHA-256 against the RFC 7677 vector (both machines),
 * client <-> server round trips, passthrough with a recovered ClientKey,
 * malformed messages, and secret parsing.  Every message is handed over in
 * an exact-size heap buffer without a terminator, so ASan catches a parser
 * that reads past LEN.
 */
#include "scram.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT   "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CFIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SFIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CFINAL                                                                                 \
	"c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The same secret as PostgreSQL stores it (computed independently). */
#define RFC_SECRET                                                                                 \
	"SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"            \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_CLIENT_KEY "a60fc923d67e8644a92d16b96eda5ef4656b0c725c484374be25535576996e8b"

static char outbuf[1024];
static size_t outlen;
static char errbuf[256];

/* An exact-size, unterminated heap copy of S[0..LEN). */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	if (p == NULL)
		tap_bail("out of memory");
	memcpy(p, s, len);
	return p;
}

static bool srv_first(struct scram_server *s, const char *msg, size_t len)
{
	char *m = exact(msg, len);
	bool ok;

	errbuf[0] = '\0';
	ok = scram_server_first(s, m, len, outbuf, sizeof(outbuf), &outlen, errbuf, sizeof(errbuf));
	free(m);
	return ok;
}

static bool srv_final(struct scram_server *s, const char *msg, size_t len)
{
	char *m = exact(msg, len);
	bool ok;

	errbuf[0] = '\0';
	ok = scram_server_final(s, m, len, outbuf, sizeof(outbuf), &outlen, errbuf, sizeof(errbuf));
	free(m);
	return ok;
}

static bool cli_final(struct scram_client *c, const char *msg, size_t len)
{
	char *m = exact(msg, len);
	bool ok;

	errbuf[0] = '\0';
	ok = scram_client_final(c, m, len, outbuf, sizeof(outbuf), &outlen, errbuf, sizeof(errbuf));
	free(m);
	return ok;
}

static bool cli_verify(struct scram_client *c, const char *msg, size_t len)
{
	char *m = exact(msg, len);
	bool ok;

	errbuf[0] = '\0';
	ok = scram_client_verify(c, m, len, errbuf, sizeof(errbuf));
	free(m);
	return ok;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static struct scram_secret rfc_secret(void)
{
	static const uint8_t salt[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	                               0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
	struct scram_secret s;

	if (!scram_build_secret("pencil", salt, sizeof(salt), 4096, &s))
		tap_bail("scram_build_secret failed");
	return s;
}

static void test_secrets(void)
{
	struct scram_secret built = rfc_secret(), parsed;
	static const char *const bad[] = {
	    "",
	    "SCRAM-SHA-1$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$0:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$-1:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$x:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$99999999999:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	    "SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x",
	    "SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:extra",
	    "SCRAM-SHA-256$4096:" RFC_SALT "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
	    "md5d41d8cd98f00b204e9800998ecf8427e",
	};
	size_t i;
	bool all = true;

	tap_ok(scram_parse_secret(RFC_SECRET, &parsed), "parse a PostgreSQL SCRAM secret");
	tap_ok(parsed.iterations == 4096 && parsed.salt_len == 16 &&
	           memcmp(parsed.salt, built.salt, 16) == 0,
	       "parsed iterations and salt");
	tap_ok(memcmp(parsed.stored_key, built.stored_key, SCRAM_KEY_LEN) == 0 &&
	           memcmp(parsed.server_key, built.server_key, SCRAM_KEY_LEN) == 0,
	       "built secret matches the parsed one (StoredKey, ServerKey)");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (scram_parse_secret(bad[i], &parsed)) {
			tap_diag("accepted bad secret '%s'", bad[i]);
			all = false;
		}
	}
	tap_ok(all, "bad secrets rejected (%zu cases)", sizeof(bad) / sizeof(bad[0]));
	tap_ok(!scram_build_secret("x", built.salt, 0, 4096, &parsed) &&
	           !scram_build_secret("x", built.salt, 16, 0, &parsed),
	       "build_secret refuses an empty salt or zero iterations");
}

static void test_rfc_server(void)
{
	struct scram_secret sec = rfc_secret();
	struct scram_server *s = scram_server_new(&sec);
	uint8_t key[SCRAM_KEY_LEN];
	char khex[2 * SCRAM_KEY_LEN + 1];

	tap_ok(!scram_server_client_key(s, key), "server: no client key before the exchange");
	scram_server_set_nonce(s, RFC_SNONCE);
	tap_ok(srv_first(s, RFC_CFIRST, strlen(RFC_CFIRST)), "server: RFC client-first accepted");
	tap_is_str(outbuf, RFC_SFIRST, "server: RFC server-first");
	tap_is_int((long long)outlen, (long long)strlen(RFC_SFIRST), "server: server-first length");
	tap_ok(srv_final(s, RFC_CFINAL, strlen(RFC_CFINAL)), "server: RFC client-final accepted");
	tap_is_str(outbuf, RFC_SFINAL, "server: RFC server-final");
	tap_ok(scram_server_client_key(s, key), "server: client key available");
	hex(key, SCRAM_KEY_LEN, khex);
	tap_is_str(khex, RFC_CLIENT_KEY, "server: recovered ClientKey is HMAC(SaltedPassword)");
	tap_ok(!srv_final(s, RFC_CFINAL, strlen(RFC_CFINAL)), "server: replayed final refused");
	scram_server_free(s);
}

static void test_rfc_client(void)
{
	struct scram_client *c = scram_client_new_password("pencil");

	scram_client_set_user(c, "user");
	scram_client_set_nonce(c, RFC_CNONCE);
	tap_ok(scram_client_first(c, outbuf, sizeof(outbuf), &outlen), "client: first");
	tap_is_str(outbuf, RFC_CFIRST, "client: RFC client-first");
	tap_ok(cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST)), "client: RFC server-first accepted");
	tap_is_str(outbuf, RFC_CFINAL, "client: RFC client-final (proof)");
	tap_ok(cli_verify(c, RFC_SFINAL, strlen(RFC_SFINAL)), "client: RFC server-final verified");
	scram_client_free(c);

	c = scram_client_new_password("pencil");
	scram_client_set_user(c, "user");
	scram_client_set_nonce(c, RFC_CNONCE);
	if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen) ||
	    !cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST)))
		tap_bail("client setup failed");
	tap_ok(!cli_verify(c, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 46),
	       "client: wrong server signature refused");
	scram_client_free(c);

	c = scram_client_new_password("pencil");
	scram_client_set_nonce(c, RFC_CNONCE);
	tap_ok(scram_client_first(c, outbuf, sizeof(outbuf), &outlen), "client: first, no user");
	tap_is_str(outbuf, "n,,n=,r=" RFC_CNONCE, "client: PostgreSQL-style empty n=");
	scram_client_free(c);

	c = scram_client_new_password("pencil");
	scram_client_set_user(c, "a,b=c");
	scram_client_set_nonce(c, "abc");
	tap_ok(scram_client_first(c, outbuf, sizeof(outbuf), &outlen) &&
	           strcmp(outbuf, "n,,n=a=2Cb=3Dc,r=abc") == 0,
	       "client: user name escaped");
	scram_client_free(c);
}

/*
 * Run a whole exchange between client C and a server for SECRET.  Returns
 * true when both sides succeed; the server is returned through SRV if wanted.
 */
static bool exchange(struct scram_client *c, const struct scram_secret *secret,
                     struct scram_server **srv)
{
	struct scram_server *s = scram_server_new(secret);
	bool ok;

	ok = scram_client_first(c, outbuf, sizeof(outbuf), &outlen) &&
	     srv_first(s, outbuf, outlen) && cli_final(c, outbuf, outlen) &&
	     srv_final(s, outbuf, outlen) && cli_verify(c, outbuf, outlen);
	if (srv != NULL)
		*srv = s;
	else
		scram_server_free(s);
	return ok;
}

static void test_round_trip(void)
{
	static const uint8_t salt[] = "0123456789abcdef";
	static const uint8_t salt2[] = "fedcba9876543210";
	struct scram_secret sec, other;
	struct scram_client *c;
	struct scram_server *s;
	uint8_t key[SCRAM_KEY_LEN], key2[SCRAM_KEY_LEN];
	char first1[sizeof(outbuf)], first2[sizeof(outbuf)];

	if (!scram_build_secret("s3cr3t", salt, 16, 4096, &sec) ||
	    !scram_build_secret("s3cr3t", salt2, 16, 4096, &other))
		tap_bail("scram_build_secret failed");

	c = scram_client_new_password("s3cr3t");
	tap_ok(exchange(c, &sec, NULL), "round trip with random nonces");
	scram_client_free(c);

	c = scram_client_new_password("s3cr3t");
	if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen))
		tap_bail("client first failed");
	snprintf(first1, sizeof(first1), "%s", outbuf);
	scram_client_free(c);
	c = scram_client_new_password("s3cr3t");
	if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen))
		tap_bail("client first failed");
	snprintf(first2, sizeof(first2), "%s", outbuf);
	scram_client_free(c);
	tap_ok(strlen(first1) == strlen("n,,n=,r=") + 24 && strcmp(first1, first2) != 0,
	       "client nonces are 24 base64 chars and differ");

	c = scram_client_new_password("wrong");
	tap_ok(!exchange(c, &sec, NULL), "wrong password rejected");
	tap_ok(strstr(errbuf, "proof") != NULL, "wrong password reason: %s", errbuf);
	scram_client_free(c);

	/* Passthrough: a client logs in to pglease, pglease reuses its ClientKey. */
	c = scram_client_new_password("s3cr3t");
	tap_ok(exchange(c, &sec, &s), "passthrough: client logs in to the pooler");
	scram_client_free(c);
	tap_ok(scram_server_client_key(s, key), "passthrough: ClientKey recovered");
	scram_server_free(s);
	c = scram_client_new_keys(key, &sec);
	tap_ok(exchange(c, &sec, &s), "passthrough: keys log in to a server with the same secret");
	tap_ok(scram_server_client_key(s, key2) && memcmp(key, key2, SCRAM_KEY_LEN) == 0,
	       "passthrough: the server recovers the same ClientKey");
	scram_server_free(s);
	scram_client_free(c);

	c = scram_client_new_keys(key, &other);
	tap_ok(!exchange(c, &other, NULL), "passthrough: keys with mismatched secret fail");
	scram_client_free(c);

	c = scram_client_new_keys(key, &sec);
	tap_ok(!exchange(c, &other, NULL), "passthrough: server with another salt refused");
	tap_ok(strstr(errbuf, "salt") != NULL, "passthrough salt mismatch reason: %s", errbuf);
	scram_client_free(c);

	key[0] ^= 1;
	c = scram_client_new_keys(key, &sec);
	tap_ok(!exchange(c, &sec, NULL), "passthrough: a wrong ClientKey is refused");
	scram_client_free(c);
}

/* Feed a client-first-message to a fresh RFC server and expect refusal. */
static void bad_first(const char *msg, size_t len, const char *why, const char *name)
{
	struct scram_secret sec = rfc_secret();
	struct scram_server *s = scram_server_new(&sec);

	if (tap_ok(!srv_first(s, msg, len), "server rejects client-first: %s", name) &&
	    why != NULL && !tap_ok(strstr(errbuf, why) != NULL, "  reason mentions '%s'", why))
		tap_diag("reason was: %s", errbuf);
	tap_ok(!srv_final(s, RFC_CFINAL, strlen(RFC_CFINAL)), "  and is then unusable (%s)", name);
	scram_server_free(s);
}

/* Feed a client-final-message after the RFC first exchange, expect refusal. */
static void bad_final(const char *msg, size_t len, const char *why, const char *name)
{
	struct scram_secret sec = rfc_secret();
	struct scram_server *s = scram_server_new(&sec);

	scram_server_set_nonce(s, RFC_SNONCE);
	if (!srv_first(s, RFC_CFIRST, strlen(RFC_CFIRST)))
		tap_bail("server first failed: %s", errbuf);
	if (tap_ok(!srv_final(s, msg, len), "server rejects client-final: %s", name) &&
	    why != NULL && !tap_ok(strstr(errbuf, why) != NULL, "  reason mentions '%s'", why))
		tap_diag("reason was: %s", errbuf);
	scram_server_free(s);
}

#define BAD_FIRST(m, why, name) bad_first(m, strlen(m), why, name)
#define BAD_FINAL(m, why, name) bad_final(m, strlen(m), why, name)
#define RFC_FULL_NONCE          RFC_CNONCE RFC_SNONCE
#define RFC_PROOF               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="

static void test_malformed_server(void)
{
	struct scram_secret sec = rfc_secret();
	struct scram_server *s;
	size_t i;
	bool all;

	BAD_FIRST("", "empty", "empty message");
	BAD_FIRST("n,", "gs2", "truncated gs2 header");
	BAD_FIRST("n,,", "n=", "gs2 header only");
	BAD_FIRST("n,,n=", "nonce", "missing nonce");
	BAD_FIRST("n,,n=,r=", "nonce", "empty nonce");
	BAD_FIRST("n,,r=abc", "n=", "missing n=");
	BAD_FIRST("n,,n=,r=abc,", NULL, "trailing comma");
	BAD_FIRST("n,,n=,r=ab\x01"
	          "c",
	          "nonce", "control byte in nonce");
	BAD_FIRST("p=tls-server-end-point,,n=,r=abc", "channel binding", "p= channel binding");
	BAD_FIRST("n,a=admin,n=,r=abc", "authorization", "authzid");
	BAD_FIRST("x,,n=,r=abc", "gs2", "unknown gs2 flag");
	BAD_FIRST("n,,m=ext,n=,r=abc", "mandatory", "mandatory extension");
	BAD_FIRST("n,,n=,r=abc,1=x", NULL, "bad extension name");
	bad_first("n,,n=,r=a\0c", 10, "NUL", "NUL byte");

	/* Every proper prefix of the RFC client-first that cuts r= must fail. */
	all = true;
	for (i = 0; i < strlen("n,,n=user,r="); i++) {
		s = scram_server_new(&sec);
		if (srv_first(s, RFC_CFIRST, i))
			all = false;
		scram_server_free(s);
	}
	tap_ok(all, "server rejects every truncation of client-first before the nonce");

	s = scram_server_new(&sec);
	tap_ok(!srv_final(s, RFC_CFINAL, strlen(RFC_CFINAL)), "server: final before first refused");
	scram_server_free(s);

	BAD_FINAL("", "empty", "empty message");
	BAD_FINAL("r=" RFC_FULL_NONCE "," RFC_PROOF, "c=", "missing c=");
	BAD_FINAL("c=eSws,r=" RFC_FULL_NONCE "," RFC_PROOF, "channel binding", "c= is y,,");
	BAD_FINAL("c=biws", "r=", "only c=");
	BAD_FINAL("c=biws," RFC_PROOF, "r=", "missing r=");
	BAD_FINAL("c=biws,r=" RFC_CNONCE "," RFC_PROOF, "nonce", "client nonce only");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE "x," RFC_PROOF, "nonce", "longer nonce");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE, "p=", "missing p=");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE ",", "p=", "trailing comma, no p=");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	          "p=", "unpadded proof");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgs",
	          "p=", "short proof");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE "," RFC_PROOF ",x=1", "p=", "attribute after proof");
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	          "proof", "wrong proof");
	all = true;
	for (i = 0; i < strlen(RFC_CFINAL); i++) {
		struct scram_server *t = scram_server_new(&sec);

		scram_server_set_nonce(t, RFC_SNONCE);
		if (!srv_first(t, RFC_CFIRST, strlen(RFC_CFIRST)) || srv_final(t, RFC_CFINAL, i))
			all = false;
		scram_server_free(t);
	}
	tap_ok(all, "server rejects every truncation of the RFC client-final");

	/* Extensions before p= are skipped, but they are part of the proof. */
	BAD_FINAL("c=biws,r=" RFC_FULL_NONCE ",x=ext," RFC_PROOF, "proof",
	          "extension changes the AuthMessage");
}

static void test_gs2_y(void)
{
	struct scram_secret sec = rfc_secret();
	struct scram_server *s = scram_server_new(&sec);

	tap_ok(srv_first(s, "y,,n=,r=abc", 11), "server accepts gs2 flag y");
	tap_ok(!srv_final(s, "c=biws,r=abc", 12), "server wants c= of \"y,,\" then");
	tap_ok(strstr(errbuf, "channel binding") != NULL, "  reason: %s", errbuf);
	scram_server_free(s);
}

/* Feed a server-first-message to a fresh RFC client, expect refusal. */
static void bad_server_first(const char *msg, const char *why, const char *name)
{
	struct scram_client *c = scram_client_new_password("pencil");

	scram_client_set_nonce(c, RFC_CNONCE);
	if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen))
		tap_bail("client first failed");
	if (tap_ok(!cli_final(c, msg, strlen(msg)), "client rejects server-first: %s", name) &&
	    why != NULL && !tap_ok(strstr(errbuf, why) != NULL, "  reason mentions '%s'", why))
		tap_diag("reason was: %s", errbuf);
	scram_client_free(c);
}

static void test_malformed_client(void)
{
	struct scram_client *c;
	size_t i;
	bool all = true;

	bad_server_first("", "empty", "empty");
	bad_server_first("r=" RFC_CNONCE ",s=" RFC_SALT ",i=4096", "extend", "no server part");
	bad_server_first("r=xyz" RFC_SNONCE ",s=" RFC_SALT ",i=4096", "extend", "foreign nonce");
	bad_server_first("r=" RFC_FULL_NONCE ",i=4096", "s=", "missing salt");
	bad_server_first("r=" RFC_FULL_NONCE ",s=" RFC_SALT, "i=", "missing iterations");
	bad_server_first("r=" RFC_FULL_NONCE ",s=" RFC_SALT ",i=0", "i=", "zero iterations");
	bad_server_first("r=" RFC_FULL_NONCE ",s=" RFC_SALT ",i=4x", "i=", "bad iterations");
	bad_server_first("r=" RFC_FULL_NONCE ",s=W22Z*J0SNY7soEsUEjb6gQ==,i=4096",
	                 "s=", "bad salt");
	bad_server_first("m=x,r=" RFC_FULL_NONCE ",s=" RFC_SALT ",i=4096", "mandatory", "m=");
	/* Up to "i=": a shorter iteration count would still be valid. */
	for (i = 0; i + 3 < strlen(RFC_SFIRST); i++) {
		c = scram_client_new_password("pencil");
		scram_client_set_nonce(c, RFC_CNONCE);
		if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen) ||
		    cli_final(c, RFC_SFIRST, i))
			all = false;
		scram_client_free(c);
	}
	tap_ok(all, "client rejects every truncation of the RFC server-first");

	c = scram_client_new_password("pencil");
	tap_ok(!cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST)), "client: final before first refused");
	scram_client_free(c);

	c = scram_client_new_password("pencil");
	scram_client_set_user(c, "user");
	scram_client_set_nonce(c, RFC_CNONCE);
	if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen) ||
	    !cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST)))
		tap_bail("client setup failed");
	tap_ok(!cli_verify(c, "e=invalid-proof", 15), "client: server error e= refused");
	tap_ok(strstr(errbuf, "invalid-proof") != NULL, "  reason carries the error: %s", errbuf);
	scram_client_free(c);

	all = true;
	for (i = 0; i < strlen(RFC_SFINAL); i++) {
		c = scram_client_new_password("pencil");
		scram_client_set_user(c, "user");
		scram_client_set_nonce(c, RFC_CNONCE);
		if (!scram_client_first(c, outbuf, sizeof(outbuf), &outlen) ||
		    !cli_final(c, RFC_SFIRST, strlen(RFC_SFIRST)) || cli_verify(c, RFC_SFINAL, i))
			all = false;
		scram_client_free(c);
	}
	tap_ok(all, "client rejects every truncation of the RFC server-final");
}

int main(void)
{
	test_secrets();
	test_rfc_server();
	test_rfc_client();
	test_round_trip();
	test_gs2_y();
	test_malformed_server();
	test_malformed_client();
	return tap_done();
}
