#!/usr/bin/env bash
# Headless Chromium for the HTML report test: install Debian's `chromium` package when it is
# missing, then print the browser's path (the last line of stdout).
#
#   scripts/chromium.sh            install if needed, print the path
#
# Idempotent: when /usr/bin/chromium (or $CHROMIUM) already exists it only prints the path.
# apt-get runs as root, or through sudo without a password when that is available.
# Exit codes: 0 ok, 3 cannot install.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

find_chromium() {
    local candidate
    for candidate in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if path=$(find_chromium); then
    echo "$path"
    exit 0
fi

APT_INSTALL_CALLER=chromium.sh bash "$(dirname "$0")/apt_install.sh" chromium || exit 3

if path=$(find_chromium); then
    echo "$path"
    exit 0
fi
log "chromium was installed but no executable was found at /usr/bin/chromium"
exit 3
