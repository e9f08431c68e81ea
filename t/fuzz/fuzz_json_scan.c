/*
 * A differential fuzzer of cg_json_scan() against the reference of
 * t/unit/test_json_scan.c (yajl_parse() with comments, then the checks of
 * json.c): the verdict, the callback log and whether each string is passed
 * as a pointer into the text must agree. The input is the JSON text, in a
 * buffer of exactly its length, so ASan reports a read past its end.
 *
 * It is not part of make test. Build it with libFuzzer (Debian's clang and
 * libclang-rt-14-dev) from the top of the repository:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iworker -It/unit \
 *       t/fuzz/fuzz_json_scan.c worker/json_scan.c worker/json.c \
 *       $(pkg-config --cflags --libs yajl) -o build/fuzz_json_scan
 *
 * and run it for a bounded time on a corpus folder, seeded from t/fuzz/seeds:
 *
 *   mkdir -p build/fuzz-corpus
 *   timeout 660 build/fuzz_json_scan -max_total_time=600 -max_len=16384 \
 *       -dict=t/fuzz/json.dict build/fuzz-corpus t/fuzz/seeds
 *
 * A disagreement prints the text as hex (the first 200 bytes) and aborts,
 * and libFuzzer writes the whole input to a crash-* file.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "json_scan_reference.h"


static record_t  stopped;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char  *text = (const char *) data;
    int          accepted, rc, stop_after;

    if (!agrees(text, size, &accepted)) {
        fflush(stdout);
        abort();
    }

    /*
     * A callback that returns 0 must stop the read at once, also when a
     * decoded string went to malloc(). The input picks the callback.
     */
    stop_after = size > 0 ? data[size - 1] % 32 : 0;

    record_init(&stopped, text, size, stop_after);
    rc = cg_json_scan(text, size, &callbacks, &stopped);

    if (rc == 0 && stopped.calls > stop_after) {
        abort();
    }

    if (rc != 0 && accepted && stopped.calls != stop_after + 1) {
        abort();
    }

    return 0;
}
