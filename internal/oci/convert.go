package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/ociref"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Options configure a Converter.
type Options struct {
	Dir      string // cache directory (<state-dir>/oci on the node)
	MaxBytes int64  // cap on cached DAXFS bytes; 0: none. LRU entries go first.
	// Keychain for registries; default authn.DefaultKeychain (the node's
	// docker config, else anonymous).
	Keychain authn.Keychain
	// PullSecretDir holds mounted kubernetes.io/dockerconfigjson secrets
	// as <name>/.dockerconfigjson, found by a volume's pullSecret.
	PullSecretDir string
	// PullSecrets reads NAMESPACE/NAME pull secrets (see KubeSecrets).
	PullSecrets SecretGetter
	Transport   http.RoundTripper // default: remote's
	Platform    *v1.Platform      // default: NodePlatform()
	// Timeout bounds one conversion, which runs detached from the caller
	// so a later call picks up its result. Default 30 minutes.
	Timeout time.Duration
	// OnConversion, when set, is called after every conversion attempt.
	OnConversion func(Conversion)
}

// Conversion reports one finished attempt (for metrics).
type Conversion struct {
	Source   string
	Digest   string // DAXFS digest; "" on failure
	Size     int64
	Layers   int
	Bytes    int64 // uncompressed layer bytes read
	Duration time.Duration
	Err      error
}

// Converter converts sources into cached DAXFS images, once per key even
// with concurrent callers (in process) and concurrent processes (flock).
type Converter struct {
	opts  Options
	cache cache
	spool string // builder spool files of this process

	mu      sync.Mutex
	flights map[string]*flight
	tags    map[string]string // source -> pinned digest, resolved once
}

type flight struct {
	done  chan struct{}
	st    *stacker
	entry Entry
	err   error
}

// New prepares the cache directory.
func New(opts Options) (*Converter, error) {
	if opts.Dir == "" {
		return nil, errors.New("oci: Options.Dir is required")
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Platform == nil {
		p := NodePlatform()
		opts.Platform = &p
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	c := &Converter{opts: opts, cache: cache{dir: opts.Dir, max: opts.MaxBytes},
		flights: map[string]*flight{}, tags: map[string]string{}}
	if err := c.cache.init(); err != nil {
		return nil, err
	}
	var err error
	if c.spool, err = spoolDir(opts.Dir); err != nil {
		return nil, err
	}
	return c, nil
}

// Active lists the conversions under way, for a progress gauge.
func (c *Converter) Active() []Progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Progress, 0, len(c.flights))
	for _, f := range c.flights {
		out = append(out, f.st.snapshot())
	}
	return out
}

func (c *Converter) pullOptions(ctx context.Context) (pullOptions, error) {
	kc := c.opts.Keychain
	if secret := source.PullSecret(ctx); secret != "" {
		skc, err := c.secretKeychain(ctx, secret)
		if err != nil {
			return pullOptions{}, err
		}
		kc = authn.NewMultiKeychain(skc, kc)
	}
	return pullOptions{Keychain: kc, Transport: c.opts.Transport, Platform: *c.opts.Platform}, nil
}

// Convert returns the cached conversion of src, converting it first if
// needed. When ctx ends first the conversion goes on in the background;
// a later call returns its result.
func (c *Converter) Convert(ctx context.Context, src string) (Entry, error) {
	s, err := ociref.ParseSource(src)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", source.ErrUnsupported, err)
	}
	// Credentials are only looked up when the registry is asked: a cached
	// conversion of a pinned image needs none (as a node's image store).
	var po pullOptions
	var poErr error
	var poOnce sync.Once
	creds := func() (pullOptions, error) {
		poOnce.Do(func() { po, poErr = c.pullOptions(ctx) })
		return po, poErr
	}
	key, ref, err := c.key(ctx, s, creds)
	if err != nil {
		return Entry{}, err
	}
	if e, ok := c.cache.lookup(key); ok {
		return e, nil
	}
	if po, err = creds(); err != nil {
		return Entry{}, err
	}
	c.mu.Lock()
	f := c.flights[key]
	if f == nil {
		f = &flight{done: make(chan struct{}), st: &stacker{}}
		f.st.p.Store(&Progress{Source: source.Redact(src)})
		c.flights[key] = f
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		go func() {
			defer cancel()
			f.entry, f.err = c.run(fctx, s, ref, key, po, f.st)
			c.mu.Lock()
			delete(c.flights, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.entry, f.err
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("convert %s: still running in the background: %w", source.Redact(src), ctx.Err())
	}
}

// key names the cache entry: the OCI digest the source pins (a tag is
// resolved once and remembered) plus the platform. Local sources are keyed
// by their image manifest digest.
func (c *Converter) key(ctx context.Context, s ociref.Source, creds func() (pullOptions, error)) (string, name.Reference, error) {
	plat := strings.ReplaceAll(platformString(*c.opts.Platform), "/", "-")
	if s.Kind != ociref.KindRegistry {
		img, err := openImage(ctx, s, nil, pullOptions{Platform: *c.opts.Platform})
		if err != nil {
			return "", nil, err
		}
		d, err := imageDigest(img, s.Kind)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", s.Raw, err)
		}
		return d.Hex + "-" + plat, nil, nil
	}
	d, err := c.pin(ctx, s, creds)
	if err != nil {
		return "", nil, err
	}
	return strings.TrimPrefix(d.DigestStr(), "sha256:") + "-" + plat, d, nil
}

// pin resolves a tag-only source once per node: the answer is kept in
// memory and under tags/, so a moving tag never changes a node's volumes.
func (c *Converter) pin(ctx context.Context, s ociref.Source, creds func() (pullOptions, error)) (name.Digest, error) {
	if d, ok := s.Ref.(name.Digest); ok {
		return d, nil
	}
	c.mu.Lock()
	known := c.tags[s.Raw]
	c.mu.Unlock()
	if known == "" {
		if b, err := os.ReadFile(c.cache.tagFile(s.Raw)); err == nil {
			known = strings.TrimSpace(string(b))
		}
	}
	if known != "" {
		return s.Ref.Context().Digest(known), nil
	}
	po, err := creds()
	if err != nil {
		return name.Digest{}, err
	}
	d, err := pinned(ctx, s, po)
	if err != nil {
		return name.Digest{}, err
	}
	if err := writeAtomic(c.cache.tagFile(s.Raw), []byte(d.DigestStr()+"\n")); err != nil {
		return name.Digest{}, fmt.Errorf("record tag %s: %w", source.Redact(s.Raw), err)
	}
	c.mu.Lock()
	c.tags[s.Raw] = d.DigestStr()
	c.mu.Unlock()
	klog.InfoS("Resolved image tag", "source", source.Redact(s.Raw), "digest", d.DigestStr())
	return d, nil
}

// imageDigest names an image: its manifest digest, or for a docker
// archive its config digest (the image ID), since an archive's manifest
// digest would mean gzipping every layer just to compute it.
func imageDigest(img v1.Image, k ociref.Kind) (v1.Hash, error) {
	if k == ociref.KindArchive {
		return img.ConfigName()
	}
	return img.Digest()
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// run converts under the cross-process lock, unless another process
// finished it meanwhile.
func (c *Converter) run(ctx context.Context, s ociref.Source, ref name.Reference, key string, po pullOptions, st *stacker) (Entry, error) {
	start := time.Now()
	unlock, err := c.lock(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	if e, ok := c.cache.lookup(key); ok {
		return e, nil
	}
	c.cache.clean(key)
	e, err := c.convert(ctx, s, ref, key, po, st)
	p := st.snapshot()
	conv := Conversion{Source: source.Redact(s.Raw), Digest: e.Digest, Size: e.Size, Layers: p.Layers,
		Bytes: p.Bytes, Duration: time.Since(start), Err: err}
	if c.opts.OnConversion != nil {
		c.opts.OnConversion(conv)
	}
	if err != nil {
		klog.ErrorS(err, "OCI image conversion failed", "source", conv.Source, "duration", conv.Duration)
		return Entry{}, err
	}
	klog.InfoS("Converted OCI image", "source", conv.Source, "ociDigest", e.OCIDigest, "digest", e.Digest,
		"size", e.Size, "layers", conv.Layers, "layerBytes", conv.Bytes, "duration", conv.Duration)
	c.cache.evict(key)
	return e, nil
}

// lock takes key's flock, polling so ctx can end the wait.
func (c *Converter) lock(ctx context.Context, key string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.cache.dir, "locks", key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("oci cache lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("oci cache lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("oci cache lock %s: %w", key, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// convert pulls and builds into a temp file, then renames it and writes
// the entry; on any error the temp file goes and the cache is unchanged.
func (c *Converter) convert(ctx context.Context, s ociref.Source, ref name.Reference, key string, po pullOptions, st *stacker) (Entry, error) {
	img, err := openImage(ctx, s, ref, po)
	if err != nil {
		return Entry{}, err
	}
	md, err := imageDigest(img, s.Kind)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: manifest: %w", source.Redact(s.Raw), err)
	}
	ociDigest := md.String()
	if ref != nil {
		ociDigest = ref.Identifier()
	}
	b := image.NewBuilder(image.BuildOptions{TempDir: c.spool})
	defer b.Close()
	st.sized = s.Kind != ociref.KindArchive
	if err := st.stack(ctx, b, img); err != nil {
		return Entry{}, fmt.Errorf("convert %s: %w", source.Redact(s.Raw), err)
	}
	if sk := b.Skipped(); len(sk) > 0 {
		klog.InfoS("Special files left out of converted image", "source", source.Redact(s.Raw), "count", len(sk), "first", sk[0])
	}
	size, digest, err := c.writeImage(ctx, b, key, st)
	if err != nil {
		return Entry{}, fmt.Errorf("convert %s: %w", source.Redact(s.Raw), err)
	}
	e := Entry{Source: source.Redact(s.Raw), OCIDigest: ociDigest, ManifestDigest: md.String(),
		Platform: platformString(po.Platform), Digest: digest, Size: size, Converted: time.Now().UTC(), Path: c.cache.image(key)}
	if err := c.cache.commit(key, e); err != nil {
		os.Remove(e.Path)
		return Entry{}, fmt.Errorf("convert %s: record: %w", source.Redact(s.Raw), err)
	}
	return e, nil
}

func (c *Converter) writeImage(ctx context.Context, b *image.Builder, key string, st *stacker) (int64, string, error) {
	total, err := b.Size()
	if err != nil {
		return 0, "", err
	}
	st.update(func(p *Progress) { p.WrittenTotal = total })
	tmp, err := os.CreateTemp(c.cache.dir, "."+key+".tmp-*")
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	w := &progressWriter{ctx: ctx, w: io.MultiWriter(tmp, h), st: st}
	n, err := b.WriteTo(w)
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), c.cache.image(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, "", err
	}
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type progressWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64
	st  *stacker
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n>>24 != (p.n-int64(n))>>24 { // every 16 MiB
		done := p.n
		p.st.update(func(pr *Progress) { pr.ImageBytes = done })
	}
	return n, err
}
