/*
 * proto: PostgreSQL v3 wire framing.  Message type bytes under PostgreSQL's
 * names, header parsing with length limits, a bounded reader with a cursor,
 * and a writer for the messages pglease builds itself (sticky failure flag:
 * check once with pkt_ok() before sending).
 */
#ifndef PGL_PROTO_H
#define PGL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frontend (client -> server) message types. */
#define PqMsg_Bind                'B'
#define PqMsg_Close               'C'
#define PqMsg_Describe            'D'
#define PqMsg_Execute             'E'
#define PqMsg_FunctionCall        'F'
#define PqMsg_Flush               'H'
#define PqMsg_Parse               'P'
#define PqMsg_Query               'Q'
#define PqMsg_Sync                'S'
#define PqMsg_Terminate           'X'
#define PqMsg_CopyFail            'f'
#define PqMsg_GSSResponse         'p'
#define PqMsg_PasswordMessage     'p'
#define PqMsg_SASLInitialResponse 'p'
#define PqMsg_SASLResponse        'p'
/* Backend (server -> client) message types. */
#define PqMsg_ParseComplete            '1'
#define PqMsg_BindComplete             '2'
#define PqMsg_CloseComplete            '3'
#define PqMsg_NotificationResponse     'A'
#define PqMsg_CommandComplete          'C'
#define PqMsg_DataRow                  'D'
#define PqMsg_ErrorResponse            'E'
#define PqMsg_CopyInResponse           'G'
#define PqMsg_CopyOutResponse          'H'
#define PqMsg_EmptyQueryResponse       'I'
#define PqMsg_BackendKeyData           'K'
#define PqMsg_NoticeResponse           'N'
#define PqMsg_AuthenticationRequest    'R'
#define PqMsg_ParameterStatus          'S'
#define PqMsg_RowDescription           'T'
#define PqMsg_FunctionCallResponse     'V'
#define PqMsg_CopyBothResponse         'W'
#define PqMsg_ReadyForQuery            'Z'
#define PqMsg_NoData                   'n'
#define PqMsg_PortalSuspended          's'
#define PqMsg_ParameterDescription     't'
#define PqMsg_NegotiateProtocolVersion 'v'
/* Both directions. */
#define PqMsg_CopyData 'd'
#define PqMsg_CopyDone 'c'

/* Authentication request codes ('R'). */
#define AUTH_REQ_OK        0
#define AUTH_REQ_PASSWORD  3
#define AUTH_REQ_MD5       5
#define AUTH_REQ_SASL      10
#define AUTH_REQ_SASL_CONT 11
#define AUTH_REQ_SASL_FIN  12

/* Startup packet codes. */
#define PG_PROTOCOL_3_0     196608u
#define CANCEL_REQUEST_CODE 80877102u
#define NEGOTIATE_SSL_CODE  80877103u
#define NEGOTIATE_GSS_CODE  80877104u

/* PostgreSQL's own limits. */
#define PROTO_MAX_STARTUP_LEN 10000u
#define PROTO_MAX_MSG_LEN     0x3fffffffu

/* A parsed header.  For startup-phase packets TYPE is 0. */
struct pkt_hdr {
	uint8_t type;
	uint32_t len; /* whole message in bytes: type byte (if any) + length word + body */
};

enum proto_hdr_result { PROTO_HDR_OK, PROTO_HDR_SHORT, PROTO_HDR_BAD };

/* Parse the header at P (AVAIL bytes).  STARTUP: no type byte.  BAD when the
 * length word is < 4 or larger than MAX_LEN. */
enum proto_hdr_result proto_parse_header(const uint8_t *p, size_t avail, bool startup,
                                         uint32_t max_len, struct pkt_hdr *out);

/* Bounded reader over one message body. */
struct pkt_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad; /* set on any overrun; sticky */
};

void pkt_reader_init(struct pkt_reader *r, const uint8_t *body, size_t len);
uint8_t pkt_get_u8(struct pkt_reader *r);
uint16_t pkt_get_u16(struct pkt_reader *r);
uint32_t pkt_get_u32(struct pkt_reader *r);
/* NUL-terminated string inside the body; "" and bad set when unterminated. */
const char *pkt_get_str(struct pkt_reader *r);
/* N raw bytes; NULL and bad set when fewer remain. */
const uint8_t *pkt_get_bytes(struct pkt_reader *r, size_t n);
/* True when nothing failed and every byte was consumed. */
bool pkt_reader_done(const struct pkt_reader *r);

/* Growable writer for messages pglease builds. */
struct pkt_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t msg_start;
	bool failed;
	uint8_t inline_buf[256];
};

void pkt_writer_init(struct pkt_writer *w);
void pkt_writer_free(struct pkt_writer *w);
/* Start a message of TYPE (0: startup-style, no type byte). */
void pkt_begin(struct pkt_writer *w, uint8_t type);
void pkt_put_u8(struct pkt_writer *w, uint8_t v);
void pkt_put_u16(struct pkt_writer *w, uint16_t v);
void pkt_put_u32(struct pkt_writer *w, uint32_t v);
void pkt_put_bytes(struct pkt_writer *w, const void *data, size_t len);
/* String with its NUL terminator. */
void pkt_put_str(struct pkt_writer *w, const char *s);
/* Patch the length word of the message begun last. */
void pkt_end(struct pkt_writer *w);
static inline bool pkt_ok(const struct pkt_writer *w)
{
	return !w->failed;
}

/* Whole-message builders (each appends one complete message). */
void proto_error(struct pkt_writer *w, const char *severity, const char *sqlstate, const char *msg);
void proto_notice(struct pkt_writer *w, const char *sqlstate, const char *msg);
void proto_ready(struct pkt_writer *w, uint8_t status);
void proto_param_status(struct pkt_writer *w, const char *name, const char *value);
void proto_auth_req(struct pkt_writer *w, uint32_t code, const void *data, size_t len);
void proto_backend_key(struct pkt_writer *w, const uint8_t key[8]);
void proto_query(struct pkt_writer *w, const char *sql);

/* Fields of an ErrorResponse/NoticeResponse body: the SQLSTATE ('C') and
 * message ('M') into the given buffers (empty when absent). */
void proto_parse_error(const uint8_t *body, size_t len, char *sqlstate, size_t sqlstate_len,
                       char *msg, size_t msg_len);

/* True for a message type a client may send after startup. */
bool proto_is_frontend_type(uint8_t type);

#endif
