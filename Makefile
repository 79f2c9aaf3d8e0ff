# MyWebChat: the two commands a newcomer needs are `make demo` and `make test`.
# Every target that needs real parts runs scripts/setup.sh first, which installs
# and starts them idempotently.

SHELL := /bin/sh
GO ?= go
export PATH := $(PATH):/usr/local/go/bin:$(shell $(GO) env GOPATH 2>/dev/null)/bin

GO_IMAGE ?= mywebchat/go-builder:local
NGINX_IMAGE ?= mywebchat/debian-base:local
APP_TAG ?= mywebchat/app:dev
NGINX_TAG ?= mywebchat/nginx:dev
FUZZTIME ?= 15s

.PHONY: setup demo down images aws test test-lint test-unit test-fuzz test-js test-integration test-browser test-e2e bench

setup:
	sh scripts/setup.sh

## demo: the chat stack on http://127.0.0.1:8080 with a live blue/green deploy.
demo: setup
	sh scripts/demo.sh up

## down: stop and remove everything the demo started.
down:
	sh scripts/demo.sh down

## images: build the chat server and nginx images from this checkout.
images: setup
	rev=$$(git rev-parse HEAD 2>/dev/null || echo unknown); \
	docker build --network host -f Dockerfile.app --build-arg GO_IMAGE=$(GO_IMAGE) \
		--build-arg VERSION=dev-$$rev --build-arg REVISION=$$rev -t $(APP_TAG) . && \
	docker build --network host -f Dockerfile.nginx --build-arg NGINX_IMAGE=$(NGINX_IMAGE) \
		--build-arg VERSION=dev-$$rev --build-arg REVISION=$$rev -t $(NGINX_TAG) .

## aws: create or update the AWS side (deploy/aws/up.sh), the GHCR token on stdin:
##   make aws UP_ARGS="--repo OWNER/REPO --region eu-west-1" < token.txt
aws:
	sh deploy/aws/up.sh $(UP_ARGS)

## test: every test: lint, unit, fuzz (short), JS, integration, browser, end-to-end (short).
test: setup test-lint test-unit test-fuzz test-js test-integration test-browser test-e2e

test-lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need formatting' >&2; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	staticcheck ./...
	staticcheck -tags integration ./...
	staticcheck -tags e2e ./...
	shellcheck .ci/run $$(find . -path ./.git -prune -o -name node_modules -prune -o -type f -name '*.sh' -print)
	actionlint
	sh systemd/verify-units.sh

test-unit:
	$(GO) test -race -count=1 ./...

test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./chatserver/internal/chat
	$(GO) test -run '^$$' -fuzz '^FuzzRenderNoInjection$$' -fuzztime $(FUZZTIME) ./agent/internal/nginx
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./agent/internal/config

## test-js: unit tests of the page's pure logic (protocol, outbox, backoff, physics).
test-js:
	node --test test/js/*.test.mjs

test-integration:
	$(GO) test -tags integration -count=1 -p 1 -timeout 20m ./...

## test-browser: the page in Chromium against the real chat server behind nginx
## (two people, a blue/green swap mid-conversation), axe-core's accessibility
## rules (WCAG 2.1 A/AA) on a desktop and a phone, and a frame-time report.
test-browser:
	cd test/browser && { [ -d node_modules/playwright-core ] && [ -d node_modules/axe-core ] || npm ci --no-audit --no-fund; } && \
		node --test --test-concurrency=1 chat.test.mjs a11y.test.mjs frames.test.mjs move.test.mjs

## test-e2e: the zero-downtime proof, short form (test/e2e): the deploy agent vs
## stop-and-run vs a shell blue/green under 200 req/s and 50 WebSocket clients,
## 3 deploys each, then a subset of the fault scenarios (about 5-8 minutes).
test-e2e:
	$(GO) vet -tags e2e ./test/e2e/...
	$(GO) test -tags e2e -count=1 -timeout 20m -v -run TestZeroDowntime ./test/e2e/

## bench: the benchmark harnesses behind BENCHMARKS.md (long; run by hand).
bench:
	set -e; d=$$(mktemp -d /tmp/mywebchat-bench-XXXXXX); \
	$(GO) build -o $$d/chatserver ./chatserver; \
	$(GO) build -o $$d/gorilla-chat github.com/gorilla/websocket/examples/chat; \
	$(GO) build -o $$d/load ./test/load; \
	for r in 50 100 200; do \
	  $$d/load -mode fanout -proto gorilla -bin $$d/gorilla-chat -n 1000 -rate $$r -duration 10s; \
	  $$d/load -mode fanout -bin $$d/chatserver -n 1000 -rate $$r -duration 10s; \
	done; \
	$$d/load -mode idle -proto gorilla -bin $$d/gorilla-chat -n 10000 -settle 5s; \
	$$d/load -mode idle -bin $$d/chatserver -n 10000 -rooms 100 -settle 5s; \
	$$d/load -mode wave -bin $$d/chatserver -n 5000 -rooms 50; \
	rm -rf $$d
	# Zero downtime, long form (BENCHMARKS.md "Zero downtime"): 1,000 req/s,
	# 200 WebSocket clients, 20 deploys per deployer, every fault scenario.
	$(GO) run ./test/e2e/cmd/zdt -rate 1000 -clients 200 -rooms 8 -deploys 20 -faults all -scenarios agent,stop-and-run,bluegreen
	# Two hosts in Redis mode behind a load balancer (BENCHMARKS.md "Redis and fleets"): twice
	# the containers and nginx hops of one host, so half the rate on this 2-core machine.
	$(GO) run ./test/e2e/cmd/zdt -rate 500 -clients 200 -rooms 8 -deploys 20 -faults none -scenarios fleet
	# The production path rehearsed (BENCHMARKS.md "Production path"): three stand-in hosts,
	# release.yml's deploy step, the SSM documents, install.sh and the units, under load.
	$(GO) test -tags integration -count=1 -timeout 30m -v -run TestRehearsal ./test/rehearsal/ -rehearsal.long
	# Deploy agent overhead per deploy (BENCHMARKS.md "Deploy agent"), from history --json steps.
	$(GO) test -tags integration -count=1 -v -run 'TestHostMode|TestContainerMode' ./agent/cmd/deploy-agent/ | grep -E 'overhead|load'
	# Fan-out in-process vs. through Redis, one and two instances (BENCHMARKS.md "Redis and fleets").
	set -e; d=$$(mktemp -d /tmp/mywebchat-fanbench-XXXXXX); \
	$(GO) build -o $$d/chatserver ./chatserver; \
	$(GO) run ./test/fleet/cmd/fanbench -chatserver $$d/chatserver; \
	$(GO) run ./test/fleet/cmd/fanbench -chatserver $$d/chatserver -members 300 -senders 60 -duration 10s; \
	rm -rf $$d
