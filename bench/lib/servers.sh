# Starting the servers a benchmark run needs: the provider emulator (or a
# stand-in), nginx in its configurations, a throwaway PostgreSQL cluster, the
# chatgate worker and the Portkey gateway. Each listens on 127.0.0.1 or a unix
# socket under $BENCH_RUN_DIR and is tracked for bench_stop_all.
#
# Inputs: $REPO, $BUILD, $BENCH_RUN_DIR, $NGINX_BIN.

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORTKEY_VERSION=1.15.2
# Portkey's streaming breaks with newer @hono/node-server releases.
PORTKEY_NODE_SERVER_VERSION=1.13.5

# Starts build/chatgate-emulator on a free port. Sets EMU_PORT and EMU_PID.
bench_start_emulator() {
    local bin=$BUILD/chatgate-emulator log=$BENCH_RUN_DIR/emulator.log

    [ -x "$bin" ] || { BENCH_SKIP_REASON="$bin not built"; return 1; }

    EMU_PORT=$(bench_free_port)
    "$bin" --listen "127.0.0.1:$EMU_PORT" --threads "$BENCH_EMU_THREADS" \
        --pid-file "$BENCH_RUN_DIR/emulator.pid" 2>"$log" &
    EMU_PID=$!
    bench_track_pid "$EMU_PID"

    if ! bench_wait_for 10 grep -q "chatgate-emulator listening on" "$log"; then
        BENCH_SKIP_REASON="emulator did not start within 10 s: $(tail -n 3 "$log")"
        return 1
    fi
}

# Starts an nginx that returns a fixed chat completion for every request, for
# developing the harness while the emulator is not built. Its numbers are
# not the emulator's and run.sh does not record them under bench/results.
bench_start_standin_emulator() {
    local dir=$BENCH_RUN_DIR/standin

    EMU_PORT=$(bench_free_port)
    mkdir -p "$dir"
    bench_nginx_conf "$dir" 1 "" "
    server {
        listen 127.0.0.1:$EMU_PORT;
        keepalive_requests 100000;
        location / {
            default_type application/json;
            return 200 '{\"id\":\"chatcmpl-standin\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"emulator reply to: hello\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4,\"total_tokens\":6}}';
        }
    }" || return 1
    bench_start_nginx "$dir" || return 1
    EMU_PID=$NGINX_MASTER_PID
}

# Writes $1/nginx.conf: worker_processes $2, main-context lines $3 and
# http-context lines $4. Logs and temporary files stay under $1; access logs
# are off in every configuration so that no case pays for them.
bench_nginx_conf() {
    local dir=$1 workers=$2 main_extra=$3 http_extra=$4

    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
$main_extra
user root;
worker_processes $workers;
worker_rlimit_nofile 65536;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
    worker_connections 8192;
}

http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
$http_extra
}
CONF
}

# Checks and starts the nginx configured in $1. Sets NGINX_MASTER_PID. On a
# configuration error returns 1 with nginx's message in BENCH_SKIP_REASON.
bench_start_nginx() {
    local dir=$1 out

    if ! out=$("$NGINX_BIN" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>&1); then
        BENCH_SKIP_REASON="nginx -t failed: $(echo "$out" | grep -m1 -E 'emerg|error' |
            sed -e 's/^nginx: //' -e 's/ in [^ ]*:[0-9]*$//')"
        return 1
    fi

    "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
    NGINX_MASTER_PID=$!
    bench_track_pid "$NGINX_MASTER_PID"

    if ! bench_wait_for 10 test -s "$dir/nginx.pid"; then
        BENCH_SKIP_REASON="nginx in $dir did not start: $(tail -n 2 "$dir/error.log")"
        return 1
    fi
}

# Prints the nginx master PID $1 and the PIDs of its worker processes.
bench_nginx_pids() {
    echo "$1"
    bench_children "$1"
}

# Creates and starts a throwaway PostgreSQL 15 cluster as the postgres user
# (initdb and postgres refuse to run as root), listening only on a unix
# socket. Sets PG_SOCKET_DIR and PG_PID.
bench_start_postgres() {
    local root=$BENCH_RUN_DIR/pg log

    [ -x "$PG_BIN/initdb" ] || { BENCH_SKIP_REASON="$PG_BIN/initdb not found"; return 1; }

    # The postgres user must reach the data folder; a checkout under a
    # private home folder is not reachable, so fall back to /tmp there.
    if ! runuser -u postgres -- test -x "$BENCH_RUN_DIR"; then
        root=$(mktemp -d /tmp/chatgate-bench-pg.XXXXXX)
        BENCH_CLEANUP_DIRS+=("$root")
        # mktemp makes the folder 0700 for root; postgres must pass through it
        chmod 711 "$root"
        bench_log "postgres cannot reach $BENCH_RUN_DIR, using $root for the cluster"
    fi

    install -d -o postgres -m 700 "$root/data"
    install -d -o postgres -m 755 "$root/socket"
    log=$root/postgres.log
    touch "$log" && chown postgres "$log"

    if ! runuser -u postgres -- "$PG_BIN/initdb" -D "$root/data" --auth=trust \
            -U postgres --no-sync >"$root/initdb.log" 2>&1; then
        BENCH_SKIP_REASON="initdb failed, see $root/initdb.log"
        return 1
    fi

    runuser -u postgres -- "$PG_BIN/postgres" -D "$root/data" -k "$root/socket" \
        -c listen_addresses='' -c max_connections=50 >>"$log" 2>&1 &
    bench_track_pid $!

    if ! bench_wait_for 20 "$PG_BIN/pg_isready" -q -h "$root/socket"; then
        BENCH_SKIP_REASON="postgres did not start within 20 s: $(tail -n 2 "$log")"
        return 1
    fi

    # runuser keeps running as the parent of postgres: track the postmaster
    # itself, which stops first, so that its backends are measured as well.
    PG_PID=$(head -n 1 "$root/data/postmaster.pid")
    bench_track_pid "$PG_PID"
    PG_SOCKET_DIR=$root/socket
}

bench_psql() {
    "$PG_BIN/psql" -h "$PG_SOCKET_DIR" -U postgres -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# Migrates a fresh database and starts build/chatgate-worker against it and
# the emulator. Sets WORKER_SOCKET and WORKER_PID.
bench_start_worker() {
    local bin=$BUILD/chatgate-worker env=$BENCH_RUN_DIR/worker.env
    local log=$BENCH_RUN_DIR/worker.log

    [ -x "$bin" ] || { BENCH_SKIP_REASON="$bin not built"; return 1; }

    bench_psql -d postgres -c "CREATE DATABASE chatgate_bench" || {
        BENCH_SKIP_REASON="CREATE DATABASE chatgate_bench failed"
        return 1
    }

    # The secret files that conf.d's auth snippet and the worker both read,
    # as an operator keeps them under /etc/chatgate/.
    mkdir -p "$BENCH_RUN_DIR/etc"
    (umask 077
     openssl rand -hex 24 >"$BENCH_RUN_DIR/etc/admin_token"
     openssl rand -hex 32 >"$BENCH_RUN_DIR/etc/jwt_secret"
     printf 'bench:%s\n' "$(openssl rand -hex 12 | openssl passwd -apr1 -stdin)" \
         >"$BENCH_RUN_DIR/etc/htpasswd")

    WORKER_SOCKET=$BENCH_RUN_DIR/worker.sock
    cat >"$env" <<ENV
CHATGATE_SOCKET=$WORKER_SOCKET
DATABASE_URL=postgresql:///chatgate_bench?host=$PG_SOCKET_DIR&user=postgres
CHATGATE_LOG_LEVEL=${BENCH_WORKER_LOG_LEVEL:-warn}
CHATGATE_DEFAULT_PROVIDER=openai
OPENAI_BASE_URL=http://127.0.0.1:$EMU_PORT/v1
CHATGATE_SPOOL_PATH=$BENCH_RUN_DIR/worker.spool
CHATGATE_SQL_DIR=$REPO/sql
ADMIN_KMS_KEY=$(openssl rand -hex 32)
ADMIN_TOKEN_FILE=$BENCH_RUN_DIR/etc/admin_token
JWT_SECRET_FILE=$BENCH_RUN_DIR/etc/jwt_secret
ENV

    if ! "$bin" migrate --env-file "$env" >"$BENCH_RUN_DIR/migrate.log" 2>&1; then
        BENCH_SKIP_REASON="chatgate-worker migrate failed: $(tail -n 1 "$BENCH_RUN_DIR/migrate.log")"
        return 1
    fi

    "$bin" serve --env-file "$env" 2>"$log" &
    WORKER_PID=$!
    bench_track_pid "$WORKER_PID"

    if ! bench_wait_for 10 curl -sf --unix-socket "$WORKER_SOCKET" http://worker/healthz; then
        BENCH_SKIP_REASON="worker did not answer /healthz within 10 s: $(tail -n 2 "$log")"
        return 1
    fi
}

# Installs @portkey-ai/gateway into build/bench/portkey (ignored by git) with
# @hono/node-server pinned through npm overrides, unless already there.
bench_install_portkey() {
    local dir=$BUILD/bench/portkey installed pinned

    command -v node >/dev/null && command -v npm >/dev/null ||
        { BENCH_SKIP_REASON="node or npm not installed (make deps installs them)"; return 1; }

    installed=$(node -p "require('$dir/node_modules/@portkey-ai/gateway/package.json').version" 2>/dev/null)
    pinned=$(node -p "require('$dir/node_modules/@hono/node-server/package.json').version" 2>/dev/null)
    [ "$installed" = "$PORTKEY_VERSION" ] && [ "$pinned" = "$PORTKEY_NODE_SERVER_VERSION" ] && return 0

    mkdir -p "$dir"
    cat >"$dir/package.json" <<JSON
{
  "name": "chatgate-bench-portkey",
  "private": true,
  "dependencies": { "@portkey-ai/gateway": "$PORTKEY_VERSION" },
  "overrides": { "@hono/node-server": "$PORTKEY_NODE_SERVER_VERSION" }
}
JSON
    bench_log "installing @portkey-ai/gateway $PORTKEY_VERSION into $dir"
    if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --no-package-lock \
            >"$dir/npm-install.log" 2>&1); then
        BENCH_SKIP_REASON="npm install @portkey-ai/gateway@$PORTKEY_VERSION failed, see $dir/npm-install.log"
        return 1
    fi
}

# Starts the Portkey gateway on a free 127.0.0.1 port. Sets PORTKEY_PORT and
# PORTKEY_PID.
bench_start_portkey() {
    local dir=$BUILD/bench/portkey log=$BENCH_RUN_DIR/portkey.log

    bench_install_portkey || return 1

    PORTKEY_PORT=$(bench_free_port)
    node --import "$REPO/bench/portkey/listen-loopback.mjs" \
        "$dir/node_modules/@portkey-ai/gateway/build/start-server.js" \
        --port="$PORTKEY_PORT" --headless >"$log" 2>&1 &
    PORTKEY_PID=$!
    bench_track_pid "$PORTKEY_PID"

    if ! bench_wait_for 20 bench_tcp_listening "$PORTKEY_PORT"; then
        BENCH_SKIP_REASON="Portkey gateway did not listen within 20 s: $(tail -n 2 "$log")"
        return 1
    fi
}
