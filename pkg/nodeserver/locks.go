package nodeserver

import (
	"context"
	"fmt"
	"sync"
)

// keyedMutex serialises work per key (a volume id, a digest) without one
// global lock, and forgets keys nobody holds.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch    chan struct{} // holds a token while locked
	users int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{m: map[string]*keyLock{}} }

// Lock locks key and returns its unlock.
func (k *keyedMutex) Lock(key string) func() {
	unlock, _ := k.LockCtx(context.Background(), key)
	return unlock
}

// LockCtx waits for key until ctx is done: a caller whose deadline passed
// (the kubelet gave up and will retry) does not queue work behind a long
// stage.
func (k *keyedMutex) LockCtx(ctx context.Context, key string) (func(), error) {
	l := k.ref(key)
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.unref(key) }, nil
	case <-ctx.Done():
		k.unref(key)
		return nil, fmt.Errorf("waiting for another operation on %s: %w", key, ctx.Err())
	}
}

// TryLock locks key only when free; eviction uses it so it never waits on
// (and deadlocks with) a stage that holds another digest.
func (k *keyedMutex) TryLock(key string) (func(), bool) {
	l := k.ref(key)
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.unref(key) }, true
	default:
		k.unref(key)
		return nil, false
	}
}

func (k *keyedMutex) ref(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.users++
	return l
}

func (k *keyedMutex) unref(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.m[key]; l != nil {
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
	}
}

// lockVolumePath locks the volume id, then the path: calls that touch one
// staging or target path run one at a time whatever ids they carry. Every
// caller takes an id before a path and never two of either, so no two
// calls can wait on each other.
func (s *NodeServer) lockVolumePath(ctx context.Context, id, path string) (func(), error) {
	unlockID, err := s.volLocks.LockCtx(ctx, id)
	if err != nil {
		return nil, err
	}
	unlockPath, err := s.pathLocks.LockCtx(ctx, path)
	if err != nil {
		unlockID()
		return nil, err
	}
	return func() { unlockPath(); unlockID() }, nil
}
