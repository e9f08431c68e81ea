#!/usr/bin/env bash
# Start a local chatgate stack under var/ and send one chat through it:
# a throwaway PostgreSQL cluster, the migrations, the provider emulator, the
# worker and nginx with the module on 127.0.0.1:${PORT:-8080}. The stack
# keeps running; scripts/stop.sh (make stop) stops it. Running this again
# stops the previous stack and starts a fresh one on the same database.
#
# Settings: PORT (nginx, default 8080), EMULATOR_PORT (default 8081).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

var=$repo/var
port=${PORT:-8080}
emulator_port=${EMULATOR_PORT:-8081}
build=$repo/build
socket=$var/run/worker.sock

. scripts/pg.sh

say() {
    echo "demo: $*"
}

fail() {
    echo "demo: $*" >&2
    exit 1
}

# Polls a command for at most 10 s.
wait_for() {
    local what=$1 i
    shift
    for i in $(seq 1 100); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$what did not come up within 10 s; see the logs in $var/log"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for f in "$build/chatgate-worker" "$build/chatgate-emulator" "$build/nginx/ngx_http_chatgate_module.so"; do
    [ -e "$f" ] || fail "$f is missing: run make first"
done

scripts/stop.sh --quiet

for p in "$port" "$emulator_port"; do
    if port_open "$p"; then
        fail "port $p on 127.0.0.1 is in use; pick another with PORT=... or EMULATOR_PORT=..."
    fi
done
[ ${#socket} -lt 100 ] || fail "$socket is too long for a unix socket path; clone the repository to a shorter path"

mkdir -p "$var/run" "$var/log" "$var/nginx/conf" "$var/nginx/tmp"

say "starting PostgreSQL"
pghost=$(pg_start "$var/pg")
if [ -z "$(psql -X -h "$pghost" -U postgres -d postgres -Atc \
        "SELECT 1 FROM pg_database WHERE datname = 'chatgate'")" ]; then
    psql -X -q -h "$pghost" -U postgres -d postgres -c 'CREATE DATABASE chatgate'
fi

# The secrets survive a rerun: the database keeps the provider keys that
# ADMIN_KMS_KEY encrypted, so a new KMS key would make them unusable.
old_setting() {
    [ -f "$var/chatgate.env" ] && sed -n "s/^$1=//p" "$var/chatgate.env" | tail -n 1
}
kms_key=$(old_setting ADMIN_KMS_KEY || true)
kms_key=${kms_key:-$(openssl rand -hex 32)}

# The secrets nginx shares with the worker, one file each, as an operator
# keeps them under /etc/chatgate/ (docs/security.md): nginx reads them
# through conf.d/chatgate-auth.conf, the worker through *_FILE settings.
mkdir -p "$var/etc"
chmod 700 "$var/etc"
for f in admin_token jwt_secret; do
    if [ ! -s "$var/etc/$f" ]; then
        (umask 077 && openssl rand -hex 32 >"$var/etc/$f")
    fi
    chmod 600 "$var/etc/$f"
done

cat >"$var/chatgate.env" <<ENV
ADMIN_TOKEN_FILE=$var/etc/admin_token
ADMIN_KMS_KEY=$kms_key
JWT_SECRET_FILE=$var/etc/jwt_secret
CHATGATE_SOCKET=$socket
DATABASE_URL=postgresql://postgres@/chatgate?host=$pghost
CHATGATE_LOG_LEVEL=info
OPENAI_BASE_URL=http://127.0.0.1:$emulator_port/v1
OPENROUTER_BASE_URL=http://127.0.0.1:$emulator_port/api/v1
ANTHROPIC_BASE_URL=http://127.0.0.1:$emulator_port/v1
OLLAMA_BASE_URL=http://127.0.0.1:$emulator_port
CHATGATE_DEFAULT_PROVIDER=openai
CHATGATE_CONNECT_TIMEOUT_MS=5000
CHATGATE_REQUEST_TIMEOUT_MS=60000
CHATGATE_MAX_BODY_SIZE=1048576
CHATGATE_LOG_FLUSH_MS=200
CHATGATE_SPOOL_PATH=$var/spool
CHATGATE_SQL_DIR=$repo/sql
CHATGATE_CONTROL_URL=unix:$var/run/control.sock:/chatgate/control
ENV
chmod 600 "$var/chatgate.env"

# Basic auth in front of /admin (conf.d/chatgate-admin.conf). nginx worker
# processes read htpasswd on each request, so it is 0640 (group www-data in
# a production setup); -stdin keeps the password out of the process list.
basic_password=$(openssl rand -hex 12)
cat >>"$var/chatgate.env" <<ENV
BASIC_AUTH_USER=admin
BASIC_AUTH_PASSWORD=$basic_password
ENV
printf 'admin:%s\n' "$(printf '%s\n' "$basic_password" | openssl passwd -apr1 -stdin)" \
    >"$var/etc/htpasswd"
chmod 640 "$var/etc/htpasswd"

say "applying migrations"
(set -a && . "$var/chatgate.env" && "$build/chatgate-worker" migrate) >>"$var/log/migrate.log" 2>&1 ||
    fail "migrations failed; see $var/log/migrate.log"

say "starting the provider emulator on 127.0.0.1:$emulator_port"
"$build/chatgate-emulator" --listen "127.0.0.1:$emulator_port" \
    --pid-file "$var/run/emulator.pid" </dev/null >>"$var/log/emulator.log" 2>&1 &
echo $! >"$var/run/emulator.pid"
wait_for "the emulator" port_open "$emulator_port"

say "starting the worker on $socket"
rm -f "$socket"
"$build/chatgate-worker" serve --env-file "$var/chatgate.env" \
    </dev/null >>"$var/log/worker.log" 2>&1 &
echo $! >"$var/run/worker.pid"
wait_for "the worker" test -S "$socket"

# The operator's drop-in files, with the module and the socket where the
# demo has them.
for f in conf.d/*; do
    sed -e "s|/usr/lib/nginx/modules/|$build/nginx/|g" \
        -e "s|/run/chatgate/|$var/run/|g" -e "s|/etc/chatgate/|$var/etc/|g" \
        "$f" >"$var/nginx/conf/$(basename "$f")"
done

user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat >"$var/nginx/conf/nginx.conf" <<CONF
include chatgate-module.conf;

# As root, workers run as root too so that they can reach var/ wherever the
# repository is. A production setup runs them as www-data.
$user_line
worker_processes 2;
pid $var/run/nginx.pid;
# notice, not info: at info nginx itself logs rejected header lines whole,
# and an Authorization line carries the caller's provider key.
error_log $var/log/nginx-error.log notice;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $var/nginx/tmp/client_body;
    proxy_temp_path $var/nginx/tmp/proxy;
    fastcgi_temp_path $var/nginx/tmp/fastcgi;
    uwsgi_temp_path $var/nginx/tmp/uwsgi;
    scgi_temp_path $var/nginx/tmp/scgi;

    log_format chatgate '\$remote_addr [\$time_local] "\$request" \$status '
                        '\$body_bytes_sent \$request_time rid=\$chatgate_request_id';
    access_log $var/log/nginx-access.log chatgate;

    include chatgate-http.conf;
    include chatgate-control.conf;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        include chatgate-server.conf;
    }
}
CONF

# nginx removes its unix sockets when it exits cleanly; one left by a crash
# would make the listen fail.
rm -f "$var/run/control.sock"

say "starting nginx on 127.0.0.1:$port"
/usr/sbin/nginx -p "$var/nginx/" -c "$var/nginx/conf/nginx.conf" -e "$var/log/nginx-error.log" ||
    fail "nginx did not start; see $var/log/nginx-error.log"
wait_for "nginx" port_open "$port"

say "sending a chat"
answer=$(curl -sS --max-time 30 -D "$var/run/demo-headers.txt" \
    -H 'Authorization: Bearer sk-demo-byok-key' -H 'Content-Type: application/json' \
    -d '{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello from make demo"}]}' \
    "http://127.0.0.1:$port/v1/chat/completions") || fail "the chat request failed"
echo "$answer"

# nginx writes the access log line, with the request id, after the response.
rid=""
row=""
for i in $(seq 1 50); do
    rid=$(tail -n 1 "$var/log/nginx-access.log" | sed -n 's/.* rid=\([0-9a-zA-Z-]*\)$/\1/p')
    row=$(psql -X -h "$pghost" -U postgres -d chatgate -x -c \
        "SELECT request_id, client_addr, key_id, provider, model, ok, status, latency_ms,
                prompt_tokens, completion_tokens, total_tokens, error_class
           FROM chat_logs WHERE request_id = '$rid'" | grep -v '^(0 rows)$' || true)
    [ -n "$row" ] && break
    sleep 0.1
done
say "its chat_logs row:"
echo "${row:-(none yet for request $rid)}"

cat <<USAGE

chatgate is running:
  gateway     http://127.0.0.1:$port/v1/chat/completions (OpenAI API; model prefixes
              openai/, openrouter/, anthropic/, ollama/; Authorization: Bearer <provider key>)
  settings    $var/chatgate.env (ADMIN_KMS_KEY and the basic auth password are
              generated on the first run; ADMIN_KMS_KEY is kept)
  secrets     $var/etc/admin_token and $var/etc/jwt_secret, read by nginx and the
              worker; $var/etc/htpasswd for basic auth in front of /admin
  logs        $var/log/
  database    set -a; . $var/chatgate.env; set +a; psql "\$DATABASE_URL"

  curl -s http://127.0.0.1:$port/v1/chat/completions -H 'Authorization: Bearer sk-any' \\
      -H 'Content-Type: application/json' \\
      -d '{"model": "anthropic/claude-3-haiku", "messages": [{"role": "user", "content": "hi"}]}'

  admin API   curl -s -u "admin:\$BASIC_AUTH_PASSWORD" -H "X-Admin-Token: \$(cat $var/etc/admin_token)" \\
                  http://127.0.0.1:$port/admin/api/limits
              (BASIC_AUTH_PASSWORD is in $var/chatgate.env)

Stop it with: make stop
USAGE
