#!/usr/bin/env bash
# Benchmark chatgate against bare nginx, nginx's limit_req and the Portkey
# gateway, all in front of the same provider emulator, with wrk, and the
# streaming cases with bench/stream_load.
#
# Every case runs BENCH_RUNS times, interleaved (A B C A B C ...), and the
# summary quotes medians with their spread. Servers listen on 127.0.0.1 or
# unix sockets only and are stopped by PID on exit.
#
# Settings (environment):
#   BENCH_SECONDS        length of one wrk or stream_load run, seconds (default 5)
#   BENCH_RUNS           runs per case and connection count (default 3)
#   BENCH_QUICK=1        smoke pass: 1 run of 2 s, no warm-up; its results and
#                        summary stay in build/bench, not bench/results
#   BENCH_CONNS          wrk connection counts for every case (default "1 32")
#   BENCH_GROWTH_CASES   cases also run at BENCH_GROWTH_CONNS (default "nginx full",
#                        empty for none)
#   BENCH_GROWTH_CONNS   growth-curve connection counts (default "1 32 256 1024")
#   BENCH_WORKERS        nginx worker_processes variants (default "1 2")
#   BENCH_KEY_COUNTS     distinct X-Key-Id counts for limit_keys, at most 10000000
#                        (default "1 10000 1000000"). Each count gets its own
#                        nginx with room for all its keys, filled before the runs
#   BENCH_CASES          cases to run (default: all, see bench/lib/cases.sh)
#   BENCH_STREAM_RATE    new streams per second of the open-load streaming cases
#                        (nginx_stream_rate, stream_rate), on a pool of the
#                        largest BENCH_CONNS connections (default 1000)
#   BENCH_EMU_THREADS    emulator threads (default 2, one per CPU of the
#                        recorded machine)
#   BENCH_EMULATOR=standin  use a fixed-answer nginx instead of the emulator
#                        (harness development only; results stay in build/bench)
#   BUILD                build folder with the binaries (default build)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "bench: build folder $BUILD not found, run make" >&2; exit 1; }

BENCH_QUICK=${BENCH_QUICK:-0}
case $BENCH_QUICK in
    0|1) ;;
    *) echo "bench: invalid BENCH_QUICK \"$BENCH_QUICK\": expected 0 or 1" >&2; exit 1 ;;
esac

BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-1}
if [ "$BENCH_QUICK" = 1 ]; then
    BENCH_SECONDS=2
    BENCH_RUNS=1
    BENCH_WARMUP=0
fi
BENCH_CONNS=${BENCH_CONNS:-"1 32"}
BENCH_GROWTH_CASES=${BENCH_GROWTH_CASES-"nginx full"}
BENCH_GROWTH_CONNS=${BENCH_GROWTH_CONNS:-"1 32 256 1024"}
BENCH_WORKERS=${BENCH_WORKERS:-"1 2"}
BENCH_KEY_COUNTS=${BENCH_KEY_COUNTS:-"1 10000 1000000"}
BENCH_CASES=${BENCH_CASES:-"direct nginx limit_req limit_req_headers module limit_keys full nginx_stream stream nginx_stream_rate stream_rate portkey portkey_stream"}
BENCH_STREAM_RATE=${BENCH_STREAM_RATE:-1000}
BENCH_EMU_THREADS=${BENCH_EMU_THREADS:-2}
BENCH_EMULATOR=${BENCH_EMULATOR:-emulator}

BENCH_CLEANUP_DIRS=()

. "$REPO/bench/lib/common.sh"
. "$REPO/bench/lib/servers.sh"
. "$REPO/bench/lib/cases.sh"
. "$REPO/bench/lib/measure.sh"

bench_check_numbers BENCH_SECONDS "$BENCH_SECONDS" 1 3600
bench_check_numbers BENCH_RUNS "$BENCH_RUNS" 1 100
bench_check_numbers BENCH_WARMUP "$BENCH_WARMUP" 0 60
# Each connection through nginx takes two of its worker_connections (8192 in
# bench_nginx_conf): one from the client and one to the upstream.
bench_check_numbers BENCH_CONNS "$BENCH_CONNS" 1 4096
[ -z "${BENCH_GROWTH_CASES// /}" ] ||
    bench_check_numbers BENCH_GROWTH_CONNS "$BENCH_GROWTH_CONNS" 1 4096
bench_check_numbers BENCH_WORKERS "$BENCH_WORKERS" 1 64
# A zone for N keys takes N * 512 bytes of shared memory (bench_key_zone_mb),
# of which the counters use about half.
bench_check_numbers BENCH_KEY_COUNTS "$BENCH_KEY_COUNTS" 1 10000000
bench_check_numbers BENCH_STREAM_RATE "$BENCH_STREAM_RATE" 1 100000
bench_check_numbers BENCH_EMU_THREADS "$BENCH_EMU_THREADS" 1 64
case $BENCH_EMULATOR in
    emulator|standin) ;;
    *) bench_die "invalid BENCH_EMULATOR \"$BENCH_EMULATOR\": expected emulator or standin" ;;
esac
for c in $BENCH_CASES; do
    declare -F "bench_case_$c" >/dev/null ||
        bench_die "unknown case \"$c\" in BENCH_CASES: expected some of $(declare -F |
            sed -n 's/^declare -f bench_case_//p' | tr '\n' ' ')"
done

# wrk is the one tool only the benchmark needs, so make deps does not
# install it.
if ! command -v wrk >/dev/null; then
    bench_log "installing wrk from Debian"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null ||
        bench_die "apt-get install wrk failed; install wrk and run again"
fi

for cmd in wrk curl perl ps cc pkg-config; do
    command -v "$cmd" >/dev/null || bench_die "$cmd not found; run make deps"
done

# The streaming cases' load client: wrk's response callback runs only once a
# whole response is in, so it cannot time the first event of a stream.
BENCH_STREAM_LOAD=$BUILD/bench/stream_load
mkdir -p "$BUILD/bench"
cc -O2 -Wall -Wextra -Werror -o "$BENCH_STREAM_LOAD" "$REPO/bench/stream_load.c" \
    $(pkg-config --cflags --libs libevent) ||
    bench_die "building $BENCH_STREAM_LOAD failed"

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
host=$(hostname -s)
BENCH_RUN_DIR=$BUILD/bench/run-$stamp
rm -rf "$BENCH_RUN_DIR"
mkdir -p "$BENCH_RUN_DIR"

# A stand-in or a quick smoke run is not a record: keep it out of
# bench/results, so that it does not replace latest.md.
if [ "$BENCH_EMULATOR" = standin ] || [ "$BENCH_QUICK" = 1 ]; then
    results_dir=$BENCH_RUN_DIR
else
    results_dir=$REPO/bench/results
fi
mkdir -p "$results_dir"
BENCH_TSV=$results_dir/$stamp-$host.tsv
BENCH_MD=$results_dir/latest.md

bench_cleanup() {
    local d
    bench_stop_all
    for d in "${BENCH_CLEANUP_DIRS[@]}"; do
        rm -rf "$d"
    done
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# 1024 wrk connections through nginx need about 2100 descriptors per side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BENCH_BODY=$BENCH_RUN_DIR/chat.json
BENCH_STREAM_BODY=$BENCH_RUN_DIR/chat-stream.json
BENCH_AUTH="Authorization: Bearer bench-not-a-real-key"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from the chatgate benchmark"}]}' \
    >"$BENCH_BODY"
printf '%s' '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"[emu words=200 chunks=200] stream a long answer"}]}' \
    >"$BENCH_STREAM_BODY"

bench_write_header

if [ "$BENCH_EMULATOR" = standin ]; then
    bench_start_standin_emulator || bench_die "stand-in emulator: $BENCH_SKIP_REASON"
    bench_log "stand-in emulator on 127.0.0.1:$EMU_PORT (not for recorded results)"
else
    bench_start_emulator || bench_die "the benchmark needs the emulator: $BENCH_SKIP_REASON"
    bench_log "emulator on 127.0.0.1:$EMU_PORT, pid $EMU_PID"
fi

for c in $BENCH_CASES; do
    BENCH_SKIP_REASON=""
    "bench_case_$c"
done

[ "${#BENCH_INSTANCES[@]}" -gt 0 ] || bench_die "no case could start"

bench_estimate
bench_warmup
bench_run_all
bench_check_key_zones
bench_record_skips
printf '# loadavg_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$BENCH_TSV"

perl "$REPO/bench/report.pl" "$BENCH_TSV" | tee "$BENCH_MD"
bench_log "results: $BENCH_TSV, summary: $BENCH_MD, logs: $BENCH_RUN_DIR"
[ "$BENCH_FAILED_MEASUREMENTS" -eq 0 ] ||
    bench_die "$BENCH_FAILED_MEASUREMENTS measurements printed no result, see $BENCH_RUN_DIR/load-client.log"
[ "$BENCH_FAILED_CHECKS" -eq 0 ] ||
    bench_die "$BENCH_FAILED_CHECKS limit_keys checks failed (a zone fill, or key counters lost or evicted during the runs), see the log above"
