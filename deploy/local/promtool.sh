#!/usr/bin/env bash
# Prints the path of a working promtool (Prometheus' rule checker and unit-test runner), fetching
# it first when missing. tests/unit/deploy/test_alerts.py runs it; so can you:
#   "$(deploy/local/promtool.sh)" test rules deploy/prometheus/alerts_test.yml
#
# Where promtool comes from, first match wins:
#   1. $PROMTOOL, when set (any promtool >= 2.42; nothing is fetched);
#   2. .cache/promtool-<version>/promtool, fetched by an earlier run;
#   3. Debian's (or Ubuntu's) `prometheus` package: `apt-get download` fetches the .deb into a
#      temporary directory and `dpkg-deb -x` unpacks it there; only the promtool binary is kept.
#      Nothing is installed into the system, so no Prometheus service is created or started, and
#      no root is needed. Only when apt has no package lists yet (a fresh machine or container)
#      does it run `apt-get update`, which needs root; without root it says what to run.
# Concurrent runs take turns (a lock file in the cache directory).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${ROI_PROMTOOL_CACHE:-$ROOT/.cache}
PACKAGE=prometheus

die() {
    echo "promtool.sh: $*" >&2
    exit 1
}

works() {
    [[ -x $1 ]] && "$1" --version >/dev/null 2>&1
}

cached() {
    local found
    found=$(find "$CACHE" -maxdepth 2 -path "$CACHE/promtool-*/promtool" -type f 2>/dev/null \
        | sort -V | tail -n 1)
    [[ -n $found ]] && works "$found" && echo "$found"
}

if [[ -n ${PROMTOOL:-} ]]; then
    works "$PROMTOOL" || die "PROMTOOL=$PROMTOOL does not run"
    echo "$PROMTOOL"
    exit 0
fi

if found=$(cached); then
    echo "$found"
    exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
    || die "no promtool: install Prometheus' promtool and set PROMTOOL=/path/to/promtool"

mkdir -p "$CACHE"
exec 9>"$CACHE/promtool.lock"
flock 9
# Another run may have fetched it while this one waited for the lock.
if found=$(cached); then
    echo "$found"
    exit 0
fi

work=$(mktemp -d "$CACHE/promtool-download.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; readable for its sandbox user (_apt),
# though apt may still download as root from a private directory (it says so; harmless).
chmod 755 "$work"

download() {
    (cd "$work" && apt-get download "$PACKAGE") >"$work/apt.log" 2>&1
}

if ! download; then
    if [[ $(id -u) -ne 0 ]]; then
        cat "$work/apt.log" >&2
        die "apt-get download $PACKAGE failed; if apt has no package lists yet, run" \
            "'apt-get update' as root once (or set PROMTOOL=/path/to/promtool)"
    fi
    echo "promtool.sh: apt-get update (apt has no list naming $PACKAGE yet)" >&2
    apt-get update -qq >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update failed"; }
    download || { cat "$work/apt.log" >&2; die "apt-get download $PACKAGE failed"; }
fi

deb=$(find "$work" -maxdepth 1 -name "${PACKAGE}_*.deb" | head -n 1)
[[ -n $deb ]] || die "apt-get download left no ${PACKAGE}_*.deb"
version=$(dpkg-deb --field "$deb" Version)
dpkg-deb -x "$deb" "$work/unpacked"
[[ -f $work/unpacked/usr/bin/promtool ]] || die "$(basename "$deb") has no usr/bin/promtool"

target=$CACHE/promtool-$version
mkdir -p "$target"
install -m 755 "$work/unpacked/usr/bin/promtool" "$target/promtool.new"
mv "$target/promtool.new" "$target/promtool"
works "$target/promtool" || die "$target/promtool does not run: $("$target/promtool" --version 2>&1 | head -n 3)"
echo "promtool.sh: fetched promtool $version from Debian's $PACKAGE package into $target" >&2
echo "$target/promtool"
