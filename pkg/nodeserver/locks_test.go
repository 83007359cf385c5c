package nodeserver

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
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

func TestLockCtxGivesUp(t *testing.T) {
	k := newKeyedMutex()
	unlock := k.Lock("v")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.LockCtx(ctx, "v"); grpccode.Of(err) != codes.DeadlineExceeded {
		t.Fatalf("LockCtx on a held key: %v (%v), want DeadlineExceeded", err, grpccode.Of(err))
	}
	unlock()
	u2, err := k.LockCtx(context.Background(), "v")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	if len(k.m) != 0 {
		t.Fatalf("keys leaked: %v", k.m)
	}
}
