#!/bin/sh
# A private Docker engine for the tests, and the base image their release images build on.
# Checks first: an engine that answers and an image that exists are left alone. Loopback only:
# no bridge, no iptables; containers use the host's network on 127.0.0.1 ports.
#   DEPLOYER_TEST_DOCKER_DIR   where the engine keeps everything (default /var/lib/deployer-test-docker)
#   DEPLOYER_TEST_BASE_IMAGE   the base image tag (default local/python-base:bookworm)
set -eu

DIR=${DEPLOYER_TEST_DOCKER_DIR:-/var/lib/deployer-test-docker}
SOCK="$DIR/docker.sock"
IMAGE=${DEPLOYER_TEST_BASE_IMAGE:-local/python-base:bookworm}
export DOCKER_HOST="unix://$SOCK"

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v dockerd >/dev/null 2>&1 || { echo "installing docker.io"; apt_install docker.io; }
command -v debootstrap >/dev/null 2>&1 || { echo "installing debootstrap"; apt_install debootstrap; }

mkdir -p "$DIR"
if ! docker version >/dev/null 2>&1; then
    echo "starting a private dockerd on $SOCK"
    # A previous engine killed hard leaves its network namespace mounted.
    umount "$DIR/exec/netns/default" 2>/dev/null || true
    rm -f "$SOCK" "$DIR/pid"
    nohup dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/pid" -H "unix://$SOCK" \
        --iptables=false --ip6tables=false --bridge=none --ip-masq=false --storage-driver=overlay2 \
        >"$DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
    docker version >/dev/null 2>&1 || { tail -n 20 "$DIR/dockerd.log"; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "building base image $IMAGE (debootstrap, about a minute)"
    ROOTFS="$DIR/rootfs.$$"
    MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" >/dev/null
    # The machine's own trust store, so pip inside a build trusts what pip here trusts.
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
    rm -rf "$ROOTFS"
fi
echo "docker engine $SOCK ready with $IMAGE"
