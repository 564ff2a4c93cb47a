package workflow

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"

	libra "github.com/libra-deploy/libra-deploy"
)

// Compression at deploy time: each text file is compressed once, with gzip
// and brotli, and each variant worth keeping is stored as a blob of its own
// and named in the manifest, so the site host only ever chooses between
// stored bytes.

const (
	// minCompressBytes: below this, an encoding's framing eats most of
	// what it saves, and the response fits in a packet anyway.
	minCompressBytes = 256
	// maxCompressBytes bounds what one file holds in memory while it is
	// compressed. Larger text files are published as they are.
	maxCompressBytes = 32 << 20
	// brotliQuality 9 took about 90 ms per MB of minified JavaScript here
	// (10 and 11 save a few percent more for 8 to 20 times the time); gzip
	// at its best compression took about 50 ms.
	brotliQuality = 9
	// maxCompressWorkers bounds the goroutines one deployment compresses
	// with; compressSlots bounds compressions across all deployments.
	maxCompressWorkers = 4
)

// compressSlots keeps concurrent deployments from running more
// compressions at once than there are processors.
var compressSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// compressExts are the types deploy compresses: text, and wasm, which
// compresses about as well.
var compressExts = map[string]bool{
	".html": true, ".htm": true, ".css": true, ".js": true, ".mjs": true, ".cjs": true,
	".json": true, ".map": true, ".webmanifest": true, ".xml": true, ".rss": true, ".atom": true,
	".svg": true, ".txt": true, ".md": true, ".csv": true, ".yaml": true, ".yml": true,
	".wasm": true,
}

func compressible(p string, size int64) bool {
	return size >= minCompressBytes && size <= maxCompressBytes && compressExts[strings.ToLower(path.Ext(p))]
}

// compressor stores files, compressing the compressible ones on a small
// pool of workers while the deploy step goes on reading the output.
type compressor struct {
	ctx   context.Context
	store libra.ArtifactStore
	jobs  chan compressJob
	wg    sync.WaitGroup

	mu       sync.Mutex
	err      error
	variants map[string]variants
}

type compressJob struct {
	path string
	data []byte
}

type variants struct{ gzip, brotli *libra.Encoded }

func newCompressor(ctx context.Context, store libra.ArtifactStore) *compressor {
	c := &compressor{
		ctx:      ctx,
		store:    store,
		jobs:     make(chan compressJob),
		variants: map[string]variants{},
	}
	for range min(maxCompressWorkers, runtime.GOMAXPROCS(0)) {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

// put stores r's content, as ArtifactStore.Put does, and queues it for
// compression when its type and size call for it. It blocks while every
// worker is busy, so a deployment holds at most a few files in memory.
func (c *compressor) put(p string, size int64, r io.Reader) (string, int64, error) {
	if !compressible(p, size) {
		return c.store.Put(c.ctx, r)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCompressBytes+1))
	if err != nil {
		return "", 0, err
	}
	if len(data) > maxCompressBytes {
		// Grew since it was listed: stored as it is, uncompressed.
		return c.store.Put(c.ctx, io.MultiReader(bytes.NewReader(data), r))
	}
	digest, n, err := c.store.Put(c.ctx, bytes.NewReader(data))
	if err != nil {
		return "", 0, err
	}
	select {
	case c.jobs <- compressJob{path: p, data: data}:
	case <-c.ctx.Done():
		return "", 0, c.ctx.Err()
	}
	return digest, n, nil
}

// queue compresses the content of a file already stored, when its type and
// size call for it; the file itself is not stored again.
func (c *compressor) queue(p string, size int64, r io.Reader) error {
	if !compressible(p, size) {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCompressBytes+1))
	if err != nil {
		return err
	}
	if len(data) > maxCompressBytes {
		return nil // grew since it was listed: published uncompressed
	}
	select {
	case c.jobs <- compressJob{path: p, data: data}:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// finish waits for the queued compressions and records their variants in
// files. It must be called once, also when the step fails.
func (c *compressor) finish(files map[string]libra.ManifestFile) error {
	close(c.jobs)
	c.wg.Wait()
	if c.err != nil {
		return c.err
	}
	for p, v := range c.variants {
		if f, ok := files[p]; ok {
			f.Gzip, f.Brotli = v.gzip, v.brotli
			files[p] = f
		}
	}
	return nil
}

// stats reports how many files have variants, and the bytes of each kind.
func (c *compressor) stats() (files int, gzipBytes, brotliBytes int64) {
	for _, v := range c.variants {
		files++
		if v.gzip != nil {
			gzipBytes += v.gzip.Size
		}
		if v.brotli != nil {
			brotliBytes += v.brotli.Size
		}
	}
	return files, gzipBytes, brotliBytes
}

func (c *compressor) work() {
	defer c.wg.Done()
	var buf bytes.Buffer
	// A worker's writers are reused from file to file: a brotli encoder
	// allocates megabytes of tables.
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	br := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: brotliQuality})
	for j := range c.jobs {
		if c.failed() {
			continue // drain, so that put never blocks on a dead pool
		}
		v, err := c.compress(j.data, &buf, gz, br)
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = fmt.Errorf("compress %s: %w", j.path, err)
		}
		if v.gzip != nil || v.brotli != nil {
			c.variants[j.path] = v
		}
		c.mu.Unlock()
	}
}

func (c *compressor) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// compress encodes data both ways and stores each encoding that saves at
// least a tenth.
func (c *compressor) compress(data []byte, buf *bytes.Buffer, gz *gzip.Writer, br *brotli.Writer) (variants, error) {
	select {
	case compressSlots <- struct{}{}:
	case <-c.ctx.Done():
		return variants{}, c.ctx.Err()
	}
	defer func() { <-compressSlots }()

	var v variants
	for _, enc := range []struct {
		w interface {
			io.WriteCloser
			Reset(io.Writer)
		}
		out **libra.Encoded
	}{{gz, &v.gzip}, {br, &v.brotli}} {
		buf.Reset()
		enc.w.Reset(buf)
		if _, err := enc.w.Write(data); err != nil {
			return v, err
		}
		if err := enc.w.Close(); err != nil {
			return v, err
		}
		if buf.Len() > len(data)-len(data)/10 {
			continue
		}
		digest, size, err := c.store.Put(c.ctx, bytes.NewReader(buf.Bytes()))
		if err != nil {
			return v, fmt.Errorf("store: %w", err)
		}
		*enc.out = &libra.Encoded{Digest: digest, Size: size}
	}
	return v, nil
}
