# Lantern's build. `make run` and `make test` are the whole setup on a fresh
# Debian machine (as root): each installs what it is missing first.

GO       ?= go
BIN      := $(CURDIR)/bin
COSIGN   := $(BIN)/cosign
COSIGN3  := $(BIN)/cosign3
BUILDKITD := $(BIN)/buildkitd
BUILDCTL  := $(BIN)/buildctl
NATS_SERVER := $(BIN)/nats-server
BUILDKIT_LDFLAGS = -X github.com/moby/buildkit/version.Version=$(shell cd tools/buildkit && $(GO) list -m -f '{{.Version}}' github.com/moby/buildkit)
LANTERN  := $(BIN)/lantern
# A count, not a duration: with a duration, Go 1.26's fuzzer can fail a
# target spuriously with "context deadline exceeded" at the end of its time
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
DEMO     ?= $(CURDIR)/.lantern-demo

IMAGE    ?= lantern:latest

.PHONY: all build image run test unit fuzz bench deps cosign cosign3 buildkitd buildctl nats-server runc busybox chromium diffoscope bubblewrap iproute2 gcc docker docker-compose systemd-analyze clean clean-cache

all: build

build:
	$(GO) build -o $(LANTERN) ./cmd/lantern

# image builds Lantern's container image (lantern and nats-server, FROM
# scratch) reproducibly from this checkout: the same commit gives the same
# digest, printed first. Load it with: docker load -i bin/lantern-image.tar
image:
	$(GO) run ./deploy/image -o $(BIN)/lantern-image.tar -tag $(IMAGE)

# deps installs what the tests need. The cosign CLI is built from the Go
# module proxy at the version pinned in tools/cosign/go.mod (a separate
# module, so cosign's dependencies stay out of Lantern's), and cosign v3 as
# bin/cosign3 from tools/cosign3 likewise; buildkitd likewise from
# tools/buildkit; runc, diffoscope and bubblewrap come from Debian.
deps: cosign cosign3 buildkitd nats-server runc busybox chromium diffoscope bubblewrap iproute2 gcc docker docker-compose systemd-analyze

cosign: $(COSIGN)
$(COSIGN): tools/cosign/go.mod tools/cosign/go.sum
	@echo "== building the cosign CLI from tools/cosign (first time: a few minutes)"
	cd tools/cosign && $(GO) build -o $(COSIGN) github.com/sigstore/cosign/v2/cmd/cosign

# cosign v3 writes and reads Sigstore bundles (--bundle); the interop tests
# run both majors.
cosign3: $(COSIGN3)
$(COSIGN3): tools/cosign3/go.mod tools/cosign3/go.sum
	@echo "== building the cosign v3 CLI from tools/cosign3 (first time: a few minutes)"
	cd tools/cosign3 && $(GO) build -o $(COSIGN3) github.com/sigstore/cosign/v3/cmd/cosign

# buildkitd, the build sandbox's daemon, is built from the BuildKit module
# pinned in tools/buildkit/go.mod ('go install ...@version' is refused
# because BuildKit's go.mod has exclude directives). The tests start it as
# root, with Debian's runc.
buildkitd: $(BUILDKITD)
$(BUILDKITD): tools/buildkit/go.mod tools/buildkit/go.sum
	@echo "== building buildkitd from tools/buildkit (first time: a few minutes)"
	cd tools/buildkit && $(GO) build -ldflags "$(BUILDKIT_LDFLAGS)" -o $(BUILDKITD) github.com/moby/buildkit/cmd/buildkitd

# nats-server, built from the very nats-server module Lantern embeds, is the
# "operator's own server" of the tests that run a farm on an external NATS.
nats-server: $(NATS_SERVER)
$(NATS_SERVER): go.mod go.sum
	$(GO) build -o $(NATS_SERVER) github.com/nats-io/nats-server/v2

# buildctl is for people debugging a sandbox; Lantern never runs it.
buildctl: $(BUILDCTL)
$(BUILDCTL): tools/buildkit/go.mod tools/buildkit/go.sum
	cd tools/buildkit && $(GO) build -ldflags "$(BUILDKIT_LDFLAGS)" -o $(BUILDCTL) github.com/moby/buildkit/cmd/buildctl

# runc runs the sandbox's build steps: Debian's package, installed if missing.
runc:
	@command -v runc >/dev/null || { echo "== installing runc with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc; }

# diffoscope shows what differs between two builders' outputs: the
# scheduler runs it when builders disagree.
diffoscope:
	@command -v diffoscope >/dev/null || { echo "== installing diffoscope-minimal with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends diffoscope-minimal; }

# bubblewrap (bwrap) is diffoscope's sandbox: the scheduler runs diffoscope
# in it, on outputs that builders chose.
bubblewrap:
	@command -v bwrap >/dev/null || { echo "== installing bubblewrap with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; }

# iproute2's ip makes the network namespaces and veth pairs of the test that
# runs a scheduler and two workers as three machines (nsenter is util-linux's).
iproute2:
	@command -v ip >/dev/null || { echo "== installing iproute2 with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }

# gcc is the C compiler of the cgo binary that internal/gobinary's tests
# build, to see it refused as a published binary.
gcc:
	@command -v gcc >/dev/null || { echo "== installing gcc with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev; }

# dockerd (Debian's docker.io, Engine 20.10) is the Docker Engine that the
# tests of 'lantern worker --docker' start (internal/dockertest), one per
# test binary, with files and a containerd of its own.
docker:
	@command -v dockerd >/dev/null || { echo "== installing docker.io with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; }
# docker-compose (Debian's) checks deploy/compose's file (docker-compose
# config) in deploy's tests; systemd-analyze (systemd's) checks the units of
# deploy/systemd (verify, and security's exposure score).
docker-compose:
	@command -v docker-compose >/dev/null || { echo "== installing docker-compose with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; }
systemd-analyze:
	@command -v systemd-analyze >/dev/null || { echo "== installing systemd with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; }

# chromium is what the dashboard's browser test drives, headless (chromedp).
chromium:
	@command -v chromium >/dev/null || { echo "== installing chromium with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

# busybox (Debian's static one) is what the generic recipe's tests assemble
# their builder image from.
busybox:
	@test -x /bin/busybox || { echo "== installing busybox-static with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; }

# test runs the whole suite, the cosign interop tests included, then each
# fuzz target briefly.
test: deps unit fuzz

# unit keeps what tests save (the dashboard's screenshots) in test-output/.
unit:
	$(GO) vet ./...
	@mkdir -p $(CURDIR)/test-output
	LANTERN_COSIGN=$(COSIGN) LANTERN_COSIGN3=$(COSIGN3) LANTERN_BUILDKITD=$(BUILDKITD) LANTERN_NATS_SERVER=$(NATS_SERVER) $(GO) test -count=1 -timeout 60m -artifacts -outputdir $(CURDIR)/test-output ./...

# fuzz runs every Fuzz target of every package for FUZZTIME executions.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# bench prints the report: the signing and hashing benchmarks on one core,
# the scheduler's on both, then stringer rebuilt through the farm, by a
# direct BuildKit solve and by the host's go install (BenchmarkStringer, a
# minute a round, six rounds, with a buildkitd of its own). The verify
# ratio comes from BenchmarkVerifyInterleaved, which alternates the two
# sides in one run so that a busy moment of the machine slows both alike;
# BenchmarkStringer takes turns likewise. lantern verify's offline ratio
# comes from BenchmarkDecideBundle (a 1,000-envelope bundle and the bare
# signature loop over it, taking turns, in CPU time of one core); its
# latency from BenchmarkVerifyFarm (the whole command against a scheduler
# on loopback, 400 runs a round).
bench: buildkitd runc
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 -count 5 . ./attest/... | tee bench.out
	$(GO) test -run '^$$' -bench '^BenchmarkDecideBundle$$' -benchmem -cpu 1 -count 5 -benchtime 20x ./verify/ | tee -a bench.out
	$(GO) test -run '^$$' -bench . -benchmem -cpu 2 -count 3 ./scheduler/... | tee -a bench.out
	$(GO) test -run '^$$' -bench '^BenchmarkVerifyFarm$$' -benchmem -cpu 2 -count 3 -benchtime 400x ./cmd/lantern/ | tee -a bench.out
	LANTERN_BUILDKITD=$(BUILDKITD) $(GO) test -run '^$$' -bench '^BenchmarkStringer$$' -benchtime 1x -count 6 -timeout 30m ./worker/ | tee -a bench.out
	$(GO) run ./internal/benchtable \
	  -ratio 'attestation verify / bare ecdsa.VerifyASN1=BenchmarkVerifyInterleaved:ns/attest/BenchmarkVerifyInterleaved:ns/bare<=1.2' \
	  -ratio 'Digest hashing / stdlib sha256=BenchmarkDigestReader/BenchmarkSHA256Stdlib<=1.05' \
	  -ratio 'stringer rebuild: farm / direct BuildKit solve=BenchmarkStringer:s/farm/BenchmarkStringer:s/direct<=1.10' \
	  -ratio 'stringer rebuild: direct BuildKit solve / host go install=BenchmarkStringer:s/direct/BenchmarkStringer:s/host<=2' \
	  -target 'claims ingested end to end=BenchmarkIngestClaims:claims/s>=5000' \
	  -ratio 'claims ingested: open bus / authenticated bus=BenchmarkIngestClaimsOpen:claims/s/BenchmarkIngestClaims:claims/s<=1.1' \
	  -target 'GET an artefact with 100,000 attestations, p99=BenchmarkGetArtefact/api:p99-ms<=10' \
	  -ratio 'offline verify of a 1,000-envelope bundle / bare signature loop=BenchmarkDecideBundle:cpu-ns/verify/BenchmarkDecideBundle:cpu-ns/bare<=1.2' \
	  -target 'lantern verify --farm on loopback, 3 trusted + 50 untrusted, p99=BenchmarkVerifyFarm:p99-ms<=50' \
	  < bench.out

# run is the first thing to try, as root on a fresh Debian machine: it
# installs what is missing (runc, diffoscope, bubblewrap, buildkitd), starts
# 'lantern up'
# (NATS, the scheduler and dashboard, two builders, BuildKit; data in
# $(DEMO)), claims a first real Go command, and prints the verdict and the
# dashboard's address once both builders are done. Ctrl-C stops it.
run: build buildkitd runc diffoscope bubblewrap
	LANTERN=$(LANTERN) DATA=$(DEMO) sh deploy/run.sh

clean:
	rm -rf $(BIN) bench.out $(DEMO) test-output

# The recipes tests download ~80 MB once into $TMPDIR/lantern-recipes-test-cache
# and keep it between runs; the go command leaves it read-only.
clean-cache:
	chmod -R u+w $${TMPDIR:-/tmp}/lantern-recipes-test-cache 2>/dev/null; rm -rf $${TMPDIR:-/tmp}/lantern-recipes-test-cache
