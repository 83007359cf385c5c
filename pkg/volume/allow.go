package volume

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSourceNotAllowed is returned for an image source outside the allow-list:
// whoever can create a pod controls inline attributes, so the node decides.
var ErrSourceNotAllowed = errors.New("image source not allowed")

// AllowList holds the --allow-source prefixes. An empty list allows nothing.
type AllowList []string

// Check reports whether source falls under one of the prefixes. A prefix
// matches at a path boundary only, so "https://images.corp" does not admit
// "https://images.corp.evil/". Sources must already be clean (Parse checks).
// oci:// sources match by registry and repository path (see checkOCIAllowed).
func (l AllowList) Check(source string) error {
	if strings.HasPrefix(source, OCIScheme) {
		ref, err := ParseOCI(source)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSourceNotAllowed, err)
		}
		for _, p := range l {
			if checkOCIAllowed(ref, p) {
				return nil
			}
		}
		return fmt.Errorf("%w: %q matches no --allow-source prefix %q (tag-only references need an oci+tags:// entry)",
			ErrSourceNotAllowed, source, []string(l))
	}
	for _, p := range l {
		if p == "" {
			continue
		}
		if source == p {
			return nil
		}
		if strings.HasPrefix(source, p) && (strings.HasSuffix(p, "/") || source[len(p)] == '/') {
			return nil
		}
	}
	return fmt.Errorf("%w: %q matches no --allow-source prefix %q", ErrSourceNotAllowed, source, []string(l))
}
