#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and the demo: trust auth, no
# TCP listener, a unix socket inside the cluster's folder.
#
# usage: pg.sh start DIR   create the cluster in DIR if needed and start it;
#                          prints the socket folder on stdout
#        pg.sh stop DIR    stop the cluster started from DIR, by its PID
#        pg.sh destroy DIR stop it and delete its data
#
# Scripts may also source this file and call pg_start / pg_stop.
#
# initdb and postgres reject root, so as root they run as the "postgres"
# user. That user must be able to reach DIR; when it cannot (a clone under
# /root is mode 700), the cluster goes to a folder under /tmp instead and
# DIR/location records where.

pg_bindir() {
    local d
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ]; then
            echo "$d"
            return 0
        fi
    done
    echo "pg.sh: initdb not found under /usr/lib/postgresql; install postgresql (make deps)" >&2
    return 1
}

# Runs a command as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Prints the folder that contains the cluster for DIR, creating it on first use.
pg_location() {
    local dir=$1 loc

    mkdir -p "$dir"
    if [ -f "$dir/location" ] && [ -d "$(cat "$dir/location")" ]; then
        cat "$dir/location"
        return 0
    fi

    loc=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$loc"
        if ! runuser -u postgres -- test -w "$loc"; then
            loc=$(mktemp -d /tmp/chatgate-pg.XXXXXX)
            chown postgres: "$loc"
            echo "pg.sh: user postgres cannot reach $dir, so the cluster lives in $loc" >&2
        fi
    fi

    # A unix socket path is limited to 107 bytes: keep room for .s.PGSQL.5432.
    if [ ${#loc} -gt 80 ]; then
        loc=$(mktemp -d /tmp/chatgate-pg.XXXXXX)
        [ "$(id -u)" -eq 0 ] && chown postgres: "$loc"
        echo "pg.sh: $dir is too long a path for a unix socket, so the cluster lives in $loc" >&2
    fi

    echo "$loc" >"$dir/location"
    echo "$loc"
}

# Starts the cluster for DIR (initdb on first use) and prints its socket folder.
pg_start() {
    local dir=$1 bin loc pid

    bin=$(pg_bindir) || return 1
    loc=$(pg_location "$dir") || return 1

    if [ ! -f "$loc/data/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$loc/data" --auth=trust --username=postgres \
            --encoding=UTF8 --locale=C >"$loc/initdb.log" 2>&1 || {
            echo "pg.sh: initdb failed, see $loc/initdb.log" >&2
            return 1
        }
    fi

    pid=$(head -n 1 "$loc/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$loc"
        return 0
    fi

    pg_as_owner "$bin/pg_ctl" -D "$loc/data" -l "$loc/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -k $loc -c fsync=off -c synchronous_commit=off -c max_connections=200" \
        start >/dev/null || {
        echo "pg.sh: postgres did not start, see $loc/postgres.log" >&2
        return 1
    }

    head -n 1 "$loc/data/postmaster.pid" >"$dir/postgres.pid"
    echo "$loc"
}

# Stops the cluster for DIR: SIGINT (fast shutdown) to the postmaster's PID,
# then waits for it to go, at most 30 s.
pg_stop() {
    local dir=$1 loc pid i

    [ -f "$dir/location" ] || return 0
    loc=$(cat "$dir/location")
    pid=$(head -n 1 "$loc/data/postmaster.pid" 2>/dev/null || cat "$dir/postgres.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0

    kill -INT "$pid" 2>/dev/null || return 0
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "pg.sh: postgres (PID $pid) still runs after 30 s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/postgres.pid"
}

# Stops the cluster for DIR and deletes it, including a folder under /tmp
# that stood in for DIR. For throwaway clusters only: the data is gone.
pg_destroy() {
    local dir=$1 loc

    [ -f "$dir/location" ] || return 0
    loc=$(cat "$dir/location")
    pg_stop "$dir"

    case "$loc" in
        /tmp/chatgate-pg.*) rm -rf "$loc" ;;
        *) rm -rf "$loc/data" ;;
    esac
    rm -f "$dir/location"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}:${2:-}" in
    start:?*) pg_start "$2" ;;
    stop:?*)  pg_stop "$2" ;;
    destroy:?*) pg_destroy "$2" ;;
    *)
        echo "usage: $0 start|stop|destroy DIR" >&2
        exit 2
        ;;
    esac
fi
