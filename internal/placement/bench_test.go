package placement

import "testing"

// BenchmarkPlace: 500 images on 5,000 nodes with 10,000 local pools plus CXL
// pools shared by 4-16 nodes (a quarter of the nodes). Target: under 1 s per Place on one core
// (go test -bench Place -cpu 1 ./internal/placement).
func BenchmarkPlace(b *testing.B) {
	images, ns, pools := scenario(500, 5000, 42)
	b.ReportAllocs()
	b.ResetTimer()
	var placed int
	for b.Loop() {
		a := Place(images, ns, pools)
		placed = len(a.ByImage)
	}
	b.ReportMetric(float64(placed), "images-placed")
}
