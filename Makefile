# One task runner; `make` or `make help` lists the tasks. The README's commands are targets here.
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
DEMO_ROWS ?= 100000
DEPLOYMENTS ?= 1
TEST_PROCESSES ?= 2

.PHONY: help setup demo ingest-demo test test-unit workflows containers stack stack-ha stack-down lint bench bench-deploy bench-paths bench-pr

help:  ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup:  ## install uv if missing and sync the locked environment
	@bash scripts/ensure-uv.sh
	@# Where PYTHONDONTWRITEBYTECODE is set, every prefect process would compile Prefect again (2x slower start):
	@# compile it all once. Elsewhere Python writes .pyc for what it imports, which is cheaper than all of it.
	@$(UV) sync --locked --quiet $(if $(PYTHONDONTWRITEBYTECODE),--compile-bytecode)

demo: setup  ## the main job, the whole GitOps loop: local Prefect server, git origin, deploy, worker, run, teardown; KEEP=1: the UI stays up until Ctrl-C
	$(UV) run python scripts/local_loop.py --rows $(DEMO_ROWS) $(if $(KEEP),--serve)

ingest-demo: setup  ## the flow alone, no Prefect server: generate a sample month, load it into SQLite
	$(UV) run python -m flows.ecommerce generate --month 2019-10 --rows $(DEMO_ROWS) --out data
	$(UV) run python -m flows.ecommerce ingest data/2019-Oct.csv --database-url sqlite:///data/ecommerce-demo.sqlite

test: setup  ## the whole test suite, in TEST_PROCESSES (2) processes (PostgreSQL at $$TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test)
	$(UV) run pytest -n $(TEST_PROCESSES) --dist loadgroup

test-unit: setup  ## unit tests only: no database, no Prefect server
	$(UV) run pytest tests/unit

workflows: setup  ## run .github/workflows under nektos/act against a local Prefect server (part of make test)
	$(UV) run pytest -m workflows tests/workflows

containers:  ## start the local container stack (podman Docker API, registry, base image) for the container tests
	bash scripts/container-stack.sh up
	@echo 'now: eval "$$(bash scripts/container-stack.sh env)" && make test'

stack: setup  ## compose.yaml up for real (local images and git origin here), production deployed: UI on 127.0.0.1:4200
	bash scripts/stack.sh up

stack-ha: setup  ## the same in compose's `ha` profile: redis, 2 API replicas, the services apart, a proxy, 2 workers
	bash scripts/stack.sh up --ha

stack-down:  ## remove every container of `make stack` or `make stack-ha`
	bash scripts/stack.sh down

lint: setup  ## every pre-commit hook on every file: ruff, mypy --strict, uv.lock, shellcheck, hadolint, actionlint, zizmor
	$(UV) run pre-commit run --all-files --show-diff-on-failure

bench: setup  ## ingest benchmark: psql \copy vs the ingest command vs pandas.to_sql (needs PostgreSQL)
	$(UV) run python scripts/bench_ingest.py

bench-deploy: setup  ## deploy benchmark vs a bare prefect deploy --all; N deployments: make bench-deploy DEPLOYMENTS="1 100"
	$(UV) run python scripts/bench_deploy.py --deployments $(DEPLOYMENTS) --loop

bench-paths: setup  ## each deploy path (create N, one edited, nothing changed, pins moved) vs a bare prefect deploy, on PostgreSQL and SQLite
	$(UV) run python scripts/bench_deploy_paths.py --deployments $(or $(DEPLOYMENTS_PATHS),1 10 100) --phases

bench-pr: setup  ## a pull request's feedback (deploy, sample run, comment) and a 1M-row branch's teardown (needs PostgreSQL)
	$(UV) run python scripts/bench_pr_feedback.py
