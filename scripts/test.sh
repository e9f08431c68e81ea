#!/usr/bin/env bash
# Run chatgate's tests against the binaries in BUILD: the C unit tests, then
# the integration tests in t/*.t, which start real nginx, PostgreSQL, worker
# and provider emulator processes.
#
# usage: scripts/test.sh BUILD          (build or build/san)
#
# One throwaway PostgreSQL cluster serves the whole run; each test script
# creates its own database in it. The cluster is stopped on exit, also after
# a failure or Ctrl-C. Set CHATGATE_PROVE_ARGS to pass extra options to the
# integration run (for example "-v" or "-j2"), and pass test files after
# BUILD to run only those.
set -euo pipefail

build=${1:?usage: scripts/test.sh BUILD [t/NAME.t ...]}
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
build=$(cd "$build" && pwd)

# The openai SDK version that t/chat_openai_sdk.t runs, from the npm registry.
openai_version=4.104.0

. scripts/pg.sh

say() {
    echo "test.sh: $*"
}

module=$build/nginx/ngx_http_chatgate_module.so

for f in "$build/chatgate-worker" "$build/chatgate-emulator" "$module"; do
    [ -e "$f" ] || say "warning: $f is missing; the tests that need it will fail (run make)"
done

# Debian's nginx is not built with ASan, so a module built with make SAN=1
# loads only when the ASan runtime is the first library in the process.
# The harness sets LD_PRELOAD to this list for nginx alone, because perl
# with the runtime preloaded reports its own leaks at exit.
preload=
if [ -e "$module" ] && readelf -d "$module" | grep -q 'NEEDED.*libasan'; then
    preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    for lib in $preload; do
        [ -e "$lib" ] || { say "error: sanitizer runtime $lib not found (is gcc installed?)"; exit 1; }
    done
    say "the module is built with sanitizers: nginx runs with LD_PRELOAD=\"$preload\""
fi

pgdir=$build/test/pg
pg_destroy "$pgdir"
rm -rf "$build/test"
mkdir -p "$build/test"

cleanup() {
    say "stopping PostgreSQL"
    pg_destroy "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting a throwaway PostgreSQL cluster"
CHATGATE_TEST_PGHOST=$(pg_start "$pgdir")
export CHATGATE_TEST_PGHOST
say "PostgreSQL listens on $CHATGATE_TEST_PGHOST/.s.PGSQL.5432"

node_dir=$repo/build/node
installed=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$node_dir/node_modules/openai/package.json" 2>/dev/null || true)
if [ "$installed" != "$openai_version" ]; then
    say "installing the openai npm package $openai_version into $node_dir"
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "openai@$openai_version" </dev/null
fi
export CHATGATE_NODE_MODULES=$node_dir/node_modules
export CHATGATE_BUILD=$build
export CHATGATE_MODULE=$module
export CHATGATE_NGINX_PRELOAD=$preload

status=0

if [ $# -eq 0 ]; then
    units=("$build"/t/unit/*)
    if [ -e "${units[0]}" ]; then
        say "running the unit tests"
        prove --exec '' "${units[@]}" </dev/null || status=1
    else
        say "no unit tests in $build/t/unit"
    fi
fi

if [ $# -eq 0 ]; then
    set -- t/*.t
fi
say "running the integration tests"
# shellcheck disable=SC2086
prove -I t/lib ${CHATGATE_PROVE_ARGS:-} "$@" </dev/null || status=1

if [ $status -eq 0 ]; then
    say "all tests passed"
else
    say "FAILED: see the prove output above; each failing script keeps its folder under /tmp"
fi
exit $status
