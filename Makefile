# Every target sets up what it needs on a fresh machine: a .venv with the
# project and its test extra, the generated protobuf/gRPC code, and (for the
# tests) the buf CLI, Debian's redis-server and chromium, and the pinned players.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GENERATED := licenseproxy/.generated
BUF := .tools/node_modules/.bin/buf
PLAYERS := tests/players/node_modules/.package-lock.json
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZ_SECONDS ?= 60

.PHONY: run test lint format bench fuzz protos install clean

run: $(STAMP)
	$(VENV)/bin/license-proxy serve

test: $(STAMP) lint redis-server chromium $(PLAYERS)
	$(PY) -m pytest -q

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The generator first, so that the editable install below already sees the
# generated `licenseproxy` package.
$(VENV)/.grpc-tools: $(PY)
	$(PY) -m pip install -q 'grpcio-tools>=1.66'
	touch $@

# Generated code is never committed: it is made here from protos/ and the
# grpcio-tools the venv pins, so it can't go stale.
$(GENERATED): $(VENV)/.grpc-tools $(PROTOS)
	rm -rf licenseproxy
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	find licenseproxy -type d -exec touch {}/__init__.py \;
	touch $@

$(STAMP): pyproject.toml $(GENERATED)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

protos: $(GENERATED)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf

lint: $(STAMP) $(BUF)
	$(BUF) lint protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The tests start and stop their own redis-server; this only makes sure the
# binary is there (apt-get update only when the package is unknown).
.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || \
	  $(SUDO) apt-get install -y -q redis-server >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server)

# The real-player tests drive Debian's chromium headless (tests/players/).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || \
	  $(SUDO) apt-get install -y -q chromium >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium >/dev/null)

# shaka-player and dash.js as tests/players/package-lock.json pins them; npm ci again
# only when the pins change.
$(PLAYERS): tests/players/package.json tests/players/package-lock.json
	npm ci --silent --no-audit --no-fund --ignore-scripts --prefix tests/players
	touch $@

bench: $(STAMP) redis-server
	$(PY) -m bench

# FUZZ_SECONDS per parser. Without an atheris wheel (it builds from source only
# with clang) bench.fuzz falls back to random mutation and says so.
fuzz: $(STAMP)
	$(PY) -m pip install -q atheris || echo "atheris unavailable: random-mutation fuzzing instead"
	$(PY) -m bench.fuzz --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) licenseproxy .tools build *.egg-info tests/players/node_modules
