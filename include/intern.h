/*
 * intern: shared, reference-counted copies of short strings (user and
 * database names, session parameter values).  Thousands of clients of one
 * application send the same few strings; each is stored once, and a client
 * holds 16-bit ids or pointers to it.
 */
#ifndef PGL_INTERN_H
#define PGL_INTERN_H

#include <stdint.h>

/* Id 0 stands for "no string". */
#define INTERN_NONE 0

/* Take a reference to the shared copy of S; 0 on out-of-memory (or when
 * 65,535 distinct strings are live). */
uint16_t intern_id(const char *s);
/* The string of ID (NULL for INTERN_NONE). */
const char *intern_str(uint16_t id);
/* Drop a reference taken by intern_id() or intern_dup(). */
void intern_put_id(uint16_t id);
/* Pointer flavour: a shared copy of S (NULL on failure) ... */
const char *intern_dup(const char *s);
/* ... and its release (NULL is fine). */
void intern_free(const char *s);
/* Live distinct strings (tests). */
unsigned intern_count(void);

#endif
