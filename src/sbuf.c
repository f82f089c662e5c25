/* sbuf: per-socket stream buffer; see include/sbuf.h for the contract. */
#include "sbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct iobuf {
	struct iobuf *next_free;
	size_t cap;
	size_t pos; /* first unprocessed byte */
	size_t end; /* one past the last received byte */
	uint8_t data[];
};

#define IOBUF_CACHE_MAX 256

static struct iobuf *iobuf_free_list;
static size_t iobuf_free_count;

static struct iobuf *iobuf_get(size_t cap)
{
	struct iobuf *b;

	if (cap == SBUF_IOBUF_SIZE && iobuf_free_list != NULL) {
		b = iobuf_free_list;
		iobuf_free_list = b->next_free;
		iobuf_free_count--;
	} else {
		b = malloc(sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->cap = cap;
	}
	b->next_free = NULL;
	b->pos = b->end = 0;
	return b;
}

static void iobuf_put(struct iobuf *b)
{
	if (b == NULL)
		return;
	if (b->cap == SBUF_IOBUF_SIZE && iobuf_free_count < IOBUF_CACHE_MAX) {
		b->next_free = iobuf_free_list;
		iobuf_free_list = b;
		iobuf_free_count++;
		return;
	}
	free(b);
}

void sbuf_cleanup(void)
{
	while (iobuf_free_list != NULL) {
		struct iobuf *b = iobuf_free_list;

		iobuf_free_list = b->next_free;
		free(b);
	}
	iobuf_free_count = 0;
}

static void mark_failed(struct sbuf *sb, int err)
{
	if (sb->failed)
		return;
	sb->failed = true;
	sb->fail_err = err;
	/* Reported from the loop, not from inside whoever was writing. */
	event_active(&sb->ev_read, EV_READ, 0);
}

static void on_write(evutil_socket_t fd, short what, void *arg);

/* Queued output: exists only while there is some (an idle connection pays
 * neither for the buffer nor for the write event). */
struct sbuf_out {
	struct event *ev_write;
	uint8_t *buf;
	size_t pos, len, cap;
};

static void out_free(struct sbuf *sb)
{
	struct sbuf_out *q = sb->outq;

	if (q == NULL)
		return;
	event_free(q->ev_write);
	free(q->buf);
	free(q);
	sb->outq = NULL;
}

static bool queue_out(struct sbuf *sb, const uint8_t *data, size_t len)
{
	struct sbuf_out *q = sb->outq;
	size_t pending;

	if (q == NULL) {
		q = calloc(1, sizeof(*q));
		if (q == NULL)
			return false;
		q->ev_write = event_new(event_get_base(&sb->ev_read), sb->fd, EV_WRITE | EV_PERSIST,
		                        on_write, sb);
		if (q->ev_write == NULL) {
			free(q);
			return false;
		}
		sb->outq = q;
	}
	pending = q->len - q->pos;
	if (q->pos > 0 && q->cap - q->len < len) {
		memmove(q->buf, q->buf + q->pos, pending);
		q->pos = 0;
		q->len = pending;
	}
	if (q->cap - q->len < len) {
		size_t cap = q->cap ? q->cap : 4096;
		uint8_t *nb;

		while (cap - q->len < len)
			cap *= 2;
		nb = realloc(q->buf, cap);
		if (nb == NULL)
			return false;
		q->buf = nb;
		q->cap = cap;
	}
	memcpy(q->buf + q->len, data, len);
	q->len += len;
	event_add(q->ev_write, NULL);
	return true;
}

/* Send now what the socket takes, queue the rest. */
static bool raw_write(struct sbuf *sb, const uint8_t *data, size_t len)
{
	if (sb->closed || sb->failed)
		return false;
	if (sb->outq == NULL) {
		ssize_t n = send(sb->fd, data, len, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				mark_failed(sb, errno);
				return false;
			}
			n = 0;
		}
		if ((size_t)n == len)
			return true;
		data += n;
		len -= (size_t)n;
	}
	if (!queue_out(sb, data, len)) {
		mark_failed(sb, ENOMEM);
		return false;
	}
	return true;
}

static void span_flush(struct sbuf *sb)
{
	size_t start = sb->span_start, n = sb->span_end - sb->span_start;

	if (n == 0)
		return;
	sb->span_start = sb->span_end = 0;
	if (sb->dst != NULL) {
		sb->dst->feeder = NULL;
		raw_write(sb->dst, sb->in->data + start, n);
	}
}

static void span_add(struct sbuf *sb, size_t start, size_t n)
{
	if (sb->span_end != sb->span_start && sb->span_end != start)
		span_flush(sb);
	if (sb->span_end == sb->span_start) {
		sb->span_start = sb->span_end = start;
		if (sb->dst != NULL)
			sb->dst->feeder = sb;
	}
	sb->span_end += n;
}

bool sbuf_write(struct sbuf *sb, const void *data, size_t len)
{
	if (sb->feeder != NULL)
		span_flush(sb->feeder);
	return raw_write(sb, data, len);
}

void sbuf_forward_current(struct sbuf *sb, size_t len)
{
	span_add(sb, sb->cur_pos, len);
}

static void unblock(struct sbuf *sb)
{
	sb->blocked = false;
	if (!sb->stopped && !sb->closed) {
		event_add(&sb->ev_read, NULL);
		sb->resuming = true;
		event_active(&sb->ev_read, EV_READ, 0);
	}
}

void sbuf_set_dst(struct sbuf *sb, struct sbuf *dst)
{
	struct sbuf *old = sb->dst;

	span_flush(sb);
	if (old == dst)
		return;
	if (old != NULL && old->waiter == sb) {
		old->waiter = NULL;
		unblock(sb);
	}
	sb->dst = dst;
}

/* Paused by the owner: bytes keep arriving into the buffer (so a departing
 * peer is noticed and no epoll change is needed) until it is full. */
void sbuf_pause(struct sbuf *sb)
{
	sb->stopped = true;
}

/* Stop reading altogether (an error the owner must act on). */
static void halt(struct sbuf *sb)
{
	sb->stopped = true;
	event_del(&sb->ev_read);
}

/* Runs on_read in this loop iteration, after the current callbacks, with no
 * epoll_wait in between: one wakeup less per login when data is there, one
 * recv that says EAGAIN when not. */
void sbuf_read_soon(struct sbuf *sb)
{
	if (!sb->closed)
		event_active(&sb->ev_read, EV_READ, 0);
}

void sbuf_resume(struct sbuf *sb)
{
	if (sb->closed)
		return;
	sb->stopped = false;
	if (!sb->blocked) {
		event_add(&sb->ev_read, NULL);
		sb->resuming = true;
		event_active(&sb->ev_read, EV_READ, 0);
	}
}

bool sbuf_mid_forward(const struct sbuf *sb)
{
	return sb->pkt_left > 0 && sb->pkt_action == SBUF_FORWARD;
}

size_t sbuf_pending_out(const struct sbuf *sb)
{
	return sb->outq != NULL ? sb->outq->len - sb->outq->pos : 0;
}

size_t sbuf_pending_in(const struct sbuf *sb)
{
	return sb->in ? sb->in->end - sb->in->pos : 0;
}

/* Make room for a whole message of LEN bytes starting at in->pos. */
static bool make_room(struct sbuf *sb, size_t len)
{
	struct iobuf *b = sb->in, *nb;
	size_t have = b->end - b->pos;

	if (b->cap >= len) {
		if (b->cap - b->pos < len) {
			memmove(b->data, b->data + b->pos, have);
			b->pos = 0;
			b->end = have;
		}
		return true;
	}
	nb = iobuf_get((len + 4095) & ~(size_t)4095);
	if (nb == NULL)
		return false;
	memcpy(nb->data, b->data + b->pos, have);
	nb->end = have;
	iobuf_put(b);
	sb->in = nb;
	return true;
}

static void finish_round(struct sbuf *sb)
{
	struct iobuf *b = sb->in;
	struct sbuf *dst = sb->dst;

	span_flush(sb);
	if (sb->closed)
		return;
	if (b != NULL) {
		if (b->pos == b->end) {
			iobuf_put(b);
			sb->in = NULL;
		} else if (b->pos > 0 && !sb->stopped) {
			memmove(b->data, b->data + b->pos, b->end - b->pos);
			b->end -= b->pos;
			b->pos = 0;
		}
	}
	if (dst != NULL && !dst->closed && !sb->blocked &&
	    sbuf_pending_out(dst) > SBUF_HIGH_WATER) {
		sb->blocked = true;
		dst->waiter = sb;
		event_del(&sb->ev_read);
	}
}

static void process(struct sbuf *sb)
{
	struct iobuf *b;
	struct pkt_hdr hdr;
	enum sbuf_action act;

	while (!sb->closed && !sb->stopped && (b = sb->in) != NULL && b->pos < b->end) {
		size_t avail = b->end - b->pos;

		if (sb->pkt_left > 0) {
			size_t n = avail < sb->pkt_left ? avail : sb->pkt_left;

			if (sb->pkt_action == SBUF_FORWARD)
				span_add(sb, b->pos, n);
			b->pos += n;
			sb->pkt_left -= (uint32_t)n;
			continue;
		}
		switch (
		    proto_parse_header(b->data + b->pos, avail, sb->startup, sb->max_len, &hdr)) {
		case PROTO_HDR_SHORT:
			goto out;
		case PROTO_HDR_BAD:
			span_flush(sb);
			halt(sb);
			sb->ops->event(sb, SBUF_EV_PROTO, 0);
			return;
		case PROTO_HDR_OK:
			break;
		}
		sb->cur_pos = b->pos;
		act = sb->ops->pkt(sb, &hdr, b->data + b->pos, avail < hdr.len ? avail : hdr.len);
		if (sb->closed)
			return;
		switch (act) {
		case SBUF_FORWARD:
		case SBUF_SKIP:
			b->pos += sb->fwd_skip;
			sb->pkt_left = hdr.len - sb->fwd_skip;
			sb->fwd_skip = 0;
			sb->pkt_action = act;
			break;
		case SBUF_CONSUMED:
			b->pos += hdr.len <= avail ? hdr.len : avail;
			break;
		case SBUF_NEED_FULL: {
			uint32_t target = sb->want && sb->want < hdr.len ? sb->want : hdr.len;

			sb->want = 0;
			span_flush(sb);
			if (avail >= target || target > SBUF_MAX_FULL) {
				halt(sb);
				sb->ops->event(sb, SBUF_EV_TOOBIG, (long)hdr.len);
				return;
			}
			if (!make_room(sb, target)) {
				halt(sb);
				sb->ops->event(sb, SBUF_EV_ERROR, ENOMEM);
				return;
			}
			goto out;
		}
		case SBUF_STOP:
			sbuf_pause(sb);
			goto out;
		}
	}
out:
	finish_round(sb);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sbuf *sb = arg;
	struct iobuf *b;
	ssize_t n;

	(void)what;
	if (sb->closed)
		return;
	if (sb->failed) {
		halt(sb);
		sb->ops->event(sb, SBUF_EV_ERROR, sb->fail_err);
		return;
	}
	if (sb->blocked)
		return;
	if (sb->resuming && !sb->stopped) {
		/* Woken to work through what is buffered; epoll tells us about more. */
		sb->resuming = false;
		if (sb->in != NULL && sb->in->pos < sb->in->end) {
			process(sb);
			return;
		}
	}
	if (sb->in == NULL) {
		sb->in = iobuf_get(SBUF_IOBUF_SIZE);
		if (sb->in == NULL) {
			sb->ops->event(sb, SBUF_EV_ERROR, ENOMEM);
			return;
		}
	}
	b = sb->in;
	if (b->end < b->cap) {
		n = recv(fd, b->data + b->end, b->cap - b->end, 0);
		if (n == 0) {
			sb->ops->event(sb, SBUF_EV_EOF, 0);
			return;
		}
		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				sb->ops->event(sb, SBUF_EV_ERROR, errno);
				return;
			}
		} else {
			b->end += (size_t)n;
		}
	} else if (sb->stopped) {
		/* Paused and full: now really stop until resumed. */
		event_del(&sb->ev_read);
		return;
	}
	if (sb->stopped) {
		if (b->pos == b->end) {
			iobuf_put(b);
			sb->in = NULL;
		}
		return;
	}
	process(sb);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct sbuf *sb = arg;
	struct sbuf_out *q = sb->outq;
	struct sbuf *waiter;

	(void)what;
	if (sb->closed || q == NULL)
		return;
	if (sb->failed) {
		event_del(q->ev_write);
		sb->ops->event(sb, SBUF_EV_ERROR, sb->fail_err);
		return;
	}
	while (q->pos < q->len) {
		ssize_t n = send(fd, q->buf + q->pos, q->len - q->pos, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			event_del(q->ev_write);
			sb->failed = true;
			sb->ops->event(sb, SBUF_EV_ERROR, errno);
			return;
		}
		q->pos += (size_t)n;
	}
	out_free(sb);
	waiter = sb->waiter;
	if (waiter != NULL) {
		sb->waiter = NULL;
		unblock(waiter);
	}
}

bool sbuf_init(struct sbuf *sb, struct event_base *base, int fd, const struct sbuf_ops *ops,
               void *owner)
{
	memset(sb, 0, sizeof(*sb));
	sb->fd = fd;
	sb->max_len = PROTO_MAX_MSG_LEN;
	sb->ops = ops;
	sb->owner = owner;
	if (event_assign(&sb->ev_read, base, fd, EV_READ | EV_PERSIST, on_read, sb) == -1)
		return false;
	return event_add(&sb->ev_read, NULL) == 0;
}

void sbuf_close(struct sbuf *sb)
{
	if (sb->closed)
		return;
	sb->closed = true;
	event_del(&sb->ev_read);

	if (sb->feeder != NULL) {
		sb->feeder->span_start = sb->feeder->span_end = 0;
		sb->feeder = NULL;
	}
	if (sb->waiter != NULL) {
		struct sbuf *w = sb->waiter;

		sb->waiter = NULL;
		unblock(w);
	}
	if (sb->dst != NULL && sb->dst->waiter == sb)
		sb->dst->waiter = NULL;
	if (sb->dst != NULL && sb->dst->feeder == sb)
		sb->dst->feeder = NULL;
	sb->dst = NULL;
	if (sb->fd >= 0) {
		uint8_t scratch[4096];
		int i;

		/* A last try at queued bytes, then, when our last message matters
		 * (a FATAL error), read what the peer sent: closing with unread
		 * input makes the kernel send RST, and the peer may lose it. */
		if (sb->outq != NULL && sb->outq->len > sb->outq->pos)
			(void)!send(sb->fd, sb->outq->buf + sb->outq->pos,
			            sb->outq->len - sb->outq->pos, MSG_NOSIGNAL);
		for (i = 0; sb->linger && i < 16 && recv(sb->fd, scratch, sizeof(scratch), 0) > 0;
		     i++)
			;
		close(sb->fd);
	}
	sb->fd = -1;
	iobuf_put(sb->in);
	sb->in = NULL;
	out_free(sb);
}
