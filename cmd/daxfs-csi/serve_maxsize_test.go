package main

import (
	"errors"
	"strings"
	"testing"
)

func TestServeMaxImageSizeFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, 4 << 30}, // the documented default
		{[]string{"--max-image-size", "512Mi"}, 512 << 20},
		{[]string{"--max-image-size=0"}, 0},
	} {
		cfg, err := parseServeFlags(c.args)
		if err != nil || cfg.maxImageSize != c.want {
			t.Errorf("%v: %v, %v; want %d", c.args, cfg, err, c.want)
		}
	}
	for _, bad := range []string{"lots", "-1", "4GB"} {
		_, err := parseServeFlags([]string{"--max-image-size", bad})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--max-image-size") {
			t.Errorf("%q: %v, want a usage error naming --max-image-size", bad, err)
		}
	}
}
