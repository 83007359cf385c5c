# The README's two commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/daxfs-csi
RUN_DIR   ?= /run/daxfs-csi
IMAGES    ?= /var/lib/daxfs/images
FUZZTIME  ?= 20s
# Tests mount filesystems and start FUSE servers: they need root.
TEST_FLAGS ?= -count=1 -timeout 40m
# Stamped into the binary (internal/buildinfo): `daxfs-csi --version`.
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X github.com/daxfs-csi/daxfs-csi/internal/buildinfo.version=$(VERSION) \
	-X github.com/daxfs-csi/daxfs-csi/internal/buildinfo.commit=$(COMMIT)

# The packages whose tests run goroutines and processes against each other
# run under the race detector (cgo: needs gcc).
RACE_PKGS  := ./pkg/nodeserver/... ./pkg/daxdev/... ./internal/oci/... ./internal/fusehost/... ./pkg/driver/...
# Tool versions have one home, hack/versions.sh; hack/tools.sh builds each
# once. Exported, so `make lint STATICCHECK_VERSION=v0.7.0` reaches it.
export STATICCHECK_VERSION := $(shell . ./hack/versions.sh && echo $$STATICCHECK_VERSION)

.PHONY: build run test verify generate unit fuzz e2e-qemu e2e-kube sanity vet lint bench image chart-test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/daxfs-csi

# A node plugin (and per-node controller) on the embedded default: a
# memory-file pool in /dev/shm served through FUSE, with a demo image.
# exec: the server replaces the recipe's shell, so the signal that stops make
# (Ctrl-C, or SIGTERM to make, which passes it on) stops the server.
run: build
	mkdir -p $(IMAGES) $(RUN_DIR)
	$(BIN) image build $(CURDIR)/docs -o $(IMAGES)/demo.daxfs
	exec $(BIN) serve --mode=all --endpoint unix://$(RUN_DIR)/csi.sock \
		--node-id $$(hostname) --pool memfile:/dev/shm/daxfs-pool --pool-size 1Gi \
		--state-dir $(RUN_DIR)/state --allow-source file://$(IMAGES)/ \
		--metrics-address 127.0.0.1:9808

test: verify vet lint chart-test unit fuzz sanity e2e-qemu e2e-kube

# Deepcopy code and CRDs (deploy/crds and the chart's copy) from pkg/apis,
# with controller-gen at the version in hack/versions.sh.
generate:
	bash hack/generate.sh

# Fails when the generated files differ from what `make generate` writes
# (checked in a scratch copy: the tree is never modified) or a tool version
# written outside hack/versions.sh is not the pinned one.
verify:
	bash hack/verify.sh

vet:
	$(GO) vet ./...

# staticcheck with its default checks, built once into the cache.
lint:
	sc="$$(hack/tools.sh staticcheck)" && "$$sc" ./...

# envtest needs etcd and kube-apiserver: built once from the module proxy
# and cached by Kubernetes version (hack/envtest-assets.sh), never rebuilt;
# helm (deploy/examples) likewise by version (hack/tools.sh). RACE_PKGS run
# with -race, the rest without; both always run, and either failing fails.
unit:
	assets="$$(hack/envtest-assets.sh)" && helm="$$(hack/tools.sh helm)" && \
	race="$$($(GO) list $(RACE_PKGS))" && rest="$$($(GO) list ./... | grep -vxF "$$race")" && \
	export KUBEBUILDER_ASSETS="$$assets" DAXFS_HELM="$$helm" && status=0 && \
	{ $(GO) test -race $(TEST_FLAGS) $$race || status=1; } && \
	{ $(GO) test $(TEST_FLAGS) $$rest || status=1; } && \
	exit $$status

# Brief fuzzing of every fuzz target on every run (go test -fuzz takes one
# target at a time): the image reader (seeds: the samples), the tar builder,
# the device table parser and the volume attribute parser. hack/fuzz.sh
# tells Go 1.26's end-of-fuzztime race (golang/go#75804) from a crasher.
fuzz:
	hack/fuzz.sh FuzzOpenValidateWalk ./pkg/image $(FUZZTIME)
	hack/fuzz.sh FuzzBuildTar ./pkg/image $(FUZZTIME)
	hack/fuzz.sh FuzzOpenTable ./pkg/daxdev $(FUZZTIME)
	hack/fuzz.sh FuzzAttributes ./internal/volume $(FUZZTIME)

# The standalone csi-sanity binary against `daxfs-csi serve`.
sanity: build
	bash test/sanity/run-csi-sanity.sh

# Real device-dax and CXL devices under QEMU.
e2e-qemu:
	bash test/e2e/qemu/run.sh

# `helm install` of charts/daxfs-csi (the image `make image` builds) on a
# real two-node cluster: etcd, kube-apiserver, controller-manager,
# scheduler, kube-proxy, two kubelets with their containerds; binaries, helm
# and csi-provisioner cached by version (test/e2e/kube/README.md).
e2e-kube:
	bash test/e2e/kube/run.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pkg/...

# --- container image (no Docker daemon: hack/imagebuild, go-containerregistry)
# A static binary stamped with the version, packed reproducibly (every time
# is the commit time): the same commit gives the same digest. Writes an OCI
# layout and a docker-archive tarball under IMAGE_DIR; pushes to
# $(REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG) when REGISTRY is set.
COMMIT_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
GOARCH       ?= $(shell $(GO) env GOARCH)
IMAGE_NAME   ?= daxfs-csi
IMAGE_TAG    ?= $(VERSION)
IMAGE_DIR    ?= bin/image
REGISTRY     ?=
IMAGE_REF    := $(if $(REGISTRY),$(REGISTRY)/,)$(IMAGE_NAME):$(IMAGE_TAG)
IMAGE_LDFLAGS := -s -w -buildid= $(LDFLAGS)

image:
	mkdir -p $(IMAGE_DIR)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags "$(IMAGE_LDFLAGS)" \
		-o $(IMAGE_DIR)/daxfs-csi ./cmd/daxfs-csi
	$(GO) run ./hack/imagebuild -binary $(IMAGE_DIR)/daxfs-csi -ref $(IMAGE_REF) -arch $(GOARCH) \
		-version $(VERSION) -revision $(COMMIT) -created $(COMMIT_EPOCH) \
		-oci-layout $(IMAGE_DIR)/oci -tarball $(IMAGE_DIR)/daxfs-csi.tar $(if $(REGISTRY),-push,) \
		>$(IMAGE_DIR)/ref
	cat $(IMAGE_DIR)/ref

# The chart: helm lint --strict, the schema refusing bad values, the chart's
# CRDs equal to deploy/crds (helm from the module proxy, cached by version).
chart-test:
	bash hack/chart-test.sh
