package remote

import (
	"bytes"
	"strings"
)

// maxLine cuts a line that never ends (a progress bar without newlines).
const maxLine = 16 << 10

// LineWriter passes each complete line written to it to fn, as the local
// sandbox does with a build's output.
type LineWriter struct {
	fn      func(string)
	pending []byte
}

// NewLineWriter returns a LineWriter calling fn; a nil fn drops the lines.
func NewLineWriter(fn func(string)) *LineWriter {
	if fn == nil {
		fn = func(string) {}
	}
	return &LineWriter{fn: fn}
}

func (w *LineWriter) Write(p []byte) (int, error) {
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.emit(w.pending[:i])
		w.pending = w.pending[i+1:]
	}
	if len(w.pending) >= maxLine {
		w.emit(w.pending)
		w.pending = nil
	}
	return len(p), nil
}

// Flush passes a last line that had no newline.
func (w *LineWriter) Flush() {
	if len(w.pending) > 0 {
		w.emit(w.pending)
		w.pending = nil
	}
}

func (w *LineWriter) emit(b []byte) {
	w.fn(strings.TrimSuffix(string(b), "\r"))
}
