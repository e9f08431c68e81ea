# chatgate: the nginx module, the worker, the provider emulator and their tests.
#
#   make          build everything into build/ (SAN=1: into build/san/ with ASan and UBSan)
#   make deps     install the Debian packages the build and the tests need, if missing
#   make test     unit tests, then the integration tests on real nginx and PostgreSQL
#   make test-sanitize  the same with every part built by make SAN=1 (see docs/testing.md)
#   make demo     start a local stack under var/ and send one chat through it
#   make stop     stop what make demo started
#   make bench    run the benchmarks in bench/

NGX_SRC     ?= /usr/share/nginx/src
BUILD       ?= build
PKGS        := libevent libevent_pthreads libcurl yajl libpq openssl

ifeq ($(SAN),1)
BUILD       := build/san
SANFLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
endif

# Debian's hardening flags, as nginx itself is built: the worker holds
# decrypted provider keys. Sanitizer builds leave out _FORTIFY_SOURCE,
# which hides errors from ASan.
HARDENFLAGS := -fstack-protector-strong -D_FORTIFY_SOURCE=2
HARDENLINK  := -Wl,-z,relro -Wl,-z,now
ifeq ($(SAN),1)
HARDENFLAGS := -fstack-protector-strong
endif

CC          ?= cc
OPTFLAGS    ?= -O2 -g
CFLAGS      := $(OPTFLAGS) $(SANFLAGS) $(HARDENFLAGS) -std=gnu11 -Wall -Wextra \
               -Werror -Wshadow -Wpointer-arith -Wformat=2 -fno-strict-aliasing \
               -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS     := $(SANFLAGS) $(HARDENLINK)
LDLIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

# The worker's allocator. A chat makes a few hundred small allocations in
# libcurl, libevent and yajl; glibc's malloc spends about a quarter of the
# worker's instructions on them, mimalloc under a tenth (docs/performance.md).
# ALLOCATOR=libc links glibc's malloc. Sanitizer builds always use glibc's,
# because ASan must own malloc.
ALLOCATOR   ?= mimalloc
ifeq ($(SAN),1)
ALLOCATOR   := libc
endif
ifeq ($(ALLOCATOR),mimalloc)
WORKER_ALLOC := -lmimalloc
CFLAGS      += -DCG_MIMALLOC
else ifneq ($(ALLOCATOR),libc)
$(error invalid ALLOCATOR "$(ALLOCATOR)": expected mimalloc or libc)
endif

WORKER_SRCS := $(wildcard worker/*.c)
WORKER_OBJS := $(WORKER_SRCS:%.c=$(BUILD)/%.o)
WORKER_LIB  := $(filter-out $(BUILD)/worker/main.o,$(WORKER_OBJS))
EMU_SRCS    := $(wildcard emulator/*.c)
EMU_OBJS    := $(EMU_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS   := $(wildcard t/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:t/unit/%.c=$(BUILD)/t/unit/%)

MODULE      := $(BUILD)/nginx/ngx_http_chatgate_module.so
WORKER      := $(BUILD)/chatgate-worker
EMULATOR    := $(BUILD)/chatgate-emulator

.PHONY: all module worker emulator units deps test test-sanitize demo stop bench clean

all: module worker emulator units

module:
	@scripts/build-module.sh "$(NGX_SRC)" $(BUILD)/nginx "$(strip $(SANFLAGS))"

worker: $(WORKER)
emulator: $(EMULATOR)
units: $(UNIT_BINS)

# The allocator comes first among the libraries, so that its malloc is the
# one that every library of the process binds to.
$(WORKER): $(WORKER_OBJS)
	@echo "link $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(WORKER_ALLOC) $(LDLIBS)

$(EMULATOR): $(EMU_OBJS)
	@echo "link $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/t/unit/%: t/unit/%.c $(wildcard t/unit/*.h) $(WORKER_LIB)
	@mkdir -p $(@D)
	@echo "cc $<"
	@$(CC) $(CFLAGS) -Iworker -o $@ $< $(WORKER_LIB) $(LDFLAGS) $(WORKER_ALLOC) $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard worker/*.h emulator/*.h)
	@mkdir -p $(@D)
	@echo "cc $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

# The migrations' folder for a worker run from this tree; an installed
# worker takes CHATGATE_SQL_DIR.
$(BUILD)/worker/conf.o: CFLAGS += -DCG_SQL_DIR='"$(CURDIR)/sql"'

deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@scripts/test.sh $(BUILD)

test-sanitize: deps
	@$(MAKE) --no-print-directory SAN=1 all
	@scripts/test.sh build/san

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

stop:
	@scripts/stop.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

clean:
	rm -rf build
