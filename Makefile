.PHONY: run admin test lint format soak

# Run the chat on 127.0.0.1:8000 (PORT=... to change) with SQLite and the in-memory layer.
run:
	scripts/run

# Make a staff account for /admin/ on the install `make run` serves (asks for name and password).
admin:
	scripts/admin

# Run the whole test suite (PostgreSQL and Redis tests too when DATABASE_URL/REDIS_URL are set).
test:
	scripts/test

lint:
	scripts/bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# Soak: two daphne processes, PostgreSQL and Redis, random faults (DURATION seconds).
soak:
	scripts/bootstrap
	.venv/bin/python -m tests.soak --duration $${DURATION:-600}

# The benchmark of issue 5 (docs/performance.md): the product against a Node relay and the
# Channels tutorial, in one run on 127.0.0.1. BENCH_QUICK=1 for a short smoke run.
.PHONY: bench
bench:
	scripts/bootstrap
	.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	cd bench/node-relay && npm ci --no-audit --no-fund --loglevel=error
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); .venv/bin/python bench/run.py
