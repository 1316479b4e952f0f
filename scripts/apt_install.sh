#!/usr/bin/env bash
# Install Debian packages for the test helpers (postgres.sh, chromium.sh, java.sh): apt-get as
# root, or through sudo without a password when that is available.
#
#   scripts/apt_install.sh PACKAGE...
#
# Writes what it does and why it failed to stderr, prefixed with the caller's name
# ($APT_INSTALL_CALLER, e.g. "java.sh"). Exit codes: 0 installed, 3 cannot install.
set -euo pipefail

log() { echo "${APT_INSTALL_CALLER:-apt_install.sh}: $*" >&2; }

if [[ $# -eq 0 ]]; then
    log "usage: apt_install.sh PACKAGE..."
    exit 3
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        log "$* missing and apt-get needs root (or password-less sudo)"
        exit 3
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "$* missing and there is no apt-get to install it"
    exit 3
fi
# parallel test workers may start two helpers at once: the second waits for the first's
# apt-get rather than failing on its lock (and then finds little or nothing left to do)
if command -v flock >/dev/null 2>&1; then
    exec 9>/tmp/leadscore-apt-install.lock
    flock -w 1200 9 || log "waited 20 minutes for another install; trying anyway"
fi
log "installing Debian's $* (apt-get update first)"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >&2; then
    log "apt-get update failed (no network?)"
    exit 3
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2; then
    log "apt-get install $* failed"
    exit 3
fi
