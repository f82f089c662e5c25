/*
 * auth: the auth_file (userlist.txt) and password checks for md5 and plain.
 * Pure functions over strings; no sockets, no logging.  SCRAM is in scram.h.
 */
#ifndef PGL_AUTH_H
#define PGL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_secret_kind { SECRET_PLAIN, SECRET_MD5, SECRET_SCRAM };

/* One line of the auth_file: "user" "secret" */
struct auth_entry {
	char *name;
	char *secret;
	enum auth_secret_kind kind;
};

struct auth_file; /* opaque: a loaded auth_file */

/*
 * Load an auth_file.  Lines are `"user" "secret" ...` (extra fields ignored,
 * "" inside quotes is a literal quote, lines starting with ';' or '#' and blank
 * lines skipped).  Returns NULL on failure with "FILE:LINE: message" in ERR.
 */
struct auth_file *auth_file_load(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* An empty table (no users). Never NULL except on out-of-memory. */
struct auth_file *auth_file_empty(void);
void auth_file_free(struct auth_file *af);
/* The entry for USER, or NULL.  Owned by AF. */
const struct auth_entry *auth_file_find(const struct auth_file *af, const char *user);

/* Number of entries, and entry I (0 <= I < count) in name order; owned by AF. */
size_t auth_file_count(const struct auth_file *af);
const struct auth_entry *auth_file_entry(const struct auth_file *af, size_t i);

/* Classify a stored secret: "md5" + 32 hex = MD5, "SCRAM-SHA-256$..." = SCRAM, else PLAIN. */
enum auth_secret_kind auth_secret_kind(const char *secret);

/* out = "md5" + hex(md5(password || user)), NUL-terminated (36 bytes). */
void auth_md5_secret(const char *user, const char *password, char out[36]);

/* out = "md5" + hex(md5(hex32(md5_secret + 3) || salt)): the PasswordMessage
 * answering AuthenticationMD5Password.  MD5_SECRET is "md5" + 32 hex. */
void auth_md5_response(const char *md5_secret, const uint8_t salt[4], char out[36]);

/* True when RESPONSE is the right md5 answer for USER with stored SECRET
 * (plain or md5 kind; false for SCRAM secrets).  Constant-time compare. */
bool auth_md5_verify(const char *user, const char *secret, const uint8_t salt[4],
                     const char *response);

/* True when cleartext PASSWORD matches stored SECRET of any kind. */
bool auth_plain_verify(const char *user, const char *secret, const char *password);

#endif
