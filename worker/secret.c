#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "secret.h"

static int  cg_secret_mlock_warned;

static size_t
cg_secret_mapping_size(size_t size)
{
    size_t  page;

    page = (size_t) sysconf(_SC_PAGESIZE);

    if (size == 0) {
        size = 1;
    }

    return (size + page - 1) / page * page;
}

void *
cg_secret_alloc(size_t size)
{
    void    *p;
    size_t   mapped;

    if (size > SIZE_MAX / 2) {
        return NULL;
    }

    mapped = cg_secret_mapping_size(size);

    p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        cg_log_error(NULL, "secret memory: mmap of %zu bytes failed: %s",
                     mapped, strerror(errno));
        return NULL;
    }

    if (mlock(p, mapped) != 0 && !cg_secret_mlock_warned) {
        cg_secret_mlock_warned = 1;
        cg_log_warn(NULL, "secret memory: mlock failed: %s; secrets may be "
                    "swapped to disk, raise RLIMIT_MEMLOCK (ulimit -l) to "
                    "lock them", strerror(errno));
    }

    /* Only fails on kernels older than 3.4; the mapping is still usable. */
    (void) madvise(p, mapped, MADV_DONTDUMP);

    return p;
}

void
cg_secret_free(void *p, size_t size)
{
    size_t  mapped;

    if (p == NULL) {
        return;
    }

    mapped = cg_secret_mapping_size(size);

    OPENSSL_cleanse(p, mapped);
    (void) munlock(p, mapped);
    (void) munmap(p, mapped);
}

char *
cg_secret_strndup(const char *s, size_t len)
{
    char  *copy;

    if (len == SIZE_MAX) {
        return NULL;
    }

    copy = cg_secret_alloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }

    memcpy(copy, s, len);
    copy[len] = '\0';

    return copy;
}

int
cg_secret_disable_core_dumps(void)
{
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
