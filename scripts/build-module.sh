#!/bin/sh
# Build ngx_http_chatgate_module.so against the nginx sources that Debian's
# nginx-dev installs, configured with the same flags as the installed nginx so
# that load_module accepts the module's signature.
#
# usage: build-module.sh NGX_SRC BUILDDIR [EXTRA_FLAGS]
#
# EXTRA_FLAGS go to both the compiler and the linker (nginx's --with-cc-opt
# and --with-ld-opt), for example the sanitizer flags of make SAN=1.
set -eu

ngx_src=$1
builddir=$(mkdir -p "$2" && cd "$2" && pwd)
extra_flags=${3:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
src_copy=$builddir/src

if [ ! -f "$ngx_src/conf_flags" ]; then
    echo "build-module: $ngx_src/conf_flags not found; install nginx-dev (make deps)" >&2
    exit 1
fi

# configure writes a Makefile into the directory it runs in, and nginx-dev's
# tree belongs to the package, so configure runs in a private copy.
if [ ! -f "$src_copy/configure" ]; then
    rm -rf "$src_copy"
    cp -r "$ngx_src" "$src_copy"
fi

# The compiler and linker flags of the installed nginx (Debian's: -O2,
# stack protector, _FORTIFY_SOURCE, full RELRO), which conf_flags leaves
# out. Without them nginx's configure compiles the module with -O alone.
# Sanitizer builds keep their own flags: _FORTIFY_SOURCE hides errors from
# ASan. Debian's /usr/sbin/nginx goes before any other nginx in PATH,
# because nginx-dev's sources match it and the demo and the tests run it.
nginx_bin=/usr/sbin/nginx
[ -x "$nginx_bin" ] || nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ -n "$extra_flags" ]; then
    cc_opt="-g"
    ld_opt=""
elif [ -x "$nginx_bin" ]; then
    cc_opt=$("$nginx_bin" -V 2>&1 | sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p")
    ld_opt=$("$nginx_bin" -V 2>&1 | sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p")
    cc_opt=${cc_opt:--O2 -g}
else
    cc_opt="-O2 -g"
    ld_opt=""
fi

# The list of module sources is fixed at configure time: configure again
# whenever a source file appears or goes, or config or the flags change.
stamp=$( (cat "$repo/config" "$ngx_src/conf_flags"; ls "$repo"/ngx_module;
          echo "relative builddir $extra_flags $cc_opt $ld_opt") |
    md5sum | cut -d' ' -f1)

# --builddir is relative ($builddir seen from $src_copy): nginx 1.22's
# configure names a dynamic module's objects with unanchored sed patterns.
# The one for assembler sources, 's#\([^ ]*\.\)S#...#', runs after the
# build path is put in, and rewrites an absolute path that contains ".S",
# like the /tmp/tmp.S... of a mktemp -d checkout.
if [ "$(cat "$builddir/.configured" 2>/dev/null)" != "$stamp" ]; then
    # conf_flags is a bash array assignment: NGX_CONF_FLAGS=( ... )
    flags=$(sed -n 's/^NGX_CONF_FLAGS=(\(.*\))$/\1/p' "$ngx_src/conf_flags")
    cd "$src_copy"
    # shellcheck disable=SC2086
    ./configure $flags \
        --with-cc-opt="$cc_opt -Wextra -Wno-unused-parameter -Werror $extra_flags" \
        --with-ld-opt="$ld_opt $extra_flags" \
        --add-dynamic-module="$repo" \
        --builddir=.. >"$builddir/configure.log" 2>&1 || {
        echo "build-module: nginx configure failed, see $builddir/configure.log" >&2
        exit 1
    }
    echo "$stamp" >"$builddir/.configured"
fi

cd "$src_copy"
make -s -f "$builddir/Makefile" modules
