package workflow

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestSecretFragments(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string
	}{
		{"one line", "abcdefgh12", []string{"abcdefgh12"}},
		{"pem-like", "-----BEGIN KEY-----\nMIIBOgIBAAJBAK\nab\n-----END KEY-----\n",
			[]string{"-----BEGIN KEY-----\nMIIBOgIBAAJBAK\nab\n-----END KEY-----\n", "-----BEGIN KEY-----", "MIIBOgIBAAJBAK", "-----END KEY-----"}},
		{"crlf", "first-line-x\r\nsecond-line-y", []string{"first-line-x\r\nsecond-line-y", "first-line-x", "second-line-y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secretFragments(tt.value); !slices.Equal(got, tt.want) {
				t.Fatalf("secretFragments = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRedactLongestFirst: a secret containing another is hidden whole, and
// lines of a multi-line secret printed one by one are hidden too.
func TestRedactLongestFirst(t *testing.T) {
	b := &logBuffer{logger: slog.Default()}
	b.Redact("short-secret")
	b.Redact(secretFragments("prefix-short-secret-suffix\nsecond-line-here")...)
	tests := []struct{ in, want string }{
		{"token=prefix-short-secret-suffix!", "token=[REDACTED]!"},
		{"just short-secret", "just [REDACTED]"},
		{"second-line-here", "[REDACTED]"},
		{"nothing secret", "nothing secret"},
	}
	for _, tt := range tests {
		if got := b.redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(b.redact(tt.in), "suffix") {
			t.Errorf("part of a secret survived in %q", b.redact(tt.in))
		}
	}
}

// BenchmarkRedactLine: the cost redaction adds to each build output line
// for a project with the most secrets allowed (64).
func BenchmarkRedactLine(b *testing.B) {
	buf := &logBuffer{logger: slog.Default()}
	for i := range 64 {
		buf.Redact(fmt.Sprintf("secret-value-%02d-0123456789abcdef", i))
	}
	line := strings.Repeat("compiling module ./src/components/Widget.tsx ", 3)
	for b.Loop() {
		if buf.redact(line) != line {
			b.Fatal("a clean line changed")
		}
	}
	b.ReportMetric(float64(len(line)), "bytes/line")
}
