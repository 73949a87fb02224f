#!/usr/bin/env bash
# Start or stop a throw-away Prometheus server for tests and local trials.
#
#   scripts/prometheus-server.sh start DIR PORT [TARGET]
#   scripts/prometheus-server.sh stop  DIR [PORT]
#
# start: installs Debian's `prometheus` package if the binary is missing
# (apt-get update once, then apt-get install; the distribution's service is
# not started), writes DIR/prometheus.yml scraping TARGET (host:port, default
# 127.0.0.1:9100) every second, starts the server on 127.0.0.1:PORT with its
# data in DIR/data, and returns once /-/ready answers 200. The pid is written
# to DIR/prometheus.pid and the server's log to DIR/prometheus.log.
# stop: ends the server whose pid is in DIR/prometheus.pid.
#
# Every failure exits non-zero with one line on stderr that says what failed.
set -euo pipefail

PROG=prometheus-server.sh
READY_TIMEOUT_S=${PROMETHEUS_READY_TIMEOUT_S:-30}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage() {
    die "usage: $PROG start DIR PORT [TARGET] | stop DIR [PORT]"
}

find_binary() {
    if [[ -x /usr/bin/prometheus ]]; then
        echo /usr/bin/prometheus
    else
        command -v prometheus || true
    fi
}

install_package() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "the prometheus binary is missing and installing Debian's 'prometheus' package needs root (no sudo found)"
        sudo=(sudo -n)
    fi
    command -v apt-get >/dev/null || die "the prometheus binary is missing and apt-get is not available to install Debian's 'prometheus' package"
    # Keep the package's maintainer scripts from starting its service
    # (policy-rc.d is Debian's switch for that), unless a policy is already in place.
    local policy=/usr/sbin/policy-rc.d placed=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        placed=$policy
    fi
    local log status=0
    log=$(mktemp)
    echo "$PROG: installing Debian package 'prometheus' (apt-get update, apt-get install)" >&2
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q update &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q -y \
                --no-install-recommends install prometheus
    } >"$log" 2>&1 || status=$?
    if [[ -n $placed ]]; then
        "${sudo[@]}" rm -f "$placed"
    fi
    if [[ $status -ne 0 ]]; then
        local reason
        reason=$(grep -E '^(E|Err|W):' "$log" | head -n 3 | tr '\n' ' ')
        rm -f "$log"
        die "cannot install Debian package 'prometheus' (apt-get exit $status): ${reason:-see apt-get output}"
    fi
    rm -f "$log"
}

# HTTP status of GET http://127.0.0.1:PORT/PATH, using only bash (no curl needed).
http_status() {
    local port=$1 path=$2 line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
    IFS=' ' read -r -t 2 _ line _ <&3 || line=""
    exec 3<&- 3>&-
    echo "$line"
}

alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null
}

start() {
    local dir=$1 port=$2 target=${3:-127.0.0.1:9100}
    [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
    [[ $target =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "TARGET must be host:port, got '$target'"
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    local pidfile=$dir/prometheus.pid
    if [[ -f $pidfile ]] && alive "$(cat "$pidfile")"; then
        die "a server started from $dir is already running (pid $(cat "$pidfile"))"
    fi

    local binary
    binary=$(find_binary)
    if [[ -z $binary ]]; then
        install_package
        binary=$(find_binary)
        [[ -n $binary ]] || die "Debian package 'prometheus' installed but no prometheus binary was found"
    fi

    cat >"$dir/prometheus.yml" <<EOF
# Written by $PROG: one target on the loopback, scraped every second.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: target
    static_configs:
      - targets: ['$target']
EOF

    setsid "$binary" \
        --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" \
        </dev/null >"$dir/prometheus.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"

    local waited=0
    while ((waited < READY_TIMEOUT_S * 10)); do
        if ! alive "$pid"; then
            rm -f "$pidfile"
            die "prometheus exited during start-up: $(tail -n 3 "$dir/prometheus.log" | tr '\n' ' ')"
        fi
        if [[ $(http_status "$port" /-/ready 2>/dev/null || true) == 200 ]]; then
            echo "$PROG: prometheus ($binary, pid $pid) ready on 127.0.0.1:$port, scraping $target" >&2
            return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    die "prometheus was not ready on 127.0.0.1:$port within ${READY_TIMEOUT_S}s: $(tail -n 3 "$dir/prometheus.log" | tr '\n' ' ')"
}

stop() {
    local dir=$1 pidfile=$1/prometheus.pid pid
    [[ -f $pidfile ]] || die "no server to stop: $pidfile does not exist"
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || die "$pidfile does not hold a pid"
    if alive "$pid"; then
        kill -TERM "$pid"
        local waited=0
        while alive "$pid" && ((waited < 100)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

case ${1:-} in
start)
    [[ $# -ge 3 && $# -le 4 ]] || usage
    start "$2" "$3" "${4:-}"
    ;;
stop)
    [[ $# -ge 2 && $# -le 3 ]] || usage
    stop "$2"
    ;;
*)
    usage
    ;;
esac
