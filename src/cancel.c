/* cancel: one short-lived connection per CancelRequest. */
#include "cancel.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "list.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"

#define CANCEL_TIMEOUT_SEC 10

struct cancel_req {
	struct list node;
	int fd;
	struct event *ev;
	struct server *server;
	struct client *requester;
	uint8_t pkt[16];
};

static struct list pending = LIST_INIT(pending);

/* The cancel is over (done, failed or timed out): release what waited on it. */
static void cancel_done(struct cancel_req *req)
{
	struct server *server = req->server;
	struct client *requester = req->requester;

	list_del(&req->node);
	event_free(req->ev);
	close(req->fd);
	free(req);
	if (requester != NULL)
		client_close(requester, NULL);
	if (server != NULL && --server->cancels == 0)
		server_cancel_done(server);
}

static void on_closed(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_req *req = arg;
	char scratch[64];

	if (!(what & EV_TIMEOUT) && recv(fd, scratch, sizeof(scratch), 0) > 0)
		return; /* PostgreSQL sends nothing; wait for the close */
	cancel_done(req);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_req *req = arg;
	struct timeval tv = {CANCEL_TIMEOUT_SEC, 0};
	int err;

	if (what & EV_TIMEOUT) {
		log_warn("cancel request: server did not accept the connection in time");
		cancel_done(req);
		return;
	}
	err = net_connect_result(fd);
	if (err != 0) {
		log_warn("cancel request: could not connect to server: %s", strerror(err));
		cancel_done(req);
		return;
	}
	if (send(fd, req->pkt, sizeof(req->pkt), MSG_NOSIGNAL) != (ssize_t)sizeof(req->pkt)) {
		log_warn("cancel request: could not send: %s", strerror(errno));
		cancel_done(req);
		return;
	}
	event_free(req->ev);
	req->ev = event_new(rt.base, fd, EV_READ | EV_PERSIST, on_closed, req);
	if (req->ev == NULL || event_add(req->ev, &tv) == -1) {
		if (req->ev == NULL)
			req->ev = event_new(rt.base, -1, 0, on_closed, req);
		cancel_done(req);
	}
}

void cancel_send(struct server *server, struct client *requester)
{
	struct cancel_req *req = calloc(1, sizeof(*req));
	struct timeval tv = {CANCEL_TIMEOUT_SEC, 0};
	bool done;

	if (req == NULL)
		goto fail;
	list_init(&req->node);
	req->pkt[3] = 16;
	req->pkt[4] = (uint8_t)(CANCEL_REQUEST_CODE >> 24);
	req->pkt[5] = (uint8_t)(CANCEL_REQUEST_CODE >> 16);
	req->pkt[6] = (uint8_t)(CANCEL_REQUEST_CODE >> 8);
	req->pkt[7] = (uint8_t)CANCEL_REQUEST_CODE;
	memcpy(req->pkt + 8, server->cancel_key, 8);
	req->fd = net_connect((const struct sockaddr *)&server->addr, server->addr_len, &done);
	if (req->fd == -1) {
		log_warn("cancel request: could not connect to server: %s", strerror(errno));
		free(req);
		goto fail;
	}
	req->ev = event_new(rt.base, req->fd, EV_WRITE, on_writable, req);
	if (req->ev == NULL || event_add(req->ev, &tv) == -1) {
		if (req->ev)
			event_free(req->ev);
		close(req->fd);
		free(req);
		goto fail;
	}
	req->server = server;
	req->requester = requester;
	server->cancels++;
	list_append(&pending, &req->node);
	return;
fail:
	if (requester != NULL)
		client_close(requester, NULL);
}

void cancel_pool_counts(const struct pool *pool, struct cancel_counts *out)
{
	const struct list *it, *prev;

	memset(out, 0, sizeof(*out));
	for (it = pending.next; it != &pending; it = it->next) {
		const struct cancel_req *req = list_entry(it, const struct cancel_req, node);
		bool seen = false;

		if (req->server == NULL || req->server->pool != pool)
			continue;
		out->conns++;
		if (req->requester != NULL)
			out->requesters++;
		/* A server counts once however many cancels target it (few are pending). */
		for (prev = pending.next; prev != it && !seen; prev = prev->next)
			seen =
			    list_entry(prev, const struct cancel_req, node)->server == req->server;
		if (!seen)
			out->servers++;
	}
}

void cancel_forget_server(const struct server *server)
{
	struct list *it;

	for (it = pending.next; it != &pending; it = it->next) {
		struct cancel_req *req = list_entry(it, struct cancel_req, node);

		if (req->server == server)
			req->server = NULL;
	}
}

void cancel_forget_client(const struct client *requester)
{
	struct list *it;

	for (it = pending.next; it != &pending; it = it->next) {
		struct cancel_req *req = list_entry(it, struct cancel_req, node);

		if (req->requester == requester)
			req->requester = NULL;
	}
}

void cancel_shutdown(void)
{
	struct list *n;

	while ((n = pending.next) != &pending) {
		struct cancel_req *req = list_entry(n, struct cancel_req, node);

		req->requester = NULL;
		req->server = NULL;
		cancel_done(req);
	}
}
