// Package source fetches image bytes named by a volume's `image` attribute
// (file:// on the node, https://) as a stream, and verifies their digest
// while they pass, so no image is ever held whole in memory.
package source
