package scale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	daxv1 "github.com/daxfs-csi/daxfs-csi/pkg/apis/daxfs/v1alpha1"
)

// imageWatch follows every DaxImage through a watch: the benchmark creates
// them and never modifies them, so each MODIFIED event is a status write
// of the controller, seen when the apiserver committed it.
type imageWatch struct {
	mu       sync.Mutex
	images   map[string]*daxv1.DaxImage
	modified int
	last     time.Time
}

func watchImages(ctx context.Context, c client.WithWatch) (*imageWatch, error) {
	wi, err := c.Watch(ctx, &daxv1.DaxImageList{})
	if err != nil {
		return nil, fmt.Errorf("watch DaxImages: %w", err)
	}
	w := &imageWatch{images: map[string]*daxv1.DaxImage{}}
	go func() {
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			img, ok := ev.Object.(*daxv1.DaxImage)
			if !ok {
				continue
			}
			w.mu.Lock()
			switch ev.Type {
			case watch.Added:
				w.images[img.Name] = img
			case watch.Modified:
				w.images[img.Name] = img
				w.modified++
				w.last = time.Now()
			case watch.Deleted:
				delete(w.images, img.Name)
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *imageWatch) state() (modified int, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.modified, w.last
}

// incomplete counts images without a status for their generation.
func (w *imageWatch) incomplete(want int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := want - len(w.images)
	for _, img := range w.images {
		if img.Status.ObservedGeneration != img.Generation || meta.FindStatusCondition(img.Status.Conditions, daxv1.ConditionPlaced) == nil {
			n++
		}
	}
	return n
}

func (w *imageWatch) each(f func(*daxv1.DaxImage)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, img := range w.images {
		f(img)
	}
}

// settled is what one phase cost until the controller was quiet again.
type settled struct {
	took   time.Duration // from the phase's start to its last status write (or its first pass when it wrote none)
	writes int           // status writes seen on the watch
	passes int           // placement passes finished
}

// quiet is how long no status may be written, with the controller's queue
// empty and no pass running, before a placement counts as stable.
const quiet = 2 * time.Second

// mark is where a phase starts: status writes seen and passes finished.
type mark struct {
	at          time.Time
	mod, passes int
}

func markNow(b *testing.B, ctx context.Context, w *imageWatch, m *manager) mark {
	b.Helper()
	mod, _ := w.state()
	passes, _, err := m.passes(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return mark{at: time.Now(), mod: mod, passes: passes}
}

// settle waits until every one of want images has a status for its
// generation, the controller finished a pass after the last write (or
// after start when nothing was written), and nothing was written for quiet.
func settle(b *testing.B, ctx context.Context, w *imageWatch, m *manager, want int, from mark, timeout time.Duration) settled {
	b.Helper()
	mod0, pass0, start := from.mod, from.passes, from.at
	passAtWrite, seenMod := pass0, mod0
	var firstPass time.Time
	deadline := time.Now().Add(timeout)
	for {
		time.Sleep(100 * time.Millisecond)
		mod, last := w.state()
		done, busy, err := m.passes(ctx)
		if err != nil {
			b.Fatalf("%v\ncontroller log:\n%s", err, m.logs.String())
		}
		if mod != seenMod {
			seenMod, passAtWrite = mod, done
		}
		if firstPass.IsZero() && done > pass0 {
			firstPass = time.Now()
		}
		end := firstPass
		if mod > mod0 {
			end = last
		}
		if done > passAtWrite && !busy && !end.IsZero() && time.Since(end) >= quiet && w.incomplete(want) == 0 {
			return settled{took: end.Sub(start), writes: mod - mod0, passes: done - pass0}
		}
		if time.Now().After(deadline) {
			b.Fatalf("not settled after %v: %d images without status, %d writes, %d passes\ncontroller log tail:\n%s",
				timeout, w.incomplete(want), mod-mod0, done-pass0, tail(m.logs.String(), 3000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
