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

.PHONY: build run test unit fuzz e2e-qemu e2e-kube sanity vet bench

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

test: vet unit fuzz sanity e2e-qemu e2e-kube

vet:
	$(GO) vet ./...

# envtest needs etcd and kube-apiserver: built once from the module proxy
# and cached by Kubernetes version (hack/envtest-assets.sh), never rebuilt.
unit:
	assets="$$(hack/envtest-assets.sh)" && \
	KUBEBUILDER_ASSETS="$$assets" $(GO) test $(TEST_FLAGS) ./...

# Brief fuzzing of every fuzz target on every run (go test -fuzz takes one
# target at a time): the image reader (seeds: the samples), the tar builder,
# the device table parser and the volume attribute parser.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOpenValidateWalk$$' -fuzztime $(FUZZTIME) ./pkg/image
	$(GO) test -run '^$$' -fuzz '^FuzzBuildTar$$' -fuzztime $(FUZZTIME) ./pkg/image
	$(GO) test -run '^$$' -fuzz '^FuzzOpenTable$$' -fuzztime $(FUZZTIME) ./pkg/daxdev
	$(GO) test -run '^$$' -fuzz '^FuzzAttributes$$' -fuzztime $(FUZZTIME) ./pkg/volume

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
