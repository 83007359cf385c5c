// Package v1alpha1 is the daxfs.csi.io/v1alpha1 API: DaxNode (what a node's
// pools hold, written by that node's plugin) and DaxImage (what the cluster
// wants pre-staged where, and where the controller placed it).
//
// +kubebuilder:object:generate=true
// +groupName=daxfs.csi.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "daxfs.csi.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &DaxNode{}, &DaxNodeList{}, &DaxImage{}, &DaxImageList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Bytes is n bytes as a Quantity in binary units ("400Mi"); nil for n <= 0.
func Bytes(n int64) *resource.Quantity {
	if n <= 0 {
		return nil
	}
	return resource.NewQuantity(n, resource.BinarySI)
}

// Value is q in bytes, 0 for nil.
func Value(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.Value()
}
