/* janitor: the periodic timer -- login timeouts, pool maintenance. */
#ifndef PGL_JANITOR_H
#define PGL_JANITOR_H

#include <stdbool.h>

/* Start the once-a-second timer on rt.base.  False on failure. */
bool janitor_start(void) __attribute__((warn_unused_result));
/* Stop it. */
void janitor_stop(void);

#endif
