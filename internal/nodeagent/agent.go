package nodeagent

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
)

// DefaultInterval is how often the agent reports and syncs placements;
// keep it well under the controller's heartbeat TTL.
const DefaultInterval = 20 * time.Second

// Agent keeps one node's DaxNode current and its pools pre-staged.
type Agent struct {
	Client   client.Client // a cached client keeps DaxImage lists cheap
	NodeName string
	Pools    []*daxdev.Pool
	Stager   Stager
	// Labels set on the DaxNode, which DaxImage node selectors match
	// (e.g. the Node's topology and role labels).
	Labels map[string]string
	// CopyNodeLabels adds the labels of the Kubernetes Node of the same name
	// (Labels win on conflicts), so selectors can use the usual node labels.
	CopyNodeLabels bool
	Interval       time.Duration    // 0: DefaultInterval
	Now            func() time.Time // nil: time.Now

	mu       sync.Mutex
	failures map[poolDigest]string // last Prestage error per copy
}

type poolDigest struct{ pool, digest string }

func (a *Agent) interval() time.Duration {
	if a.Interval > 0 {
		return a.Interval
	}
	return DefaultInterval
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Run reports and syncs every Interval until ctx ends. Reporting runs on
// its own so a long pre-stage never starves the heartbeat.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.loop(ctx, "sync placements", a.Sync)
	}()
	a.loop(ctx, "report DaxNode", a.Report)
	wg.Wait()
	return nil
}

func (a *Agent) loop(ctx context.Context, what string, f func(context.Context) error) {
	t := time.NewTicker(a.interval())
	defer t.Stop()
	for {
		if err := f(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, what, "node", a.NodeName)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
