#ifndef BUILDSET_CLINUX_SHIM_H
#define BUILDSET_CLINUX_SHIM_H

/* Glibc's Swift module is built without _GNU_SOURCE, so the Linux-only open
   flags it guards are not visible to Swift; this header defines it for itself. */
#define _GNU_SOURCE 1
#include <fcntl.h>

/* The flag that makes a file's reads and writes bypass the page cache. */
static inline int buildset_o_direct(void) { return O_DIRECT; }

#endif
