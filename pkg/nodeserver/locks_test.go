package nodeserver

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyedMutex(t *testing.T) {
	k := newKeyedMutex()
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock("a")
			if n := inside.Add(1); n > max.Load() {
				max.Store(n)
			}
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders of one key at once", max.Load())
	}
	unlockA := k.Lock("a")
	if _, ok := k.TryLock("a"); ok {
		t.Fatal("TryLock took a held key")
	}
	unlockB, ok := k.TryLock("b")
	if !ok {
		t.Fatal("TryLock refused a free key")
	}
	unlockA()
	unlockB()
	if len(k.m) != 0 {
		t.Fatalf("keys leaked: %v", k.m)
	}
}
