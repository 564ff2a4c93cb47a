# The README's two commands are `make run` and `make test`.

GO ?= go
BIN := bin/libra-deploy
SCALAR := api/docs/scalar/standalone.js

.PHONY: run build test docs bench bench-build fuzz clean cluster

# The API reference page's script comes from the npm registry
# (@scalar/api-reference) at build time; it is not committed.
docs: $(SCALAR)
$(SCALAR):
	$(GO) generate ./api/...

build: docs
	$(GO) build -o $(BIN) ./cmd/libra-deploy

run: build
	./$(BIN) serve

# Three nodes on one PostgreSQL and one versitygw bucket, all local; see
# README "Cluster mode". Flags: make cluster CLUSTER_FLAGS="--nodes 5".
cluster: build
	./$(BIN) cluster $(CLUSTER_FLAGS)

test: docs
	test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 25m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./cmd/libra-deploy ./sitehost
	$(GO) test -run '^$$' -bench . ./internal/http1

# Issue 13's profile project (cmd/libra-deploy/testdata/aiapp) built raw and
# through the service, cold and warm, side by side. Other package managers:
# make bench-build BENCH_PM=npm,pnpm,bun
BENCH_PM ?= npm
bench-build: docs
	LIBRA_BENCH_PM=$(BENCH_PM) $(GO) test -run '^$$' -bench 'BenchmarkBuildAIApp' -benchtime 1x -timeout 30m ./cmd/libra-deploy

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzCheckPath -fuzztime 30s .
	$(GO) test -run '^$$' -fuzz FuzzCheckDomain -fuzztime 30s .
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./internal/http1

clean:
	rm -rf bin data
