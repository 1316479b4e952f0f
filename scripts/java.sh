#!/usr/bin/env bash
# Java for the Spark tests (pyspark 4 needs Java 17 or newer): install Debian's headless JRE
# when no `java` is on the PATH, then print the java executable's path (the last line of stdout).
#
#   scripts/java.sh            install if needed, print the path
#
# Idempotent: when `java` (or $JAVA_HOME/bin/java) exists it only prints the path.
# apt-get runs as root, or through sudo without a password when that is available.
# Exit codes: 0 ok, 3 cannot install.
set -euo pipefail

log() { echo "java.sh: $*" >&2; }

find_java() {
    local candidate
    for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if path=$(find_java); then
    echo "$path"
    exit 0
fi

APT_INSTALL_CALLER=java.sh bash "$(dirname "$0")/apt_install.sh" openjdk-17-jre-headless || exit 3

if path=$(find_java); then
    echo "$path"
    exit 0
fi
log "openjdk-17-jre-headless was installed but no java is on the PATH"
exit 3
