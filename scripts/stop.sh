#!/usr/bin/env bash
# Stop what scripts/demo.sh started, by the PID files under var/run, then
# the demo's PostgreSQL cluster.
#
# usage: scripts/stop.sh [--quiet]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
var=$repo/var
quiet=${1:-}

. "$repo/scripts/pg.sh"

say() {
    [ "$quiet" = --quiet ] || echo "stop: $*"
}

# Sends sig to the PID in var/run/NAME.pid and waits at most 15 s for it
# to exit, then sends SIGKILL.
stop_pid() {
    local name=$1 sig=$2 file=$var/run/$1.pid pid i

    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    rm -f "$file"
    if ! kill -0 "$pid" 2>/dev/null; then
        return 0
    fi

    say "stopping $name (PID $pid)"
    kill "-$sig" "$pid"
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "stop: $name (PID $pid) still runs 15 s after SIG$sig, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

stop_pid nginx QUIT
stop_pid worker TERM
stop_pid emulator TERM

if [ -f "$var/pg/postgres.pid" ]; then
    say "stopping PostgreSQL"
    pg_stop "$var/pg"
fi
