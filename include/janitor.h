/* janitor: the periodic timer -- login timeouts, pool maintenance. */
#ifndef PGL_JANITOR_H
#define PGL_JANITOR_H

#include <stdbool.h>
#include <stdint.h>

/* Start the once-a-second timer on rt.base.  False on failure. */
bool janitor_start(void) __attribute__((warn_unused_result));
/* One round of upkeep as of NOW (monotonic usec); the timer calls it every
 * second, tests call it directly. */
void janitor_tick(uint64_t now);
/* Stop it. */
void janitor_stop(void);

#endif
