.PHONY: run test lint format soak

# Run the chat on 127.0.0.1:8000 (PORT=... to change) with SQLite and the in-memory layer.
run:
	scripts/run

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
