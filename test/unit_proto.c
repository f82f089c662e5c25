/* Unit tests for proto: header parsing limits, reader bounds, writer output. */
#include <string.h>

#include "proto.h"
#include "tap.h"
#include "varcache.h"

static void test_headers(void)
{
	struct pkt_hdr h;
	const uint8_t q[] = {'Q', 0, 0, 0, 9, 's', 'e', 'l', 0};
	const uint8_t small[] = {'Q', 0, 0, 0, 3};
	const uint8_t huge[] = {'Q', 0x7f, 0xff, 0xff, 0xff};
	const uint8_t startup[] = {0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f};
	const uint8_t startup_big[] = {0, 1, 0x86, 0xa0}; /* 100000 */

	tap_ok(proto_parse_header(q, 4, false, PROTO_MAX_MSG_LEN, &h) == PROTO_HDR_SHORT,
	       "4 bytes are not a header");
	tap_ok(proto_parse_header(q, sizeof(q), false, PROTO_MAX_MSG_LEN, &h) == PROTO_HDR_OK &&
	           h.type == 'Q' && h.len == 10,
	       "Query header: type and total length including the type byte");
	tap_ok(proto_parse_header(small, sizeof(small), false, PROTO_MAX_MSG_LEN, &h) ==
	           PROTO_HDR_BAD,
	       "length word below 4 is refused");
	tap_ok(proto_parse_header(huge, sizeof(huge), false, PROTO_MAX_MSG_LEN, &h) ==
	           PROTO_HDR_BAD,
	       "length beyond the 1 GB message limit is refused");
	tap_ok(proto_parse_header(startup, sizeof(startup), true, PROTO_MAX_STARTUP_LEN, &h) ==
	               PROTO_HDR_OK &&
	           h.type == 0 && h.len == 8,
	       "startup-phase header has no type byte");
	tap_ok(proto_parse_header(startup_big, sizeof(startup_big), true, PROTO_MAX_STARTUP_LEN,
	                          &h) == PROTO_HDR_BAD,
	       "oversized startup packet is refused");
}

static void test_reader(void)
{
	const uint8_t body[] = {0, 0, 0, 42, 'a', 'b', 0, 7};
	struct pkt_reader r;

	pkt_reader_init(&r, body, sizeof(body));
	tap_is_int(pkt_get_u32(&r), 42, "u32 read big-endian");
	tap_is_str(pkt_get_str(&r), "ab", "string read to its NUL");
	tap_ok(!pkt_reader_done(&r), "one byte left: not done");
	tap_is_int(pkt_get_u8(&r), 7, "u8 read");
	tap_ok(pkt_reader_done(&r), "all consumed: done");
	pkt_get_u16(&r);
	tap_ok(r.bad && !pkt_reader_done(&r), "overrun sets the sticky bad flag");

	pkt_reader_init(&r, (const uint8_t *)"abc", 3);
	pkt_get_str(&r);
	tap_ok(r.bad, "unterminated string is an error");
}

static void test_writer(void)
{
	struct pkt_writer w;
	char state[6], msg[64];
	int i;

	pkt_writer_init(&w);
	proto_ready(&w, 'I');
	tap_ok(w.len == 6 && memcmp(w.buf, "Z\0\0\0\5I", 6) == 0, "ReadyForQuery bytes");
	pkt_writer_free(&w);

	pkt_writer_init(&w);
	proto_error(&w, "FATAL", "28P01", "bad password");
	proto_parse_error(w.buf + 5, w.len - 5, state, sizeof(state), msg, sizeof(msg));
	tap_is_str(state, "28P01", "ErrorResponse round trip: SQLSTATE");
	tap_is_str(msg, "bad password", "ErrorResponse round trip: message");
	tap_is_int((w.buf[1] << 24) | (w.buf[2] << 16) | (w.buf[3] << 8) | w.buf[4],
	           (long long)w.len - 1, "length word covers everything but the type byte");
	pkt_writer_free(&w);

	pkt_writer_init(&w);
	for (i = 0; i < 1000; i++)
		proto_param_status(&w, "application_name", "a fairly long value to force growth");
	tap_ok(pkt_ok(&w) && w.buf != w.inline_buf && w.len > 40000,
	       "writer grows from its inline buffer to the heap");
	pkt_writer_free(&w);
}

static void test_varcache(void)
{
	struct varcache want = {0}, have = {0};
	struct pkt_writer w;

	tap_is_int(varcache_lookup("datestyle"), VAR_DATESTYLE,
	           "tracked names are case-insensitive");
	tap_is_int(varcache_lookup("search_path"), -1, "untracked name");
	(void)!varcache_set(&want, VAR_DATESTYLE, "ISO, DMY");
	(void)!varcache_set(&have, VAR_DATESTYLE, "ISO, MDY");
	(void)!varcache_set(&want, VAR_APPNAME, "it's\\x");
	pkt_writer_init(&w);
	tap_ok(varcache_apply_query(&want, &have, &w), "differing values need a SET");
	tap_is_str((const char *)w.buf + 5,
	           "SET DateStyle = 'ISO, DMY';SET application_name = E'it''s\\\\x';",
	           "one combined SET, quotes and backslashes escaped");
	pkt_writer_free(&w);
	(void)!varcache_set(&have, VAR_DATESTYLE, "ISO, DMY");
	(void)!varcache_set(&have, VAR_APPNAME, "it's\\x");
	pkt_writer_init(&w);
	tap_ok(!varcache_apply_query(&want, &have, &w), "equal values need nothing");
	pkt_writer_free(&w);
	varcache_clear(&want);
	varcache_clear(&have);
}

int main(void)
{
	test_headers();
	test_reader();
	test_writer();
	test_varcache();
	return tap_done();
}
