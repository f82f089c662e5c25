/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677) on OpenSSL primitives, both
 * ends: pglease verifying a client, and pglease logging in to PostgreSQL.
 * No channel binding (gs2 header "n,," or "y,," accepted; "p=" refused).
 * Pure state machines over byte strings; no sockets, no logging.
 */
#ifndef PGL_SCRAM_H
#define PGL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN            32
#define SCRAM_MAX_SALT           64
#define SCRAM_DEFAULT_ITERATIONS 4096

struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parse "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>". */
bool scram_parse_secret(const char *text, struct scram_secret *out)
    __attribute__((warn_unused_result));
/* Derive a secret from a password (no SASLprep normalisation beyond what
 * PostgreSQL does for non-UTF-8-safe input: the raw bytes are used). */
bool scram_build_secret(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_secret *out) __attribute__((warn_unused_result));

/* ---- server side: pglease authenticates a client ---- */
struct scram_server;
/* New exchange for SECRET (copied).  NULL on out-of-memory. */
struct scram_server *scram_server_new(const struct scram_secret *secret);
/* Tests only: use NONCE instead of a random server nonce part. */
void scram_server_set_nonce(struct scram_server *s, const char *nonce);
/* Take client-first-message (IN, LEN bytes); write server-first-message into
 * OUT (NUL-terminated, length in *OUTLEN).  False with a reason in ERR. */
bool scram_server_first(struct scram_server *s, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Take client-final-message, verify the proof; on success write
 * server-final-message ("v=...") into OUT.  False: bad proof or bad message. */
bool scram_server_final(struct scram_server *s, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* After a failed scram_server_final(): true when the message was well formed
 * and only the proof was wrong (a wrong password, 28P01), false when the
 * message itself was bad (a protocol violation, 08P01). */
bool scram_server_bad_proof(const struct scram_server *s);
/* After a successful scram_server_final(): the ClientKey recovered from the
 * proof, usable to log in to PostgreSQL on the client's behalf. */
bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN]);
void scram_server_free(struct scram_server *s);

/* ---- client side: pglease logs in to PostgreSQL ---- */
struct scram_client;
/* Exchange using a cleartext password (copied). */
struct scram_client *scram_client_new_password(const char *password);
/* Exchange using keys recovered from a client's login (SCRAM passthrough):
 * works when the server's salt and iteration count equal SECRET's. */
struct scram_client *scram_client_new_keys(const uint8_t client_key[SCRAM_KEY_LEN],
                                           const struct scram_secret *secret);
/* Tests only: use NONCE as the client nonce. */
void scram_client_set_nonce(struct scram_client *c, const char *nonce);
/* Send USER (copied, escaped per RFC 5802) in n= instead of the empty name
 * PostgreSQL expects; for test vectors and servers that want a name. */
void scram_client_set_user(struct scram_client *c, const char *user);
/* Write client-first-message ("n,,n=,r=<nonce>") into OUT. */
bool scram_client_first(struct scram_client *c, char *out, size_t outsize, size_t *outlen)
    __attribute__((warn_unused_result));
/* Take server-first-message; write client-final-message into OUT. */
bool scram_client_final(struct scram_client *c, const char *in, size_t len, char *out,
                        size_t outsize, size_t *outlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Verify server-final-message ("v=<ServerSignature>"). */
bool scram_client_verify(struct scram_client *c, const char *in, size_t len, char *err,
                         size_t errlen) __attribute__((warn_unused_result));
void scram_client_free(struct scram_client *c);

#endif
