# bokeh-server: a Go reimplementation of the bokeh 0.8.2 plot server.
#
#   make run     set everything up (apt packages, Go build, BokehJS, static files)
#                and run the server; make run ARGS="--backend=redis"
#   make test    set everything up (with chromium) and run all the tests
#   make help    all targets

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Go lives in /usr/local/go/bin on the project's machines, not always on PATH.
ifeq ($(shell command -v go 2>/dev/null),)
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := /usr/local/go/bin:$(PATH)
endif
endif
export CGO_ENABLED := 1

ARGS ?=
FUZZTIME ?= 20s
BENCHTIME ?= 200ms
BENCH_ARGS ?= --duration 1500ms

# What the tests and the server look for (see scripts/test.sh).
RUN_ENV := BOKEH_BIN_DIR=$(CURDIR)/bin BOKEHJS_DIR=$(CURDIR)/build/bokehjs-0.8.2 \
	BOKEH_STATIC_DIR=$(CURDIR)/build/static

SCALE_ARGS ?=

.PHONY: help setup build run test test-unit fuzz bench bench-scale lint clean

help: ## list the targets
	@echo "usage: make TARGET [VAR=value ...]"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'
	@echo
	@echo "variables: ARGS (run), FUZZTIME=$(FUZZTIME) (fuzz), BENCHTIME=$(BENCHTIME) BENCH_ARGS (bench), SCALE_ARGS (bench-scale)"

setup: ## install apt packages, build BokehJS, fetch static files, build bin/ (scripts/setup.sh)
	scripts/setup.sh

build: ## go build ./cmd/... into bin/
	mkdir -p bin
	go build -o bin/ ./cmd/...

run: ## set up (no chromium) and run bin/bokeh-server with ARGS
	SETUP_CHROMIUM=0 scripts/setup.sh
	$(RUN_ENV) bin/bokeh-server $(ARGS)

test: ## full setup (with chromium), then lint, build, go test -race, fuzz (scripts/test.sh)
	SETUP_GO=0 scripts/setup.sh
	scripts/test.sh

test-unit: ## quick loop (under a minute): go test -short ./..., no real processes, no race detector
	$(RUN_ENV) go test -short ./...

fuzz: ## run every fuzz target for FUZZTIME each (scripts/fuzz.sh)
	scripts/fuzz.sh $(FUZZTIME)

# The end-to-end set runs first, on a quiet machine: the Go benchmarks of the redis and
# shelve backends leave the disk writing back hundreds of MB that slowed it down.
bench: build ## the end-to-end bin/bokeh-bench standard set, then hot-path go benchmarks (< 5 min)
	$(RUN_ENV) timeout 270 bin/bokeh-bench $(BENCH_ARGS)
	$(RUN_ENV) go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 2m \
		./api/... ./storage/... ./broker/... ./cmd/ws-worker/wshub/

# 100,000 websockets over 6 workers and a reconnect storm (bokeh-bench scale; README,
# Performance, lists the kernel settings it needs).
bench-scale: build ## bin/bokeh-bench scale: 100,000 viewers, fan-out, reconnect storm, raw limits (< 10 min)
	$(RUN_ENV) timeout 600 bin/bokeh-bench scale $(SCALE_ARGS)

lint: ## gofmt -l must list nothing; go vet ./... (scripts/lint.sh)
	scripts/lint.sh

clean: ## remove bin/ and build/ (BokehJS, static files, test logs)
	rm -rf bin build
