package workflow

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFullLogKeepsHeadAndTail: the file stays under the head half while
// lines come, and the stored text is head, marker, tail, within the cap.
func TestFullLogKeepsHeadAndTail(t *testing.T) {
	cases := []struct {
		name        string
		limit       int64
		lines       int
		lineLen     int
		wantDropped bool
	}{
		{"fits", 1 << 20, 100, 100, false},
		{"floods", 64 << 10, 10_000, 100, true},
		{"one huge line", 64 << 10, 3, 200 << 10, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "build.log")
			l, err := newFullLog(path, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			var peak int64
			for i := range c.lines {
				l.add(strings.Repeat("x", c.lineLen-10) + lineTag(i))
				if fi, err := os.Stat(path); err == nil {
					peak = max(peak, fi.Size())
				}
			}
			l.mu.Lock()
			if err := l.finish(); err != nil {
				t.Fatal(err)
			}
			l.mu.Unlock()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("limit %d: peak while adding %d bytes, final %d bytes", c.limit, peak, len(b))
			if peak > c.limit/2 {
				t.Errorf("file reached %d bytes while lines came, past half the cap", peak)
			}
			if int64(len(b)) > c.limit+200 {
				t.Errorf("final log %d bytes, cap %d", len(b), c.limit)
			}
			if got := strings.Contains(string(b), "of output dropped"); got != c.wantDropped {
				t.Errorf("marker present = %v, want %v", got, c.wantDropped)
			}
			if last := lineTag(c.lines - 1); !strings.HasSuffix(string(b), last+"\n") {
				t.Errorf("the last line %q is not at the end", last)
			}
		})
	}
}

func lineTag(i int) string { return fmt.Sprintf("#%08d", i) }
