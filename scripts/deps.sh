#!/bin/sh
# Install the Debian packages that chatgate's build, demo and tests need,
# when any is missing. Runs as root (or through sudo when there is one).
set -eu

packages="nginx nginx-dev postgresql postgresql-contrib libpq-dev libssl-dev
libcurl4-openssl-dev libyajl-dev libevent-dev libmimalloc-dev pkg-config make gcc perl
curl ca-certificates util-linux strace"

# Some images bring Node.js from elsewhere with npm inside it; Debian's npm
# package would conflict there, so only a missing command pulls it in.
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
