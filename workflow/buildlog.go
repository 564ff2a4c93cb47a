package workflow

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	libra "github.com/libra-deploy/libra-deploy"
)

// DefaultBuildLogLimit caps a build's full log (BUILD_LOG_LIMIT_MB).
const DefaultBuildLogLimit = 10 << 20

// fullLog is the build's output, kept beside the working directory (outside
// the sandbox) and stored in the artifact store at deploy: the deployment's
// log in the database keeps the first lines only, this keeps the start and
// the end, where failures are.
//
// A build may print without end, so the log is capped, and bounded while
// the build runs, not only once it is stored: the first half of the cap
// goes to the file as it comes, the last half is kept in memory, dropping
// its oldest lines, and is written after a marker saying how much was
// dropped when the log is stored.
type fullLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	err  error

	headLimit int64 // bytes written to f as they come
	written   int64
	tail      lineRing
	dropped   int64 // bytes in neither part
	limit     int64
	finished  bool
}

func newFullLog(path string, limit int64) (*fullLog, error) {
	if limit <= 0 {
		limit = DefaultBuildLogLimit
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	head := limit / 2
	return &fullLog{f: f, path: path, limit: limit, headLimit: head, tail: lineRing{limit: limit - head}}, nil
}

func (l *fullLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.finished {
		return
	}
	n := int64(len(line)) + 1
	if l.tail.size == 0 && l.written+n <= l.headLimit {
		_, l.err = io.WriteString(l.f, line+"\n")
		l.written += n
		return
	}
	l.dropped += l.tail.push(line)
}

// finish writes the kept tail after the marker, once.
func (l *fullLog) finish() error {
	if l.finished || l.err != nil {
		return l.err
	}
	l.finished = true
	if l.dropped > 0 {
		marker := fmt.Sprintf("[... %.1f MB of output dropped: the build log keeps the first and last %.1f MB (BUILD_LOG_LIMIT_MB) ...]\n",
			float64(l.dropped)/1e6, float64(l.limit)/2e6)
		if _, err := io.WriteString(l.f, marker); err != nil {
			return err
		}
	}
	for _, line := range l.tail.lines[l.tail.first:] {
		if _, err := io.WriteString(l.f, line+"\n"); err != nil {
			return err
		}
	}
	l.tail = lineRing{}
	return nil
}

// store puts the log in the artifact store.
func (l *fullLog) store(ctx context.Context, artifacts libra.ArtifactStore) (*libra.ManifestFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.finish(); err != nil {
		l.err = err
		return nil, err
	}
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	digest, size, err := artifacts.Put(ctx, l.f)
	if err != nil {
		return nil, err
	}
	return &libra.ManifestFile{Digest: digest, Size: size}, nil
}

func (l *fullLog) close() {
	if l == nil {
		return
	}
	l.f.Close()
	os.Remove(l.path)
}

// lineRing keeps the most recent lines whose bytes (with their newlines)
// fit in limit.
type lineRing struct {
	lines []string
	first int // lines before first were dropped
	size  int64
	limit int64
}

// push adds line, dropping the oldest lines to stay in limit, and returns
// the bytes dropped. A line longer than the whole limit keeps its end.
func (r *lineRing) push(line string) (dropped int64) {
	if keep := r.limit - 1; int64(len(line)) > keep {
		dropped += int64(len(line)) - keep
		line = line[int64(len(line))-keep:]
	}
	r.lines = append(r.lines, line)
	r.size += int64(len(line)) + 1
	for r.size > r.limit && r.first < len(r.lines) {
		n := int64(len(r.lines[r.first])) + 1
		r.lines[r.first] = ""
		r.first++
		r.size -= n
		dropped += n
	}
	// Compact once most of the slice is dropped lines, so that memory
	// follows what is kept, not what went through.
	if r.first > 1024 && r.first > len(r.lines)/2 {
		r.lines = append(r.lines[:0:0], r.lines[r.first:]...)
		r.first = 0
	}
	return dropped
}
