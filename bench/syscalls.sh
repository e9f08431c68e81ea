#!/usr/bin/env bash
# Counts what one request costs each gateway process in the kernel: system
# calls by kind, epoll_wait calls and context switches. perf's software
# tracepoints count them while wrk loads the case. Like the instruction counts of
# bench/callgrind.sh, these counts move far less with the load of a shared
# machine than requests/s or CPU time do. So they show whether two cases do
# the same work per request, and where a wakeup comes from.
#
# Cases (from bench/lib/cases.sh, one nginx worker process each): bare nginx
# proxy_pass, nginx's limit_req, the chatgate module alone, and the full path,
# whose nginx and chatgate worker are counted apart. All of them proxy to the
# provider emulator on 127.0.0.1.
#
# Every case runs SC_RUNS times at each connection count, interleaved
# (A B C D A B C D ...). For each run the script attaches one `perf stat` to
# the case's nginx worker and one to the chatgate worker, runs wrk for
# SC_SECONDS, stops perf, and divides each count by the requests wrk
# completed. The report quotes the median of the runs.
#
# Settings (environment):
#   SC_SECONDS   length of one wrk run, seconds (default 5)
#   SC_RUNS      runs per case and connection count (default 3)
#   SC_CONNS     wrk connection counts (default "1 32")
#   SC_CASES     cases (default "nginx limit_req module full")
#   BUILD        build folder with the binaries (default build)
#
# Writes bench/results/syscalls-<UTC date>-<commit>.md. Needs perf (Debian
# package linux-perf) and permission to read tracepoints: root, or
# kernel.perf_event_paranoid at -1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "syscalls: build folder $BUILD not found, run make" >&2; exit 1; }

SC_SECONDS=${SC_SECONDS:-5}
SC_RUNS=${SC_RUNS:-3}
SC_CONNS=${SC_CONNS:-"1 32"}
SC_CASES=${SC_CASES:-"nginx limit_req module full"}

# The helpers of bench/run.sh: process tracking, nginx configurations,
# PostgreSQL, the worker and the emulator.
BENCH_CLEANUP_DIRS=()
BENCH_EMULATOR=emulator
BENCH_EMU_THREADS=1
BENCH_WORKERS=1
BENCH_CONNS=$SC_CONNS
BENCH_GROWTH_CASES=""
BENCH_RUN_DIR=$(mktemp -d /tmp/chatgate-sc.XXXXXX)
chmod 755 "$BENCH_RUN_DIR"
. "$REPO/bench/lib/common.sh"
. "$REPO/bench/lib/servers.sh"
. "$REPO/bench/lib/cases.sh"

sc_cleanup() {
    local d
    bench_stop_all
    for d in "${BENCH_CLEANUP_DIRS[@]}"; do
        rm -rf "$d"
    done
    rm -rf "$BENCH_RUN_DIR"
}
trap sc_cleanup EXIT
trap 'exit 130' INT TERM

bench_check_numbers SC_SECONDS "$SC_SECONDS" 1 600
bench_check_numbers SC_RUNS "$SC_RUNS" 1 100
bench_check_numbers SC_CONNS "$SC_CONNS" 1 1024
for c in $SC_CASES; do
    case $c in
        nginx|limit_req|module|full) ;;
        *) bench_die "invalid case \"$c\" in SC_CASES: expected some of nginx limit_req module full" ;;
    esac
done

for cmd in perf wrk curl; do
    command -v "$cmd" >/dev/null || bench_die "$cmd not found: install it (perf is in Debian's linux-perf)"
done

# The tracepoints counted. raw_syscalls counts every system call, so the
# report's "other" column is what the named kinds leave (for nginx, mostly the
# getsockopt(SO_ERROR) with which it tests a kept upstream connection).
SC_EVENTS="raw_syscalls:sys_enter,sched:sched_switch"
SC_EVENTS+=",syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_poll"
for s in read readv recvfrom recvmsg write writev sendto sendmsg sendfile64; do
    SC_EVENTS+=",syscalls:sys_enter_$s"
done
perf stat -x, -e "$SC_EVENTS" -o /dev/null -- true 2>"$BENCH_RUN_DIR/perf-check.log" ||
    bench_die "perf stat cannot count tracepoints: $(head -n 3 "$BENCH_RUN_DIR/perf-check.log" | tr '\n' ' ')(run as root, or set kernel.perf_event_paranoid to -1)"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BENCH_BODY=$BENCH_RUN_DIR/chat.json
BENCH_AUTH="Authorization: Bearer bench-not-a-real-key"
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from the chatgate benchmark"}]}' \
    >"$BENCH_BODY"

bench_start_emulator || bench_die "the emulator did not start: $BENCH_SKIP_REASON"
bench_log "emulator on 127.0.0.1:$EMU_PORT, pid $EMU_PID"
for c in $SC_CASES; do
    BENCH_SKIP_REASON=""
    "bench_case_$c"
done
[ "${#BENCH_INSTANCES[@]}" -gt 0 ] || bench_die "no case could start"

# One line per process and run: case, connections, process, run, requests/s,
# then per request: syscalls epoll_wait epoll_ctl poll reads writes other
# switches cpu_us.
SC_ROWS=$BENCH_RUN_DIR/rows.txt
: >"$SC_ROWS"

# Prints "name count" for each event in perf's CSV output $1.
sc_counts() {
    awk -F, '$1 ~ /^[0-9]+$/ { print $3, $1 }' "$1"
}

# Appends the row of process $2 from perf output $3, with CPU ticks $4 over
# the run, for instance $1's run $5 at $6 connections, in which wrk completed
# $7 requests in $8 microseconds.
sc_row() {
    local id=$1 label=$2 out=$3 ticks=$4 run=$5 conns=$6 requests=$7 duration=$8

    sc_counts "$out" | awk -v id="${INST_CASE[$id]}" -v label="$label" -v run="$run" \
        -v conns="$conns" -v r="$requests" -v us="$duration" -v ticks="$ticks" \
        -v hz="$(getconf CLK_TCK)" '
        { n[$1] = $2 }
        END {
            reads = n["syscalls:sys_enter_read"] + n["syscalls:sys_enter_readv"] \
                  + n["syscalls:sys_enter_recvfrom"] + n["syscalls:sys_enter_recvmsg"]
            writes = n["syscalls:sys_enter_write"] + n["syscalls:sys_enter_writev"] \
                   + n["syscalls:sys_enter_sendto"] + n["syscalls:sys_enter_sendmsg"] \
                   + n["syscalls:sys_enter_sendfile64"]
            all = n["raw_syscalls:sys_enter"]
            ew = n["syscalls:sys_enter_epoll_wait"]; ec = n["syscalls:sys_enter_epoll_ctl"]
            pl = n["syscalls:sys_enter_poll"]
            other = all - reads - writes - ew - ec - pl
            printf "%s %s %s %s %.0f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.1f\n",
                id, conns, label, run, r * 1e6 / us, all / r, ew / r, ec / r, pl / r, reads / r,
                writes / r, other / r, n["sched:sched_switch"] / r, ticks * 1e6 / hz / r
        }' >>"$SC_ROWS"
}

# Runs instance $1 at $2 connections (run $3) under perf and adds its rows.
sc_measure() {
    local id=$1 conns=$2 run=$3
    local master nginx_pid worker_pid= perf_nginx perf_worker result requests duration
    local nginx0 worker0 nginx1 worker1

    master=${INST_GW[$id]%% *}
    master=${master#nginx:}
    nginx_pid=$(bench_children "$master" | head -n 1)
    [ -n "$nginx_pid" ] || bench_die "$id: no nginx worker process under master $master"
    if [[ "${INST_GW[$id]}" == *pid:* ]]; then
        worker_pid=${INST_GW[$id]##*pid:}
    fi

    perf stat -x, -e "$SC_EVENTS" -p "$nginx_pid" -o "$BENCH_RUN_DIR/perf.nginx" &
    perf_nginx=$!
    if [ -n "$worker_pid" ]; then
        perf stat -x, -e "$SC_EVENTS" -p "$worker_pid" -o "$BENCH_RUN_DIR/perf.worker" &
        perf_worker=$!
    fi
    # Let perf attach before the load starts, so that it counts every request.
    sleep 0.3

    nginx0=$(bench_cpu_ticks "$nginx_pid")
    [ -z "$worker_pid" ] || worker0=$(bench_cpu_ticks "$worker_pid")
    result=$(BENCH_BODY_FILE=${INST_BODY[$id]} BENCH_HEADERS=${INST_HEADERS[$id]} \
        timeout -k 5 $((SC_SECONDS + 30)) \
            wrk -t1 -c"$conns" -d"${SC_SECONDS}s" --timeout 10s \
                -s "$REPO/bench/wrk/chat.lua" "${INST_URL[$id]}" 2>&1 |
            grep '^BENCH_RESULT' || true)
    nginx1=$(bench_cpu_ticks "$nginx_pid")
    [ -z "$worker_pid" ] || worker1=$(bench_cpu_ticks "$worker_pid")

    kill -INT "$perf_nginx"
    wait "$perf_nginx" || true
    if [ -n "$worker_pid" ]; then
        kill -INT "$perf_worker"
        wait "$perf_worker" || true
    fi

    requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
    duration=$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$result")
    if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ -z "$duration" ]; then
        bench_die "$id at $conns connections: wrk printed no result"
    fi
    if ! grep -q 'err_status=0 ' <<<"$result"; then
        bench_die "$id at $conns connections: responses other than 2xx ($result)"
    fi

    sc_row "$id" nginx "$BENCH_RUN_DIR/perf.nginx" $((nginx1 - nginx0)) \
        "$run" "$conns" "$requests" "$duration"
    if [ -n "$worker_pid" ]; then
        sc_row "$id" worker "$BENCH_RUN_DIR/perf.worker" $((worker1 - worker0)) \
            "$run" "$conns" "$requests" "$duration"
    fi
    bench_log "$id, $conns connections, run $run: $requests requests"
}

for run in $(seq 1 "$SC_RUNS"); do
    for conns in $SC_CONNS; do
        for id in "${BENCH_INSTANCES[@]}"; do
            sc_measure "$id" "$conns" "$run"
        done
    done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if git status --porcelain --untracked-files=no -- . ':!bench/results' 2>/dev/null | grep -q .; then
    commit_note="$commit (with uncommitted changes)"
else
    commit_note=$commit
fi
out=$REPO/bench/results/syscalls-$(date -u +%Y-%m-%d)-$commit.md
mkdir -p "$REPO/bench/results"

{
    echo "# System calls and wakeups per request ($(date -u +%Y-%m-%d))"
    echo
    echo "- commit $commit_note, $(nproc) CPUs: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "- kernel $(uname -r), $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //'), $(perf --version)"
    echo "- \`SC_SECONDS=$SC_SECONDS SC_RUNS=$SC_RUNS SC_CONNS=\"$SC_CONNS\" bench/syscalls.sh\`:" \
         "wrk -t1 for $SC_SECONDS s per run, one nginx worker process per case;" \
         "each figure is the median of $SC_RUNS runs, per completed request"
    echo
    echo "reads: read, readv, recvfrom, recvmsg. writes: write, writev, sendto, sendmsg, sendfile."
    echo "other: every other system call (in nginx, mostly getsockopt on the upstream connection)."
    echo "cpu_us: the process's user and system CPU time"
    echo "from /proc, which moves with the machine's load as the counts do not."
    echo
    echo "| case | conns | process | requests/s | syscalls | epoll_wait | epoll_ctl | poll | reads | writes | other | switches | cpu_us |"
    echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for conns in $SC_CONNS; do
        for id in "${BENCH_INSTANCES[@]}"; do
            for label in nginx worker; do
                awk -v c="${INST_CASE[$id]}" -v n="$conns" -v l="$label" '
                    function median(list,    a, m, i, j, t) {
                        m = split(list, a, " ")
                        for (i = 2; i <= m; i++)
                            for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
                                t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
                            }
                        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
                    }
                    $1 == c && $2 == n && $3 == l {
                        rows++
                        rps = rps " " $5
                        for (k = 6; k <= 14; k++) v[k] = v[k] " " $k
                    }
                    END {
                        if (!rows) exit
                        printf "| %s | %s | %s | %.0f", c, n, l, median(rps)
                        for (k = 6; k <= 13; k++) printf " | %.3f", median(v[k])
                        printf " | %.1f |\n", median(v[14])
                    }' "$SC_ROWS"
            done
        done
    done
} >"$out"

cat "$out"
bench_log "wrote ${out#$REPO/}"
