#!/usr/bin/env bash
# Count the instructions (callgrind's Ir) that one request costs in nginx with
# the chatgate module and in the chatgate worker. Instruction counts do not
# move with the load of a shared machine the way wrk's requests/s do, so they
# show whether a change made the request path cheaper.
#
# Part "nginx": Debian's nginx runs under callgrind as one process
# (master_process off) in three configurations: a bare proxy_pass, nginx's
# limit_req, and the module with its limiter. Each proxies to a second,
# plain nginx that returns a fixed chat completion.
# Part "worker": build/chatgate-worker serve runs under callgrind against a
# throwaway PostgreSQL cluster and the provider emulator, and takes complete
# (non-streaming) chats on its unix socket. Then, for complete chats, the
# nginx of the full path (the files in conf.d) runs under callgrind in front
# of that worker, so that the report also gives nginx's count per chat.
#
# For each run the script sends CG_WARMUP requests, zeroes the counters
# (callgrind_control -z), sends CG_REQUESTS requests on one keep-alive
# connection, waits for the worker's log writer to store their rows, dumps
# the counters (callgrind_control -d) and divides by CG_REQUESTS. Everything
# listens on 127.0.0.1 or unix sockets under a temporary folder, and every
# process it starts is stopped by PID on exit.
#
# Settings (environment):
#   CG_REQUESTS   requests measured per run (default 2000)
#   CG_WARMUP     requests sent before the counters are zeroed (default 20)
#   CG_TIMEOUT    bound on one run's measured requests, seconds (default 600)
#   CG_PARTS      "nginx", "worker" or both (default "nginx worker")
#   CG_STREAM_CHUNKS  when set to N > 0, every chat requests a stream of N
#                 content chunks (the emulator's "[emu words=N chunks=N]"), only
#                 the worker part runs, and the report goes to
#                 callgrind-stream-<UTC date>.md
#   CG_TOP        functions listed in the worker's top inclusive table (default 40)
#   CG_KEEP=1     keep the temporary folder with the callgrind files
#   BUILD         build folder with the binaries (default build)
#
# Writes bench/results/callgrind-<UTC date>-<commit>.md (callgrind-stream-...
# with CG_STREAM_CHUNKS), so that a later run on the same day does not
# replace the record of another commit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "callgrind: build folder $BUILD not found, run make" >&2; exit 1; }

CG_REQUESTS=${CG_REQUESTS:-2000}
CG_WARMUP=${CG_WARMUP:-20}
CG_TIMEOUT=${CG_TIMEOUT:-600}
CG_STREAM_CHUNKS=${CG_STREAM_CHUNKS:-0}
[[ $CG_STREAM_CHUNKS =~ ^[0-9]+$ && $CG_STREAM_CHUNKS -le 10000 ]] ||
    { echo "callgrind: invalid CG_STREAM_CHUNKS \"$CG_STREAM_CHUNKS\": expected 0 to 10000" >&2; exit 1; }
if [ "$CG_STREAM_CHUNKS" -gt 0 ]; then
    # The nginx part's upstream returns one fixed JSON response, never a stream.
    CG_PARTS=${CG_PARTS:-worker}
    [ "$CG_PARTS" = worker ] ||
        { echo "callgrind: CG_STREAM_CHUNKS needs CG_PARTS=worker, not \"$CG_PARTS\"" >&2; exit 1; }
fi
CG_PARTS=${CG_PARTS:-"nginx worker"}
CG_TOP=${CG_TOP:-40}

[[ $CG_REQUESTS =~ ^[1-9][0-9]*$ && $CG_REQUESTS -le 100000 ]] ||
    { echo "callgrind: invalid CG_REQUESTS \"$CG_REQUESTS\": expected 1 to 100000" >&2; exit 1; }
[[ $CG_WARMUP =~ ^[0-9]+$ ]] ||
    { echo "callgrind: invalid CG_WARMUP \"$CG_WARMUP\": expected a count" >&2; exit 1; }

# The helpers of bench/run.sh: process tracking (bench_track_pid,
# bench_stop_all), the nginx configuration, PostgreSQL and the emulator.
BENCH_CLEANUP_DIRS=()
BENCH_EMU_THREADS=1
# A short folder under /tmp: unix socket paths are limited to 107 bytes, and
# the postgres user must be able to reach the cluster's folder.
BENCH_RUN_DIR=$(mktemp -d /tmp/chatgate-cg.XXXXXX)
chmod 755 "$BENCH_RUN_DIR"
. "$REPO/bench/lib/common.sh"
. "$REPO/bench/lib/servers.sh"
. "$REPO/bench/lib/cases.sh"

cg_cleanup() {
    local d
    bench_stop_all
    for d in "${BENCH_CLEANUP_DIRS[@]}"; do
        rm -rf "$d"
    done
    if [ "${CG_KEEP:-0}" = 1 ]; then
        bench_log "kept $BENCH_RUN_DIR"
    else
        rm -rf "$BENCH_RUN_DIR"
    fi
}
trap cg_cleanup EXIT
trap 'exit 130' INT TERM

for cmd in valgrind callgrind_annotate callgrind_control curl perl openssl; do
    command -v "$cmd" >/dev/null || bench_die "$cmd not found (Debian package valgrind, curl, perl or openssl)"
done

BODY=$BENCH_RUN_DIR/chat.json
AUTH="Authorization: Bearer callgrind-not-a-real-key"
if [ "$CG_STREAM_CHUNKS" -gt 0 ]; then
    printf '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"[emu words=%d chunks=%d] stream a long answer"}]}' \
        "$CG_STREAM_CHUNKS" "$CG_STREAM_CHUNKS" >"$BODY"
else
    printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from the chatgate benchmark"}]}' >"$BODY"
fi

# Runs "$@" under callgrind with its output in $CG_OUT (callgrind_control -d
# writes $CG_OUT.1). Sets CG_PID.
cg_start_valgrind() {
    local log=$1
    shift

    valgrind --tool=callgrind --callgrind-out-file="$CG_OUT" \
        --dump-instr=no --collect-jumps=no "$@" >"$log" 2>&1 &
    CG_PID=$!
    bench_track_pid "$CG_PID"
}

# Writes a curl config of $1 POSTs of the chat body to URL $2, one
# operation each ("next"), so that one curl sends them all in turn on one
# keep-alive connection. With $3 = worker, each request goes to
# $WORKER_SOCKET and carries the headers that nginx adds in front of the
# worker: a request id of its own and the client address.
cg_request_config() {
    local n=$1 url=$2 mode=${3:-} i prefix

    prefix=$(openssl rand -hex 8)
    for ((i = 0; i < n; i++)); do
        printf 'url = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$url"
        printf 'header = "Content-Type: application/json"\nheader = "%s"\n' "$AUTH"
        printf 'data-binary = "@%s"\n' "$BODY"
        if [ "$mode" = worker ]; then
            printf 'header = "X-Chatgate-Request-Id: %s%016x"\n' "$prefix" "$i"
            printf 'header = "X-Chatgate-Client-Addr: 127.0.0.1"\n'
            printf 'unix-socket = "%s"\n' "$WORKER_SOCKET"
        fi
        [ "$i" -eq $((n - 1)) ] || printf 'next\n'
    done
}

# Sends the $1 requests of curl config $2 (curl arguments $3...) and fails
# unless every response has status 200.
cg_send() {
    local n=$1 config=$2 ok
    shift 2

    ok=$(timeout "$CG_TIMEOUT" curl -s -m 60 "$@" -K "$config" | grep -c '^200$' || true)
    [ "$ok" -eq "$n" ] || bench_die "$ok of $n requests got 200 ($*)"
}

# Measures the process $CG_PID: warm-up, zero, $CG_REQUESTS requests, an
# optional wait command ($CG_WAIT), dump. $1 is the URL, $2 the mode of
# cg_request_config, $3... curl arguments.
cg_measure() {
    local url=$1 mode=$2
    shift 2

    cg_request_config "$CG_WARMUP" "$url" "$mode" >"$BENCH_RUN_DIR/warmup.curl"
    cg_request_config "$CG_REQUESTS" "$url" "$mode" >"$BENCH_RUN_DIR/requests.curl"

    [ "$CG_WARMUP" -eq 0 ] || cg_send "$CG_WARMUP" "$BENCH_RUN_DIR/warmup.curl" "$@"

    timeout 60 callgrind_control -z "$CG_PID" >>"$BENCH_RUN_DIR/callgrind_control.log" 2>&1 ||
        bench_die "callgrind_control -z $CG_PID failed"
    cg_send "$CG_REQUESTS" "$BENCH_RUN_DIR/requests.curl" "$@"
    if [ -n "${CG_WAIT:-}" ]; then
        bench_wait_for 60 $CG_WAIT || bench_die "timed out: $CG_WAIT"
    fi

    rm -f "$CG_OUT.1"
    timeout 60 callgrind_control -d "$CG_PID" >>"$BENCH_RUN_DIR/callgrind_control.log" 2>&1 ||
        bench_die "callgrind_control -d $CG_PID failed"
    bench_wait_for 30 test -s "$CG_OUT.1" || bench_die "$CG_OUT.1 was not written"
    # callgrind writes the dump in pieces: wait until its size settles
    local size=-1
    while [ "$size" != "$(stat -c %s "$CG_OUT.1")" ]; do
        size=$(stat -c %s "$CG_OUT.1")
        sleep 0.5
    done
}

# Prints "function<TAB>inclusive Ir" for every function in callgrind file $1.
cg_inclusive() {
    callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$1" | perl -ne '
        if (/^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$/) {
            my ($ir, $name) = ($1, $2);
            $ir =~ tr/,//d;
            if ($name eq "PROGRAM TOTALS") { print "TOTAL\t$ir\n"; next }
            # drop the source file and the object file, but keep the object
            # for a function without a symbol: "0x4f560 (libcurl.so)"
            my $object = $name =~ s/ \[([^\]]*)\]$// ? $1 : "";
            $name =~ s/^.*?:(?=[^:]+$)//;
            if ($name =~ /^0x0*([0-9a-f]+)$/ && $object ne "") {
                my $address = $1;
                $object =~ s{.*/}{};
                $object =~ s/\.so(\.\d+)*$/.so/;
                $name = "0x$address ($object)";
            }
            print "$name\t$ir\n";
        }'
}

# Prints "function<TAB>calls<TAB>inclusive Ir" for each function that
# function $2 calls directly, from callgrind file $1, most expensive first.
cg_callees() {
    callgrind_annotate --inclusive=yes --tree=calling --auto=no --threshold=100 "$1" | perl -ne '
        BEGIN { $f = shift @ARGV }
        # A function can appear in several blocks, one per source file name
        # that callgrind recorded for it (its own file under two spellings,
        # headers with inlined code). How callgrind_annotate splits the calls
        # among them changes from run to run, so the calls are summed.
        if (/^\s*[\d,]+\s+\([^)]*\)\s+\*\s+\S*?:(\S+)(?:\s|$)/) {
            $in = ($1 eq $f);
            next;
        }
        next unless $in;
        if (/^\s*$/) { $in = 0; next }
        if (/^\s*([\d,]+)\s+\([^)]*\)\s+>\s+\S*?:(\S+) \(([\d,]+)x\)/) {
            my ($ir, $name, $calls) = ($1, $2, $3);
            $ir =~ tr/,//d;
            $calls =~ tr/,//d;
            $ir{$name} += $ir;
            $calls{$name} += $calls;
        }
        END {
            for my $name (sort { $ir{$b} <=> $ir{$a} || $a cmp $b } keys %ir) {
                print "$name\t$calls{$name}\t$ir{$name}\n";
            }
        }' "$2"
}

# Prints a markdown table of the direct callees of function $2 in callgrind
# file $1, with calls and inclusive Ir per request.
cg_callee_table() {
    local fn calls ir

    echo "| callee of \`$2\` | calls per request | inclusive Ir per request |"
    echo "| --- | ---: | ---: |"
    cg_callees "$1" "$2" | while IFS=$'\t' read -r fn calls ir; do
        echo "| \`$fn\` | $(awk -v c="$calls" -v n="$CG_REQUESTS" 'BEGIN { printf "%.2g", c / n }') | $(cg_fmt "$(cg_per_req "$ir")") |"
    done
}

# Prints the inclusive Ir of function $2 in the table $1 (0 when absent).
cg_ir_of() {
    awk -F'\t' -v f="$2" '$1 == f { print $2; found = 1; exit } END { if (!found) print 0 }' "$1"
}

# Prints $1 / $CG_REQUESTS rounded to a whole instruction.
cg_per_req() {
    awk -v ir="$1" -v n="$CG_REQUESTS" 'BEGIN { printf "%.0f", ir / n }'
}

# Prints integer $1 with its digits grouped by three, as "12 345".
cg_fmt() {
    perl -e 'my $n = shift; 1 while $n =~ s/^(-?\d+)(\d{3})/$1 $2/; print $n' "$1"
}

# --- part 1: nginx ----------------------------------------------------------

NGINX_ROWS=()

# Runs nginx configuration $1 (name) under callgrind with main-context lines
# $2, location lines $3 and http-context lines $4, and records its table.
cg_nginx_case() {
    local name=$1 main=$2 location=$3 http=$4
    local dir=$BENCH_RUN_DIR/nginx-$name port table total

    port=$(bench_free_port)
    mkdir -p "$dir"
    bench_nginx_conf "$dir" 1 "master_process off;
$main" "
$(bench_emu_upstream)
$http
    server {
        listen 127.0.0.1:$port;
$(bench_emu_location "$location")
    }"
    # one process that runs as root: the user directive only applies to a master
    sed -i '/^user root;$/d' "$dir/nginx.conf"

    bench_log "nginx $name: $CG_REQUESTS requests under callgrind"
    cg_nginx_measure "$dir" "$port" "$name"

    table=$dir/inclusive.tsv
    cg_inclusive "$CG_OUT.1" >"$table"
    total=$(cg_ir_of "$table" TOTAL)
    NGINX_ROWS+=("$name	$total	$(cg_ir_of "$table" ngx_http_core_generic_phase)	$(cg_ir_of "$table" ngx_http_core_access_phase)	$(cg_ir_of "$table" ngx_http_chatgate_handler)")
    if [ "$name" = chatgate ]; then
        NGINX_CHATGATE_OUT=$CG_OUT.1
    fi

    bench_stop_all_but_upstream
}

# Checks the nginx configuration in folder $1, runs that nginx under
# callgrind, waits until it listens on port $2 and measures it. $3 names it
# in messages.
cg_nginx_measure() {
    local dir=$1 port=$2 name=$3 out

    out=$("$NGINX_BIN" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>&1) ||
        bench_die "nginx -t for $name failed: $out"

    CG_OUT=$dir/callgrind.out
    cg_start_valgrind "$dir/valgrind.log" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    bench_wait_for 60 bench_tcp_listening "$port" ||
        bench_die "nginx ($name) under callgrind did not listen within 60 s: $(tail -n 3 "$dir/valgrind.log")"

    cg_measure "http://127.0.0.1:$port/v1/chat/completions" nginx
}

# Stops the nginx under callgrind and keeps the upstream stand-in running.
bench_stop_all_but_upstream() {
    kill -TERM "$CG_PID" 2>/dev/null || true
    bench_wait_for 30 bash -c "! kill -0 $CG_PID 2>/dev/null" || kill -KILL "$CG_PID" 2>/dev/null || true
    wait "$CG_PID" 2>/dev/null || true
}

cg_part_nginx() {
    local so=$BUILD/nginx/ngx_http_chatgate_module.so

    [ -f "$so" ] || bench_die "$so not built, run make module"

    bench_start_standin_emulator || bench_die "upstream nginx: $BENCH_SKIP_REASON"
    bench_log "upstream nginx (return 200) on 127.0.0.1:$EMU_PORT"

    cg_nginx_case bare "" "" ""
    cg_nginx_case limit_req "" "limit_req zone=bench burst=100000 nodelay;" \
        "    limit_req_zone \$binary_remote_addr zone=bench:64m rate=10000000r/s;"
    cg_nginx_case chatgate "load_module $so;" "chatgate on; chatgate_limit_zone bench;" \
        "$BENCH_LIMIT_HTTP"

    bench_stop_all
}

# --- part 2: the worker -----------------------------------------------------

# Functions of the worker's request path reported on their own, with a label.
WORKER_PIECES=(
    "cg_http_read_cb	server: read the request, parse it, run its handler"
    "cg_http_route	route the request and run its handler"
    "cg_chat_handle	chat handler: checks, body, credential, start of the call"
    "cg_chat_request_parse	parse and check the chat JSON"
    "cg_provider_build_call	build the provider call (body, URL, headers)"
    "cg_upstream_start_method	start the call: curl easy handle, add to the multi handle"
    "curl_multi_socket_action	curl multi: connect, send, receive (all entries)"
    "cg_upstream_event_cb	socket events of provider calls (into curl)"
    "cg_upstream_timeout_cb	curl timer events (into curl, finishes calls)"
    "cg_chat_on_done	provider call done: translate, reply, finish"
    "cg_provider_parse_completion	parse the provider answer and translate it"
    "cg_json_parse	all JSON parsing (request and answer, yajl tree)"
    "cg_http_send_json	send the answer to the client"
    "cg_http_reply	server: write the response"
    "cg_chat_finish	finish: log line, request log row, free"
    "cg_log	the worker's log line (level info)"
    "cg_logwriter_add	queue the request log row"
    "cg_lw_timer	log writer flush timer: encode a batch, send it with COPY"
    "cg_db_conn_io	PostgreSQL connection events (libpq)"
    "cg_http_release_cb	server: done callbacks, free the requests"
)
if [ "$CG_STREAM_CHUNKS" -gt 0 ]; then
    WORKER_PIECES+=(
        "cg_stream_feed	translate the provider's streamed bytes into client frames"
        "cg_stream_sse_event	one SSE event: read the chunk, pass it on or rewrite it"
        "cg_json_gen_value	JSON values written again with yajl_gen (request body, rewritten chunks)"
    )
fi

cg_part_worker() {
    local bin=$BUILD/chatgate-worker env=$BENCH_RUN_DIR/worker.env
    local etc=$BENCH_RUN_DIR/etc dir=$BENCH_RUN_DIR/worker table total

    [ -x "$bin" ] || bench_die "$bin not built, run make worker"
    mkdir -p "$dir" "$etc"

    bench_start_emulator || bench_die "emulator: $BENCH_SKIP_REASON"
    bench_log "emulator on 127.0.0.1:$EMU_PORT"
    bench_start_postgres || bench_die "postgres: $BENCH_SKIP_REASON"
    bench_psql -d postgres -c "CREATE DATABASE chatgate_cg" ||
        bench_die "CREATE DATABASE chatgate_cg failed"

    (umask 077
     openssl rand -hex 16 >"$etc/admin_token"
     openssl rand -hex 32 >"$etc/jwt_secret")

    # The settings of the integration tests (t/lib/Chatgate/Test.pm) with
    # three changes. No CHATGATE_CONTROL_URL, because no nginx runs here. The
    # default log level (info) in place of debug, and a limits sync once an
    # hour, so that a timer that fires by wall-clock time adds no count.
    WORKER_SOCKET=$BENCH_RUN_DIR/worker.sock
    (umask 077
     cat >"$env" <<ENV
CHATGATE_SOCKET=$WORKER_SOCKET
DATABASE_URL=postgresql:///chatgate_cg?host=$PG_SOCKET_DIR&user=postgres
CHATGATE_LOG_LEVEL=info
OPENAI_BASE_URL=http://127.0.0.1:$EMU_PORT/v1
OPENROUTER_BASE_URL=http://127.0.0.1:$EMU_PORT/api/v1
ANTHROPIC_BASE_URL=http://127.0.0.1:$EMU_PORT/v1
OLLAMA_BASE_URL=http://127.0.0.1:$EMU_PORT
CHATGATE_DEFAULT_PROVIDER=openai
CHATGATE_CONNECT_TIMEOUT_MS=2000
CHATGATE_REQUEST_TIMEOUT_MS=10000
CHATGATE_MAX_BODY_SIZE=1048576
CHATGATE_LOG_FLUSH_MS=100
CHATGATE_LIMITS_SYNC_MS=3600000
CHATGATE_SPOOL_PATH=$BENCH_RUN_DIR/worker.spool
CHATGATE_SQL_DIR=$REPO/sql
ADMIN_TOKEN_FILE=$etc/admin_token
ADMIN_KMS_KEY=$(openssl rand -hex 32)
JWT_SECRET_FILE=$etc/jwt_secret
ENV
    )

    timeout 120 "$bin" migrate --env-file "$env" >"$dir/migrate.log" 2>&1 ||
        bench_die "chatgate-worker migrate failed: $(tail -n 2 "$dir/migrate.log")"
    # The seeded global rule admits 60 chats a minute, so lift it as the tests do.
    bench_psql -d chatgate_cg -c "UPDATE rate_limits SET per_minute = 1000000000, per_hour = NULL, burst = NULL, per_day = NULL WHERE scope = 'global'"

    CG_OUT=$dir/callgrind.out
    # With the variable set, the worker does not run itself again
    # (cg_main_skip_gnutls_init()), which would leave valgrind.
    GNUTLS_NO_IMPLICIT_INIT=1 cg_start_valgrind "$dir/valgrind.log" "$bin" serve --env-file "$env"
    bench_wait_for 120 curl -sf --unix-socket "$WORKER_SOCKET" http://worker/healthz ||
        bench_die "worker under callgrind did not respond to /healthz within 120 s: $(tail -n 3 "$dir/valgrind.log")"

    bench_log "worker: $CG_REQUESTS chats under callgrind"
    # the counters stop once the log writer has stored every measured row
    CG_WAIT="cg_rows_at_least $((CG_WARMUP + CG_REQUESTS))"
    cg_measure http://chatgate/v1/chat/completions worker
    CG_WAIT=""

    table=$dir/inclusive.tsv
    cg_inclusive "$CG_OUT.1" >"$table"
    WORKER_TABLE=$table
    WORKER_OUT=$CG_OUT.1
    WORKER_TOTAL=$(cg_ir_of "$table" TOTAL)

    # The nginx part's upstream returns a fixed response, so its counts
    # leave out what nginx spends in front of the worker.
    if [ "$CG_STREAM_CHUNKS" -eq 0 ]; then
        cg_nginx_full
    fi

    bench_stop_all
}

# Runs the nginx of the full path under callgrind: the operator's files in
# conf.d, one process, in front of the worker of cg_part_worker, which still
# runs under callgrind but whose counters were already dumped. Sets
# NGINX_FULL_TOTAL.
cg_nginx_full() {
    local dir=$BENCH_RUN_DIR/nginx-full port table

    port=$(bench_free_port)
    bench_full_conf "$dir" 1 "$port"
    # one process that runs as root: the user directive only applies to a master
    sed -i -e '/^user root;$/d' -e '1i master_process off;' "$dir/nginx.conf"

    bench_log "nginx of the full path: $CG_REQUESTS chats under callgrind"
    cg_nginx_measure "$dir" "$port" "the full path"

    table=$dir/inclusive.tsv
    cg_inclusive "$CG_OUT.1" >"$table"
    NGINX_FULL_TOTAL=$(cg_ir_of "$table" TOTAL)
}

cg_rows_at_least() {
    local rows
    rows=$(bench_psql -d chatgate_cg -c "SELECT count(*) FROM chat_logs" 2>/dev/null) || return 1
    [ "${rows:-0}" -ge "$1" ]
}

# --- the report ---------------------------------------------------------------

cg_report() {
    local out=$1 row name total handler bare=0 per delta
    local commit dirty

    commit=$(git -C "$REPO" rev-parse --short HEAD)
    # bench/results is left out: run.sh and this script write there themselves.
    dirty=$(git -C "$REPO" status --porcelain --untracked-files=no -- . ':!bench/results' |
        grep -q . && echo " (with uncommitted changes)" || true)

    {
        echo "# Instruction counts per request ($(date -u +%Y-%m-%d))"
        echo
        echo "- Command: \`CG_PARTS=\"$CG_PARTS\" CG_REQUESTS=$CG_REQUESTS CG_WARMUP=$CG_WARMUP CG_STREAM_CHUNKS=$CG_STREAM_CHUNKS bench/callgrind.sh\`"
        echo "- $(valgrind --version), \`--tool=callgrind --dump-instr=no --collect-jumps=no\`"
        echo "- Commit: $commit$dirty"
        echo "- nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //') ($NGINX_BIN, Debian), curl $(curl --version | awk 'NR == 1 { print $2 }')"
        echo "- Host: $(nproc) CPUs, $(uname -srm)"
        echo
        echo "Each figure is callgrind's Ir (instructions executed) between"
        echo "\`callgrind_control -z\` and \`-d\`, divided by the $CG_REQUESTS requests sent in"
        echo "between, after $CG_WARMUP warm-up requests. One curl sends them in turn on one"
        echo "keep-alive connection, each a POST of a $(stat -c %s "$BODY")-byte chat body."
        if [ "$CG_STREAM_CHUNKS" -gt 0 ]; then
            echo "Every chat is streamed (\`\"stream\":true\`): the emulator answers with"
            echo "$CG_STREAM_CHUNKS content chunks, and the figures cover the whole stream."
        fi

        if [ ${#NGINX_ROWS[@]} -gt 0 ]; then
            echo
            echo "## nginx with the module"
            echo
            echo "One nginx process (\`master_process off\`) proxies to a second nginx that"
            echo "returns a fixed 200 answer, over upstream keep-alive. \`limit_req\`: one"
            echo "zone keyed by \`\$binary_remote_addr\`. chatgate: \`chatgate on\` with a zone,"
            echo "\`global\` and \`ip:*\` rules; no request is denied."
            echo
            echo "| configuration | whole process | over bare | preaccess phase | access phase | \`ngx_http_chatgate_handler\` |"
            echo "| --- | ---: | ---: | ---: | ---: | ---: |"
            for row in "${NGINX_ROWS[@]}"; do
                IFS=$'\t' read -r name total preaccess access handler <<<"$row"
                per=$(cg_per_req "$total")
                [ "$name" = bare ] && bare=$per
                delta=$((per - bare))
                if [ "$name" = chatgate ]; then
                    handler=$(cg_fmt "$(cg_per_req "$handler")")
                else
                    handler="-"
                fi
                echo "| $name | $(cg_fmt "$per") | $(cg_fmt "$delta") | $(cg_fmt "$(cg_per_req "$preaccess")") | $(cg_fmt "$(cg_per_req "$access")") | $handler |"
            done
            echo
            echo "All figures are Ir per request. \"preaccess phase\" and \"access phase\" are the"
            echo "inclusive counts of \`ngx_http_core_generic_phase\` (all phases that use"
            echo "it, limit_req's among them) and \`ngx_http_core_access_phase\`, where"
            echo "the module's handler runs. Debian's nginx is stripped and its debug"
            echo "symbols were not installed, so callgrind cannot name limit_req's"
            echo "handler: its cost is the rise of the preaccess column over bare."
            if [ -n "${NGINX_CHATGATE_OUT:-}" ]; then
                echo
                cg_callee_table "$NGINX_CHATGATE_OUT" ngx_http_chatgate_handler
            fi
        fi

        if [ -n "${WORKER_TABLE:-}" ]; then
            echo
            echo "## Worker"
            echo
            echo "\`chatgate-worker serve\` with a provider key in \`Authorization\` (BYOK), the"
            echo "emulator as the OpenAI provider and a local PostgreSQL 15 for the request"
            echo "log. curl talks to the worker's unix socket directly, without nginx, and"
            echo "sends the \`X-Chatgate-Request-Id\` and \`X-Chatgate-Client-Addr\` headers"
            echo "that nginx would add. The counters stop after the log writer has stored"
            echo "every measured row. The split between \`cg_upstream_event_cb\` and"
            echo "\`cg_upstream_timeout_cb\`, and the log writer's batch sizes, depend on"
            echo "timing, so the worker's figures move by a few percent between runs."
            echo
            echo "Whole process: **$(cg_fmt "$(cg_per_req "$WORKER_TOTAL")") Ir per request**."
            echo
            echo "| function | what it covers | inclusive Ir per request | share |"
            echo "| --- | --- | ---: | ---: |"
            local fn label ir
            for row in "${WORKER_PIECES[@]}"; do
                IFS=$'\t' read -r fn label <<<"$row"
                ir=$(cg_ir_of "$WORKER_TABLE" "$fn")
                echo "| \`$fn\` | $label | $(cg_fmt "$(cg_per_req "$ir")") | $(awk -v a="$ir" -v t="$WORKER_TOTAL" 'BEGIN { printf "%.1f %%", 100 * a / t }') |"
            done
            echo
            echo "Inclusive counts overlap: a function's count contains its callees'."
            if [ -n "${NGINX_FULL_TOTAL:-}" ]; then
                echo
                echo "nginx in front of this worker, configured from the files in \`conf.d\` as"
                echo "the benchmark's full path is (one process, \`master_process off\`, the"
                echo "module with its default rule raised, upstream keep-alive to the worker's"
                echo "unix socket): **$(cg_fmt "$(cg_per_req "$NGINX_FULL_TOTAL")") Ir per request**."
            fi
            for fn in cg_chat_handle cg_chat_on_done cg_chat_finish; do
                echo
                cg_callee_table "$WORKER_OUT" "$fn"
            done
            echo
            echo "### Top $CG_TOP functions by inclusive Ir"
            echo
            echo "| function | inclusive Ir per request | share |"
            echo "| --- | ---: | ---: |"
            # awk, not head, ends the list: head would stop sort with SIGPIPE,
            # which pipefail turns into an error
            grep -v '^TOTAL' "$WORKER_TABLE" | sort -t$'\t' -k2,2nr |
                awk -F'\t' -v n="$CG_TOP" '!seen[$1]++ && ++shown <= n' |
                while IFS=$'\t' read -r fn ir; do
                    echo "| \`$fn\` | $(cg_fmt "$(cg_per_req "$ir")") | $(awk -v a="$ir" -v t="$WORKER_TOTAL" 'BEGIN { printf "%.1f %%", 100 * a / t }') |"
                done
        fi
    } >"$out"
}

for part in $CG_PARTS; do
    case $part in
    nginx) cg_part_nginx ;;
    worker) cg_part_worker ;;
    *) bench_die "unknown part \"$part\" in CG_PARTS: expected nginx or worker" ;;
    esac
done

mkdir -p "$REPO/bench/results"
name=$(date -u +%Y-%m-%d)-$(git -C "$REPO" rev-parse --short HEAD)
if [ "$CG_STREAM_CHUNKS" -gt 0 ]; then
    result=$REPO/bench/results/callgrind-stream-$name.md
else
    result=$REPO/bench/results/callgrind-$name.md
fi
cg_report "$result"
bench_log "wrote ${result#"$REPO"/}"
