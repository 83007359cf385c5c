//go:build !daxdev

package main

import "fmt"

// runPool is replaced by pool.go (build tag daxdev) once pkg/daxdev exists.
func runPool(args []string) bool {
	fmt.Println("E2E-FAIL pool: e2e-guest built without the daxdev tag (pkg/daxdev not available)")
	return true
}
