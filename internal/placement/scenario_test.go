package placement

import (
	"fmt"
	"math/rand"
)

// scenario builds a cluster of n nodes with two local pools each, a quarter
// of the nodes also seeing CXL pools shared by 4-16 nodes, some copies
// already staged, and images with mixed policies, priorities and selectors.
func scenario(nImages, nNodes int, seed int64) ([]Image, []Node, []Pool) {
	r := rand.New(rand.NewSource(seed))
	const gib = 1 << 30
	ns := make([]Node, nNodes)
	var pools []Pool
	for i := range ns {
		ns[i].Name = fmt.Sprintf("node-%05d", i)
		for _, side := range []string{"a", "b"} {
			pools = append(pools, Pool{ID: fmt.Sprintf("local-%05d%s", i, side), Free: int64(8+r.Intn(56)) * gib, Align: 2 << 20, Nodes: []string{ns[i].Name}})
		}
	}
	// Shared pools, each reported once per node that sees it.
	for i := 0; i < nNodes/4; {
		k := 4 + r.Intn(13)
		if i+k > nNodes/4 {
			k = nNodes/4 - i
		}
		id := fmt.Sprintf("cxl-%05d", i)
		free := int64(64+r.Intn(192)) * gib
		for j := i; j < i+k; j++ {
			pools = append(pools, Pool{ID: id, Free: free, Align: 2 << 20, Nodes: []string{ns[j].Name}})
		}
		i += k
	}
	images := make([]Image, nImages)
	for i := range images {
		im := Image{
			Name:     fmt.Sprintf("image-%04d", i),
			Digest:   fmt.Sprintf("sha256:%064x", i),
			Size:     int64(1+r.Intn(4096)) << 20,
			Priority: int32(r.Intn(5)),
		}
		switch i % 10 {
		case 0:
			im.Policy = PerPool
		case 1, 2, 3:
			im.Policy = AllMatching
		default:
			im.Policy = Replicas
			im.Replicas = 1 + r.Intn(5)
		}
		// A selector picks a contiguous zone of 5-50% of the nodes.
		span := nNodes/20 + r.Intn(nNodes*9/20+1)
		start := r.Intn(nNodes - span + 1)
		for j := start; j < start+span; j++ {
			im.Nodes = append(im.Nodes, ns[j].Name)
		}
		images[i] = im
	}
	// Some copies already there: pre-staged or in use.
	for k := 0; k < nImages; k++ {
		p := &pools[r.Intn(len(pools))]
		im := images[r.Intn(nImages)]
		if p.Free < im.Size {
			continue
		}
		p.Copies = append(p.Copies, Copy{Digest: im.Digest, Size: im.Size, Prestaged: true, References: int32(r.Intn(2))})
	}
	return images, ns, pools
}
