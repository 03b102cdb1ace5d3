#!/bin/sh
# install-deps.sh: installs every system dependency of IntentTuner from Debian
# packages. Non-interactive and idempotent: packages already present are left
# alone, so running it twice costs one dpkg query.
set -eu

PKGS="build-essential make pkg-config clang libclang-rt-dev
libopenblas-openmp-dev libomp-dev
libjansson-dev libpng-dev libjpeg-dev libwebp-dev
libcurl4-openssl-dev libmicrohttpd-dev libsqlite3-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all dependencies present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
