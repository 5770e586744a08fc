#!/bin/sh
# Make sure the real services the tests talk to are installed and running.
# Checks first: a service that already runs is left alone. Loopback only.
set -eu

need_apt_update=1
apt_install() {
    if [ "$need_apt_update" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        need_apt_update=0
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prometheus: the tests start their own server on a free port; they only need the binary.
if ! command -v prometheus >/dev/null 2>&1; then
    echo "installing prometheus"
    apt_install prometheus
fi

# HAProxy: the router tests start their own haproxy (config in a temporary folder); they need the binary.
if ! command -v haproxy >/dev/null 2>&1; then
    echo "installing haproxy"
    apt_install haproxy
fi

# A private Docker engine (host networking, no bridge, no iptables) and the tests' base image.
"$(dirname "$0")/ensure-docker.sh"

# Chromium: the dashboard's browser tests drive the system browser through Playwright.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium"
    apt_install chromium
fi

# Redis on 127.0.0.1:6379 (tests use their own database number and flush it).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "installing redis"
        apt_install redis-server
    fi
    echo "starting redis"
    mkdir -p /var/lib/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /var/lib/redis
    for _ in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# PostgreSQL on 127.0.0.1:5432 with trust auth.
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    echo "starting postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in 1 2 3 4 5 6 7 8 9 10; do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 0.3; done
fi

echo "services ready: prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), haproxy $(haproxy -v 2>&1 | head -n1 | awk '{print $3}'), redis, postgresql, $(chromium --version 2>/dev/null | head -n1)"
