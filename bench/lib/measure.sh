# Running the load client (wrk, or bench/stream_load for the streaming cases)
# against the registered instances and recording one TSV row per run. A row
# contains throughput, latency percentiles, time to first token for streams,
# and the gateway's CPU time and peak RSS read from /proc around the run.

BENCH_COLUMNS="run case id workers conns keys seconds requests rps p50_ms p99_ms mean_ms ttft_p50_ms ttft_p99_ms events_per_req errors non2xx gw_cpu_us_per_req worker_cpu_us_per_req emu_cpu_us_per_req db_cpu_us_per_req gw_rss_kb worker_rss_kb log_rows other_cpu_pct late note"
CLK_TCK=$(getconf CLK_TCK)
BENCH_FAILED_MEASUREMENTS=0

# Writes the machine description and the settings as "# name<TAB>value"
# lines, then the column names.
bench_write_header() {
    local cpu commit

    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    # The binaries come from $BUILD, which may be another tree's, and the
    # checkout may differ from the commit. bench/results is left out, because
    # the harness writes there itself.
    if git -C "$REPO" status --porcelain --untracked-files=no -- . ':!bench/results' 2>/dev/null |
            grep -q .; then
        commit="$commit (with uncommitted changes)"
    fi
    {
        printf '# date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf '# host\t%s\n' "$host"
        printf '# nproc\t%s\n' "$(nproc)"
        printf '# cpu\t%s\n' "${cpu:-unknown}"
        printf '# kernel\t%s\n' "$(uname -r)"
        printf '# nginx\t%s\n' "$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')"
        printf '# wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')"
        printf '# node\t%s\n' "$(node --version 2>/dev/null || echo none)"
        printf '# postgres\t%s\n' "$("$PG_BIN/postgres" --version 2>/dev/null | awk '{ print $3 }')"
        printf '# commit\t%s\n' "$commit"
        printf '# build\t%s\n' "$BUILD"
        printf '# loadavg\t%s (before the run)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf '# emulator\t%s (%s threads)\n' "$BENCH_EMULATOR" "$BENCH_EMU_THREADS"
        printf '# settings\tBENCH_SECONDS=%s BENCH_RUNS=%s BENCH_CONNS="%s" BENCH_GROWTH_CONNS="%s" BENCH_WORKERS="%s" BENCH_STREAM_RATE=%s\n' \
            "$BENCH_SECONDS" "$BENCH_RUNS" "$BENCH_CONNS" "$BENCH_GROWTH_CONNS" "$BENCH_WORKERS" "$BENCH_STREAM_RATE"
        echo "$BENCH_COLUMNS" | tr ' ' '\t'
    } >"$BENCH_TSV"
}

# Prints the PIDs behind a GW_PIDS list (see bench_add_instance).
bench_resolve_pids() {
    local entry
    for entry in $1; do
        case $entry in
            nginx:*) bench_nginx_pids "${entry#nginx:}" ;;
            pid:*)   echo "${entry#pid:}" ;;
        esac
    done
}

bench_log_rows() {
    bench_psql -d chatgate_bench -c "SELECT count(*) FROM chat_logs" 2>/dev/null || echo -1
}

# Prints the chat_logs row count once the log writer has flushed: two equal
# reads 0.5 s apart, or the last read after 10 s.
bench_log_rows_settled() {
    local prev=-2 now tries=0
    now=$(bench_log_rows)
    while [ "$now" != "$prev" ] && [ "$tries" -lt 20 ]; do
        sleep 0.5
        prev=$now
        now=$(bench_log_rows)
        tries=$((tries + 1))
    done
    echo "$now"
}

# Runs the instance's load client once: instance $1, $2 connections, $3
# seconds. Prints the BENCH_RESULT line of bench/wrk/chat.lua or of
# bench/stream_load, or nothing when the client failed. The client's whole
# output goes to load-client.log, because wrk prints its errors on stdout.
bench_wrk() {
    local id=$1 conns=$2 seconds=$3

    if [ "${INST_CLIENT[$id]}" = stream_load ]; then
        bench_stream_load "$@"
        return
    fi

    BENCH_BODY_FILE=${INST_BODY[$id]} BENCH_HEADERS=${INST_HEADERS[$id]} \
    BENCH_KEYS=${INST_KEYS[$id]} \
        timeout -k 5 $((seconds + 30)) \
        wrk -t1 -c"$conns" -d"${seconds}s" --timeout 10s --latency \
            -s "$REPO/bench/wrk/chat.lua" "${INST_URL[$id]}" \
            2>&1 | tee -a "$BENCH_RUN_DIR/load-client.log" | grep '^BENCH_RESULT' || true
}

# Runs bench/stream_load in its sustained mode with the arguments of
# bench_wrk: every connection sends one streamed chat after another, or with
# INST_RATE set, streams start at that rate on a pool of $2 connections. The
# result line adds the time to first token and the content events received.
bench_stream_load() {
    local id=$1 conns=$2 seconds=$3 pair args=()

    [ "${INST_RATE[$id]:-0}" = 0 ] || args+=(-R "${INST_RATE[$id]}")

    IFS='|' read -ra pairs <<<"${INST_HEADERS[$id]}"
    for pair in "${pairs[@]}"; do
        [ -n "$pair" ] && args+=(-H "$pair")
    done

    timeout -k 5 $((seconds + 40)) \
        "$BENCH_STREAM_LOAD" -c "$conns" -d "$seconds" "${args[@]}" \
            "${INST_URL[$id]}" "${INST_BODY[$id]}" \
            2>&1 | tee -a "$BENCH_RUN_DIR/load-client.log" | grep '^BENCH_RESULT' || true
}

# Prints microseconds of CPU per request from a tick difference.
bench_us_per_req() {
    local ticks=$1 requests=$2
    if [ "$requests" -gt 0 ]; then
        awk -v t="$ticks" -v r="$requests" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t * 1e6 / hz / r }'
    else
        echo -
    fi
}

# Measures instance $1 at $2 connections in run $3 and appends its row.
bench_measure() {
    local id=$1 conns=$2 run=$3
    local gw_pids emu_pids db_pids gw0 emu0 db0 rows0=- rows1 result
    local requests duration p50 p99 mean errors non2xx rps ttft_p50=- ttft_p99=- events=-
    local gw_cpu emu_cpu db_cpu gw_rss worker_rss=- log_rows=-
    local worker_pid= worker0=0 worker_cpu=-
    local wrk0 wrk_cpu busy0 busy other wall0 wall

    gw_pids=$(bench_resolve_pids "${INST_GW[$id]}")
    emu_pids=$(bench_nginx_pids "$EMU_PID")
    db_pids=""
    [ -n "${PG_PID:-}" ] && db_pids=$(bench_nginx_pids "$PG_PID")

    [ "${INST_LOGROWS[$id]}" = 1 ] && rows0=$(bench_log_rows_settled)
    bench_reset_peak_rss $gw_pids
    gw0=$(bench_cpu_ticks $gw_pids)
    # The worker's own share of the gateway's CPU, for the cases that run it.
    [[ "${INST_GW[$id]}" == *"pid:${WORKER_PID:-none}"* ]] && worker_pid=$WORKER_PID
    [ -n "$worker_pid" ] && worker0=$(bench_cpu_ticks "$worker_pid")
    emu0=$(bench_cpu_ticks $emu_pids)
    db0=$(bench_cpu_ticks $db_pids)
    wrk0=$(bench_children_ticks)
    busy0=$(bench_system_busy_ticks)
    wall0=$EPOCHREALTIME

    result=$(bench_wrk "$id" "$conns" "$BENCH_SECONDS")

    # A run can outlast BENCH_SECONDS by up to 30 s, while the load client
    # waits for streams in flight or an open load's backlog.
    wall=$(awk -v a="$wall0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    busy=$(( $(bench_system_busy_ticks) - busy0 ))
    wrk_cpu=$(( $(bench_children_ticks) - wrk0 ))
    gw_cpu=$(( $(bench_cpu_ticks $gw_pids) - gw0 ))
    [ -n "$worker_pid" ] && worker_cpu=$(( $(bench_cpu_ticks "$worker_pid") - worker0 ))
    emu_cpu=$(( $(bench_cpu_ticks $emu_pids) - emu0 ))
    db_cpu=$(( $(bench_cpu_ticks $db_pids) - db0 ))

    # CPU used by processes outside the benchmark (other jobs on the
    # machine), as a share of all CPUs over the run: it flags noisy runs.
    other=$(awk -v b="$busy" -v o="$((gw_cpu + emu_cpu + db_cpu + wrk_cpu))" \
        -v s="$wall" -v n="$(nproc)" -v hz="$CLK_TCK" \
        'BEGIN { v = (b - o) * 100 / (s * n * hz); printf "%.0f", v < 0 ? 0 : v }')

    if [ -z "$result" ]; then
        bench_log "$id c$conns run $run: ${INST_CLIENT[$id]} printed no result, see $BENCH_RUN_DIR/load-client.log"
        BENCH_FAILED_MEASUREMENTS=$((BENCH_FAILED_MEASUREMENTS + 1))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s failed\n' "$run" "${INST_CASE[$id]}" "$id" \
            "${INST_WORKERS[$id]}" "$conns" "${INST_KEYS[$id]}" "$BENCH_SECONDS" \
            "$(printf '\t-%.0s' {1..19})" "${INST_CLIENT[$id]}" >>"$BENCH_TSV"
        return
    fi

    # The result line contains name=number pairs. Anything else is ignored.
    local pair r_requests=0 r_duration_us=1 r_p50_us=0 r_p99_us=0 r_mean_us=0
    local r_max_us=0 r_ttft_p50_us=- r_ttft_p99_us=- r_events=- r_err_connect=0 r_err_read=0 r_err_write=0 r_err_status=0 r_err_timeout=0
    # late: streams of an open load (stream_load -R) sent over 1 ms after
    # they were due; "-" for a closed load.
    local r_late=-
    for pair in ${result#BENCH_RESULT }; do
        [[ "$pair" =~ ^([a-z0-9_]+)=([0-9]+)$ ]] || continue
        printf -v "r_${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"
    done
    requests=$r_requests
    errors=$((r_err_connect + r_err_read + r_err_write + r_err_timeout))
    non2xx=$r_err_status
    rps=$(awk -v n="$requests" -v d="$r_duration_us" 'BEGIN { printf "%.0f", n * 1e6 / d }')
    p50=$(awk -v v="$r_p50_us" 'BEGIN { printf "%.3f", v / 1000 }')
    p99=$(awk -v v="$r_p99_us" 'BEGIN { printf "%.3f", v / 1000 }')
    mean=$(awk -v v="$r_mean_us" 'BEGIN { printf "%.3f", v / 1000 }')
    if [ "$r_ttft_p50_us" != - ]; then
        ttft_p50=$(awk -v v="$r_ttft_p50_us" 'BEGIN { printf "%.3f", v / 1000 }')
        ttft_p99=$(awk -v v="$r_ttft_p99_us" 'BEGIN { printf "%.3f", v / 1000 }')
    fi
    if [ "$r_events" != - ] && [ "$requests" -gt 0 ]; then
        events=$(awk -v e="$r_events" -v n="$requests" 'BEGIN { printf "%.1f", e / n }')
    fi

    gw_rss=-
    [ -n "${INST_GW[$id]}" ] && gw_rss=$(bench_peak_rss_kb $gw_pids)
    [[ "${INST_GW[$id]}" == *"pid:${WORKER_PID:-none}"* ]] && worker_rss=$(bench_peak_rss_kb "$WORKER_PID")

    if [ "$rows0" != - ]; then
        rows1=$(bench_log_rows_settled)
        log_rows=$((rows1 - rows0))
    fi

    printf '%s\n' "$run" "${INST_CASE[$id]}" "$id" "${INST_WORKERS[$id]}" "$conns" \
        "${INST_KEYS[$id]}" "$BENCH_SECONDS" "$requests" "$rps" "$p50" "$p99" "$mean" \
        "$ttft_p50" "$ttft_p99" "$events" "$errors" "$non2xx" \
        "$( [ -n "${INST_GW[$id]}" ] && bench_us_per_req "$gw_cpu" "$requests" || echo -)" \
        "$( [ "$worker_cpu" != - ] && bench_us_per_req "$worker_cpu" "$requests" || echo -)" \
        "$(bench_us_per_req "$emu_cpu" "$requests")" \
        "$( [ -n "$db_pids" ] && [ "${INST_LOGROWS[$id]}" = 1 ] && bench_us_per_req "$db_cpu" "$requests" || echo -)" \
        "$gw_rss" "$worker_rss" "$log_rows" "$other" "$r_late" "${INST_NOTE[$id]:--}" |
        paste -s -d '\t' >>"$BENCH_TSV"

    bench_log "$(printf '%-22s c%-5s run %s: %8s req/s  p50 %8s ms  p99 %8s ms  errors %s  non-2xx %s  other CPU %s%%' \
        "$id" "$conns" "$run" "$rps" "$p50" "$p99" "$errors" "$non2xx" "$other")"
    if [ "$ttft_p50" != - ]; then
        bench_log "$(printf '%-22s c%-5s run %s: TTFT p50 %s ms  p99 %s ms, %s content events per stream' \
            "$id" "$conns" "$run" "$ttft_p50" "$ttft_p99" "$events")"
    fi
}

bench_jobs_per_run() {
    local id n=0 c
    for id in "${BENCH_INSTANCES[@]}"; do
        for c in ${INST_CONNS[$id]}; do
            n=$((n + 1))
        done
    done
    echo "$n"
}

bench_estimate() {
    local jobs
    jobs=$(bench_jobs_per_run)
    bench_log "$jobs measurements per run, $BENCH_RUNS runs of $BENCH_SECONDS s each:" \
        "about $(( (jobs * BENCH_RUNS * (BENCH_SECONDS + 2)) / 60 + 1 )) minutes"
}

# Runs every instance once for BENCH_WARMUP seconds at 32 connections, so
# that the first measured run does not pay for connection pools and JIT.
bench_warmup() {
    local id
    [ "$BENCH_WARMUP" -gt 0 ] || return 0
    for id in "${BENCH_INSTANCES[@]}"; do
        bench_wrk "$id" 32 "$BENCH_WARMUP" >/dev/null
    done
}

# Interleaves the runs: every instance and connection count once per run.
bench_run_all() {
    local run id c
    for ((run = 1; run <= BENCH_RUNS; run++)); do
        for id in "${BENCH_INSTANCES[@]}"; do
            for c in ${INST_CONNS[$id]}; do
                bench_measure "$id" "$c" "$run"
            done
        done
    done
}

# Appends one row per skipped case: run 0, "-" in every column between id
# and note, and the reason in note, where report.pl reads it.
bench_record_skips() {
    local skip name reason dashes
    local columns=($BENCH_COLUMNS)

    dashes=$(printf '\t-%.0s' $(seq 1 $((${#columns[@]} - 4))))
    for skip in "${BENCH_SKIPS[@]}"; do
        name=${skip%%	*}
        reason=${skip#*	}
        printf '0\t%s\t%s%s\tskipped: %s\n' "$name" "$name" "$dashes" \
            "$(echo "$reason" | tr '\t\n' '  ')" >>"$BENCH_TSV"
    done
}
