#!/usr/bin/env bash
# Streaming benchmark: N concurrent streams of C chunks each, through nginx
# and the worker, then the same streams straight from the emulator. Prints
# the load client's figures and the worker's peak RSS (VmHWM).
#
# usage: bench/stream.sh [STREAMS [CHUNKS]]     (default 1000 streams, 200 chunks)
#
# Builds the load client into build/bench/, starts a throwaway PostgreSQL
# cluster and a stack like the tests do, and stops everything on exit. Each
# run of the load client is bounded to 120 s.
set -euo pipefail

streams=${1:-1000}
chunks=${2:-200}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

mkdir -p build/bench
cc -O2 -Wall -Wextra -Werror -o build/bench/stream_load bench/stream_load.c \
    $(pkg-config --cflags --libs libevent)

# every stream uses a socket in the client, in nginx and in the worker
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n "$(ulimit -Hn)"

. scripts/pg.sh
pgdir=build/bench/pg
pg_stop "$pgdir"
rm -rf "$pgdir"
trap 'pg_stop "$pgdir"' EXIT
CHATGATE_TEST_PGHOST=$(pg_start "$pgdir")
export CHATGATE_TEST_PGHOST CHATGATE_BUILD=$repo/build

timeout 600 perl -I t/lib bench/stream.pl "$streams" "$chunks"
