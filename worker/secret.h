#ifndef CG_SECRET_H
#define CG_SECRET_H

#include <stddef.h>

/*
 * Memory for secrets (provider keys, the KMS key, signing keys).
 *
 * Each allocation is its own anonymous mapping, rounded up to whole pages, so
 * no other data shares its pages. The pages are locked against swapping where
 * RLIMIT_MEMLOCK allows (a failure is logged once at warn and the allocation
 * goes on unlocked), are left out of core dumps (MADV_DONTDUMP), and are wiped
 * with OPENSSL_cleanse before they are unmapped.
 */

/*
 * Allocates size bytes of zeroed secret memory, page-aligned. size 0 is
 * treated as 1. Returns NULL if the mapping fails. Free with cg_secret_free()
 * and the same size.
 */
void *cg_secret_alloc(size_t size);

/* Wipes, unlocks and unmaps memory from cg_secret_alloc(size). NULL is a no-op. */
void cg_secret_free(void *p, size_t size);

/*
 * Copies len bytes into new secret memory and appends a NUL, so the copy is
 * len + 1 bytes long: free it with cg_secret_free(copy, len + 1).
 */
char *cg_secret_strndup(const char *s, size_t len);

/*
 * Marks the process not dumpable (PR_SET_DUMPABLE 0): no core file, and no
 * ptrace attach or /proc/PID/mem read by other processes of the same user.
 * Returns 0, or -1 with errno set.
 */
int cg_secret_disable_core_dumps(void);

#endif
