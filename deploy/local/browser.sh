#!/usr/bin/env bash
# Makes sure the browser tests (tests/browser/) have what they drive: Debian's `chromium`, which
# Playwright for Python runs headless (Playwright never downloads a browser of its own here), and
# `pdftotext` from `poppler-utils`, which renders the executive summary's PDF to text.
#
#   deploy/local/browser.sh     `make test` runs it before pytest; so can you.
#
# When both commands are on PATH it does nothing (a few milliseconds), so it runs on every
# `make test`. Otherwise it installs the two packages with
#   apt-get update && apt-get install -y --no-install-recommends chromium poppler-utils
# which needs root and apt (Debian or Ubuntu); without them it exits 1 with one line saying what
# to install. Installed once, nothing is fetched again.
#
# Environment: ROI_BROWSER_LOG (.local/browser-install.log): apt's output, shown when it fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOG=${ROI_BROWSER_LOG:-$ROOT/.local/browser-install.log}
PACKAGES=(chromium poppler-utils)

die() {
    echo "browser.sh: $*" >&2
    exit 1
}

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftotext >/dev/null || missing+=(pdftotext)
[[ ${#missing[@]} -eq 0 ]] && exit 0

what="${missing[*]} (Debian packages: ${PACKAGES[*]})"
command -v apt-get >/dev/null \
    || die "missing $what and no apt-get: install Chromium and poppler's pdftotext with your package manager"
[[ $(id -u) -eq 0 ]] \
    || die "missing $what and not root: run 'sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}'"

mkdir -p "$(dirname "$LOG")"
echo "browser.sh: installing ${PACKAGES[*]} (apt-get; missing: ${missing[*]})" >&2
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"; } >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    die "apt-get install ${PACKAGES[*]} failed (whole log: $LOG)"
fi
for command in chromium pdftotext; do
    command -v "$command" >/dev/null || die "installed ${PACKAGES[*]}, yet no '$command' on PATH"
done
echo "browser.sh: installed $(chromium --version 2>/dev/null || echo chromium) and pdftotext" >&2
