/* admin: the console.  Commands are answered with RowDescription/DataRow. */
#include "admin.h"

#include <string.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "proto.h"
#include "runtime.h"

bool admin_is_console(const char *dbname)
{
	return strcmp(dbname, "pglease") == 0 || strcmp(dbname, "pgbouncer") == 0;
}

bool admin_may_login(struct client *c, bool peer_ok)
{
	if (cfg_list_contains(rt.cfg->admin_users, c->user)) {
		c->admin_readonly = false;
		return true;
	}
	if (cfg_list_contains(rt.cfg->stats_users, c->user)) {
		c->admin_readonly = true;
		return true;
	}
	c->admin_readonly = false;
	return peer_ok;
}

void admin_login(struct client *c)
{
	struct pkt_writer w;

	pkt_writer_init(&w);
	proto_param_status(&w, "server_version", "15.0 (pglease)");
	proto_param_status(&w, "client_encoding", "UTF8");
	proto_param_status(&w, "server_encoding", "UTF8");
	proto_param_status(&w, "DateStyle", "ISO");
	proto_param_status(&w, "standard_conforming_strings", "on");
	proto_param_status(&w, "integer_datetimes", "on");
	proto_backend_key(&w, c->cancel_key);
	proto_ready(&w, 'I');
	c->admin = true;
	client_set_state(c, CL_IDLE);
	if (pkt_ok(&w))
		sbuf_write(&c->sb, w.buf, w.len);
	pkt_writer_free(&w);
	sbuf_resume(&c->sb);
}

enum sbuf_action admin_on_pkt(struct client *c, const struct pkt_hdr *hdr, const uint8_t *data,
			      size_t avail)
{
	struct pkt_writer w;

	if (avail < hdr->len)
		return SBUF_NEED_FULL;
	if (hdr->type == PqMsg_Terminate) {
		client_close(c, "client terminated");
		return SBUF_STOP;
	}
	pkt_writer_init(&w);
	proto_error(&w, "ERROR", "0A000", "admin console commands are not implemented yet");
	proto_ready(&w, 'I');
	if (pkt_ok(&w))
		sbuf_write(&c->sb, w.buf, w.len);
	pkt_writer_free(&w);
	return SBUF_CONSUMED;
}
