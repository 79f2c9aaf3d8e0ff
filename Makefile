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

.PHONY: setup demo down images test test-lint test-unit test-fuzz test-js test-integration test-browser test-e2e bench

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
	docker build --network host -f Dockerfile.app --build-arg GO_IMAGE=$(GO_IMAGE) -t $(APP_TAG) .
	docker build --network host -f Dockerfile.nginx --build-arg NGINX_IMAGE=$(NGINX_IMAGE) -t $(NGINX_TAG) .

## test: every test: lint, unit, fuzz (short), JS, integration, browser, end-to-end (short).
test: setup test-lint test-unit test-fuzz test-js test-integration test-browser test-e2e

test-lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: the files above need formatting' >&2; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

test-unit:
	$(GO) test -race -count=1 ./...

test-fuzz:
	@echo 'fuzz targets are added by the packages that define them'

test-js:
	@echo 'JS unit tests are added with static/'

test-integration:
	$(GO) test -tags integration -count=1 -p 1 -timeout 20m ./...

test-browser:
	@echo 'browser tests are added with static/'

test-e2e:
	@echo 'the end-to-end harness is added under test/e2e'

## bench: the benchmark harnesses behind BENCHMARKS.md (long; run by hand).
bench:
	@echo 'benchmarks are added by their harnesses'
