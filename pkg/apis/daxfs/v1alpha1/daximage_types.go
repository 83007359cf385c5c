package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageSource names the image with the same attributes volumes use
// (internal/volume: image, digest, mount, writable).
type ImageSource struct {
	// Image is the source URI: file:///abs/path or https://...
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// Digest of the content, "sha256:<hex>". When empty the controller
	// resolves it from the source.
	// +optional
	// +kubebuilder:validation:Pattern=`^sha256:[0-9a-f]{64}$`
	Digest string `json:"digest,omitempty"`
	// Mount mode of volumes made from it: auto, kernel or fuse.
	// +optional
	// +kubebuilder:validation:Enum=auto;kernel;fuse
	Mount string `json:"mount,omitempty"`
	// Writable volumes get a writable overlay.
	// +optional
	Writable bool `json:"writable,omitempty"`
	// Size of the image ("120Mi" or bytes), when known; otherwise resolved
	// from the source or a node's report.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
}

// PlacementPolicy says how many copies the image wants.
// +kubebuilder:validation:Enum=AllMatching;Replicas;PerPool
type PlacementPolicy string

const (
	// PolicyAllMatching: every matching node reaches a copy (a shared pool's
	// copy serves all nodes that see it).
	PolicyAllMatching PlacementPolicy = "AllMatching"
	// PolicyReplicas: Replicas matching nodes reach a copy.
	PolicyReplicas PlacementPolicy = "Replicas"
	// PolicyPerPool: a copy in every pool of every matching node.
	PolicyPerPool PlacementPolicy = "PerPool"
)

// PlacementSpec says where the image should be pre-staged.
type PlacementSpec struct {
	// NodeSelector selects DaxNodes by their labels; empty selects all.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// Policy, AllMatching by default.
	// +optional
	// +kubebuilder:default=AllMatching
	Policy PlacementPolicy `json:"policy,omitempty"`
	// Replicas for the Replicas policy.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas int32 `json:"replicas,omitempty"`
	// Priority: higher is placed first and may evict unreferenced pre-staged
	// copies of lower-priority images.
	// +optional
	Priority int32 `json:"priority,omitempty"`
}

// DaxImageSpec is what the user wants.
type DaxImageSpec struct {
	Source ImageSource `json:"source"`
	// +optional
	Placement PlacementSpec `json:"placement,omitempty"`
}

// PlacementState is the state of one placement.
// +kubebuilder:validation:Enum=Pending;Staging;Ready;Failed
type PlacementState string

const (
	PlacementPending PlacementState = "Pending"
	PlacementStaging PlacementState = "Staging"
	PlacementReady   PlacementState = "Ready"
	PlacementFailed  PlacementState = "Failed"
)

// Placement is one copy of the image in one pool.
type Placement struct {
	// PoolID is the pool's SharedPoolID (its ID when not shared).
	PoolID string `json:"poolID"`
	// Node that stages the copy.
	Node string `json:"node"`
	// Nodes that reach the copy (all live nodes seeing the pool).
	Nodes []string `json:"nodes"`
	// State of the copy.
	State PlacementState `json:"state"`
	// Reason for Failed (or Pending).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// DaxImageStatus is written by the controller.
type DaxImageStatus struct {
	// ObservedGeneration is the spec generation the status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Digest resolved (spec's when given).
	// +optional
	Digest string `json:"digest,omitempty"`
	// Size of the image.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// Placements, sorted by pool id.
	// +optional
	Placements []Placement `json:"placements,omitempty"`
	// Counts for printing: copies placed and Ready; nodes reached.
	// +optional
	PlacedCount int32 `json:"placedCount"`
	// +optional
	ReadyCount int32 `json:"readyCount"`
	// +optional
	NodeCount int32 `json:"nodeCount"`
	// Conditions: Placed (every wanted copy has a pool), Ready (all staged).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DaxImage asks for an image to be pre-staged in device memory.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=dxi
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.digest`,priority=1
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.placement.policy`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.placement.priority`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.size`
// +kubebuilder:printcolumn:name="Copies",type=integer,JSONPath=`.status.placedCount`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyCount`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodeCount`
// +kubebuilder:printcolumn:name="Placed",type=string,JSONPath=`.status.conditions[?(@.type=="Placed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DaxImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DaxImageSpec   `json:"spec"`
	Status DaxImageStatus `json:"status,omitempty"`
}

// DaxImageList is a list of DaxImage.
//
// +kubebuilder:object:root=true
type DaxImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DaxImage `json:"items"`
}

// Condition types.
const (
	ConditionPlaced = "Placed"
	ConditionReady  = "Ready"
)
