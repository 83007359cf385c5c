package daxdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// readAttr reads a sysfs attribute, trimmed.
func readAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readInt reads a decimal or 0x-prefixed hex attribute.
func readInt(dir, name string) (int64, error) {
	s, err := readAttr(dir, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("sysfs %s: %q is not a number", filepath.Join(dir, name), s)
	}
	return v, nil
}

// readHex reads an address attribute such as resource ("0x100600000").
func readHex(dir, name string) (uint64, error) {
	s, err := readAttr(dir, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("sysfs %s: %q is not a hex address", filepath.Join(dir, name), s)
	}
	return v, nil
}

// readNode reads a NUMA node attribute; -1 when absent or unknown.
func readNode(dir string, names ...string) int {
	for _, n := range names {
		if v, err := readInt(dir, n); err == nil && v >= 0 && v < 1<<16 {
			return int(v)
		}
	}
	return -1
}
