/* cancel: fire-and-forget CancelRequest connections to PostgreSQL. */
#ifndef PGL_CANCEL_H
#define PGL_CANCEL_H

#include <stdint.h>
#include <sys/socket.h>

/* Connect to ADDR and send a CancelRequest carrying the backend's KEY (pid
 * and secret).  Asynchronous; failures are logged, never reported back. */
void cancel_send(const struct sockaddr_storage *addr, socklen_t len, const uint8_t key[8]);
/* Abandon cancel requests still in flight (shutdown). */
void cancel_shutdown(void);

#endif
