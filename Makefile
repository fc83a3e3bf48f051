# Two commands on a fresh machine (only python3, pip and make needed):
#   make demo   set up .venv from the lock file, then run the whole demo
#   make test   set up .venv from the lock file, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The peer loader of the benchmarks (dlt): its own venv, never a dependency of bb2sv.
PEER_VENV := benchmarks/.venv-peer
PEER_STAMP := $(PEER_VENV)/.installed

.PHONY: demo test bench bench-full bench-peer lint format lock clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bb2sv demo

# The suite in TEST_WORKERS processes (pytest-xdist), handed out by module: the controller
# starts the run's one Prefect harness and the workers use its server (tests/conftest.py).
# Three on 2 cores: a third process runs while others wait on sockets, subprocesses and
# emulated latency (measured on 2 cores, 2026-11-28: 72-80 s with 3, 80 s with 4, 82 s with
# 2). Since new evidence files are copied instead of migrated (same machine, 23:00-23:55):
# 67-72 s, about 110-118 s of user CPU, at the host's usual speed; 74-78 s in its slow
# half hours (the tree before the change then took up to 83 s). 3 or 4 processes are level
# now (75 / 74 s in one slow half hour); 2 took 94 s. With one DuckDB thread per small
# evidence file (2026-11-29, 00:30-01:30): 63-68 s, about 104-114 s of user CPU.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

$(PEER_STAMP): benchmarks/requirements-peer.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --require-hashes -r benchmarks/requirements-peer.txt
	touch $(PEER_STAMP)

bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py

bench-full: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --full

# Only the comparison with the peer: bb2sv collect vs dlt, 20,000 members at 20 ms.
bench-peer: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/peer.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Regenerate the lock files after changing pyproject.toml (needs uv on PATH).
lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.txt --custom-compile-command "make lock"
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements-dev.txt --custom-compile-command "make lock"

clean:
	rm -rf $(VENV) $(PEER_VENV) .pytest_cache .ruff_cache
