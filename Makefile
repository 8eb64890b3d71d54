# Sphere: `make run` starts the embedded server with a demo community; `make run-scaled` the
# scaled mode on this machine's PostgreSQL and Redis; `make test` runs every check CI runs. Each
# sets up the virtual environment on first use, with what it needs: the server alone for the
# runs, the development tools for the checks, the load generators for the benchmark.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCALED_STAMP := $(VENV)/.installed-scaled
DEV_STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
HOST ?= 127.0.0.1
PORT ?= 8000
# make run-scaled: DATABASE_URL and REDIS_URL from the environment, else these; two gateways.
SCALED_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/sphere)
SCALED_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/0)
PORT_A ?= 8001
PORT_B ?= 8002
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sphere
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: install run run-scaled lint format typecheck schema deploy-check compose-check js-check \
        test test-embedded test-scaled bench bench-full clean

# One stamp per set of extras: the server alone; honcho for run-scaled; the development tools
# (tests, linters, type checks, and the plots the suite's benchmark run draws); the benchmark's
# profiler.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(SCALED_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[scaled]'
	touch $(SCALED_STAMP)

$(DEV_STAMP): $(SCALED_STAMP)
	$(PY) -m pip install --quiet -e '.[scaled,dev]'
	touch $(DEV_STAMP)

$(BENCH_STAMP): $(DEV_STAMP)
	$(PY) -m pip install --quiet -e '.[scaled,dev,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

run: install
	SPHERE_DEBUG=1 $(PY) manage.py migrate --noinput -v0
	SPHERE_DEBUG=1 $(PY) manage.py seed_demo
	@echo ""
	@echo "Sphere (embedded mode): the web client on http://$(HOST):$(PORT)/"
	@echo "  API docs   http://$(HOST):$(PORT)/api/docs/"
	@echo "  admin      http://$(HOST):$(PORT)/admin/   (alice; carol for the moderators' desk)"
	@echo "  health     http://$(HOST):$(PORT)/healthz"
	@echo "  a token:   curl -s -X POST http://$(HOST):$(PORT)/api/v1/auth/token \\"
	@echo "               -H 'Content-Type: application/json' \\"
	@echo "               -d '{\"username\": \"alice\", \"password\": \"sphere-demo-2026\"}'"
	@echo ""
	SPHERE_DEBUG=1 $(VENV)/bin/daphne -b $(HOST) -p $(PORT) sphere.asgi:application

# Checks that PostgreSQL and Redis answer and creates the database if it is missing.
define ENSURE_SERVICES
import os
import sys

import environ
import psycopg
import redis
from psycopg import sql

database, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
config = environ.Env.db_url_config(database)
name = config["NAME"]
server = {"host": config["HOST"], "port": config["PORT"], "user": config["USER"],
          "password": config["PASSWORD"], "dbname": "postgres", "connect_timeout": 5}
where = f"{config['HOST'] or 'localhost'}:{config['PORT'] or 5432}"  # never the password
try:
    with psycopg.connect(**{k: v for k, v in server.items() if v}, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created the database {name}")
except psycopg.Error as exc:
    why = str(exc).strip().splitlines()[0]
    sys.exit(f"make run-scaled: PostgreSQL at {where} did not answer (start it, or set DATABASE_URL): {why}")
try:
    redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2).ping()
except redis.RedisError as exc:
    client = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    where = f"{client.get('host', 'localhost')}:{client.get('port', 6379)}"
    sys.exit(f"make run-scaled: Redis at {where} did not answer (start it, or set REDIS_URL): {exc}")
endef
export ENSURE_SERVICES

# The scaled mode on this machine: plain HTTP on loopback (no HTTPS redirect), the static files
# collected, the demo seeded, two gateways and two fan-out workers under honcho (Procfile.scaled);
# Ctrl-C stops them all. honcho reads no .env file: that one is docker-compose's. The URLs go
# through the environment, never on a command line that make prints (they may hold passwords).
run-scaled: export DATABASE_URL := $(SCALED_DATABASE_URL)
run-scaled: export REDIS_URL := $(SCALED_REDIS_URL)
run-scaled: export SPHERE_SECURE := 0
run-scaled: $(SCALED_STAMP)
	@$(PY) -c "$$ENSURE_SERVICES"
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo
	@echo ""
	@echo "Sphere (scaled mode): two gateways on one database and one Redis; either serves everything"
	@echo "  gateway A  http://$(HOST):$(PORT_A)/"
	@echo "  gateway B  http://$(HOST):$(PORT_B)/"
	@echo "  admin      http://$(HOST):$(PORT_A)/admin/   (alice; carol for the moderators' desk)"
	@echo "  two fan-out workers share the partitions; Ctrl-C stops everything"
	@echo ""
	HOST=$(HOST) PORT_A=$(PORT_A) PORT_B=$(PORT_B) PATH="$(abspath $(VENV))/bin:$$PATH" \
		$(VENV)/bin/honcho --no-colour -e /dev/null -f Procfile.scaled start

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy .

schema: install
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# Production settings must pass Django's deployment checks.
deploy-check: install
	SPHERE_DEBUG=0 SPHERE_SECRET_KEY=deploy-check-$$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n') \
	SPHERE_ALLOWED_HOSTS=chat.example.com $(PY) manage.py check --deploy --fail-level WARNING

# The compose file of the scaled mode is validated, not run (no container engine needed).
compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then \
		SPHERE_SECRET_KEY=compose-check docker-compose config -q && echo "docker-compose.yml is valid"; \
	elif [ "$$REQUIRE_SERVICES" = "1" ]; then \
		echo "docker-compose is required here (apt-get install docker-compose)"; exit 1; \
	else \
		echo "skipped: docker-compose.yml check (install Debian's docker-compose to run it)"; \
	fi

# The web client's JavaScript: eslint, prettier and its unit tests, with the tools pinned in
# package-lock.json. The shell lists the test files: `node --test DIR` no longer searches a
# directory from Node 21 on.
js-check:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then \
			npm ci --no-audit --no-fund || exit 1; \
		fi; \
		npx eslint --max-warnings 0 web && npx prettier --check . && node --test --test-reporter=spec web/tests/*.test.js; \
	elif [ "$$REQUIRE_SERVICES" = "1" ]; then \
		echo "node and npm are required here (apt-get install nodejs npm)"; exit 1; \
	else \
		echo "skipped: JavaScript checks (apt-get install nodejs npm to run them)"; \
	fi

test-embedded: $(DEV_STAMP)
	env -u DATABASE_URL -u REDIS_URL REQUIRE_SERVICES=0 $(PY) -m pytest $(PYTEST_ARGS)

# The same suite against PostgreSQL and Redis, plus the tests marked `services`.
test-scaled: $(DEV_STAMP)
	@if $(PY) -c "import socket, sys; [socket.create_connection(a, 1).close() for a in \
		[('127.0.0.1', 5432), ('127.0.0.1', 6379)]]" 2>/dev/null; then \
		DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(PY) -m pytest $(PYTEST_ARGS); \
	elif [ "$$REQUIRE_SERVICES" = "1" ]; then \
		echo "REQUIRE_SERVICES=1 but PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is down"; \
		exit 1; \
	else \
		echo "skipped: scaled-mode suite (start PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379)"; \
	fi

test: lint js-check typecheck schema deploy-check compose-check test-embedded test-scaled

# Sphere (scaled mode; the embedded mode for the ingest family) against the Channels tutorial
# and a bare websockets server, on this machine's PostgreSQL and Redis; writes
# docs/bench/RESULTS.md, results.json and the plots (docs/bench/README.md).
bench: $(BENCH_STAMP)
	@$(PY) -c "import socket; [socket.create_connection(a, 1).close() for a in \
		[('127.0.0.1', 5432), ('127.0.0.1', 6379)]]" 2>/dev/null || \
		{ echo "make bench needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)"; exit 1; }
	$(PY) -m bench quick

bench-full: $(BENCH_STAMP)
	@$(PY) -c "import socket; [socket.create_connection(a, 1).close() for a in \
		[('127.0.0.1', 5432), ('127.0.0.1', 6379)]]" 2>/dev/null || \
		{ echo "make bench-full needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)"; exit 1; }
	$(PY) -m bench full

clean:
	rm -rf $(VENV) var build *.egg-info
