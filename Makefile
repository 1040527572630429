# etalage — the two commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/etalage
PKGS      := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHCOUNT ?= 6
FUZZTIME  ?= 8s

.PHONY: run build test test-go fuzz-short check bench fuzz loadtest deps crawlers clean soak

## run: build and serve the demo shop at http://localhost:8080/demo/ on the embedded store
run: build
	./$(BIN) serve --dev --cookie-secure=false --store embedded:./etalage-data --rate-limit 0

build:
	$(GO) build -o $(BIN) ./cmd/etalage

## test: install what is missing, then every test (race detector on), browser tests and short fuzz runs
test: deps test-go fuzz-short

deps:
	@./.ci/deps

test-go:
	$(GO) test -race -shuffle=on -timeout 12m $(PKGS)

# Each fuzz target runs for a short fixed time on top of its seed corpus
# (.ci/fuzz says how it tells Go's own deadline race from a finding).
fuzz-short:
	@GO=$(GO) ./.ci/fuzz $(FUZZTIME)

## soak: the model-based integrity test for as long as asked on each store (SOAK=1h make soak);
## make test runs it for a few seconds per store. A failure prints the seed that replays it.
SOAK ?= 10m
soak: deps
	$(GO) test -race -run '^TestModel$$' -timeout 0 -v ./integrity/ -integrity.time=$(SOAK)

## check: formatting, vet, staticcheck, and a tidy go.mod
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@cp go.mod /tmp/etalage.go.mod && cp go.sum /tmp/etalage.go.sum && $(GO) mod tidy && \
	  if ! git diff --quiet -- go.mod go.sum; then git diff -- go.mod go.sum; cp /tmp/etalage.go.mod go.mod; cp /tmp/etalage.go.sum go.sum; echo "go mod tidy changes go.mod/go.sum"; exit 1; fi

## bench: the hot-path benchmarks, -count suitable for benchstat
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./rules/ ./profile/... ./edge/ | tee bench.out

## fuzz: a longer fuzz run of every target (FUZZTIME=5m make fuzz)
fuzz: FUZZTIME = 2m
fuzz: fuzz-short

## loadtest: k6 scenarios against etalage and the hello baseline (see loadtest/)
loadtest:
	./loadtest/run.sh

## crawlers: refresh the crawler list from the crawler-user-agents npm package
crawlers:
	cd $$(mktemp -d) && npm pack crawler-user-agents >/dev/null && tar xzf crawler-user-agents-*.tgz && \
	  node -e 'const d=require("./package/crawler-user-agents.json");process.stdout.write(JSON.stringify(d.map(x=>x.pattern),null,0).replace(/","/g,"\",\n\""))' > $(CURDIR)/edge/crawlers.json && \
	  cp package/LICENSE $(CURDIR)/edge/crawlers.LICENSE

clean:
	rm -rf bin etalage-data bench.out
