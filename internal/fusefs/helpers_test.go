package fusefs

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
	"github.com/daxfs-csi/daxfs-csi/internal/sharedtest"
)

func samplePath(t testing.TB, name string) string { return sharedtest.Sample(t, name) }

type manifestEntry = sharedtest.ManifestEntry

func readManifest(t testing.TB, name string) []manifestEntry { return sharedtest.Manifest(t, name) }

// openSample opens a shared sample: mapped (OpenBytes, zero-copy reads) or
// through an io.ReaderAt (copying reads).
func openSample(t testing.TB, name string, mapped bool) *image.Image {
	t.Helper()
	p := samplePath(t, name)
	if mapped {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		im, err := image.OpenBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return im
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := image.Open(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return im
}

// mountTest mounts im on a fresh directory and unmounts it when the test
// ends (lazily as a last resort, so a failing test leaves no mount behind).
func mountTest(t testing.TB, im *image.Image, opts Options) (*Server, string) {
	t.Helper()
	machine.NeedRoot(t, "mounting FUSE directly")
	mnt := t.TempDir()
	s, err := Mount(mnt, im, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() { unmountTest(t, s) })
	return s, mnt
}

func unmountTest(t testing.TB, s *Server) {
	if err := s.Unmount(); err != nil {
		t.Errorf("Unmount: %v", err)
		unix.Unmount(s.Mountpoint(), unix.MNT_DETACH)
	}
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("server of %s still running 10s after unmount", s.Mountpoint())
	}
}

// errnoOf extracts the errno of a failed file operation.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
