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

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        log "chromium is missing and apt-get needs root (or password-less sudo)"
        exit 3
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "chromium is missing and there is no apt-get to install it; set CHROMIUM=/path/to/it"
    exit 3
fi

log "installing Debian's chromium package (apt-get update first)"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >&2 \
    || ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >&2; then
    log "apt-get could not install chromium"
    exit 3
fi

if path=$(find_chromium); then
    echo "$path"
    exit 0
fi
log "chromium was installed but no executable was found at /usr/bin/chromium"
exit 3
