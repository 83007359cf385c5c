//go:build tools

// Package tools pins the project's chosen dependencies before code imports them.
package tools

import (
	_ "github.com/container-storage-interface/spec/lib/go/csi"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "google.golang.org/grpc"
	_ "k8s.io/klog/v2"
	_ "k8s.io/mount-utils"
	_ "sigs.k8s.io/controller-runtime"
	_ "golang.org/x/sys/unix"
)
