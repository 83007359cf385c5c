package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/internal/topology"
	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// The whole loop with real processes: a node plugin reports its pool, the
// scheduler (`daxfs-csi controller`) places a DaxImage on it, the node
// pre-stages it, and the cluster-mode CSI controller then puts volumes of
// that image on that node and counts the copy as free there.
func TestServeClusterLoop(t *testing.T) {
	kc, kubeconfig := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	img, digest := writeImage(t, dir, "loop")
	runServe(t, "--mode=node", "--kubeconfig", kubeconfig, "--node-id", "node-l", "--pool", "memfile:"+filepath.Join(dir, "pool"),
		"--pool-size", "16Mi", "--state-dir", filepath.Join(dir, "state"), "--allow-source", "file://"+dir+"/", "--node-report-interval", "300ms")

	sched := exec.Command(testBinary, "controller", "--kubeconfig", kubeconfig, "--metrics-addr=0", "--health-addr=0")
	if err := sched.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sched.Process.Signal(syscall.SIGTERM); sched.Wait() })

	if err := kc.Create(ctx, &daxv1.DaxImage{ObjectMeta: metav1.ObjectMeta{Name: "loop"}, Spec: daxv1.DaxImageSpec{
		Source:    daxv1.ImageSource{Image: "file://" + img, Digest: digest},
		Placement: daxv1.PlacementSpec{Policy: daxv1.PolicyAllMatching},
	}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DaxImage placed and Ready on node-l", func() error {
		var di daxv1.DaxImage
		if err := kc.Get(ctx, client.ObjectKey{Name: "loop"}, &di); err != nil {
			return err
		}
		for _, p := range di.Status.Placements {
			if p.Node == "node-l" && p.State == daxv1.PlacementReady {
				return nil
			}
		}
		return fmt.Errorf("status %+v", di.Status)
	})

	conn, _ := runServe(t, "--mode=controller", "--kubeconfig", kubeconfig, "--state-dir", filepath.Join(dir, "ctl"),
		"--allow-source", "file://"+dir+"/")
	ctl := csi.NewControllerClient(conn)
	r, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-loop", Parameters: map[string]string{"image": "file://" + img},
		VolumeCapabilities: []*csi.VolumeCapability{reader}})
	if err != nil {
		t.Fatal(err)
	}
	if tp := r.GetVolume().GetAccessibleTopology(); len(tp) != 1 || tp[0].Segments[topology.NodeKey] != "node-l" {
		t.Errorf("topology %v, want node-l", tp)
	}
	var dn daxv1.DaxNode
	if err := kc.Get(ctx, client.ObjectKey{Name: "node-l"}, &dn); err != nil {
		t.Fatal(err)
	}
	seg := &csi.Topology{Segments: map[string]string{topology.NodeKey: "node-l"}}
	plain, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: seg})
	if err != nil {
		t.Fatal(err)
	}
	withImage, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: seg, Parameters: map[string]string{"image": "file://" + img}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.GetAvailableCapacity() != dn.Status.Pools[0].Free || withImage.GetAvailableCapacity() != plain.GetAvailableCapacity()+2<<20 {
		t.Errorf("capacity %d plain, %d for the staged image; pool free %d, want the 2 MiB copy on top",
			plain.GetAvailableCapacity(), withImage.GetAvailableCapacity(), dn.Status.Pools[0].Free)
	}
}
