#!/usr/bin/env bash
# A local container stack without a Docker engine: podman's Docker-compatible API socket, a registry on
# 127.0.0.1:5000 and a Debian base image built with debootstrap (nothing is pulled from a public registry).
# The host's extra CA certificates are trusted inside the image (for machines behind TLS-intercepting proxies).
# A second registry, localhost:5443, is private like ghcr.io's packages: TLS with the stack's own CA, and a login
# (user `flowops`, a password generated once, in $STACK_DIR/auth-registry/password).
#
#   bash scripts/container-stack.sh up      # install what is missing, start the services (idempotent)
#   bash scripts/container-stack.sh env     # the exports that point docker clients at it: eval "$(... env)"
#   bash scripts/container-stack.sh down    # stop the services (state stays for the next `up`)
#
# All state lives under $FLOWOPS_STACK_DIR (default /var/tmp/flowops-containers).
set -euo pipefail

STACK_DIR=${FLOWOPS_STACK_DIR:-/var/tmp/flowops-containers}
REGISTRY=127.0.0.1:5000
BASE_IMAGE=localhost:5000/debian-base:bookworm
AUTH_REGISTRY=localhost:5443
AUTH_DIR=$STACK_DIR/auth-registry
# podman (the Docker API) trusts a registry's own CA from here; the docker CLI reads /etc/docker/certs.d alike
CERTS_D=/etc/containers/certs.d/$AUTH_REGISTRY

exports() {
  cat <<ENV
export CONTAINERS_STORAGE_CONF=$STACK_DIR/storage.conf
export CONTAINERS_CONF=$STACK_DIR/containers.conf
export CONTAINERS_REGISTRIES_CONF=$STACK_DIR/registries.conf
export DOCKER_HOST=unix://$STACK_DIR/podman.sock
export FLOWOPS_CONTAINER_STACK=$STACK_DIR
export FLOWOPS_BASE_IMAGE=$BASE_IMAGE
export FLOWOPS_AUTH_REGISTRY=$AUTH_REGISTRY
export FLOWOPS_AUTH_REGISTRY_DIR=$AUTH_DIR
ENV
}

running() { [ -f "$STACK_DIR/$1.pid" ] && kill -0 "$(cat "$STACK_DIR/$1.pid")" 2>/dev/null; }

wait_for() {  # wait_for DESCRIPTION COMMAND...: up to 30 s
  local description=$1
  shift
  for _ in $(seq 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "container-stack: $description did not come up; see $STACK_DIR/*.log" >&2
  return 1
}

install_packages() {
  local missing=()
  # iptables: netavark sets up containers' networks with it (without it a build's RUN fails: "netavark: No such
  # file or directory"); Debian's netavark does not pull it in
  for tool in podman docker-registry debootstrap runc htpasswd openssl iptables /usr/lib/podman/netavark \
    /usr/lib/podman/aardvark-dns; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "container-stack: installing ${missing[*]} (Debian packages)"
  apt-get update -qq
  # runc, not crun: crun refuses hybrid cgroup v1/v2 hosts ("cgroups in hybrid mode not supported").
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah docker-registry debootstrap runc uidmap slirp4netns fuse-overlayfs apache2-utils openssl \
    netavark aardvark-dns iptables >/dev/null
}

write_config() {
  mkdir -p "$STACK_DIR"/{storage,run,tmp,netconf,registry-data}
  cat >"$STACK_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$STACK_DIR/storage"
runroot = "$STACK_DIR/run"
CONF
  # Without CAP_SYS_RESOURCE podman's default rlimits fail to apply; stay within what this host allows.
  cat >"$STACK_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STACK_DIR/tmp/events.log"
tmp_dir = "$STACK_DIR/tmp"
[network]
# netavark with aardvark-dns: containers of one compose project find each other by service name (CNI has no DNS)
network_backend = "netavark"
network_config_dir = "$STACK_DIR/netconf"
CONF
  cat >"$STACK_DIR/registries.conf" <<CONF
unqualified-search-registries = []
[[registry]]
location = "localhost:5000"
insecure = true
CONF
  cat >"$STACK_DIR/registry.yml" <<CONF
version: 0.1
storage:
  filesystem: {rootdirectory: $STACK_DIR/registry-data}
  delete: {enabled: true}
http:
  addr: $REGISTRY
CONF
}

start_registry() {
  if curl -sf "http://$REGISTRY/v2/" >/dev/null; then return 0; fi
  nohup docker-registry serve "$STACK_DIR/registry.yml" >"$STACK_DIR/registry.log" 2>&1 &
  echo $! >"$STACK_DIR/registry.pid"
  wait_for "the registry on $REGISTRY" curl -sf "http://$REGISTRY/v2/"
}

auth_registry_files() {  # the CA, the registry's certificate and its htpasswd file: made once, kept
  mkdir -p "$AUTH_DIR/data"
  if [ ! -f "$AUTH_DIR/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flowops container stack CA" \
      -keyout "$AUTH_DIR/ca.key" -out "$AUTH_DIR/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$AUTH_DIR/registry.key" -out "$AUTH_DIR/registry.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$AUTH_DIR/san.ext"
    openssl x509 -req -in "$AUTH_DIR/registry.csr" -CA "$AUTH_DIR/ca.crt" -CAkey "$AUTH_DIR/ca.key" \
      -CAcreateserial -days 3650 -extfile "$AUTH_DIR/san.ext" -out "$AUTH_DIR/registry.crt" 2>/dev/null
  fi
  if [ ! -f "$AUTH_DIR/password" ]; then
    (umask 077 && openssl rand -hex 16 >"$AUTH_DIR/password")
    htpasswd -Bbn flowops "$(cat "$AUTH_DIR/password")" >"$AUTH_DIR/htpasswd"
  fi
  mkdir -p "$CERTS_D"
  cp "$AUTH_DIR/ca.crt" "$CERTS_D/ca.crt"
  cat >"$AUTH_DIR/registry.yml" <<CONF
version: 0.1
storage:
  filesystem: {rootdirectory: $AUTH_DIR/data}
  delete: {enabled: true}
auth:
  htpasswd: {realm: flowops-container-stack, path: $AUTH_DIR/htpasswd}
http:
  addr: 127.0.0.1:5443
  tls: {certificate: $AUTH_DIR/registry.crt, key: $AUTH_DIR/registry.key}
CONF
}

auth_registry_answers() {  # over TLS, asking for a login: up and configured as it should be
  [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$AUTH_DIR/ca.crt" "https://$AUTH_REGISTRY/v2/")" = 401 ]
}

start_auth_registry() {
  if auth_registry_answers; then return 0; fi
  nohup docker-registry serve "$AUTH_DIR/registry.yml" >"$STACK_DIR/auth-registry.log" 2>&1 &
  echo $! >"$STACK_DIR/auth-registry.pid"
  wait_for "the private registry on $AUTH_REGISTRY" auth_registry_answers
}

build_base_image() {
  if podman image exists "$BASE_IMAGE"; then return 0; fi
  local rootfs=$STACK_DIR/rootfs
  echo "container-stack: building $BASE_IMAGE with debootstrap (about 75 s)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,git,ca-certificates,curl \
    bookworm "$rootfs" http://deb.debian.org/debian >"$STACK_DIR/debootstrap.log" 2>&1
  # Trust the host's extra CAs inside the image: behind a TLS-intercepting proxy pip and uv need them.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar --numeric-owner -C "$rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

start_api_socket() {
  if running podman-service && [ -S "$STACK_DIR/podman.sock" ]; then return 0; fi
  rm -f "$STACK_DIR/podman.sock"
  nohup podman system service --time=0 "unix://$STACK_DIR/podman.sock" >"$STACK_DIR/podman-service.log" 2>&1 &
  echo $! >"$STACK_DIR/podman-service.pid"
  wait_for "the podman API socket" curl -sf --unix-socket "$STACK_DIR/podman.sock" http://podman/_ping
}

start_health_checks() {
  # podman runs each container's health check from a systemd timer; without systemd (as here) nothing would,
  # and every `depends_on: condition: service_healthy` would wait forever. This loop is that timer.
  if running health-checks; then return 0; fi
  # shellcheck disable=SC2016 # expanded by the loop, not here
  nohup bash -c 'while true; do
      for id in $(podman ps -q --filter health=starting --filter health=healthy --filter health=unhealthy); do
        podman healthcheck run "$id" >/dev/null 2>&1 || true
      done
      sleep 2
    done' >"$STACK_DIR/health-checks.log" 2>&1 &
  echo $! >"$STACK_DIR/health-checks.pid"
}

up() {
  install_packages
  write_config
  eval "$(exports)"
  start_registry
  auth_registry_files
  start_auth_registry
  build_base_image
  # Published, so that `FROM $BASE_IMAGE` works with pull=True (prefect-docker's default).
  podman push --quiet "$BASE_IMAGE" "$BASE_IMAGE" >/dev/null 2>&1
  start_api_socket
  if [ "$(ps -p 1 -o comm=)" != systemd ]; then start_health_checks; fi
  echo "container-stack: up (DOCKER_HOST=$DOCKER_HOST, registry $REGISTRY, private registry $AUTH_REGISTRY," \
    "base image $BASE_IMAGE)"
}

down() {
  for service in podman-service registry auth-registry health-checks; do
    if running "$service"; then kill "$(cat "$STACK_DIR/$service.pid")"; fi
    rm -f "$STACK_DIR/$service.pid"
  done
  echo "container-stack: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) exports ;;
  *) echo "usage: $0 up|env|down" >&2; exit 2 ;;
esac
