package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolKind is the kind of memory behind a pool (daxdev.Kind).
// +kubebuilder:validation:Enum=devdax;pmem;cxl;dmaheap;memfile
type PoolKind string

const (
	PoolKindDevDAX  PoolKind = "devdax"
	PoolKindPmem    PoolKind = "pmem"
	PoolKindCXL     PoolKind = "cxl"
	PoolKindDMAHeap PoolKind = "dmaheap"
	PoolKindMemfile PoolKind = "memfile"
)

// StagedState is the state of an image copy in a pool.
// +kubebuilder:validation:Enum=Staging;Ready;Failed
type StagedState string

const (
	StagedStaging StagedState = "Staging"
	StagedReady   StagedState = "Ready"
	StagedFailed  StagedState = "Failed"
)

// DaxNodeSpec names the Kubernetes node the object describes.
type DaxNodeSpec struct {
	// NodeName is the Kubernetes node (and CSI node id); equal to metadata.name.
	NodeName string `json:"nodeName"`
}

// StagedImage is one image copy held in a pool.
type StagedImage struct {
	// Digest of the image content, "sha256:<hex>".
	Digest string `json:"digest"`
	// Size of the image in bytes.
	Size int64 `json:"size"`
	// References counts the volumes using this copy; 0 = only pre-staged.
	// +optional
	References int32 `json:"references,omitempty"`
	// Prestaged is true when the node staged it because the controller placed it.
	// +optional
	Prestaged bool `json:"prestaged,omitempty"`
	// State of the copy.
	// +optional
	State StagedState `json:"state,omitempty"`
	// Message says why a copy Failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// PoolStatus is one device-memory pool the node can use.
type PoolStatus struct {
	// ID is the pool UUID from its header.
	ID string `json:"id"`
	// Kind of memory behind the pool.
	Kind PoolKind `json:"kind"`
	// Size of the pool in bytes.
	Size int64 `json:"size"`
	// Free bytes not reserved by any extent.
	Free int64 `json:"free"`
	// Align of extents in bytes; an image takes its size rounded up to it.
	Align int64 `json:"align"`
	// NUMANode of the memory, -1 when unknown.
	NUMANode int32 `json:"numaNode"`
	// SharedPoolID is the identity of the memory: the same on every node that
	// sees the same (CXL) memory, so one copy there serves all of them.
	// +optional
	SharedPoolID string `json:"sharedPoolID,omitempty"`
	// Images staged in this pool.
	// +optional
	Images []StagedImage `json:"images,omitempty"`
}

// DaxNodeStatus is written only by the node's plugin.
type DaxNodeStatus struct {
	// Pools of the node.
	// +optional
	Pools []PoolStatus `json:"pools,omitempty"`
	// Heartbeat is when the plugin last refreshed this object; the controller
	// drops the node's placements when it is older than its TTL.
	// +optional
	Heartbeat metav1.Time `json:"heartbeat,omitempty"`
	// Summary for printing.
	// +optional
	PoolCount int32 `json:"poolCount"`
	// +optional
	TotalSize *resource.Quantity `json:"totalSize,omitempty"`
	// +optional
	TotalFree *resource.Quantity `json:"totalFree,omitempty"`
	// +optional
	ImageCount int32 `json:"imageCount"`
	// Conditions: Ready (pools open and reported).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DaxNode is one node's device-memory pools and the images they hold.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=dxn
// +kubebuilder:printcolumn:name="Pools",type=integer,JSONPath=`.status.poolCount`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.totalSize`
// +kubebuilder:printcolumn:name="Free",type=string,JSONPath=`.status.totalFree`
// +kubebuilder:printcolumn:name="Images",type=integer,JSONPath=`.status.imageCount`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.heartbeat`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DaxNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DaxNodeSpec   `json:"spec,omitempty"`
	Status DaxNodeStatus `json:"status,omitempty"`
}

// DaxNodeList is a list of DaxNode.
//
// +kubebuilder:object:root=true
type DaxNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DaxNode `json:"items"`
}
