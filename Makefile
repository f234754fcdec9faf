# Portcullis — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
BIN     := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

# Pinned tool versions (installed into .bin by `make tools`).
BUF_VERSION                 := v1.75.0
PROTOC_GEN_GO_VERSION       := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION  := v1.6.2
PROTOC_GEN_CONNECT_VERSION  := v1.21.1
GOLANGCI_LINT_VERSION       := v2.15.0
HELM_VERSION                := v4.3.1

MODULES := . ./dataplane ./proto

.PHONY: help
help: ## Show this help
	@if [ -t 1 ]; then on=$$'\033[36m' off=$$'\033[0m'; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(BIN)/.tools-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(PROTOC_GEN_CONNECT_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(BIN) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_VERSION)
	@touch $@

.PHONY: tools
tools: $(BIN)/.tools-$(BUF_VERSION)-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)-$(PROTOC_GEN_CONNECT_VERSION) ## Install pinned code generators into .bin

.PHONY: generate
generate: tools ## Regenerate protobuf/gRPC/Connect, ent and templ code from scratch
	buf lint
	buf generate
	$(GO) generate ./ent/...
	$(GO) run github.com/a-h/templ/cmd/templ generate -path ui

.PHONY: check-generate
check-generate: generate ## Fail if generated code is not up to date
	@git diff --exit-code -- proto ent ui || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- proto ent ui)" || { git status --porcelain -- proto ent ui; echo "generated files are not committed"; exit 1; }

.PHONY: build
build: ## Build bin/portcullis and bin/portcullis-gateway
	@echo "building bin/portcullis (control plane, CLI): the first build on a machine compiles every dependency and takes a few minutes"
	$(GO) build -o bin/portcullis ./controlplane/cmd/portcullis
	@echo "building bin/portcullis-gateway (data plane)"
	cd dataplane && GOWORK=off $(GO) build -o ../bin/portcullis-gateway ./cmd/portcullis-gateway

.PHONY: dev
dev: build ## Run control plane, demo upstream and a gateway locally (SQLite, no Redis)
	bin/portcullis dev

$(BIN)/.helm-$(HELM_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	@touch $@

.PHONY: test-deps
test-deps: $(BIN)/.helm-$(HELM_VERSION) ## Install what the tests need (Node.js, PostgreSQL, Chromium, systemd-analyze from Debian if missing; npm ci of the MCP peers; pinned helm)
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update && apt-get install -y --no-install-recommends nodejs npm; }
	@command -v systemd-analyze >/dev/null || { apt-get update && apt-get install -y --no-install-recommends systemd; }
	cd e2e && npm ci --no-audit --no-fund
	.ci/services >/dev/null

.PHONY: migration
migration: ## Write a new versioned migration from ent/schema changes: make migration NAME=add_widgets
	@test -n "$(NAME)" || { echo "usage: make migration NAME=short_description"; exit 2; }
	eval "$$(.ci/services)" && $(GO) run ./controlplane/internal/store/migrategen -name $(NAME)

.PHONY: test
test: test-deps ## Install test dependencies and run every test
	@test -z "$$(gofmt -l controlplane dataplane ent/schema ent/schematype ent/viewer proto/gen ui)" || { gofmt -l controlplane dataplane ent/schema ent/schematype ent/viewer proto/gen ui; echo "run gofmt -w on the files above"; exit 1; }
	@# Every module is vetted and tested whatever failed before (.ci/steps);
	@# the status says whether anything did, and the summary which.
	@.ci/steps $(foreach m,$(MODULES),"vet:$(m)=cd $(m) && $(GO) vet ./...") \
		"build:dataplane-alone=cd dataplane && GOWORK=off $(GO) build ./..." \
		"test:.=eval \"\$$(.ci/services)\" && $(GO) test -count=1 -timeout 30m ./..." \
		"test:dataplane=eval \"\$$(.ci/services)\" && cd dataplane && $(GO) test -count=1 -timeout 30m ./..."

.PHONY: bench
bench: test-deps ## Benchmarks: tools/call direct vs reverse proxy vs gateway; approval to enforcement on 1,000 agents; 1,000 agents plus tools/call load with memory; telemetry ingest; dataplane hot paths
	eval "$$(.ci/services)" && $(GO) test -run '^$$' -bench ToolsCall -benchtime 10000x -count 1 -timeout 30m ./controlplane/internal/e2e/
	eval "$$(.ci/services)" && $(GO) test -run '^$$' -bench ApprovalToEnforcement -benchtime 20x -count 1 ./controlplane/internal/e2e/
	eval "$$(.ci/services)" && $(GO) test -run '^$$' -bench 'FleetUnderLoad/approval' -benchtime 20x -count 1 ./controlplane/internal/e2e/
	eval "$$(.ci/services)" && $(GO) test -run '^$$' -bench 'FleetUnderLoad/tools' -benchtime 20000x -count 1 ./controlplane/internal/e2e/
	eval "$$(.ci/services)" && $(GO) test -run '^$$' -bench Ingest -benchtime 50x -count 1 ./controlplane/internal/telemetry/
	cd dataplane && $(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: lint
lint: tools $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION) ## golangci-lint v2 (.golangci.yml) on every module and buf lint; reports every module's findings
	@.ci/steps "buf=buf lint" $(foreach m,$(MODULES),"lint:$(m)=cd $(m) && $(BIN)/golangci-lint run --config $(CURDIR)/.golangci.yml ./...")

$(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION):
	@mkdir -p $(BIN)
	@echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into .bin (a few minutes on a fresh machine)"
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

.PHONY: clean
clean: ## Remove build outputs and dev data
	rm -rf bin .data
