package scale

import (
	"fmt"
	"math"
	"math/rand/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30

	nodesPerRack = 20
	zones        = 5
	// The first sharedGroups×sharedGroupSize nodes also see a CXL pool,
	// one per group of sharedGroupSize nodes.
	sharedGroups    = 10
	sharedGroupSize = 4
	baseImages      = 5 // AllMatching on every node
	zoneLabel       = "topology.kubernetes.io/zone"
	rackLabel       = "daxfs.example/rack"
	tierLabel       = "daxfs.example/tier"
)

// cluster is what the benchmark writes: DaxNodes as the node agent writes
// them (internal/nodeagent.Agent.status) and DaxImages as users write them.
type cluster struct {
	nodes  []daxv1.DaxNode
	images []daxv1.DaxImage
}

func digestOf(kind string, n int) string {
	return fmt.Sprintf("sha256:%s%063x", kind, n)
}

func nodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

func racks(nodes int) int { return max(1, (nodes+nodesPerRack-1)/nodesPerRack) }

// logUniform draws a size between lo and hi, log-uniformly, 1 MiB granular.
func logUniform(r *rand.Rand, lo, hi int64) int64 {
	v := math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo))))
	return int64(v) / mib * mib
}

func roundUp(n, align int64) int64 { return (n + align - 1) / align * align }

// newCluster builds nodes and images with a fixed seed. Nodes: one local
// pmem pool each (64 GiB; 128 GiB on the one-in-ten "gpu" tier), 1-3
// images in use by pods; the first 40 nodes also see one of 10 CXL pools
// of 256 GiB shared by 4 nodes; the first ten racks hold the base images
// already (pre-staged, Ready). Images: sizes log-uniform 64 MiB - 4 GiB;
// 5 base images on every node, then Replicas per zone, AllMatching per
// rack, PerPool per rack, Replicas anywhere and AllMatching on the gpu tier.
func newCluster(nNodes, nImages int) cluster {
	r := rand.New(rand.NewPCG(16, 4))
	var c cluster
	const align = 2 * mib

	for i := range nImages {
		img := daxv1.DaxImage{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d", i)}}
		size := logUniform(r, 64*mib, 4*gib)
		pl := daxv1.PlacementSpec{Priority: int32(r.IntN(10))}
		rack := fmt.Sprintf("rack-%03d", i%racks(nNodes))
		switch {
		case i < baseImages:
			size = logUniform(r, 150*mib, 400*mib)
			pl.Policy, pl.Priority = daxv1.PolicyAllMatching, 100
		case i%10 < 5:
			pl.Policy, pl.Replicas = daxv1.PolicyReplicas, 3
			pl.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{zoneLabel: fmt.Sprintf("zone-%d", i%zones)}}
		case i%10 < 7:
			pl.Policy, pl.Priority = daxv1.PolicyAllMatching, 10
			pl.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{rackLabel: rack}}
		case i%10 == 7:
			pl.Policy = daxv1.PolicyPerPool
			pl.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{rackLabel: rack}}
		case i%10 == 8:
			pl.Policy, pl.Replicas = daxv1.PolicyReplicas, 2
		default:
			size = logUniform(r, 64*mib, gib)
			pl.Policy, pl.Priority = daxv1.PolicyAllMatching, 50
			pl.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: tierLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{"gpu"}}}}
		}
		img.Spec = daxv1.DaxImageSpec{
			Source: daxv1.ImageSource{
				Image:  fmt.Sprintf("https://registry.example/team-%d/app-%04d:v%d", i%7, i, 1+i%3),
				Digest: digestOf("a", i), Size: daxv1.Bytes(size),
			},
			Placement: pl,
		}
		c.images = append(c.images, img)
	}

	// One shared pool's report, identical on every node of its group.
	shared := make([]daxv1.PoolStatus, sharedGroups)
	for g := range shared {
		p := daxv1.PoolStatus{ID: fmt.Sprintf("c0000000-0000-4000-8000-%012x", g), Kind: daxv1.PoolKindCXL,
			Size: 256 * gib, Align: align, NUMANode: -1, SharedPoolID: fmt.Sprintf("cxl:region-%04d", g)}
		p.Images = podImages(r, 2+r.IntN(3), align)
		p.Free = p.Size - used(p.Images, align)
		shared[g] = p
	}

	for i := range nNodes {
		rack := i / nodesPerRack
		labels := map[string]string{
			zoneLabel:                fmt.Sprintf("zone-%d", rack%zones),
			rackLabel:                fmt.Sprintf("rack-%03d", rack),
			tierLabel:                "cpu",
			"kubernetes.io/hostname": nodeName(i),
			"kubernetes.io/os":       "linux",
		}
		size := 64 * gib
		if i%10 == 0 {
			labels[tierLabel], size = "gpu", 128*gib
		}
		local := daxv1.PoolStatus{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), Kind: daxv1.PoolKindPmem,
			Size: size, Align: align, NUMANode: int32(i % 2)}
		local.Images = podImages(r, 1+r.IntN(3), align)
		if rack < 10 {
			for b := range min(baseImages, nImages) {
				local.Images = append(local.Images, daxv1.StagedImage{Digest: digestOf("a", b),
					Size: daxv1.Value(c.images[b].Spec.Source.Size), References: int32(r.IntN(3)), Prestaged: true, State: daxv1.StagedReady})
			}
		}
		local.Free = local.Size - used(local.Images, align)
		pools := []daxv1.PoolStatus{local}
		if g := i / sharedGroupSize; g < sharedGroups {
			pools = append(pools, *shared[g].DeepCopy())
		}
		n := daxv1.DaxNode{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: labels}, Spec: daxv1.DaxNodeSpec{NodeName: nodeName(i)}}
		n.Status = nodeStatus(pools)
		c.nodes = append(c.nodes, n)
	}
	return c
}

// podImages are copies staged for pods' volumes (not DaxImages).
func podImages(r *rand.Rand, n int, align int64) []daxv1.StagedImage {
	out := make([]daxv1.StagedImage, n)
	for i := range out {
		out[i] = daxv1.StagedImage{Digest: digestOf("b", r.IntN(1<<30)), Size: logUniform(r, 100*mib, 2*gib),
			References: int32(1 + r.IntN(4)), State: daxv1.StagedReady}
	}
	return out
}

func used(images []daxv1.StagedImage, align int64) int64 {
	var u int64
	for _, im := range images {
		u += roundUp(im.Size, align)
	}
	return u
}

// nodeStatus fills the summary fields as the node agent does; the
// heartbeat is set when the benchmark writes it.
func nodeStatus(pools []daxv1.PoolStatus) daxv1.DaxNodeStatus {
	st := daxv1.DaxNodeStatus{Pools: pools, PoolCount: int32(len(pools))}
	var total, free int64
	for _, p := range pools {
		total += p.Size
		free += p.Free
		st.ImageCount += int32(len(p.Images))
	}
	st.TotalSize, st.TotalFree = daxv1.Bytes(total), daxv1.Bytes(free)
	st.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "PoolsOpen",
		Message: fmt.Sprintf("%d pools", len(pools)), LastTransitionTime: metav1.Now()}}
	return st
}
