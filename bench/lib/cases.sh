# The benchmark cases. Each bench_case_<name> starts what its case needs and
# registers one or more instances with bench_add_instance; a case whose parts
# are missing registers a skip with the reason instead. run.sh then measures
# every instance in turn, run after run.
#
# To add a case: write bench_case_<name> and add <name> to BENCH_CASES.
# A case function returns 0 after registering a skip: run.sh runs under
# set -e, so a nonzero status would end the whole benchmark without a message.

declare -A INST_CASE INST_WORKERS INST_URL INST_HEADERS INST_BODY INST_KEYS
declare -A INST_GW INST_CONNS INST_LOGROWS INST_NOTE INST_CLIENT INST_RATE
# The nginx folder of each limit_keys instance, with its control socket.
declare -A KEYS_DIR
BENCH_INSTANCES=()
BENCH_SKIPS=()
BENCH_FAILED_CHECKS=0

# bench_add_instance ID CASE WORKERS URL HEADERS BODY_FILE GW_PIDS CONNS [NOTE]
# GW_PIDS lists the gateway's processes as "nginx:<master pid>" (the master
# and its workers) or "pid:<pid>" entries. CONNS is the list of wrk
# connection counts for this instance. The load client is wrk unless the
# caller sets INST_CLIENT[ID]=stream_load afterwards.
bench_add_instance() {
    local id=$1

    INST_CASE[$id]=$2
    INST_WORKERS[$id]=$3
    INST_URL[$id]=$4
    INST_HEADERS[$id]=$5
    INST_BODY[$id]=$6
    INST_GW[$id]=$7
    INST_CONNS[$id]=$8
    INST_NOTE[$id]=${9:-}
    INST_KEYS[$id]=0
    INST_LOGROWS[$id]=0
    INST_CLIENT[$id]=wrk
    INST_RATE[$id]=0
    BENCH_INSTANCES+=("$id")
}

# Removes instance $1 from the measured list but keeps its settings, for a
# case that only serves another case's instance.
bench_drop_instance() {
    local id kept=()

    for id in "${BENCH_INSTANCES[@]}"; do
        [ "$id" = "$1" ] || kept+=("$id")
    done
    BENCH_INSTANCES=("${kept[@]}")
}

bench_add_skip() {
    local reason=${2//$BENCH_RUN_DIR\//}

    bench_log "skipping $1: $reason"
    BENCH_SKIPS+=("$1	$reason")
}

# Sends one request like the benchmark's and returns 0 when it gets a 200.
# On failure BENCH_SKIP_REASON has the status and the start of the body.
bench_probe() {
    local url=$1 headers=$2 body=$3 out status
    local args=() pair

    IFS='|' read -ra pairs <<<"$headers"
    for pair in "${pairs[@]}"; do
        [ -n "$pair" ] && args+=(-H "$pair")
    done

    out=$(curl -s -m 10 -o "$BENCH_RUN_DIR/probe.out" -w '%{http_code} %{content_type}' \
        -H 'Content-Type: application/json' "${args[@]}" --data-binary "@$body" "$url")
    status=${out%% *}
    PROBE_CONTENT_TYPE=${out#* }
    [ "$status" = 200 ] && return 0

    BENCH_SKIP_REASON="probe of $url answered $status: $(head -c 160 "$BENCH_RUN_DIR/probe.out" | tr '\n' ' ')"
    return 1
}

# Joins the default connection counts with the growth curve's when case $1
# is one of BENCH_GROWTH_CASES.
bench_conns_for() {
    local conns=$BENCH_CONNS

    if [[ " $BENCH_GROWTH_CASES " == *" $1 "* ]]; then
        conns=$(printf '%s\n' $BENCH_CONNS $BENCH_GROWTH_CONNS | sort -n -u | tr '\n' ' ')
    fi
    echo "$conns"
}

bench_emu_upstream() {
    cat <<CONF
    upstream emulator {
        server 127.0.0.1:$EMU_PORT;
        keepalive 64;
        keepalive_requests 100000;
    }
CONF
}

# The location block of the nginx-only cases: $1 holds extra directives.
bench_emu_location() {
    cat <<CONF
        location / {
            $1
            proxy_pass http://emulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
CONF
}

# Case 1: wrk straight to the emulator, the reference for added latency.
bench_case_direct() {
    local url=http://127.0.0.1:$EMU_PORT/v1/chat/completions

    bench_probe "$url" "$BENCH_AUTH" "$BENCH_BODY" ||
        { bench_add_skip direct "$BENCH_SKIP_REASON"; return; }
    bench_add_instance direct direct - "$url" "$BENCH_AUTH" "$BENCH_BODY" "" \
        "$(bench_conns_for direct)"
}

# Starts an nginx for case $1 with $2 worker processes, main-context lines
# $3, and a server whose location contains $4. The http-context lines $5
# come before the server, and $6 is the instance's note. Registers the
# instance or a skip.
bench_nginx_case() {
    local name=$1 workers=$2 main=$3 location=$4 http=$5
    local dir=$BENCH_RUN_DIR/$name-w$workers port url

    port=$(bench_free_port)
    mkdir -p "$dir"
    bench_nginx_conf "$dir" "$workers" "$main" "
$(bench_emu_upstream)
$http
    server {
        listen 127.0.0.1:$port;
$location
    }"

    if ! bench_start_nginx "$dir"; then
        bench_add_skip "$name" "$BENCH_SKIP_REASON"
        return 1
    fi

    url=http://127.0.0.1:$port/v1/chat/completions
    if ! bench_probe "$url" "$BENCH_AUTH" "$BENCH_BODY"; then
        bench_add_skip "$name" "$BENCH_SKIP_REASON"
        return 1
    fi

    bench_add_instance "$name/w$workers" "$name" "$workers" "$url" "$BENCH_AUTH" \
        "$BENCH_BODY" "nginx:$NGINX_MASTER_PID" "$(bench_conns_for "$name")" "${6:-}"
}

# Case 2: bare nginx proxy_pass with upstream keepalive. Its buffering stays
# on: the emulator turns it off for streamed responses with
# "X-Accel-Buffering: no", so that nginx_stream's events pass at once.
bench_case_nginx() {
    local w
    for w in $BENCH_WORKERS; do
        bench_nginx_case nginx "$w" "" "$(bench_emu_location "")" "" || continue
    done
}

# The streaming cases' chunk count, as set in BENCH_STREAM_BODY.
BENCH_STREAM_CHUNKS=200

# Registers stream instance $1 for case $2 on the URL, request headers and
# processes of instance $3, measured with bench/stream_load. Returns 1 with a skip when
# $3 did not start or does not stream.
bench_stream_instance() {
    local id=$1 name=$2 base=$3

    if [ -z "${INST_URL[$base]:-}" ]; then
        bench_add_skip "$name" "needs instance $base (the ${base%/*} case with 1 nginx worker process), which did not start: put 1 in BENCH_WORKERS and ${base%/*} before $name in BENCH_CASES, or leave ${base%/*} out"
        return 1
    fi
    if ! bench_probe "${INST_URL[$base]}" "${INST_HEADERS[$base]}" "$BENCH_STREAM_BODY" ||
            [[ "$PROBE_CONTENT_TYPE" != text/event-stream* ]]; then
        bench_add_skip "$name" "streaming not available: ${BENCH_SKIP_REASON:-content type $PROBE_CONTENT_TYPE}"
        return 1
    fi

    bench_add_instance "$id" "$name" "${INST_WORKERS[$base]}" "${INST_URL[$base]}" \
        "${INST_HEADERS[$base]}" "$BENCH_STREAM_BODY" "${INST_GW[$base]}" "$BENCH_CONNS" \
        "$BENCH_STREAM_CHUNKS chunks"
    INST_CLIENT[$id]=stream_load
}

# Starts the one-worker instance of case $1 for a streaming case, without
# measuring it, unless it runs already or BENCH_CASES has case $1 too.
bench_start_stream_base() {
    local base=$1

    if [ -z "${INST_URL[$base/w1]:-}" ] && [[ " $BENCH_CASES " != *" $base "* ]]; then
        BENCH_WORKERS=1 "bench_case_$base"
        bench_drop_instance "$base/w1"
    fi
}

# Case 2s: streamed chats through the bare nginx of case nginx (w1), the
# reference for the stream case's time to first token. Without the nginx
# case in BENCH_CASES it starts that nginx itself and does not measure it.
bench_case_nginx_stream() {
    bench_start_stream_base nginx
    bench_stream_instance nginx_stream/w1 nginx_stream nginx/w1 || return 0
}

# Registers the open-load twin $1 (case $2) of stream instance $3: streams
# start BENCH_STREAM_RATE times a second, whatever the gateway does, on a
# pool of the largest BENCH_CONNS connections. Unlike the closed load of
# the sustained cases, both gateways then carry the same streams per second.
bench_stream_rate_instance() {
    local id=$1 name=$2 base=$3 pool

    bench_stream_instance "$id" "$name" "$base" || return 1
    pool=$(printf '%s\n' $BENCH_CONNS | sort -n | tail -n 1)
    INST_CONNS[$id]=$pool
    INST_RATE[$id]=$BENCH_STREAM_RATE
    INST_NOTE[$id]="open load, $BENCH_STREAM_RATE streams/s; $BENCH_STREAM_CHUNKS chunks"
}

# Case 2r: nginx_stream under an open load of BENCH_STREAM_RATE streams/s,
# the reference for stream_rate.
bench_case_nginx_stream_rate() {
    bench_start_stream_base nginx
    bench_stream_rate_instance nginx_stream_rate/w1 nginx_stream_rate nginx/w1 || return 0
}

# The rate of the module's rules, which no run reaches.
BENCH_RATE=100000000

# Case 3: nginx's own limit_req, with a rate no benchmark reaches. Every
# request comes from 127.0.0.1, so all of them share one counter.
bench_case_limit_req() {
    local w
    for w in $BENCH_WORKERS; do
        bench_nginx_case limit_req "$w" "" \
            "$(bench_emu_location "limit_req zone=bench burst=100000 nodelay;")" \
            "    limit_req_zone \$binary_remote_addr zone=bench:64m rate=10000000r/s;" || continue
    done
}

# Case 3b: limit_req plus the three RateLimit-* response headers that the
# module adds to every chat. It separates the module's logic from the bytes
# of its headers, which wrk parses on the same CPUs. The module sends no
# request headers here: chatgate_upstream_headers is off, as in front of a
# provider.
bench_case_limit_req_headers() {
    local w
    local headers="limit_req zone=bench burst=100000 nodelay;
            add_header RateLimit-Limit $BENCH_RATE;
            add_header RateLimit-Remaining $((BENCH_RATE - 1));
            add_header RateLimit-Reset 1;"

    for w in $BENCH_WORKERS; do
        bench_nginx_case limit_req_headers "$w" "" \
            "$(bench_emu_location "$headers")" \
            "    limit_req_zone \$binary_remote_addr zone=bench:64m rate=10000000r/s;" \
            "limit_req and the module's headers" || continue
    done
}

# The limiter of the module case: a shared zone and per-address rules that
# admit far more than any run sends, like the limit_req case's zone.
BENCH_LIMIT_HTTP="    chatgate_zone bench 64m;
    chatgate_default_rule global per_minute=$BENCH_RATE;
    chatgate_default_rule ip:* per_minute=$BENCH_RATE;"

# Case 4: the chatgate module in front of the emulator, no worker: its
# access phase (identity, limiter) plus proxy_pass. chatgate_upstream_headers
# is off, as an operator leaves it in front of a provider, so the emulator
# gets no X-Chatgate-* headers.
bench_case_module() {
    local w main
    local so=$BUILD/nginx/ngx_http_chatgate_module.so

    [ -f "$so" ] || { bench_add_skip module "$so not built"; return; }
    main="load_module $so;"

    for w in $BENCH_WORKERS; do
        bench_nginx_case module "$w" "$main" \
            "$(bench_emu_location "chatgate on; chatgate_limit_zone bench;")" \
            "$BENCH_LIMIT_HTTP" "global and ip:* rules" || continue
    done
}

# Distinct-key runs for the module's limiter. Each count N in
# BENCH_KEY_COUNTS gets its own nginx with room for N key counters without
# eviction, and a fill pass creates all N before the first run. So
# every measured request finds its counter in a tree of N of them: each
# carries an X-Key-Id drawn at random from the N keys (bench/wrk/chat.lua).
# new_keys is raised so that one address may create them all.
bench_case_limit_keys() {
    local keys
    local so=$BUILD/nginx/ngx_http_chatgate_module.so

    [ -f "$so" ] || { bench_add_skip limit_keys "$so not built"; return; }

    # X-Key-Id selects a stored key only with a client token or the admin
    # token, so the runs send the admin token, which costs one SHA-256 each.
    mkdir -p "$BENCH_RUN_DIR/keys-etc"
    (umask 077; openssl rand -hex 24 >"$BENCH_RUN_DIR/keys-etc/admin_token")

    for keys in $BENCH_KEY_COUNTS; do
        bench_limit_keys_instance "$keys" "$so" || continue
    done
}

# Prints the size in MB of a zone for $1 key counters. The module caps key
# counters at zone size / 512 (half the zone at an estimated 256 bytes per
# counter, max_key_counters in ngx_module/ngx_http_chatgate_limit.c), so N
# of them need N * 512 bytes. 16 MB more hold the address counters, the
# rules and the slab allocator's page descriptors.
bench_key_zone_mb() {
    echo $(( ($1 * 512 + 1048575) / 1048576 + 16 ))
}

# Starts the nginx of key count $1 with module $2, fills its zone and
# registers instance limit_keys-$1/w1, or a skip with the reason.
bench_limit_keys_instance() {
    local keys=$1 so=$2
    local name=limit_keys-$1 id=limit_keys-$1/w1 dir=$BENCH_RUN_DIR/limit_keys-$1-w1
    local etc=$BENCH_RUN_DIR/keys-etc http

    # The control server lets the harness count the counters in the zone.
    http="    chatgate_zone keys $(bench_key_zone_mb "$keys")m new_keys=$BENCH_RATE;
    chatgate_default_rule global per_minute=$BENCH_RATE;
    chatgate_default_rule key:* per_minute=$BENCH_RATE;

    server {
        listen unix:$dir/control.sock;
        location = /chatgate/control {
            chatgate_control on;
            chatgate_limit_zone keys;
        }
    }"

    bench_nginx_case "$name" 1 "load_module $so;" \
        "$(bench_emu_location "chatgate on; chatgate_limit_zone keys; chatgate_admin_token_file $etc/admin_token;")" \
        "$http" || return 1

    INST_CASE[$id]=limit_keys
    INST_HEADERS[$id]="$BENCH_AUTH|X-Admin-Token: $(cat "$etc/admin_token")"
    INST_KEYS[$id]=$keys
    KEYS_DIR[$id]=$dir

    if ! bench_fill_keys "$id"; then
        bench_drop_instance "$id"
        bench_add_skip "$name" "$BENCH_SKIP_REASON"
        BENCH_FAILED_CHECKS=$((BENCH_FAILED_CHECKS + 1))
        return 1
    fi
    INST_NOTE[$id]="$keys keys, zone filled in $BENCH_FILL_SECONDS s"
}

# Prints how many X-Key-Id counters the zone of limit_keys instance $1
# contains and how many counters it has evicted since nginx started, from a
# GET of its control location ("0 -" when that fails). The probe's BYOK
# counter (key:byok-<hash>) does not count. Only counters used on the
# current UTC day have a usage line, so a zone filled before 00:00 UTC
# reads fewer after it.
bench_key_counters() {
    curl -s -m 60 --unix-socket "${KEYS_DIR[$1]}/control.sock" http://localhost/chatgate/control |
        awk '$1 == "usage" && $3 ~ /^key:[0-9a-f]+-/ { n++ }
             $1 == "evicted" { evicted = $2 }
             END { print n + 0, evicted == "" ? "-" : evicted }' || true
}

# Sends each key id of limit_keys instance $1 once (and a few again while
# the last responses arrive), with wrk at 32 connections. Then checks that
# the zone contains all of them and evicted none.
# The fill may take 60 s plus 1 s per 4 000 keys. Sets BENCH_FILL_SECONDS
# to the time until the last key's response; on failure returns 1 with
# the count reached in BENCH_SKIP_REASON.
bench_fill_keys() {
    local id=$1 keys=${INST_KEYS[$1]} log=${KEYS_DIR[$1]}/fill.log
    local limit pid start finished=0 tries=0 counters evicted result

    limit=$((60 + keys / 4000))
    bench_log "$id: filling the zone with $keys key counters (at most $limit s)"

    start=$(date +%s%N)
    BENCH_BODY_FILE=${INST_BODY[$id]} BENCH_HEADERS=${INST_HEADERS[$id]} \
    BENCH_KEYS=$keys BENCH_FILL=1 \
        wrk -t1 -c32 -d"${limit}s" --timeout 10s \
            -s "$REPO/bench/wrk/chat.lua" "${INST_URL[$id]}" >"$log" 2>&1 &
    pid=$!
    bench_track_pid "$pid"

    # wrk ends by itself after $limit s, so SIGKILL is only for a wrk that hangs.
    while kill -0 "$pid" 2>/dev/null; do
        if grep -q '^BENCH_FILL_DONE' "$log"; then
            finished=1
            break
        fi
        if [ $(( ($(date +%s%N) - start) / 1000000000 )) -gt $((limit + 30)) ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    BENCH_FILL_SECONDS=$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')

    # SIGINT makes wrk cut its sleep short and print its summary.
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    bench_untrack_pid "$pid"
    result=$(awk '$1 == "BENCH_RESULT" {
            for (i = 2; i <= NF; i++)
                if ($i ~ /^requests=/ || ($i ~ /^err_/ && $i !~ /=0$/)) printf "%s ", $i
        }' "$log")
    result=${result% }

    # Requests in flight when wrk stopped reach the zone a moment later.
    read -r counters evicted <<<"$(bench_key_counters "$id")"
    while [ "$counters" -lt "$keys" ] && [ "$tries" -lt 5 ]; do
        sleep 1
        tries=$((tries + 1))
        read -r counters evicted <<<"$(bench_key_counters "$id")"
    done

    if [ "$finished" = 0 ]; then
        BENCH_SKIP_REASON="zone fill did not finish within $limit s: $counters of $keys key counters, $evicted evicted (wrk: ${result:-no result}; see ${log#"$BENCH_RUN_DIR"/})"
    elif [ "$counters" != "$keys" ] || [ "$evicted" != 0 ]; then
        BENCH_SKIP_REASON="zone fill sent every key, but the zone holds $counters of $keys key counters, $evicted evicted (wrk: ${result:-no result})"
    else
        bench_log "$id: $counters key counters in the zone after $BENCH_FILL_SECONDS s, $evicted evicted (wrk: $result)"
        return 0
    fi

    bench_log "error: $id: $BENCH_SKIP_REASON"
    return 1
}

# Checks, after the runs, that the zone of every limit_keys instance still
# contains its N key counters and that nothing was evicted. It reads the
# control location and nginx's error log, where the module reports
# eviction at most once per 10 s. Each failed instance counts in
# BENCH_FAILED_CHECKS, like a failed fill in bench_limit_keys_instance.
bench_check_key_zones() {
    local id counters evicted logged

    for id in "${BENCH_INSTANCES[@]}"; do
        [ "${INST_CASE[$id]}" = limit_keys ] || continue

        read -r counters evicted <<<"$(bench_key_counters "$id")"
        logged=$(grep -c -E 'chatgate zone "keys" (is full|has no room)' \
            "${KEYS_DIR[$id]}/error.log" || true)
        bench_log "$id after the runs: $counters key counters, $evicted evicted, $logged eviction lines in its error.log"

        if [ "$counters" != "${INST_KEYS[$id]}" ] || [ "$evicted" != 0 ] || [ "$logged" != 0 ]; then
            bench_log "error: $id: expected ${INST_KEYS[$id]} key counters and no eviction"
            BENCH_FAILED_CHECKS=$((BENCH_FAILED_CHECKS + 1))
        fi
    done
}

# Writes the nginx configuration of the full path from the operator's
# drop-in files in conf.d, with the module and socket paths of this run.
bench_full_conf() {
    local dir=$1 workers=$2 port=$3 f

    # Each nginx gets its own control socket. The worker pushes to none of
    # them, so the fallback rule is the one in force: raised far above the
    # load, so that the limiter runs on every request and never denies.
    mkdir -p "$dir"
    for f in "$REPO"/conf.d/*.conf; do
        sed -e "s|/usr/lib/nginx/modules/ngx_http_chatgate_module.so|$BUILD/nginx/ngx_http_chatgate_module.so|" \
            -e "s|unix:/run/chatgate/worker.sock|unix:$WORKER_SOCKET|" \
            -e "s|unix:/run/chatgate/control.sock|unix:$dir/control.sock|" \
            -e "s|/etc/chatgate/|$BENCH_RUN_DIR/etc/|g" \
            -e "s|^chatgate_default_rule .*|chatgate_default_rule global per_minute=1000000;|" \
            "$f" >"$dir/$(basename "$f")"
    done

    bench_nginx_conf "$dir" "$workers" "include $dir/chatgate-module.conf;" "
    include $dir/chatgate-http.conf;
    include $dir/chatgate-control.conf;
    server {
        listen 127.0.0.1:$port;
        include $dir/chatgate-server.conf;
    }"
}

# Case 5: module, worker and request log in PostgreSQL, configured from
# conf.d as an operator would.
bench_case_full() {
    local w dir port url

    [ -f "$BUILD/nginx/ngx_http_chatgate_module.so" ] ||
        { bench_add_skip full "module not built"; return; }
    [ -x "$BUILD/chatgate-worker" ] ||
        { bench_add_skip full "$BUILD/chatgate-worker not built"; return; }
    bench_start_postgres || { bench_add_skip full "$BENCH_SKIP_REASON"; return; }
    bench_start_worker || { bench_add_skip full "$BENCH_SKIP_REASON"; return; }

    for w in $BENCH_WORKERS; do
        dir=$BENCH_RUN_DIR/full-w$w
        port=$(bench_free_port)
        bench_full_conf "$dir" "$w" "$port"
        bench_start_nginx "$dir" || { bench_add_skip full "$BENCH_SKIP_REASON"; continue; }

        url=http://127.0.0.1:$port/v1/chat/completions
        bench_probe "$url" "$BENCH_AUTH" "$BENCH_BODY" ||
            { bench_add_skip full "$BENCH_SKIP_REASON"; continue; }

        bench_add_instance "full/w$w" full "$w" "$url" "$BENCH_AUTH" "$BENCH_BODY" \
            "nginx:$NGINX_MASTER_PID pid:$WORKER_PID" "$(bench_conns_for full)"
        INST_LOGROWS[full/w$w]=1
    done
}

# Case 6: 200-chunk streamed responses on the full path (w1), measured like
# nginx_stream. Without the full case in BENCH_CASES it starts the full path
# itself and does not measure it.
bench_case_stream() {
    bench_start_stream_base full
    bench_stream_instance stream/w1 stream full/w1 || return 0
    INST_LOGROWS[stream/w1]=1
}

# Case 6r: the stream case under an open load of BENCH_STREAM_RATE
# streams/s, measured like nginx_stream_rate.
bench_case_stream_rate() {
    bench_start_stream_base full
    bench_stream_rate_instance stream_rate/w1 stream_rate full/w1 || return 0
    INST_LOGROWS[stream_rate/w1]=1
}

# Case 7: the Portkey gateway (Node.js) routed to the emulator.
bench_case_portkey() {
    local url headers

    bench_start_portkey || { bench_add_skip portkey "$BENCH_SKIP_REASON"; return; }

    url=http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions
    headers="$BENCH_AUTH|x-portkey-provider: openai|x-portkey-custom-host: http://127.0.0.1:$EMU_PORT/v1"
    bench_probe "$url" "$headers" "$BENCH_BODY" ||
        { bench_add_skip portkey "$BENCH_SKIP_REASON"; return; }

    bench_add_instance portkey portkey - "$url" "$headers" "$BENCH_BODY" \
        "pid:$PORTKEY_PID" "$(bench_conns_for portkey)" "@portkey-ai/gateway $PORTKEY_VERSION"
}

# Case 7s: 200-chunk streamed chats through Portkey, measured like
# nginx_stream. Without the portkey case in BENCH_CASES it starts Portkey
# itself and does not measure its complete chats.
bench_case_portkey_stream() {
    if [ -z "${INST_URL[portkey]:-}" ] && [[ " $BENCH_CASES " != *" portkey "* ]]; then
        bench_case_portkey
        bench_drop_instance portkey
    fi
    if [ -z "${INST_URL[portkey]:-}" ]; then
        bench_add_skip portkey_stream "the Portkey gateway did not start (see the portkey case)"
        return 0
    fi

    bench_stream_instance portkey_stream portkey_stream portkey || return 0
}
