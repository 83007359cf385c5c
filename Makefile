# The README's two commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/daxfs-csi
RUN_DIR   ?= /run/daxfs-csi
IMAGES    ?= /var/lib/daxfs/images
FUZZTIME  ?= 20s
# Tests mount filesystems and start FUSE servers: they need root.
TEST_FLAGS ?= -count=1 -timeout 40m
# The packages whose tests run goroutines and processes against each other
# run under the race detector (cgo: needs gcc).
RACE_PKGS  := ./pkg/nodeserver/... ./pkg/daxdev/... ./pkg/oci/... ./pkg/fusehost/... ./pkg/driver/...
# Tool versions have one home, hack/versions.sh; hack/tools.sh builds each
# once. Exported, so `make lint STATICCHECK_VERSION=v0.7.0` reaches it.
export STATICCHECK_VERSION := $(shell . ./hack/versions.sh && echo $$STATICCHECK_VERSION)

.PHONY: build run test unit fuzz fuzz-pool e2e-qemu e2e-kube sanity vet lint bench

build:
	$(GO) build -o $(BIN) ./cmd/daxfs-csi

# A node plugin (and per-node controller) on the embedded default: a
# memory-file pool in /dev/shm served through FUSE, with a demo image.
run: build
	mkdir -p $(IMAGES) $(RUN_DIR)
	$(BIN) image build $(CURDIR)/docs -o $(IMAGES)/demo.daxfs
	$(BIN) serve --mode=all --endpoint unix://$(RUN_DIR)/csi.sock \
		--node-id $$(hostname) --pool memfile:/dev/shm/daxfs-pool --pool-size 1Gi \
		--state-dir $(RUN_DIR)/state --allow-source file://$(IMAGES)/ \
		--metrics-address 127.0.0.1:9808

test: vet lint unit fuzz sanity e2e-qemu e2e-kube

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

# The pool table's reader is fuzzed too: a prerequisite here, so that the
# fuzz recipe below stays as it is.
fuzz: fuzz-pool

fuzz-pool:
	$(GO) test -run '^$$' -fuzz '^FuzzOpenTable$$' -fuzztime $(FUZZTIME) ./pkg/daxdev

# Brief fuzzing of the image reader on every run; corpus seeds are the samples.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOpenValidateWalk$$' -fuzztime $(FUZZTIME) ./pkg/image

# The standalone csi-sanity binary against `daxfs-csi serve`.
sanity: build
	bash test/sanity/run-csi-sanity.sh

# Real device-dax and CXL devices under QEMU.
e2e-qemu:
	bash test/e2e/qemu/run.sh

# The driver on a real single-node cluster: etcd, kube-apiserver, kubelet,
# containerd, the node DaemonSet with its fuse-host sidecar; binaries cached
# by version.
e2e-kube:
	bash test/e2e/kube/run.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pkg/...
