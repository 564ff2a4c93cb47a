package main

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows upload progress on stderr: a byte-level bar on a
// terminal, a plain line every progressLineEvery otherwise.
type progress struct {
	total   int64
	files   int
	sent    atomic.Int64
	filesOK atomic.Int64
	bar     *progressbar.ProgressBar

	mu       sync.Mutex
	lastLine time.Time
}

func newProgress(total int64, files int) *progress {
	p := &progress{total: total, files: files, lastLine: time.Now()}
	if isTerminal(os.Stderr) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("uploading"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth())
	}
	return p
}

// add counts bytes sent; negative when an attempt failed and is resent.
func (p *progress) add(n int64) {
	sent := p.sent.Add(n)
	if p.bar != nil {
		_ = p.bar.Set64(sent)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.lastLine) >= progressLineEvery {
		p.lastLine = time.Now()
		p.line(sent)
	}
}

func (p *progress) fileDone() { p.filesOK.Add(1) }

func (p *progress) line(sent int64) {
	logf("uploaded %d/%d files, %s of %s", p.filesOK.Load(), p.files, humanBytes(sent), humanBytes(p.total))
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	p.line(p.sent.Load())
}
