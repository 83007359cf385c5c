package nodeserver

import "sync"

// keyedMutex serialises work per key (a volume id, a digest) without one
// global lock, and forgets keys nobody holds.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	users int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{m: map[string]*keyLock{}} }

// Lock locks key and returns its unlock.
func (k *keyedMutex) Lock(key string) func() {
	l := k.ref(key)
	l.Lock()
	return func() { l.Unlock(); k.unref(key) }
}

// TryLock locks key only when free; eviction uses it so it never waits on
// (and deadlocks with) a stage that holds another digest.
func (k *keyedMutex) TryLock(key string) (func(), bool) {
	l := k.ref(key)
	if !l.TryLock() {
		k.unref(key)
		return nil, false
	}
	return func() { l.Unlock(); k.unref(key) }, true
}

func (k *keyedMutex) ref(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
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
