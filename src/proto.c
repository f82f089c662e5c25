/* proto: header parsing, bounded reader, message writer. */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

enum proto_hdr_result proto_parse_header(const uint8_t *p, size_t avail, bool startup,
                                         uint32_t max_len, struct pkt_hdr *out)
{
	uint32_t word;

	if (startup) {
		if (avail < 4)
			return PROTO_HDR_SHORT;
		word = be32(p);
		if (word < 8 || word > max_len)
			return PROTO_HDR_BAD;
		out->type = 0;
		out->len = word;
		return PROTO_HDR_OK;
	}
	if (avail < 5)
		return PROTO_HDR_SHORT;
	word = be32(p + 1);
	if (word < 4 || word > max_len)
		return PROTO_HDR_BAD;
	out->type = p[0];
	out->len = word + 1;
	return PROTO_HDR_OK;
}

void pkt_reader_init(struct pkt_reader *r, const uint8_t *body, size_t len)
{
	r->p = body;
	r->len = len;
	r->pos = 0;
	r->bad = false;
}

static const uint8_t *take(struct pkt_reader *r, size_t n)
{
	const uint8_t *at;

	if (r->bad || r->len - r->pos < n) {
		r->bad = true;
		return NULL;
	}
	at = r->p + r->pos;
	r->pos += n;
	return at;
}

uint8_t pkt_get_u8(struct pkt_reader *r)
{
	const uint8_t *p = take(r, 1);

	return p ? p[0] : 0;
}

uint16_t pkt_get_u16(struct pkt_reader *r)
{
	const uint8_t *p = take(r, 2);

	return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t pkt_get_u32(struct pkt_reader *r)
{
	const uint8_t *p = take(r, 4);

	return p ? be32(p) : 0;
}

const char *pkt_get_str(struct pkt_reader *r)
{
	const uint8_t *start, *nul;

	if (r->bad)
		return "";
	start = r->p + r->pos;
	nul = memchr(start, '\0', r->len - r->pos);
	if (nul == NULL) {
		r->bad = true;
		return "";
	}
	r->pos += (size_t)(nul - start) + 1;
	return (const char *)start;
}

const uint8_t *pkt_get_bytes(struct pkt_reader *r, size_t n)
{
	return take(r, n);
}

bool pkt_reader_done(const struct pkt_reader *r)
{
	return !r->bad && r->pos == r->len;
}

void pkt_writer_init(struct pkt_writer *w)
{
	w->buf = w->inline_buf;
	w->len = 0;
	w->cap = sizeof(w->inline_buf);
	w->msg_start = 0;
	w->failed = false;
}

void pkt_writer_free(struct pkt_writer *w)
{
	if (w->buf != w->inline_buf)
		free(w->buf);
	w->buf = w->inline_buf;
	w->len = 0;
	w->cap = sizeof(w->inline_buf);
}

static bool reserve(struct pkt_writer *w, size_t n)
{
	size_t cap;
	uint8_t *nb;

	if (w->failed)
		return false;
	if (w->cap - w->len >= n)
		return true;
	cap = w->cap * 2;
	while (cap - w->len < n)
		cap *= 2;
	if (w->buf == w->inline_buf) {
		nb = malloc(cap);
		if (nb != NULL)
			memcpy(nb, w->buf, w->len);
	} else {
		nb = realloc(w->buf, cap);
	}
	if (nb == NULL) {
		w->failed = true;
		return false;
	}
	w->buf = nb;
	w->cap = cap;
	return true;
}

void pkt_put_bytes(struct pkt_writer *w, const void *data, size_t len)
{
	if (!reserve(w, len))
		return;
	if (len > 0)
		memcpy(w->buf + w->len, data, len);
	w->len += len;
}

void pkt_put_u8(struct pkt_writer *w, uint8_t v)
{
	pkt_put_bytes(w, &v, 1);
}

void pkt_put_u16(struct pkt_writer *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	pkt_put_bytes(w, b, 2);
}

void pkt_put_u32(struct pkt_writer *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	pkt_put_bytes(w, b, 4);
}

void pkt_put_str(struct pkt_writer *w, const char *s)
{
	pkt_put_bytes(w, s, strlen(s) + 1);
}

void pkt_begin(struct pkt_writer *w, uint8_t type)
{
	if (type != 0)
		pkt_put_u8(w, type);
	w->msg_start = w->len;
	pkt_put_u32(w, 0);
}

void pkt_end(struct pkt_writer *w)
{
	uint32_t n;

	if (w->failed)
		return;
	n = (uint32_t)(w->len - w->msg_start);
	w->buf[w->msg_start] = (uint8_t)(n >> 24);
	w->buf[w->msg_start + 1] = (uint8_t)(n >> 16);
	w->buf[w->msg_start + 2] = (uint8_t)(n >> 8);
	w->buf[w->msg_start + 3] = (uint8_t)n;
}

static void error_like(struct pkt_writer *w, uint8_t type, const char *severity,
                       const char *sqlstate, const char *msg)
{
	pkt_begin(w, type);
	pkt_put_u8(w, 'S');
	pkt_put_str(w, severity);
	pkt_put_u8(w, 'V');
	pkt_put_str(w, severity);
	pkt_put_u8(w, 'C');
	pkt_put_str(w, sqlstate);
	pkt_put_u8(w, 'M');
	pkt_put_str(w, msg);
	pkt_put_u8(w, 0);
	pkt_end(w);
}

void proto_error(struct pkt_writer *w, const char *severity, const char *sqlstate, const char *msg)
{
	error_like(w, PqMsg_ErrorResponse, severity, sqlstate, msg);
}

void proto_notice(struct pkt_writer *w, const char *sqlstate, const char *msg)
{
	error_like(w, PqMsg_NoticeResponse, "NOTICE", sqlstate, msg);
}

void proto_ready(struct pkt_writer *w, uint8_t status)
{
	pkt_begin(w, PqMsg_ReadyForQuery);
	pkt_put_u8(w, status);
	pkt_end(w);
}

void proto_param_status(struct pkt_writer *w, const char *name, const char *value)
{
	pkt_begin(w, PqMsg_ParameterStatus);
	pkt_put_str(w, name);
	pkt_put_str(w, value);
	pkt_end(w);
}

void proto_auth_req(struct pkt_writer *w, uint32_t code, const void *data, size_t len)
{
	pkt_begin(w, PqMsg_AuthenticationRequest);
	pkt_put_u32(w, code);
	pkt_put_bytes(w, data, len);
	pkt_end(w);
}

void proto_backend_key(struct pkt_writer *w, const uint8_t key[8])
{
	pkt_begin(w, PqMsg_BackendKeyData);
	pkt_put_bytes(w, key, 8);
	pkt_end(w);
}

void proto_query(struct pkt_writer *w, const char *sql)
{
	pkt_begin(w, PqMsg_Query);
	pkt_put_str(w, sql);
	pkt_end(w);
}

static void copy_field(char *dst, size_t dst_len, const char *src)
{
	size_t n = strlen(src);

	if (dst_len == 0)
		return;
	if (n >= dst_len)
		n = dst_len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void proto_parse_error(const uint8_t *body, size_t len, char *sqlstate, size_t sqlstate_len,
                       char *msg, size_t msg_len)
{
	struct pkt_reader r;

	copy_field(sqlstate, sqlstate_len, "");
	copy_field(msg, msg_len, "");
	pkt_reader_init(&r, body, len);
	for (;;) {
		uint8_t field = pkt_get_u8(&r);
		const char *value;

		if (r.bad || field == 0)
			break;
		value = pkt_get_str(&r);
		if (r.bad)
			break;
		if (field == 'C')
			copy_field(sqlstate, sqlstate_len, value);
		else if (field == 'M')
			copy_field(msg, msg_len, value);
	}
}

bool proto_is_frontend_type(uint8_t type)
{
	switch (type) {
	case PqMsg_Bind:
	case PqMsg_Close:
	case PqMsg_Describe:
	case PqMsg_Execute:
	case PqMsg_FunctionCall:
	case PqMsg_Flush:
	case PqMsg_Parse:
	case PqMsg_Query:
	case PqMsg_Sync:
	case PqMsg_Terminate:
	case PqMsg_CopyFail:
	case PqMsg_CopyData:
	case PqMsg_CopyDone:
		return true;
	default:
		return false;
	}
}
