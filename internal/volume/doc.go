// Package volume holds what the node and controller services agree on about
// a volume: its attributes, which image sources are allowed, how a volume id
// is derived without a database, and which gRPC code an error maps to.
package volume
