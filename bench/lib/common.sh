# Helpers shared by bench/run.sh and its case files: logging, free ports,
# process bookkeeping and the /proc readings (CPU time, peak RSS).
#
# Every process the harness starts is recorded with bench_track_pid and
# stopped by that PID in bench_stop_all, which run.sh calls from its exit trap.

BENCH_TRACKED_PIDS=()

bench_log() {
    printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

bench_die() {
    bench_log "error: $*"
    exit 1
}

# Exits unless every word of setting $1 (value $2) is a whole number from $3
# to $4, before any server starts or any results file is written.
bench_check_numbers() {
    local name=$1 value=$2 min=$3 max=$4 word

    [ -n "${value// /}" ] || bench_die "$name is empty: expected whole numbers from $min to $max"
    for word in $value; do
        [[ $word =~ ^[0-9]{1,9}$ ]] && ((10#$word >= min && 10#$word <= max)) ||
            bench_die "invalid $name \"$value\": expected whole numbers from $min to $max"
    done
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago. The kernel picks
# it (bind to port 0), so two calls rarely collide. A server that loses the
# race fails to start, and the harness reports it.
bench_free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                      Proto => "tcp", Listen => 1, ReuseAddr => 1)
            or die "bind 127.0.0.1:0 failed: $!\n";
        print $s->sockport, "\n";'
}

bench_track_pid() {
    BENCH_TRACKED_PIDS+=("$1")
}

# Forgets PID $1 once the harness has waited for it, so that bench_stop_all
# cannot signal another process that reuses the PID later.
bench_untrack_pid() {
    local pid kept=()

    for pid in "${BENCH_TRACKED_PIDS[@]}"; do
        [ "$pid" = "$1" ] || kept+=("$pid")
    done
    BENCH_TRACKED_PIDS=("${kept[@]}")
}

# Sends SIGTERM to every tracked PID, newest first, waits up to 10 s for each
# to exit, then sends SIGKILL to what is left.
bench_stop_all() {
    local i pid waited

    for ((i = ${#BENCH_TRACKED_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${BENCH_TRACKED_PIDS[i]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            bench_log "pid $pid did not exit 10 s after SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    BENCH_TRACKED_PIDS=()
}

# Waits until the command given as arguments succeeds, for at most $1 seconds.
bench_wait_for() {
    local limit=$1 tries=0
    shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -ge $((limit * 10)) ] && return 1
        sleep 0.1
    done
}

bench_tcp_listening() {
    perl -MIO::Socket::INET -e '
        IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0],
                              Timeout => 1) or exit 1;' "$1"
}

# Prints the PIDs of the direct children of process $1, if any.
bench_children() {
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true
}

# Prints the CPU time (utime + stime, in clock ticks) summed over the PIDs
# given as arguments. A PID that has exited counts as 0.
bench_cpu_ticks() {
    local pid stat total=0 rest
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # The command name in field 2 may contain spaces: cut after its ")".
        rest=${stat##*) }
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# Prints the sum of VmHWM (peak resident set, kB) over the PIDs given.
# Pages shared between an nginx master and its workers count once per process,
# so for nginx this is an upper bound.
bench_peak_rss_kb() {
    local pid kb total=0
    for pid in "$@"; do
        kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# Prints the busy CPU time of the whole machine (all CPUs, clock ticks): the
# user, nice, system and steal columns of /proc/stat. irq and softirq are
# left out because no process is charged for them. On the 2-CPU test VM the
# benchmark's own loopback traffic put 13 to 20 % of both CPUs there at 32
# connections, which would read as other jobs' load.
bench_system_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat
}

# Prints the CPU time (clock ticks) of this shell's waited-for children,
# from bash's "times" builtin.
bench_children_ticks() {
    times | awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
        total = 0
        for (i = 1; i <= 2; i++) {
            split($i, part, "m")
            total += part[1] * 60 + part[2]
        }
        printf "%d\n", total * hz
    }'
}

# Resets the peak RSS (VmHWM) of the PIDs given to their current RSS, so
# that a later bench_peak_rss_kb reports the peak of one run only. Needs
# Linux 4.0 or later; on failure the peak stays the process's lifetime peak.
bench_reset_peak_rss() {
    local pid
    for pid in "$@"; do
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
    done
}
