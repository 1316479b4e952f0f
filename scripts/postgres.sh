#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and demos: install (apt-get, only when missing),
# start a fresh cluster on 127.0.0.1, stop and delete it.
#
#   scripts/postgres.sh install             install the server when no initdb is found
#   scripts/postgres.sh start DIR [PORT]    new cluster for DIR on PORT (default: a free one);
#                                           prints the SQLAlchemy URL (last line of stdout),
#                                           writes it to DIR/url and `export ...` to DIR/env
#   scripts/postgres.sh url DIR             print the URL of the running cluster of DIR
#   scripts/postgres.sh stop DIR            stop the cluster of DIR and delete its files
#
#   eval "$(scripts/postgres.sh start /tmp/pg | tail -1 | sed 's/^/export LEADSCORE_POSTGRES_URL=/')"
#
# The server refuses to run as root: as root the cluster runs as the `postgres` system user
# (created by the package) in a folder of its own under $TMPDIR, linked from DIR/pgdata.
# Authentication is `trust`, on 127.0.0.1 only: a local, throwaway cluster, never a real one.
# Exit codes: 0 ok, 2 usage, 3 cannot install, 4 cannot start.
set -euo pipefail

DB_NAME="${LEADSCORE_PG_DB:-leadscore}"
DB_USER="${LEADSCORE_PG_USER:-leadscore}"

log() { echo "postgres.sh: $*" >&2; }
die() { local code=$1; shift; log "$*"; exit "$code"; }

find_bindir() {
    local initdb
    initdb=$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$initdb" ]]; then
        initdb=$(command -v initdb 2>/dev/null || true)
    fi
    [[ -n "$initdb" && -x "$initdb" ]] && dirname "$initdb"
}

do_install() {
    if find_bindir >/dev/null; then
        log "server binaries present in $(find_bindir); nothing to install"
        return 0
    fi
    APT_INSTALL_CALLER=postgres.sh bash "$(dirname "$0")/apt_install.sh" postgresql \
        || die 3 "PostgreSQL is not installed and could not be installed."
    find_bindir >/dev/null || die 3 "PostgreSQL was installed but no initdb was found."
}

# Run a server binary as the user that owns the cluster.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

pgdata_of() { echo "$1/pgdata"; }

# The cluster's real folder: the server binaries must not walk through DIR, which may sit
# under a folder the postgres user cannot enter.
real_pgdata() { readlink -f "$(pgdata_of "$1")"; }

url_of() {
    local dir=$1
    [[ -f "$dir/url" ]] || die 4 "no cluster started in $dir"
    cat "$dir/url"
}

do_start() {
    local dir=${1:?usage: postgres.sh start DIR [PORT]}
    local port=${2:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local bindir pgdata
    do_install
    bindir=$(find_bindir)
    pgdata=$(pgdata_of "$dir")
    if [[ -e "$pgdata/postmaster.pid" ]] \
        && as_owner "$bindir/pg_ctl" -D "$(real_pgdata "$dir")" status >/dev/null 2>&1; then
        log "already running"
        url_of "$dir"
        return 0
    fi
    [[ -L "$pgdata" && ! -e "$pgdata" ]] && rm -f "$pgdata"  # its folder was cleaned away
    if [[ ! -e "$pgdata" ]]; then
        if [[ $(id -u) -eq 0 ]]; then
            id postgres >/dev/null 2>&1 || die 4 "running as root but there is no postgres user to run the server."
            # DIR may sit under a root-only folder (pytest's tmp dirs do): keep the cluster
            # in a folder the postgres user can reach, and link it from DIR.
            local real
            real=$(mktemp -d "${TMPDIR:-/tmp}/leadscore-pg.XXXXXX")
            chown postgres: "$real"
            chmod 700 "$real"
            ln -s "$real" "$pgdata"
        else
            mkdir -p "$pgdata"
            chmod 700 "$pgdata"
        fi
        if ! as_owner "$bindir/initdb" -D "$(real_pgdata "$dir")" --username="$DB_USER" \
            --auth=trust --encoding=UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
            local why
            why=$(tail -n 1 "$dir/initdb.log")
            do_stop "$dir" 2>/dev/null
            die 4 "initdb failed: $why"
        fi
        # Throwaway cluster: no durability, little memory, no Unix socket (its default folder
        # may not exist or be writable), TCP on loopback only.
        as_owner tee -a "$(real_pgdata "$dir")/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_connections = 40
EOF
    fi
    pgdata=$(real_pgdata "$dir")
    local logfile="$pgdata/server.log"
    local tries=0
    while :; do
        tries=$((tries + 1))
        if [[ -z "$port" ]] || [[ $tries -gt 1 && -z "${2:-}" ]]; then
            port=$(free_port) || die 4 "no free TCP port found"
        fi
        if as_owner "$bindir/pg_ctl" -D "$pgdata" -l "$logfile" -o "-p $port" -w -t 60 start >&2; then
            break
        fi
        if [[ -n "${2:-}" || $tries -ge 5 ]]; then
            die 4 "the server did not start: $(as_owner tail -n 3 "$logfile" 2>/dev/null | tr '\n' ' ')"
        fi
        log "start on port $port failed; trying another port"
    done
    if ! as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
        as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" \
            || die 4 "createdb $DB_NAME failed"
    fi
    local url="postgresql+psycopg://$DB_USER@127.0.0.1:$port/$DB_NAME"
    echo "$url" >"$dir/url"
    echo "export LEADSCORE_POSTGRES_URL='$url'" >"$dir/env"
    log "running on 127.0.0.1:$port (data in $(readlink -f "$pgdata"))"
    echo "$url"
}

do_stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    [[ -d "$dir" ]] || { log "no folder $dir; nothing to stop"; return 0; }
    dir=$(cd "$dir" && pwd)
    local pgdata real bindir
    pgdata=$(pgdata_of "$dir")
    if [[ -e "$pgdata/postmaster.pid" ]] && bindir=$(find_bindir); then
        as_owner "$bindir/pg_ctl" -D "$(real_pgdata "$dir")" -m fast -w -t 60 stop >&2 \
            || log "pg_ctl stop failed"
    fi
    if [[ -L "$pgdata" ]]; then
        real=$(readlink -f "$pgdata")
        rm -f "$pgdata"
        [[ "$real" == */leadscore-pg.* ]] && rm -rf "$real"
    else
        rm -rf "$pgdata"
    fi
    rm -f "$dir/url" "$dir/env" "$dir/initdb.log"
    log "stopped and removed the cluster of $dir"
}

case "${1:-}" in
    install) do_install ;;
    start) shift; do_start "$@" ;;
    stop) shift; do_stop "$@" ;;
    url) shift; url_of "${1:?usage: postgres.sh url DIR}" ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
