// Package topology holds the CSI topology keys: the node plugin reports
// them (NodeGetInfo), the controller puts them on volumes and reads them
// back from DaxNodes. One home so both sides of the contract agree.
package topology

// Topology keys: pods land on a node, and images are shared by the nodes
// of one (CXL) memory pool.
const (
	NodeKey = "topology.daxfs.csi.io/node"
	PoolKey = "topology.daxfs.csi.io/pool"
)
