/* cancel: one short-lived connection per CancelRequest. */
#include "cancel.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "runtime.h"

#define CANCEL_TIMEOUT_SEC 10

struct cancel_req {
	struct list node;
	int fd;
	struct event *ev;
	uint8_t pkt[16];
};

static struct list pending = LIST_INIT(pending);

static void cancel_free(struct cancel_req *req)
{
	list_del(&req->node);
	event_free(req->ev);
	close(req->fd);
	free(req);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_req *req = arg;
	int err;

	if (what & EV_TIMEOUT) {
		log_warn("cancel request: server did not accept the connection in time");
		cancel_free(req);
		return;
	}
	err = net_connect_result(fd);
	if (err != 0)
		log_warn("cancel request: could not connect to server: %s", strerror(err));
	else if (send(fd, req->pkt, sizeof(req->pkt), MSG_NOSIGNAL) != (ssize_t)sizeof(req->pkt))
		log_warn("cancel request: could not send: %s", strerror(errno));
	cancel_free(req);
}

void cancel_send(const struct sockaddr_storage *addr, socklen_t len, const uint8_t key[8])
{
	struct cancel_req *req = calloc(1, sizeof(*req));
	struct timeval tv = {CANCEL_TIMEOUT_SEC, 0};
	bool done;

	if (req == NULL)
		return;
	list_init(&req->node);
	req->pkt[3] = 16;
	req->pkt[4] = (uint8_t)(CANCEL_REQUEST_CODE >> 24);
	req->pkt[5] = (uint8_t)(CANCEL_REQUEST_CODE >> 16);
	req->pkt[6] = (uint8_t)(CANCEL_REQUEST_CODE >> 8);
	req->pkt[7] = (uint8_t)CANCEL_REQUEST_CODE;
	memcpy(req->pkt + 8, key, 8);
	req->fd = net_connect((const struct sockaddr *)addr, len, &done);
	if (req->fd == -1) {
		log_warn("cancel request: could not connect to server: %s", strerror(errno));
		free(req);
		return;
	}
	req->ev = event_new(rt.base, req->fd, EV_WRITE, on_writable, req);
	if (req->ev == NULL || event_add(req->ev, &tv) == -1) {
		if (req->ev)
			event_free(req->ev);
		close(req->fd);
		free(req);
		return;
	}
	list_append(&pending, &req->node);
}

void cancel_shutdown(void)
{
	struct list *n;

	while ((n = pending.next) != &pending)
		cancel_free(list_entry(n, struct cancel_req, node));
}
