package daxdev

import (
	"errors"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]Spec{
		"memfile:/dev/shm/p":   {"memfile", "/dev/shm/p"},
		"memfile:":             {"memfile", DefaultMemfile},
		"devdax:/dev/dax0.0":   {"devdax", "/dev/dax0.0"},
		"pmem:/dev/pmem0":      {"pmem", "/dev/pmem0"},
		"dmaheap:system":       {"dmaheap", "system"},
		"auto":                 {"auto", ""},
		"memfile:rel/path.img": {"memfile", "rel/path.img"},
	} {
		got, err := ParseSpec(in)
		if err != nil || got != want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if err == nil && got.String() != in && in != "memfile:" {
			t.Errorf("Spec(%q).String() = %q", in, got.String())
		}
	}
	for _, in := range []string{"", "auto:", "dax0.0", "devdax:", "pmem:pmem0", "dmaheap:", "nvme:/dev/nvme0"} {
		if _, err := ParseSpec(in); !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseSpec(%q): %v, want ErrBadSpec", in, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "1Ki": 1024, "256Mi": 256 << 20, "1Gi": 1 << 30, "2Ti": 2 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1G", "1.5Gi", "Gi", "9999999999Ti"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrBadArgument) {
			t.Errorf("ParseSize(%q): %v, want ErrBadArgument", in, err)
		}
	}
}
