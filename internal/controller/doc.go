// Package controller is the cluster half of daxfs-csi: a controller-runtime
// manager whose placement reconciler turns DaxNodes (what each node's pools
// hold) and DaxImages (what should be pre-staged where) into placements in
// DaxImage status, and a reader the CSI controller service uses for
// topology and capacity in cluster mode. See docs/controller-design.md.
package controller
