# Sphere: `make run` starts the embedded server with a demo community; `make test` runs every
# check CI runs. Both set up the virtual environment on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sphere
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: install run lint format typecheck schema deploy-check compose-check js-check \
        test test-embedded test-scaled bench bench-full clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

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

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
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

test-embedded: install
	env -u DATABASE_URL -u REDIS_URL REQUIRE_SERVICES=0 $(PY) -m pytest $(PYTEST_ARGS)

# The same suite against PostgreSQL and Redis, plus the tests marked `services`.
test-scaled: install
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
bench: install
	@$(PY) -c "import socket; [socket.create_connection(a, 1).close() for a in \
		[('127.0.0.1', 5432), ('127.0.0.1', 6379)]]" 2>/dev/null || \
		{ echo "make bench needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)"; exit 1; }
	$(PY) -m bench quick

bench-full: install
	@$(PY) -c "import socket; [socket.create_connection(a, 1).close() for a in \
		[('127.0.0.1', 5432), ('127.0.0.1', 6379)]]" 2>/dev/null || \
		{ echo "make bench-full needs PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)"; exit 1; }
	$(PY) -m bench full

clean:
	rm -rf $(VENV) var build *.egg-info
