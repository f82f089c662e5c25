/*
 * sbuf: one stream buffer per socket.
 *
 * Incoming bytes land in an input buffer that is lent from a free list only
 * while data is pending and given back as soon as it is consumed, so an idle
 * connection holds no I/O buffer.  For each message the owner's pkt callback
 * sees the header (and as much of the body as has arrived) and answers what
 * to do with the whole message:
 *
 *   SBUF_FORWARD    stream it to the destination sbuf (sbuf_set_dst), body
 *                   bytes passed on as they arrive, never copied when the
 *                   destination can take them at once;
 *   SBUF_SKIP       drop it, also streaming;
 *   SBUF_NEED_FULL  call again once the whole message is buffered (the
 *                   buffer grows for large messages up to SBUF_MAX_FULL);
 *   SBUF_CONSUMED   the callback handled the complete message;
 *   SBUF_STOP       leave this message unread and stop reading until the
 *                   owner calls sbuf_resume().
 *
 * Forwarded messages that follow each other are batched into one send.
 * Output that the destination cannot take now is queued; when the queue is
 * over SBUF_HIGH_WATER the source stops reading until it drains
 * (backpressure).  Errors never free anything from inside the callback chain:
 * the owner's event callback is told and the owner frees at a safe point.
 */
#ifndef PGL_SBUF_H
#define PGL_SBUF_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define SBUF_IOBUF_SIZE (16 * 1024)
#define SBUF_HIGH_WATER (64 * 1024)
#define SBUF_MAX_FULL   (16 * 1024 * 1024)

struct sbuf;
struct iobuf;

enum sbuf_action { SBUF_FORWARD, SBUF_SKIP, SBUF_NEED_FULL, SBUF_CONSUMED, SBUF_STOP };

enum sbuf_event {
	SBUF_EV_EOF,   /* peer closed */
	SBUF_EV_ERROR, /* read or write failed; err holds errno */
	SBUF_EV_PROTO, /* a header with an invalid length; err holds the length */
	SBUF_EV_TOOBIG /* NEED_FULL for a message larger than SBUF_MAX_FULL */
};

/* Message callback.  DATA points at the message's first byte (type byte),
 * AVAIL bytes of its HDR->len are buffered (all of them after NEED_FULL). */
typedef enum sbuf_action (*sbuf_pkt_fn)(struct sbuf *sb, const struct pkt_hdr *hdr,
                                        const uint8_t *data, size_t avail);
/* Event callback: the owner decides whether to close. */
typedef void (*sbuf_event_fn)(struct sbuf *sb, enum sbuf_event ev, long err);

/* The owner's callbacks (one static table per kind of connection). */
struct sbuf_ops {
	sbuf_pkt_fn pkt;
	sbuf_event_fn event;
};

struct sbuf_out;

struct sbuf {
	int fd;
	int fail_err;
	uint32_t max_len; /* largest acceptable message */

	/* set by the pkt callback: NEED_FULL waits for only WANT bytes (0: all);
	 * FORWARD first drops FWD_SKIP bytes (a prefix it rewrote itself) */
	uint32_t want;
	uint32_t fwd_skip;

	/* message in progress */
	uint32_t pkt_left;
	uint32_t cur_pos; /* start of the message the callback is looking at */
	/* forwarded span not yet handed to dst: [span_start, span_end) of in */
	uint32_t span_start, span_end;
	uint8_t pkt_action; /* enum sbuf_action of the message in progress */

	bool startup; /* parse headers without a type byte (startup phase) */
	bool stopped; /* owner returned SBUF_STOP or paused */
	bool blocked; /* waiting for dst's queue to drain */
	bool failed;  /* a write failed; the owner will be told */
	bool closed;
	bool resuming; /* woken by sbuf_resume(): process the buffer first */
	bool linger;   /* at close, read what the peer sent so our last bytes arrive */

	const struct sbuf_ops *ops;
	void *owner;

	struct event ev_read;
	struct iobuf *in;
	struct sbuf_out *outq; /* queued output, or NULL */

	struct sbuf *dst;    /* where SBUF_FORWARD goes */
	struct sbuf *waiter; /* a source blocked on our queue */
	struct sbuf *feeder; /* a source with a pending forwarded span for us */
};

/* Set up SB on FD (non-blocking) with the owner's callbacks and start reading. */
bool sbuf_init(struct sbuf *sb, struct event_base *base, int fd, const struct sbuf_ops *ops,
               void *owner) __attribute__((warn_unused_result));
/* Stop events, close the socket, give buffers back.  Safe to call twice. */
void sbuf_close(struct sbuf *sb);
/* Where SBUF_FORWARD sends (NULL: nowhere).  Flushes what was forwarded to the old one. */
void sbuf_set_dst(struct sbuf *sb, struct sbuf *dst);
/* Send bytes pglease built; queued if the socket is busy.  False when SB has failed. */
bool sbuf_write(struct sbuf *sb, const void *data, size_t len);
/* Forward the complete message the callback is looking at to dst now (the
 * callback then returns SBUF_CONSUMED); lets it act after forwarding. */
void sbuf_forward_current(struct sbuf *sb, size_t len);
/* Read once before waiting for epoll (a new client has usually sent already). */
void sbuf_read_soon(struct sbuf *sb);
/* Stop reading (keeps what is buffered). */
void sbuf_pause(struct sbuf *sb);
/* Read again and process what is buffered, from the event loop (never re-entrant). */
void sbuf_resume(struct sbuf *sb);
/* True while a message is being forwarded to dst and not all of it has
 * arrived: dst holds a partial message, and must not be given anyone else. */
bool sbuf_mid_forward(const struct sbuf *sb);
/* Bytes queued for sending. */
size_t sbuf_pending_out(const struct sbuf *sb);
/* Bytes received and not yet processed. */
size_t sbuf_pending_in(const struct sbuf *sb);
/* Free the iobuf cache (at exit). */
void sbuf_cleanup(void);

#endif
