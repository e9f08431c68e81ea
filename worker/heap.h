/*
 * Returning freed heap memory to the system after a burst. The worker links
 * mimalloc unless it is built with ALLOCATOR=libc (see the Makefile), and
 * each allocator has its own call for this.
 */

#ifndef CG_HEAP_H
#define CG_HEAP_H

#ifdef CG_MIMALLOC

#include <mimalloc.h>

static inline void
cg_heap_trim(void)
{
    mi_collect(true);
}

#else

#include <malloc.h>

static inline void
cg_heap_trim(void)
{
    malloc_trim(0);
}

#endif

#endif /* CG_HEAP_H */
